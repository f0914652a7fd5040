package kinesispipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/selftest"
)

// SelfTestPackage is the import path of the self-test function, built into its `bootstrap` like the processor.
const SelfTestPackage = modulePath + "/runtime/cmd/selftest"

// Self-test timing. The function runs SelfTestTimeout plus selfTestReserveSeconds (cleanup, evidence and the answer
// to CloudFormation), within Lambda's 15 minutes; CloudFormation waits one more minute for the answer.
const (
	DefaultSelfTestTimeoutMinutes = 5
	MinSelfTestTimeoutSeconds     = 30
	MaxSelfTestTimeoutSeconds     = 900 - selfTestReserveSeconds
	selfTestReserveSeconds        = 60
)

// SelfTestResourceType is the CloudFormation type of the custom resource that runs the self-test at deployment.
const SelfTestResourceType = "Custom::KdpSelfTest"

// selfTestParts are the self-test's resources, nil without SelfTestEnabled.
type selfTestParts struct {
	function awslambda.Function
	role     awsiam.Role
	resource awscdk.CustomResource
	schedule awsevents.Rule
}

// SelfTestFunction returns the self-test function, or nil without SelfTestEnabled.
func (p *KinesisDynamoPipeline) SelfTestFunction() awslambda.Function {
	if p.selfTest == nil {
		return nil
	}
	return p.selfTest.function
}

// SelfTestResource returns the custom resource that runs the self-test at deployment, or nil without SelfTestEnabled.
func (p *KinesisDynamoPipeline) SelfTestResource() awscdk.CustomResource {
	if p.selfTest == nil {
		return nil
	}
	return p.selfTest.resource
}

// MetricSelfTestRecordsToErrorTable returns the self-test's malformed canaries stored in the error table (the
// processor's SelfTestRecordsToErrorTable, sum), which MetricRecordsToErrorTable and its alarm leave out.
func (p *KinesisDynamoPipeline) MetricSelfTestRecordsToErrorTable(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricSelfTestRecordsToErrorTable, "Sum", props)
}

// selfTestConfig builds the self-test's configuration (the canary's) from the props and the processor's configuration,
// and returns the problems with the self-test props, each naming the prop.
func selfTestConfig(in *KinesisDynamoPipelineProps, cfg processor.Config) (selftest.Config, []string) {
	var v validator
	if !isTrue(in.SelfTestEnabled) {
		for prop, set := range map[string]bool{"SelfTestTimeout": in.SelfTestTimeout != nil, "SelfTestRecord": in.SelfTestRecord != nil,
			"SelfTestKey": in.SelfTestKey != nil, "SelfTestSchedule": in.SelfTestSchedule != nil} {
			v.check(!set, prop+": only allowed with SelfTestEnabled")
		}
		return selftest.Config{}, v.problems
	}
	filters := in.Filters != nil && len(*in.Filters) > 0
	st := selftest.Config{
		Pipeline:  cfg,
		Record:    deref(in.SelfTestRecord),
		Malformed: enabled(in.ErrorTableEnabled) && !filters, // event filters drop data that is not JSON
	}
	if in.SelfTestKey != nil {
		st.Key = map[string]any{}
		for k, val := range *in.SelfTestKey {
			st.Key[k] = val
		}
	}
	v.check(in.Enabled == nil || *in.Enabled, "SelfTestEnabled: the event source mapping is disabled (Enabled false), so "+
		"the canary can never be processed; enable the mapping or turn the self-test off")
	if in.ProcessorEntry != nil {
		v.check(in.SelfTestRecord != nil && in.SelfTestKey != nil, "SelfTestRecord and SelfTestKey: required with "+
			"ProcessorEntry (the construct cannot see which items your processor writes): give a canary payload your "+
			"transform accepts and the key of the item it writes (\"$eventId\" stands for the canary's event id)")
	}
	if filters {
		v.check(in.SelfTestRecord != nil, "SelfTestRecord: required with Filters: the canary must match one of them")
	}
	timeout := float64(DefaultSelfTestTimeoutMinutes * 60)
	if d := in.SelfTestTimeout; d != nil {
		if *d.IsUnresolved() {
			v.add("SelfTestTimeout: must be known at synth time, not a token (it sets the function's timeout)")
		} else {
			timeout = seconds(d)
			v.duration("SelfTestTimeout", d, MinSelfTestTimeoutSeconds, MaxSelfTestTimeoutSeconds,
				fmt.Sprintf("between %d seconds and %d minutes (the function needs a minute more, within Lambda's 15)",
					MinSelfTestTimeoutSeconds, MaxSelfTestTimeoutSeconds/60))
		}
	}
	if w := in.MaxBatchingWindow; w != nil && !*w.IsUnresolved() && seconds(w) >= timeout {
		v.add("SelfTestTimeout: must be longer than MaxBatchingWindow, which can hold the canary back that long")
	}
	if err := st.Validate(); err != nil {
		for _, e := range unjoin(err) {
			switch {
			case errors.Is(e, selftest.ErrRecordRequired) && in.SelfTestRecord == nil:
				v.add("SelfTestRecord: required: " + e.Error())
			case errors.Is(e, selftest.ErrKeyRequired):
				v.add("SelfTestKey: required: " + e.Error())
			case in.ProcessorEntry != nil && in.SelfTestRecord == nil: // already reported as required
			default:
				v.add("SelfTestRecord or SelfTestKey: " + e.Error())
			}
		}
	}
	return st, v.problems
}

// unjoin returns the errors errors.Join joined, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// createSelfTest adds the self-test function, its custom resource, outputs and schedule.
func (p *KinesisDynamoPipeline) createSelfTest(in *KinesisDynamoPipelineProps, st selftest.Config, processorBundler *goBundler, removal awscdk.RemovalPolicy) {
	if !isTrue(in.SelfTestEnabled) {
		return
	}
	timeout := float64(DefaultSelfTestTimeoutMinutes * 60)
	if in.SelfTestTimeout != nil {
		timeout = math.Ceil(seconds(in.SelfTestTimeout))
	}
	config, err := st.Marshal()
	if err != nil {
		panic(propsError(*p.Node().Path(), []string{"SelfTestEnabled: " + err.Error()}))
	}
	bundler := &goBundler{name: "the self-test function", pkg: SelfTestPackage, dir: mustGetwd(), goarch: processorBundler.goarch,
		tags: "lambda.norpc", config: config, configFile: selftest.ConfigFileName}

	logProps := &awslogs.LogGroupProps{Retention: in.LogRetention, RemovalPolicy: removal, EncryptionKey: in.EncryptionKey}
	if logProps.Retention == "" {
		logProps.Retention = awslogs.RetentionDays_ONE_MONTH
	}
	logGroup := awslogs.NewLogGroup(p, jsii.String("SelfTestLogGroup"), logProps)
	// A role of its own with exactly the calls the self-test makes, and no managed policy.
	role := awsiam.NewRole(p, jsii.String("SelfTestRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Self-test of the Kinesis to DynamoDB pipeline " + *p.Node().Path()),
	})
	env := map[string]*string{
		selftest.EnvStreamName:     p.stream.StreamName(),
		selftest.EnvStreamARN:      p.stream.StreamArn(),
		processor.EnvTableName:     p.table.TableName(),
		selftest.EnvMappingUUID:    p.mapping.EventSourceMappingId(),
		selftest.EnvTimeoutSeconds: jsii.String(strconv.Itoa(int(timeout))),
	}
	if p.errorTable != nil {
		env[processor.EnvErrorTableName] = p.errorTable.TableName()
	}
	arch := in.Architecture
	if arch == nil {
		arch = awslambda.Architecture_ARM_64()
	}
	fn := awslambda.NewFunction(p, jsii.String("SelfTestFunction"), &awslambda.FunctionProps{
		Description:   jsii.String("Self-test: puts a canary into the pipeline's stream and waits for its item"),
		Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:  arch,
		Handler:       jsii.String("bootstrap"),
		Code:          processorCode(bundler),
		MemorySize:    jsii.Number(128),
		Timeout:       awscdk.Duration_Seconds(jsii.Number(timeout + selfTestReserveSeconds)),
		LoggingFormat: awslambda.LoggingFormat_JSON,
		LogGroup:      logGroup,
		Role:          role,
		Environment:   &env,
		RetryAttempts: jsii.Number(0), // a scheduled run that fails is one failure, not three
	})
	p.grantSelfTest(role, logGroup)

	// The custom resource runs the self-test on Create and on every Update. Its properties change whenever the
	// pipeline does: the canary's configuration (which holds the processor's), the processor's code, the names of
	// what it tests, and the mapping's and the function's settings. CloudFormation then sends an Update.
	sum := sha256.Sum256(config)
	props := map[string]interface{}{
		"ConfigurationSha256": hex.EncodeToString(sum[:]),
		"StreamArn":           p.stream.StreamArn(),
		"TableName":           p.table.TableName(),
		"ProcessorFunction":   p.function.FunctionName(),
		"EventSourceMapping":  p.mapping.EventSourceMappingId(),
	}
	if asset := p.codeAsset(); asset != nil {
		props["ProcessorCodeSha256"] = asset.AssetHash()
	}
	if p.errorTable != nil {
		props["ErrorTableName"] = p.errorTable.TableName()
	}
	if m, ok := p.mapping.Node().DefaultChild().(awslambda.CfnEventSourceMapping); ok {
		props["MappingSettings"] = map[string]interface{}{"BatchSize": m.BatchSize(), "MaximumBatchingWindowInSeconds": m.MaximumBatchingWindowInSeconds(),
			"StartingPosition": m.StartingPosition(), "Enabled": m.Enabled(), "FilterCriteria": m.FilterCriteria(), "ParallelizationFactor": m.ParallelizationFactor()}
	}
	if f, ok := p.function.Node().DefaultChild().(awslambda.CfnFunction); ok {
		settings := map[string]interface{}{"Timeout": f.Timeout(), "MemorySize": f.MemorySize()}
		// The network: a processor moved into a VPC (or other subnets) must be tested again. (Its fields: jsii cannot
		// pass the struct itself back as a value.)
		if v, ok := f.VpcConfig().(*awslambda.CfnFunction_VpcConfigProperty); ok && v != nil {
			settings["VpcConfig"] = map[string]interface{}{"SubnetIds": v.SubnetIds, "SecurityGroupIds": v.SecurityGroupIds}
		}
		props["FunctionSettings"] = settings
	}
	// The processor's permissions (its role's policy, keys included, resolved at synth with every later grant): a
	// change there is what the self-test exists to catch.
	if pol, ok := p.role.Node().TryFindChild(jsii.String("DefaultPolicy")).(awsiam.Policy); ok {
		if cfnPol, ok := pol.Node().DefaultChild().(awsiam.CfnPolicy); ok {
			props["ProcessorPolicy"] = cfnPol.PolicyDocument()
		}
	}
	resource := awscdk.NewCustomResource(p, jsii.String("SelfTest"), &awscdk.CustomResourceProps{
		ServiceToken:   fn.FunctionArn(),
		ResourceType:   jsii.String(SelfTestResourceType),
		Properties:     &props,
		ServiceTimeout: awscdk.Duration_Seconds(jsii.Number(timeout + 2*selfTestReserveSeconds)),
	})
	// Everything the canary passes through exists, with its permissions, before the self-test runs.
	resource.Node().AddDependency(p.mapping, p.function, p.role, role, p.table)
	if p.errorTable != nil {
		resource.Node().AddDependency(p.errorTable)
	}
	p.selfTest = &selfTestParts{function: fn, role: role, resource: resource}

	if enabled(in.OutputsEnabled) {
		awscdk.NewCfnOutput(p, jsii.String("SelfTestFunctionName"), &awscdk.CfnOutputProps{
			Value: fn.FunctionName(),
			Description: jsii.String("Runs the pipeline's self-test on demand: aws lambda invoke --function-name <this> " +
				"--cli-binary-format raw-in-base64-out --payload '{}' /dev/stdout (a failure says which step, why, and what it saw)"),
		})
	}
	if in.SelfTestSchedule != nil {
		rule := awsevents.NewRule(p, jsii.String("SelfTestSchedule"), &awsevents.RuleProps{
			Schedule:    in.SelfTestSchedule,
			Description: jsii.String("Runs the self-test of " + *p.Node().Path()),
		})
		rule.AddTarget(awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{
			Event:         awsevents.RuleTargetInput_FromObject(map[string]string{"source": "kdp-selftest-schedule"}),
			RetryAttempts: jsii.Number(0),
		}))
		p.selfTest.schedule = rule
		p.createSelfTestAlarm(in, fn)
	}
	p.warnAboutSelfTest(in, st)
}

// grantSelfTest gives the self-test's role exactly its calls: PutRecord on this stream, GetItem and DeleteItem on
// the two tables (no PutItem, Scan or Query), the mapping's state, the stack's status, and the matching key use.
func (p *KinesisDynamoPipeline) grantSelfTest(role awsiam.Role, logGroup awslogs.LogGroup) {
	logGroup.GrantWrite(role)
	p.stream.Grant(role, jsii.String("kinesis:PutRecord"))
	if key := p.stream.EncryptionKey(); key != nil {
		key.Grant(role, jsii.String("kms:GenerateDataKey"))
	}
	for _, table := range []interface {
		Grant(awsiam.IGrantable, ...*string) awsiam.Grant
	}{p.table, p.errorTable} {
		if table != nil {
			table.Grant(role, jsii.String("dynamodb:GetItem"), jsii.String("dynamodb:DeleteItem"))
		}
	}
	for _, key := range tableKeys(p) {
		key.GrantDecrypt(role)
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("lambda:GetEventSourceMapping"),
		Resources: jsii.Strings(*p.mapping.EventSourceMappingArn()),
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("cloudformation:DescribeStacks"),
		Resources: jsii.Strings(*awscdk.Stack_Of(p).StackId()),
	}))
}

// createSelfTestAlarm adds PipelineAlarm_SELF_TEST: a failed run of the self-test function (any invocation).
func (p *KinesisDynamoPipeline) createSelfTestAlarm(in *KinesisDynamoPipelineProps, fn awslambda.Function) {
	if !enabled(in.AlarmsEnabled) {
		return
	}
	if in.DisabledAlarms != nil {
		for _, a := range *in.DisabledAlarms {
			if a == PipelineAlarm_SELF_TEST {
				return
			}
		}
	}
	alarm := awscloudwatch.NewAlarm(p, jsii.String(string(PipelineAlarm_SELF_TEST)), &awscloudwatch.AlarmProps{
		Metric:             fn.MetricErrors(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}),
		Threshold:          jsii.Number(0),
		EvaluationPeriods:  jsii.Number(1),
		DatapointsToAlarm:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		AlarmDescription:   jsii.String(*p.Node().Path() + ": the self-test failed; its log says which step, why, and what it saw"),
	})
	if in.AlarmAction != nil {
		alarm.AddAlarmAction(in.AlarmAction)
		alarm.AddOkAction(in.AlarmAction)
	}
	p.alarms[PipelineAlarm_SELF_TEST] = alarm
}

func tableKeys(p *KinesisDynamoPipeline) []interface {
	GrantDecrypt(awsiam.IGrantable) awsiam.Grant
} {
	var out []interface {
		GrantDecrypt(awsiam.IGrantable) awsiam.Grant
	}
	if key := p.table.EncryptionKey(); key != nil {
		out = append(out, key)
	}
	if p.errorTable != nil {
		if key := p.errorTable.EncryptionKey(); key != nil && key != p.table.EncryptionKey() {
			out = append(out, key)
		}
	}
	return out
}

// warnAboutSelfTest says where the self-test may fail for reasons outside the pipeline, or tests less.
func (p *KinesisDynamoPipeline) warnAboutSelfTest(in *KinesisDynamoPipelineProps, st selftest.Config) {
	warn := func(id, msg string) { awscdk.Annotations_Of(p).AddWarningV2(jsii.String(id), jsii.String(msg), nil) }
	if in.StartingPosition == awslambda.StartingPosition_LATEST {
		warn("kinesispipeline:selfTestLatest", "StartingPosition is LATEST: on the first deployment the mapping may start "+
			"reading after the self-test's canary, which then times out and fails the deployment; use TRIM_HORIZON")
	}
	if in.StartingPosition == awslambda.StartingPosition_AT_TIMESTAMP && in.StartingPositionTimestamp != nil &&
		!*awscdk.Token_IsUnresolved(in.StartingPositionTimestamp) && *in.StartingPositionTimestamp > float64(time.Now().Unix()) {
		warn("kinesispipeline:selfTestFutureTimestamp", "StartingPositionTimestamp is after this synth: a deployment before "+
			"that time creates the mapping to start after the self-test's canary, which then times out and fails the deployment")
	}
	if in.Stream != nil && in.StartingPosition != awslambda.StartingPosition_LATEST {
		warn("kinesispipeline:selfTestBacklog", "the existing Stream is read from "+string(startingPositionOrDefault(in))+
			": on the first deployment the mapping processes the stream's retained backlog before the self-test's canary, "+
			"which fails the deployment if that takes longer than SelfTestTimeout; raise SelfTestTimeout, or deploy the "+
			"self-test once the mapping has caught up")
	}
	timeout := float64(DefaultSelfTestTimeoutMinutes * 60)
	if in.SelfTestTimeout != nil {
		timeout = seconds(in.SelfTestTimeout)
	}
	if w := in.MaxBatchingWindow; w != nil && !*w.IsUnresolved() && seconds(w) < timeout && 2*seconds(w) > timeout {
		warn("kinesispipeline:selfTestBatchingWindow", "MaxBatchingWindow is more than half of SelfTestTimeout: the "+
			"canary may wait most of the timeout in the window; raise SelfTestTimeout")
	}
	if !st.Malformed {
		why := "the pipeline has no error table"
		if enabled(in.ErrorTableEnabled) {
			why = "Filters drop records whose data is not JSON"
		}
		awscdk.Annotations_Of(p).AddInfo(jsii.String("the self-test puts no malformed canary: " + why))
	}
}

// startingPositionOrDefault is the mapping's starting position: the prop, or TRIM_HORIZON.
func startingPositionOrDefault(in *KinesisDynamoPipelineProps) awslambda.StartingPosition {
	if in.StartingPosition == "" {
		return awslambda.StartingPosition_TRIM_HORIZON
	}
	return in.StartingPosition
}
