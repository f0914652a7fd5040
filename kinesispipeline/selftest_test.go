package kinesispipeline_test

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/selftest"
)

const typeSelfTest = kinesispipeline.SelfTestResourceType

// resourceWithPrefix returns the one resource of typ whose logical ID starts with prefix.
func resourceWithPrefix(t *testing.T, tmpl map[string]interface{}, typ, prefix string) (string, map[string]interface{}) {
	t.Helper()
	var ids []string
	for id := range testutil.Resources(tmpl, typ) {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want one %s with logical ID prefix %s, found %v", typ, prefix, ids)
	}
	return ids[0], testutil.Resources(tmpl, typ)[ids[0]]
}

// statementPairs flattens a policy's statements into "effect action on resource" lines (JSON resources), sorted, so
// the comparison does not depend on how CDK merges statements (@aws-cdk/aws-iam:minimizePolicies).
func statementPairs(t *testing.T, policy map[string]interface{}) []string {
	t.Helper()
	var out []string
	list := func(v interface{}) []interface{} {
		if l, ok := v.([]interface{}); ok {
			return l
		}
		return []interface{}{v}
	}
	for _, s := range testutil.Get(policy, "Properties", "PolicyDocument", "Statement").([]interface{}) {
		if testutil.Get(s, "Condition") != nil {
			t.Errorf("unexpected condition in %v", s)
		}
		for _, a := range list(testutil.Get(s, "Action")) {
			for _, r := range list(testutil.Get(s, "Resource")) {
				rj, _ := json.Marshal(r)
				out = append(out, testutil.Get(s, "Effect").(string)+" "+a.(string)+" on "+string(rj))
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestSelfTestResources(t *testing.T) {
	stack, p, tmpl := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true)})
	if p.SelfTestFunction() == nil || p.SelfTestResource() == nil {
		t.Fatal("accessors return nil")
	}
	id := func(typ, prefix string) string { i, _ := resourceWithPrefix(t, tmpl, typ, prefix); return i }
	fnID, stFnID := id(typeFunction, "PipelineFunction"), id(typeFunction, "PipelineSelfTestFunction")
	mappingID, _ := testutil.OneResource(t, tmpl, typeMapping)
	streamID, _ := testutil.OneResource(t, tmpl, typeStream)
	tableID, errorTableID := id(typeTable, "PipelineTable"), id(typeTable, "PipelineErrorTable")
	roleID, stRoleID := id(typeRole, "PipelineServiceRole"), id(typeRole, "PipelineSelfTestRole")
	policyID, stPolicyID := id(typePolicy, "PipelineServiceRoleDefaultPolicy"), id(typePolicy, "PipelineSelfTestRoleDefaultPolicy")
	ref := func(id string) map[string]interface{} { return map[string]interface{}{"Ref": id} }
	arn := func(id string) map[string]interface{} {
		return map[string]interface{}{"Fn::GetAtt": []string{id, "Arn"}}
	}

	// What runs when: the custom resource, backed by the self-test function, after the mapping, the processor and
	// both roles with their policies exist.
	crID, cr := resourceWithPrefix(t, tmpl, typeSelfTest, "PipelineSelfTest")
	props := cr["Properties"].(map[string]interface{})
	assertEqual(t, "service token", props["ServiceToken"], arn(stFnID))
	dependsOn := map[string]bool{}
	for _, d := range cr["DependsOn"].([]interface{}) {
		dependsOn[d.(string)] = true
	}
	for _, want := range []string{mappingID, fnID, roleID, policyID, stRoleID, stPolicyID, tableID, errorTableID} {
		if !dependsOn[want] {
			t.Errorf("%s does not depend on %s (DependsOn %v)", crID, want, cr["DependsOn"])
		}
	}
	assertEqual(t, "service timeout", props["ServiceTimeout"], "420")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(props["ConfigurationSha256"].(string)) {
		t.Errorf("ConfigurationSha256 = %v", props["ConfigurationSha256"])
	}
	assertEqual(t, "tested resources", []interface{}{props["StreamArn"], props["TableName"], props["ErrorTableName"], props["ProcessorFunction"], props["EventSourceMapping"]},
		[]interface{}{arn(streamID), ref(tableID), ref(errorTableID), ref(fnID), ref(mappingID)})

	// The function: its environment, a timeout a minute beyond SelfTestTimeout, no async retries.
	stFn := testutil.Resources(tmpl, typeFunction)[stFnID]["Properties"].(map[string]interface{})
	assertEqual(t, "environment", testutil.Get(stFn, "Environment", "Variables"), map[string]interface{}{
		selftest.EnvStreamName: ref(streamID), selftest.EnvStreamARN: arn(streamID),
		"PIPELINE_TABLE_NAME": ref(tableID), "PIPELINE_ERROR_TABLE_NAME": ref(errorTableID),
		selftest.EnvMappingUUID: ref(mappingID), selftest.EnvTimeoutSeconds: "300",
	})
	assertEqual(t, "timeout", stFn["Timeout"], 360)
	assertEqual(t, "async retries", testutil.Properties(t, tmpl, "AWS::Lambda::EventInvokeConfig")["MaximumRetryAttempts"], 0)

	// Its permissions, exactly; a role of its own without managed policies.
	logGroupID := id(typeLogGroup, "PipelineSelfTestLogGroup")
	// The mapping's ARN as CDK renders it (the partition is literal or a reference depending on feature flags).
	var mappingArn interface{}
	testutil.Must(t, func() { mappingArn = stack.Resolve(p.EventSourceMapping().EventSourceMappingArn()) })
	if !strings.Contains(fmt.Sprint(mappingArn), mappingID) {
		t.Fatalf("mapping ARN %v does not name the mapping", mappingArn)
	}
	j := func(v interface{}) string { b, _ := json.Marshal(v); return string(b) }
	want := []string{
		"Allow cloudformation:DescribeStacks on " + j(ref("AWS::StackId")),
		"Allow dynamodb:DeleteItem on " + j(arn(errorTableID)),
		"Allow dynamodb:DeleteItem on " + j(arn(tableID)),
		"Allow dynamodb:GetItem on " + j(arn(errorTableID)),
		"Allow dynamodb:GetItem on " + j(arn(tableID)),
		"Allow kinesis:PutRecord on " + j(arn(streamID)),
		"Allow lambda:GetEventSourceMapping on " + j(mappingArn),
		"Allow logs:CreateLogStream on " + j(arn(logGroupID)),
		"Allow logs:PutLogEvents on " + j(arn(logGroupID)),
	}
	sort.Strings(want)
	assertEqual(t, "self-test policy", statementPairs(t, testutil.Resources(tmpl, typePolicy)[stPolicyID]), want)
	if m := testutil.Resources(tmpl, typeRole)[stRoleID]["Properties"].(map[string]interface{})["ManagedPolicyArns"]; m != nil {
		t.Errorf("self-test role has managed policies %v", m)
	}
	// The processor's role gains nothing.
	for _, line := range statementPairs(t, testutil.Resources(tmpl, typePolicy)[policyID]) {
		if strings.Contains(line, "DeleteItem") || strings.Contains(line, "PutRecord") {
			t.Errorf("processor role: %s", line)
		}
	}

	// On demand: an output naming the function.
	out, _ := tmpl["Outputs"].(map[string]interface{})
	var named bool
	for name, o := range out {
		if strings.HasPrefix(name, "PipelineSelfTestFunctionName") {
			named = true
			assertEqual(t, "output value", testutil.Get(o, "Value"), ref(stFnID))
			if d, _ := testutil.Get(o, "Description").(string); !strings.Contains(d, "aws lambda invoke --function-name") {
				t.Errorf("output description %q", d)
			}
		}
	}
	if !named {
		t.Error("no SelfTestFunctionName output")
	}
	testutil.Must(t, func() {
		m := p.MetricSelfTestRecordsToErrorTable(nil)
		assertEqual(t, "self-test metric", []interface{}{*m.Namespace(), *m.MetricName(), *m.Statistic(), stack.Resolve((*m.Dimensions())["FunctionName"])},
			[]interface{}{"KinesisDynamoPipeline", "SelfTestRecordsToErrorTable", "Sum", ref(fnID)})
	})
	if len(testutil.Resources(tmpl, "AWS::Events::Rule")) != 0 {
		t.Error("a schedule without SelfTestSchedule")
	}
}

func TestSelfTestOffByDefault(t *testing.T) {
	_, p, tmpl := synth(t, nil)
	if n := len(testutil.Resources(tmpl, typeSelfTest)); n != 0 || p.SelfTestFunction() != nil {
		t.Errorf("%d self-test resources without SelfTestEnabled", n)
	}
}

// TestSelfTestRerunsOnPipelineChange: the custom resource's properties change with the pipeline (so CloudFormation
// sends an Update, which runs the self-test) and stay the same when nothing changes.
func TestSelfTestRerunsOnPipelineChange(t *testing.T) {
	base := func() *kinesispipeline.KinesisDynamoPipelineProps {
		return &kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true)}
	}
	properties := func(props *kinesispipeline.KinesisDynamoPipelineProps) string {
		_, _, tmpl := synth(t, props)
		_, cr := resourceWithPrefix(t, tmpl, typeSelfTest, "PipelineSelfTest")
		b, _ := json.Marshal(cr["Properties"])
		return string(b)
	}
	reference := properties(base())
	if again := properties(base()); again != reference {
		t.Fatalf("same pipeline, different properties:\n%s\n%s", reference, again)
	}
	tests := []struct {
		name   string
		change func(*kinesispipeline.KinesisDynamoPipelineProps)
	}{
		{"batch size", func(p *kinesispipeline.KinesisDynamoPipelineProps) { p.BatchSize = jsii.Number(500) }},
		{"transform", func(p *kinesispipeline.KinesisDynamoPipelineProps) {
			p.Transform = &kinesispipeline.TransformProps{Exclude: jsii.Strings("secret")}
		}},
		{"memory", func(p *kinesispipeline.KinesisDynamoPipelineProps) { p.MemorySize = jsii.Number(512) }},
		{"sort key", func(p *kinesispipeline.KinesisDynamoPipelineProps) {
			p.SortKey = &awsdynamodb.Attribute{Name: jsii.String("at"), Type: awsdynamodb.AttributeType_NUMBER}
		}},
		{"self-test timeout", func(p *kinesispipeline.KinesisDynamoPipelineProps) {
			p.SelfTestTimeout = awscdk.Duration_Minutes(jsii.Number(3))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			props := base()
			tt.change(props)
			if properties(props) == reference {
				t.Errorf("changing the %s leaves the self-test's properties unchanged: it would not run again", tt.name)
			}
		})
	}
}

func TestSelfTestSchedule(t *testing.T) {
	_, p, tmpl := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true),
		SelfTestSchedule: awsevents.Schedule_Rate(awscdk.Duration_Hours(jsii.Number(1)))})
	stFnID, _ := resourceWithPrefix(t, tmpl, typeFunction, "PipelineSelfTestFunction")
	rule := testutil.Properties(t, tmpl, "AWS::Events::Rule")
	assertEqual(t, "schedule", rule["ScheduleExpression"], "rate(1 hour)")
	assertEqual(t, "target", testutil.Get(rule, "Targets", "0", "Arn"), map[string]interface{}{"Fn::GetAtt": []string{stFnID, "Arn"}})
	assertEqual(t, "target retries", testutil.Get(rule, "Targets", "0", "RetryPolicy", "MaximumRetryAttempts"), 0)
	alarm := p.Alarm(kinesispipeline.PipelineAlarm_SELF_TEST)
	if alarm == nil {
		t.Fatal("no self-test alarm")
	}
	got := alarmsByPrefix(tmpl)[string(kinesispipeline.PipelineAlarm_SELF_TEST)]
	assertEqual(t, "alarm metric", []interface{}{got["MetricName"], got["Namespace"], got["Statistic"], got["Threshold"], got["ComparisonOperator"]},
		[]interface{}{"Errors", "AWS/Lambda", "Sum", 0, "GreaterThanThreshold"})
	assertEqual(t, "alarm dimension", got["Dimensions"], []interface{}{map[string]interface{}{"Name": "FunctionName", "Value": map[string]interface{}{"Ref": stFnID}}})
}

func TestSelfTestPropsRefused(t *testing.T) {
	schema := &kinesispipeline.TransformProps{Schema: jsii.String(`{"type":"object","required":["amount"]}`)}
	filter := map[string]interface{}{"data": map[string]interface{}{"kind": []interface{}{"order"}}}
	tests := []struct {
		name  string
		props kinesispipeline.KinesisDynamoPipelineProps
		want  []string
	}{
		{"self-test props without SelfTestEnabled", kinesispipeline.KinesisDynamoPipelineProps{SelfTestRecord: jsii.String(`{}`),
			SelfTestTimeout: awscdk.Duration_Minutes(jsii.Number(1))},
			[]string{"SelfTestRecord: only allowed with SelfTestEnabled", "SelfTestTimeout: only allowed with SelfTestEnabled"}},
		{"mapping disabled", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true), Enabled: jsii.Bool(false)},
			[]string{"SelfTestEnabled: the event source mapping is disabled"}},
		{"processor entry without the canary", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true),
			ProcessorEntry: jsii.String("../examples/custom-processor/processor")},
			[]string{"SelfTestRecord and SelfTestKey: required with ProcessorEntry"}},
		{"schema without the canary", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true), Transform: schema},
			[]string{"SelfTestRecord: required: the canary's payload cannot be derived: the transform has a schema"}},
		{"business key without the canary", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true),
			Transform: &kinesispipeline.TransformProps{PartitionKeyFrom: jsii.String("orderId")}},
			[]string{"SelfTestRecord: required: the canary's payload cannot be derived: the partition key comes from payload field orderId"}},
		{"filters without the canary", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true), Filters: &[]*map[string]interface{}{&filter}},
			[]string{"SelfTestRecord: required with Filters"}},
		{"canary missing the business key", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true),
			Transform: &kinesispipeline.TransformProps{PartitionKeyFrom: jsii.String("orderId")}, SelfTestRecord: jsii.String(`{"id": 1}`)},
			[]string{"SelfTestRecord or SelfTestKey: record: key attribute id: payload field orderId is missing"}},
		{"key of another attribute", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true),
			SelfTestKey: &map[string]interface{}{"pk": "x"}}, []string{`SelfTestRecord or SelfTestKey: key: "pk" is not a key attribute`}},
		{"timeout beyond Lambda's", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true), SelfTestTimeout: awscdk.Duration_Minutes(jsii.Number(15))},
			[]string{"SelfTestTimeout: must be whole seconds between 30 seconds and 14 minutes"}},
		{"batching window as long as the timeout", kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true),
			SelfTestTimeout: awscdk.Duration_Minutes(jsii.Number(1)), MaxBatchingWindow: awscdk.Duration_Seconds(jsii.Number(60))},
			[]string{"SelfTestTimeout: must be longer than MaxBatchingWindow"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := testutil.NewStack()
			msg := testutil.PanicMessage(t, func() { kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &tt.props) })
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message does not say %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestSelfTestAccepted(t *testing.T) {
	filter := map[string]interface{}{"data": map[string]interface{}{"kind": []interface{}{"order"}}}
	tests := []struct {
		name          string
		props         kinesispipeline.KinesisDynamoPipelineProps
		wantWarnings  []string
		wantMalformed bool
	}{
		{"default", kinesispipeline.KinesisDynamoPipelineProps{}, nil, true},
		{"LATEST", kinesispipeline.KinesisDynamoPipelineProps{StartingPosition: awslambda.StartingPosition_LATEST},
			[]string{"StartingPosition is LATEST"}, true},
		{"long batching window", kinesispipeline.KinesisDynamoPipelineProps{SelfTestTimeout: awscdk.Duration_Minutes(jsii.Number(1)),
			MaxBatchingWindow: awscdk.Duration_Seconds(jsii.Number(45))}, []string{"MaxBatchingWindow is more than half of SelfTestTimeout"}, true},
		{"filters with a matching canary", kinesispipeline.KinesisDynamoPipelineProps{Filters: &[]*map[string]interface{}{&filter},
			SelfTestRecord: jsii.String(`{"kind": "order"}`)}, nil, false},
		{"no error table", kinesispipeline.KinesisDynamoPipelineProps{ErrorTableEnabled: jsii.Bool(false)}, nil, false},
		{"business key with the user's canary", kinesispipeline.KinesisDynamoPipelineProps{
			Transform: &kinesispipeline.TransformProps{PartitionKeyFrom: jsii.String("orderId")}, SelfTestRecord: jsii.String(`{"orderId": "selftest-1"}`)}, nil, true},
		{"processor entry with the canary", kinesispipeline.KinesisDynamoPipelineProps{ProcessorEntry: jsii.String("../examples/custom-processor/processor"),
			SelfTestRecord: jsii.String(`{"id": "x"}`), SelfTestKey: &map[string]interface{}{"id": "$eventId"}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			props := tt.props
			props.SelfTestEnabled = jsii.Bool(true)
			stack, _, tmpl := synth(t, &props)
			warnings := strings.Join(testutil.Warnings(t, stack), "\n")
			for _, w := range tt.wantWarnings {
				if !strings.Contains(warnings, w) {
					t.Errorf("no warning %q in:\n%s", w, warnings)
				}
			}
			if len(tt.wantWarnings) == 0 && strings.Contains(warnings, "selfTest") {
				t.Errorf("unexpected self-test warning:\n%s", warnings)
			}
			// The canary's configuration, as bundled, is the one the hash covers: check the malformed canary through
			// the props the construct derived (info annotation otherwise).
			_, cr := resourceWithPrefix(t, tmpl, typeSelfTest, "PipelineSelfTest")
			if cr == nil {
				t.Fatal("no self-test resource")
			}
			info := ""
			testutil.Must(t, func() { info = strings.Join(infos(stack), "\n") })
			if got := !strings.Contains(info, "the self-test puts no malformed canary"); got != tt.wantMalformed {
				t.Errorf("malformed canary: %v, want %v (infos: %s)", got, tt.wantMalformed, info)
			}
		})
	}
}

// TestSelfTestBundles builds the self-test function for real: a static arm64 bootstrap next to its configuration.
// TestSelfTestWithExistingResources: the self-test tests imported resources too, with its grants on them.
func TestSelfTestWithExistingResources(t *testing.T) {
	stack := testutil.NewStack()
	var table, errorTable awsdynamodb.ITable
	var tmpl map[string]interface{}
	testutil.Must(t, func() {
		table = awsdynamodb.Table_FromTableName(stack, jsii.String("T"), jsii.String("existing"))
		errorTable = awsdynamodb.Table_FromTableName(stack, jsii.String("E"), jsii.String("existing-errors"))
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			SelfTestEnabled: jsii.Bool(true),
			Stream:          awskinesis.Stream_FromStreamArn(stack, jsii.String("S"), jsii.String("arn:aws:kinesis:eu-west-1:123456789012:stream/existing")),
			Table:           table,
			PartitionKey:    &awsdynamodb.Attribute{Name: jsii.String("id"), Type: awsdynamodb.AttributeType_STRING},
			ErrorTable:      errorTable,
		})
	})
	tmpl = testutil.Template(t, stack)
	_, cr := resourceWithPrefix(t, tmpl, typeSelfTest, "PipelineSelfTest")
	assertEqual(t, "tested names", []interface{}{testutil.Get(cr, "Properties", "StreamArn"), testutil.Get(cr, "Properties", "TableName"),
		testutil.Get(cr, "Properties", "ErrorTableName")}, []interface{}{"arn:aws:kinesis:eu-west-1:123456789012:stream/existing", "existing", "existing-errors"})
	_, policy := resourceWithPrefix(t, tmpl, typePolicy, "PipelineSelfTestRoleDefaultPolicy")
	lines := strings.Join(statementPairs(t, policy), "\n")
	// The tables' ARNs as CDK renders them (the partition is literal or a reference depending on feature flags).
	var tableArn, errorTableArn string
	testutil.Must(t, func() {
		b, _ := json.Marshal(stack.Resolve(table.TableArn()))
		tableArn = string(b)
		b, _ = json.Marshal(stack.Resolve(errorTable.TableArn()))
		errorTableArn = string(b)
	})
	for _, want := range []string{
		`Allow kinesis:PutRecord on "arn:aws:kinesis:eu-west-1:123456789012:stream/existing"`,
		"Allow dynamodb:DeleteItem on " + tableArn, "Allow dynamodb:GetItem on " + tableArn,
		"Allow dynamodb:DeleteItem on " + errorTableArn, "Allow dynamodb:GetItem on " + errorTableArn,
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("self-test policy lacks %s:\n%s", want, lines)
		}
	}
}

func TestSelfTestBundles(t *testing.T) {
	app, out := testutil.BundlingApp(t)
	stack := awscdk.NewStack(app, jsii.String("Bundled"), nil)
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			SelfTestEnabled: jsii.Bool(true), SortKey: &awsdynamodb.Attribute{Name: jsii.String("at"), Type: awsdynamodb.AttributeType_NUMBER}})
		app.Synth(nil)
	})
	functions := testutil.FunctionAssets(t, out, "Bundled")
	dir := testutil.AssetOf(t, functions, "PipelineSelfTestFunction")
	if dir == testutil.AssetOf(t, functions, "PipelineFunction") {
		t.Fatal("the self-test function shares the processor's asset")
	}
	testutil.CheckBootstrap(t, dir, elf.EM_AARCH64)
	cfg, err := selftest.ReadConfigFile(filepath.Join(dir, selftest.ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pipeline.SortKey == nil || cfg.Pipeline.SortKey.Name != "at" || !cfg.Malformed {
		t.Errorf("bundled config %+v", cfg)
	}
	if _, err := os.Stat(filepath.Join(dir, "pipeline.json")); err == nil {
		t.Error("the self-test asset holds the processor's configuration file")
	}
}

// infos returns the stack's info annotations.
func infos(stack awscdk.Stack) []string {
	var out []string
	for _, m := range *assertions.Annotations_FromStack(stack).FindInfo(jsii.String("*"), assertions.Match_AnyValue()) {
		out = append(out, fmt.Sprint(m.Entry.Data))
	}
	return out
}
