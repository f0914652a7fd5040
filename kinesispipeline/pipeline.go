package kinesispipeline

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// Defaults of the props, exported so tests and documentation can name them.
const (
	DefaultShardCount         = 1
	DefaultBatchSize          = 100
	DefaultRetryAttempts      = 10
	DefaultMaxRecordAgeHours  = 6
	DefaultMemorySizeMB       = 256
	DefaultTimeoutSeconds     = 60
	DefaultQueueRetentionDays = 14
)

// The marker the construct writes as CloudFormation Metadata on its event source mapping, so that tools reading the
// synthesized template (`kdp local`) find each pipeline without path metadata:
// "kdp:pipeline": {"version": PipelineMetadataVersion, "path": <the pipeline's construct path>}.
const (
	PipelineMetadataKey     = "kdp:pipeline"
	PipelineMetadataVersion = 1
)

// KinesisDynamoPipeline is a Kinesis Data Stream -> Lambda (Go) -> DynamoDB pipeline: the stream, the processor
// function and its event source mapping, the data table, an error table for records that can never be written, and an
// on-failure destination (an SQS queue, or an S3 bucket) for batches that keep failing. Every record ends in the table,
// in the error table or in the on-failure destination.
type KinesisDynamoPipeline struct {
	constructs.Construct

	stream     awskinesis.IStream
	consumer   awskinesis.IStreamConsumer
	table      awsdynamodb.ITable
	errorTable awsdynamodb.ITable
	queue      awssqs.IQueue
	bucket     awss3.IBucket
	logGroup   awslogs.ILogGroup
	role       awsiam.IRole
	function   awslambda.Function
	mapping    awslambda.EventSourceMapping
	config     processor.Config
	alarms     map[PipelineAlarm]awscloudwatch.Alarm
	dashboard  awscloudwatch.Dashboard
	selfTest   *selfTestParts // nil without SelfTestEnabled

	aggregateTable awsdynamodb.ITable // nil without Aggregates
}

// NewKinesisDynamoPipeline creates the pipeline. props may be nil for all defaults. Invalid props panic with one
// message listing every problem.
func NewKinesisDynamoPipeline(scope constructs.Construct, id *string, props *KinesisDynamoPipelineProps) *KinesisDynamoPipeline {
	p := &KinesisDynamoPipeline{}
	constructs.NewConstruct_Override(p, scope, id)

	var in KinesisDynamoPipelineProps
	if props != nil {
		in = *props
	}
	cfg, problems := processorConfig(&in)
	p.config = cfg
	problems = append(problems, validateProps(p, &in, cfg)...)
	problems = append(problems, aggregateProblems(&in)...)
	bundler, problem := newBundler(&in, cfg)
	if problem != "" {
		problems = append(problems, problem)
	}
	selfTestCfg, more := selfTestConfig(&in, cfg)
	problems = append(problems, more...)
	if len(problems) > 0 {
		panic(propsError(*p.Node().Path(), problems))
	}

	removal := in.RemovalPolicy
	if removal == "" {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	p.createStream(&in, removal)
	p.createTables(&in, cfg, removal)
	onFailure := p.createFailureDestination(&in, removal)
	p.createFunction(&in, bundler, removal)
	p.createAggregates(&in, cfg, removal)
	p.createMapping(&in, onFailure)
	p.createAlarms(&in)
	p.createSelfTest(&in, selfTestCfg, bundler, removal)
	p.createDashboard(&in)
	p.addAggregateWidgets()
	p.createOutputs(&in)
	p.createReplayOutput(&in)
	p.suppressFindings(&in)
	p.warnAboutLoss(&in)
	return p
}

func (p *KinesisDynamoPipeline) createStream(in *KinesisDynamoPipelineProps, removal awscdk.RemovalPolicy) {
	if in.Stream != nil {
		p.stream = in.Stream
	} else {
		mode := in.StreamMode
		if mode == "" {
			mode = awskinesis.StreamMode_PROVISIONED
		}
		shards := in.ShardCount
		if shards == nil && mode == awskinesis.StreamMode_PROVISIONED {
			shards = jsii.Number(DefaultShardCount)
		}
		retention := in.RetentionPeriod
		if retention == nil {
			retention = awscdk.Duration_Hours(jsii.Number(24))
		}
		props := &awskinesis.StreamProps{
			StreamMode:      mode,
			ShardCount:      shards,
			RetentionPeriod: retention,
			Encryption:      awskinesis.StreamEncryption_MANAGED,
			RemovalPolicy:   removal,
		}
		if in.EncryptionKey != nil {
			props.Encryption, props.EncryptionKey = awskinesis.StreamEncryption_KMS, in.EncryptionKey
		}
		p.stream = awskinesis.NewStream(p, jsii.String("Stream"), props)
	}
	if isTrue(in.EnhancedFanOut) {
		p.consumer = awskinesis.NewStreamConsumer(p, jsii.String("StreamConsumer"), &awskinesis.StreamConsumerProps{
			Stream:             p.stream,
			StreamConsumerName: awscdk.Names_UniqueResourceName(p, &awscdk.UniqueResourceNameOptions{MaxLength: jsii.Number(128)}),
		})
	}
}

func (p *KinesisDynamoPipeline) createTables(in *KinesisDynamoPipelineProps, cfg processor.Config, removal awscdk.RemovalPolicy) {
	if in.Table != nil {
		p.table = in.Table
	} else {
		pk := in.PartitionKey
		if pk == nil {
			pk = &awsdynamodb.Attribute{Name: jsii.String(cfg.PartitionKey.Name), Type: awsdynamodb.AttributeType_STRING}
		}
		var ttl *string
		if cfg.Transform != nil && cfg.Transform.TTL != nil {
			ttl = jsii.String(cfg.Transform.TTL.Attribute)
		}
		p.table = newTable(p, "Table", pk, in.SortKey, ttl, in.EncryptionKey, removal, in.TableBilling, in.TableWarmThroughput)
	}
	if !enabled(in.ErrorTableEnabled) {
		return
	}
	if in.ErrorTable != nil {
		p.errorTable = in.ErrorTable
		return
	}
	var ttl *string
	if cfg.ErrorTTLSeconds > 0 {
		ttl = jsii.String(processor.ErrorTTLAttribute)
	}
	p.errorTable = newTable(p, "ErrorTable",
		&awsdynamodb.Attribute{Name: jsii.String(processor.ErrorTablePartitionKey), Type: awsdynamodb.AttributeType_STRING},
		nil, ttl, in.EncryptionKey, removal, in.ErrorTableBilling, nil)
}

// newTable creates a table with point-in-time recovery, encrypted with key or else an AWS-managed key, billed as
// billing says (on-demand when nil) and pre-warmed to warm (if any).
func newTable(scope constructs.Construct, id string, pk, sk *awsdynamodb.Attribute, ttl *string, key awskms.IKey, removal awscdk.RemovalPolicy,
	billing awsdynamodb.Billing, warm *awsdynamodb.WarmThroughput) awsdynamodb.TableV2 {
	if billing == nil {
		billing = awsdynamodb.Billing_OnDemand(nil)
	}
	encryption := awsdynamodb.TableEncryptionV2_AwsManagedKey()
	if key != nil {
		encryption = awsdynamodb.TableEncryptionV2_CustomerManagedKey(key, nil)
	}
	return awsdynamodb.NewTableV2(scope, jsii.String(id), &awsdynamodb.TablePropsV2{
		PartitionKey: pk,
		SortKey:      sk,
		Billing:      billing,
		Encryption:   encryption,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		TimeToLiveAttribute: ttl,
		RemovalPolicy:       removal,
		WarmThroughput:      warm,
	})
}

func (p *KinesisDynamoPipeline) createFailureDestination(in *KinesisDynamoPipelineProps, removal awscdk.RemovalPolicy) awslambda.IEventSourceDlq {
	switch {
	case in.FailureBucket != nil:
		p.bucket = in.FailureBucket
	case isTrue(in.FailureBucketEnabled):
		props := &awss3.BucketProps{
			Encryption:        awss3.BucketEncryption_S3_MANAGED,
			EnforceSSL:        jsii.Bool(true),
			BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
			ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
			Versioned:         jsii.Bool(true),
			RemovalPolicy:     removal,
		}
		if in.EncryptionKey != nil {
			props.Encryption, props.EncryptionKey, props.BucketKeyEnabled = awss3.BucketEncryption_KMS, in.EncryptionKey, jsii.Bool(true)
		}
		p.bucket = awss3.NewBucket(p, jsii.String("FailureBucket"), props)
	case in.DeadLetterQueue != nil:
		p.queue = in.DeadLetterQueue
	case enabled(in.DeadLetterQueueEnabled):
		props := &awssqs.QueueProps{
			Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
			EnforceSSL:      jsii.Bool(true),
			RetentionPeriod: awscdk.Duration_Days(jsii.Number(DefaultQueueRetentionDays)),
			RemovalPolicy:   removal,
		}
		if in.EncryptionKey != nil {
			props.Encryption, props.EncryptionMasterKey = awssqs.QueueEncryption_KMS, in.EncryptionKey
		}
		p.queue = awssqs.NewQueue(p, jsii.String("DeadLetterQueue"), props)
	}
	switch {
	case p.bucket != nil:
		return &s3Destination{bucket: p.bucket}
	case p.queue != nil:
		return awslambdaeventsources.NewSqsDlq(p.queue)
	}
	return nil
}

func (p *KinesisDynamoPipeline) createFunction(in *KinesisDynamoPipelineProps, bundler *goBundler, removal awscdk.RemovalPolicy) {
	retention := in.LogRetention
	if retention == "" {
		retention = awslogs.RetentionDays_ONE_MONTH
	}
	logProps := &awslogs.LogGroupProps{
		Retention:     retention,
		RemovalPolicy: removal,
	}
	if in.EncryptionKey != nil {
		logProps.EncryptionKey = in.EncryptionKey
		// CloudWatch Logs encrypts with the key itself: its service principal needs the key, through the key policy,
		// for log groups of this account and region only (naming this log group would make a dependency cycle).
		stack := awscdk.Stack_Of(p)
		in.EncryptionKey.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("logs."+*stack.Region()+".amazonaws.com"), nil)},
			Actions:    jsii.Strings("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"),
			Resources:  jsii.Strings("*"),
			Conditions: &map[string]interface{}{"ArnLike": map[string]interface{}{
				"kms:EncryptionContext:aws:logs:arn": "arn:" + *stack.Partition() + ":logs:" + *stack.Region() + ":" + *stack.Account() + ":log-group:*",
			}},
		}), jsii.Bool(true))
	}
	logGroup := awslogs.NewLogGroup(p, jsii.String("LogGroup"), logProps)
	p.logGroup = logGroup
	role := awsiam.NewRole(p, jsii.String("ServiceRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Kinesis to DynamoDB pipeline processor " + *p.Node().Path()),
	})
	p.role = role
	if in.Vpc != nil {
		// Lambda manages the function's network interfaces with these EC2 permissions, which support no resource-level
		// scoping. The Lambda L2 adds this policy only to roles it creates itself.
		role.AddManagedPolicy(awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("service-role/AWSLambdaVPCAccessExecutionRole")))
	}

	arch := in.Architecture
	if arch == nil {
		arch = awslambda.Architecture_ARM_64()
	}
	memory := in.MemorySize
	if memory == nil {
		memory = jsii.Number(DefaultMemorySizeMB)
	}
	timeout := in.Timeout
	if timeout == nil {
		timeout = awscdk.Duration_Seconds(jsii.Number(DefaultTimeoutSeconds))
	}
	env := map[string]*string{}
	if in.Environment != nil {
		for k, v := range *in.Environment {
			env[k] = v
		}
	}
	env[processor.EnvTableName] = p.table.TableName()
	if p.errorTable != nil {
		env[processor.EnvErrorTableName] = p.errorTable.TableName()
	}

	p.function = awslambda.NewFunction(p, jsii.String("Function"), &awslambda.FunctionProps{
		Description:    jsii.String("Writes the records of a Kinesis stream to DynamoDB"),
		Runtime:        awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:   arch,
		Handler:        jsii.String("bootstrap"),
		Code:           processorCode(bundler),
		MemorySize:     memory,
		Timeout:        timeout,
		LoggingFormat:  awslambda.LoggingFormat_JSON,
		LogGroup:       logGroup,
		Role:           role,
		Environment:    &env,
		Tracing:        in.Tracing,
		Vpc:            in.Vpc,
		VpcSubnets:     in.VpcSubnets,
		SecurityGroups: in.SecurityGroups,
	})

	// Exactly what the processor calls, in the role's default policy.
	logGroup.GrantWrite(role)
	grantItemWrites(p.table, role)
	if p.errorTable != nil {
		grantItemWrites(p.errorTable, role)
	}
}

// grantItemWrites allows the two calls the processor makes, plus the key use of a customer-managed table key.
func grantItemWrites(table awsdynamodb.ITable, grantee awsiam.IGrantable) awsiam.Grant {
	grant := table.Grant(grantee, jsii.String("dynamodb:BatchWriteItem"), jsii.String("dynamodb:PutItem"))
	if key := table.EncryptionKey(); key != nil {
		grant = grant.Combine(key.GrantEncryptDecrypt(grantee))
	}
	return grant
}

// newBundler returns the bundler of the processor the props ask for, or a problem with ProcessorEntry.
func newBundler(in *KinesisDynamoPipelineProps, cfg processor.Config) (*goBundler, string) {
	config, err := cfg.Marshal()
	if err != nil {
		return nil, "processor configuration: " + err.Error()
	}
	goarch := "arm64"
	if in.Architecture != nil && *in.Architecture.Name() == *awslambda.Architecture_X86_64().Name() {
		goarch = "amd64"
	}
	// Without expressions or a schema, leave their libraries out: a smaller bootstrap and faster cold starts.
	tags := "lambda.norpc"
	if !cfg.NeedsExpressions() {
		tags += "," + processor.NoExprBuildTag
	}
	if in.ProcessorEntry != nil {
		return resolveEntry(*in.ProcessorEntry, goarch, tags, config)
	}
	return &goBundler{pkg: DefaultProcessorPackage, dir: mustGetwd(), goarch: goarch, tags: tags, config: config}, ""
}

func (p *KinesisDynamoPipeline) createMapping(in *KinesisDynamoPipelineProps, onFailure awslambda.IEventSourceDlq) {
	source := p.stream.StreamArn()
	if p.consumer != nil {
		source = p.consumer.StreamConsumerArn()
		p.consumer.GrantRead(p.role) // the consumer's grant includes the stream's read actions
	} else {
		p.stream.GrantRead(p.role)
	}

	startingPosition := in.StartingPosition
	if startingPosition == "" {
		startingPosition = awslambda.StartingPosition_TRIM_HORIZON
	}
	batchSize := in.BatchSize
	if batchSize == nil {
		batchSize = jsii.Number(DefaultBatchSize)
	}
	retries, maxAge := in.RetryAttempts, in.MaxRecordAge
	if isTrue(in.UnlimitedRetries) {
		retries = jsii.Number(-1)
	} else {
		if retries == nil {
			retries = jsii.Number(DefaultRetryAttempts)
		}
		if maxAge == nil {
			maxAge = awscdk.Duration_Hours(jsii.Number(DefaultMaxRecordAgeHours))
		}
	}
	var metricsConfig *awslambda.MetricsConfig
	if p.bucket != nil {
		// The bucket's only delivery signal is the mapping's OnFailureDestinationDeliveredEventCount.
		metricsConfig = &awslambda.MetricsConfig{Metrics: &[]awslambda.MetricType{awslambda.MetricType_EVENT_COUNT}}
	}
	bisect := in.BisectBatchOnError
	if bisect == nil {
		bisect = jsii.Bool(true)
	}
	p.mapping = awslambda.NewEventSourceMapping(p, jsii.String("EventSourceMapping"), &awslambda.EventSourceMappingProps{
		Target:                    p.function,
		EventSourceArn:            source,
		StartingPosition:          startingPosition,
		StartingPositionTimestamp: in.StartingPositionTimestamp,
		BatchSize:                 batchSize,
		MaxBatchingWindow:         in.MaxBatchingWindow,
		ParallelizationFactor:     in.ParallelizationFactor,
		RetryAttempts:             retries,
		MaxRecordAge:              maxAge,
		BisectBatchOnError:        bisect,
		ReportBatchItemFailures:   jsii.Bool(true),
		Enabled:                   in.Enabled,
		OnFailure:                 onFailure,
		MetricsConfig:             metricsConfig,
		Filters:                   in.Filters,
	})
	// The mapping starts polling as soon as it exists: make sure the role's permissions exist first.
	p.mapping.Node().AddDependency(p.role)
	// A marker for tools that read the synthesized template (kdp local): this mapping belongs to a pipeline of this
	// module, at this construct path. Metadata does not change the logical ID or what CloudFormation deploys.
	if cfn, ok := p.mapping.Node().DefaultChild().(awscdk.CfnResource); ok {
		cfn.AddMetadata(jsii.String(PipelineMetadataKey), map[string]any{"version": PipelineMetadataVersion, "path": *p.Node().Path()})
	}
}

func (p *KinesisDynamoPipeline) warnAboutLoss(in *KinesisDynamoPipelineProps) {
	if in.Filters != nil && len(*in.Filters) > 0 {
		awscdk.Annotations_Of(p).AddWarningV2(jsii.String("kinesispipeline:filtersBypassErrorTable"),
			jsii.String("Filters are set: Kinesis event filtering drops records whose data is not JSON (and records matching "+
				"no filter) before the function sees them, so malformed records never reach the error table and are not "+
				"counted; use Transform.Filter instead to keep them accounted for"), nil)
	}
	if p.queue == nil && p.bucket == nil && !isTrue(in.UnlimitedRetries) {
		awscdk.Annotations_Of(p).AddWarningV2(jsii.String("kinesispipeline:noFailureDestination"),
			jsii.String("the pipeline has no on-failure destination and finite retries: batches the event source mapping "+
				"gives up on are discarded; keep DeadLetterQueueEnabled, or set FailureBucket or FailureBucketEnabled"), nil)
	}
	if in.Stream == nil && in.MaxRecordAge != nil && !*in.MaxRecordAge.IsUnresolved() {
		retention := 24.0 * 3600
		if in.RetentionPeriod != nil && !*in.RetentionPeriod.IsUnresolved() {
			retention = seconds(in.RetentionPeriod)
		}
		if seconds(in.MaxRecordAge) > retention {
			awscdk.Annotations_Of(p).AddWarningV2(jsii.String("kinesispipeline:maxRecordAgeExceedsRetention"),
				jsii.String("MaxRecordAge is longer than the stream's RetentionPeriod: records expire from the stream "+
					"before they stop being retried, and are lost; raise RetentionPeriod or lower MaxRecordAge"), nil)
		}
	}
}

// Stream returns the stream the pipeline reads.
func (p *KinesisDynamoPipeline) Stream() awskinesis.IStream { return p.stream }

// StreamConsumer returns the enhanced fan-out consumer, or nil without EnhancedFanOut.
func (p *KinesisDynamoPipeline) StreamConsumer() awskinesis.IStreamConsumer { return p.consumer }

// Table returns the table the pipeline writes items to.
func (p *KinesisDynamoPipeline) Table() awsdynamodb.ITable { return p.table }

// ErrorTable returns the table holding records that could not be written, or nil when disabled.
func (p *KinesisDynamoPipeline) ErrorTable() awsdynamodb.ITable { return p.errorTable }

// DeadLetterQueue returns the on-failure queue, or nil when the destination is a bucket or disabled.
func (p *KinesisDynamoPipeline) DeadLetterQueue() awssqs.IQueue { return p.queue }

// FailureBucket returns the on-failure bucket, or nil when the destination is a queue or disabled.
func (p *KinesisDynamoPipeline) FailureBucket() awss3.IBucket { return p.bucket }

// Function returns the processor function.
func (p *KinesisDynamoPipeline) Function() awslambda.Function { return p.function }

// Role returns the processor function's execution role.
func (p *KinesisDynamoPipeline) Role() awsiam.IRole { return p.role }

// LogGroup returns the processor function's log group.
func (p *KinesisDynamoPipeline) LogGroup() awslogs.ILogGroup { return p.logGroup }

// EventSourceMapping returns the mapping that invokes the function with the stream's records.
func (p *KinesisDynamoPipeline) EventSourceMapping() awslambda.EventSourceMapping { return p.mapping }

// ProcessorConfig returns the static configuration bundled with the processor (as processor.ConfigFileName next to
// `bootstrap`).
func (p *KinesisDynamoPipeline) ProcessorConfig() processor.Config { return p.config }

// GrantWrite lets grantee put records into the stream (producers).
func (p *KinesisDynamoPipeline) GrantWrite(grantee awsiam.IGrantable) awsiam.Grant {
	return p.stream.GrantWrite(grantee)
}

// GrantReadData lets grantee read the data table's items (readers).
func (p *KinesisDynamoPipeline) GrantReadData(grantee awsiam.IGrantable) awsiam.Grant {
	return p.table.GrantReadData(grantee)
}

func isTrue(b *bool) bool  { return b != nil && *b }
func enabled(b *bool) bool { return b == nil || *b }
