package kinesispipeline

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
)

// KinesisDynamoPipelineProps configures a KinesisDynamoPipeline. Every field is optional; the zero value (or nil props)
// gives a pipeline that loses no record: failures land in the error table or the on-failure queue.
type KinesisDynamoPipelineProps struct {
	// --- Stream ---

	// Stream is an existing stream to read from instead of creating one. ShardCount, StreamMode and
	// RetentionPeriod must then be unset. If it is encrypted with a customer-managed key, import it with
	// awskinesis.Stream_FromStreamAttributes and its EncryptionKey, so the function is granted the key.
	//
	// Default: - a new encrypted stream.
	Stream awskinesis.IStream
	// ShardCount is the number of shards of the new stream in provisioned mode. One shard takes 1 MB/s or 1,000
	// records/s of writes.
	//
	// Default: - 1 shard (the cheapest stream that works; raise it or use on-demand mode for more throughput).
	ShardCount *float64
	// StreamMode is the capacity mode of the new stream. ShardCount must be unset in ON_DEMAND mode.
	//
	// Default: - awskinesis.StreamMode_PROVISIONED, predictable cost.
	StreamMode awskinesis.StreamMode
	// RetentionPeriod is how long the new stream keeps records (24 hours to 365 days). On-failure messages in SQS
	// only point into the stream, so this is also how long a failed record can be redriven from the queue.
	//
	// Default: - 24 hours, Kinesis's own default and cheapest retention.
	RetentionPeriod awscdk.Duration
	// EnhancedFanOut gives the function a dedicated stream consumer (enhanced fan-out, 2 MB/s per shard of its own
	// and lower latency) instead of sharing the shard's read throughput with other readers.
	//
	// Default: false - shared throughput (standard iterator), no consumer charges.
	EnhancedFanOut *bool

	// --- Data table ---

	// Table is an existing table to write items to instead of creating one. PartitionKey (and SortKey, if the
	// table has one) must describe its key schema, because an ITable does not reveal it. A table encrypted with a
	// customer-managed key must come with it (awsdynamodb.Table_FromTableAttributes with EncryptionKey).
	//
	// Default: - a new on-demand table with point-in-time recovery and AWS-managed encryption.
	Table awsdynamodb.ITable
	// PartitionKey is the data table's partition key. Its value comes from the record's event id
	// ("shardId:sequenceNumber"), so it must be a string unless a transform maps it elsewhere.
	//
	// Default: - "id" of type STRING, holding the event id (idempotent on replays).
	PartitionKey *awsdynamodb.Attribute
	// SortKey is the data table's sort key. Its value is taken from the record's payload field of the same name.
	//
	// Default: - no sort key.
	SortKey *awsdynamodb.Attribute
	// RemovalPolicy applies to every stateful resource the construct creates: stream, tables, queue, bucket and log
	// group.
	//
	// Default: - awscdk.RemovalPolicy_RETAIN, so deleting the stack never deletes data.
	RemovalPolicy awscdk.RemovalPolicy

	// --- Table capacity ---

	// TableBilling is the new data table's capacity mode, as CDK's own awsdynamodb.Billing.
	// awsdynamodb.Billing_OnDemand with MaxWriteRequestUnits is a cost ceiling; awsdynamodb.Billing_Provisioned suits
	// a steady load, with the write capacity autoscaled (awsdynamodb.Capacity_Autoscaled: the construct creates a
	// DynamoDB global table, whose provisioned writes are always autoscaled). A ceiling or provisioned capacity turns
	// overload into throttling: the processor retries throttled writes until its invocation's deadline, then the event
	// source mapping retries the records (RetryAttempts, MaxRecordAge), then sends them to the on-failure destination.
	// An SQS on-failure message only points into the stream and is useless once RetentionPeriod has passed; a bucket
	// (FailureBucketEnabled) keeps the payloads. Size the ceiling with the retention and redrive time you need.
	// Capacities must be whole numbers, at least 1 (CDK reads a maximum of 0 as no maximum). Only allowed when the
	// construct creates the table.
	//
	// Default: - awsdynamodb.Billing_OnDemand(nil): on-demand without a ceiling.
	TableBilling awsdynamodb.Billing
	// TableWarmThroughput pre-warms the new data table for a known burst: the read and write units per second it
	// serves at once (a new on-demand table starts at 12,000 reads and 4,000 writes per second). Raising it is a
	// one-time charge, and DynamoDB never lowers it again. Pre-warming above a write ceiling buys nothing. Whole
	// numbers, at least 1. Only allowed when the construct creates the table.
	//
	// Default: - no pre-warming: the table's own warm throughput.
	TableWarmThroughput *awsdynamodb.WarmThroughput
	// ErrorTableBilling is the new error table's capacity mode, as for TableBilling. The error table is idle while
	// records are well-formed, and takes a write per bad record when they are not: a ceiling on it turns a flood of
	// malformed records into retries and on-failure records too.
	//
	// Default: - awsdynamodb.Billing_OnDemand(nil), whatever TableBilling says: an idle on-demand table costs nothing.
	ErrorTableBilling awsdynamodb.Billing
	// TableWriteThrottlesAlarmThreshold is the number of throttled writes of the data table (WriteThrottleEvents, sum
	// over 5 minutes) at which PipelineAlarm_TABLE_WRITE_THROTTLES fires. The alarm exists when TableBilling caps
	// writes (a write ceiling or provisioned capacity); setting a threshold creates it for any data table, also an
	// existing Table (hot partitions throttle on-demand tables too).
	//
	// Default: 1 - any throttled write, and only when TableBilling caps writes.
	TableWriteThrottlesAlarmThreshold *float64

	// --- Error table ---

	// ErrorTable is an existing table for records that can never be written (malformed, rejected by DynamoDB). Its
	// partition key must be "id" (STRING). A customer-managed key must come with it, as for Table.
	//
	// Default: - a new on-demand table with point-in-time recovery and AWS-managed encryption.
	ErrorTable awsdynamodb.ITable
	// ErrorTableEnabled turns the error table off when false. Permanent failures are then retried like transient
	// ones and end in the on-failure destination.
	//
	// Default: true.
	ErrorTableEnabled *bool
	// ErrorRetention makes error-table items expire this long after they were written (DynamoDB TTL on the
	// "expiresAt" attribute). Whole seconds, at least one.
	//
	// Default: - items never expire.
	ErrorRetention awscdk.Duration

	// --- On-failure destination ---

	// DeadLetterQueue is an existing SQS queue to receive on-failure records (shard id and sequence range of
	// the batches the event source mapping gives up on). If it is encrypted with a customer-managed key, import it
	// with awssqs.Queue_FromQueueAttributes and its KeyArn, so the function is granted the key; otherwise Lambda
	// cannot deliver to it.
	//
	// Default: - a new encrypted, TLS-only queue with 14-day retention.
	DeadLetterQueue awssqs.IQueue
	// DeadLetterQueueEnabled turns the on-failure queue off when false. Without an on-failure destination, records
	// the event source mapping gives up on are discarded, and synth warns about it.
	//
	// Default: true.
	DeadLetterQueueEnabled *bool
	// FailureBucket is an existing S3 bucket to use as the on-failure destination instead of a queue. Unlike an SQS
	// message, an S3 on-failure record holds the failed records' payloads, so it outlives the stream's retention. If
	// it is encrypted with a customer-managed key, import it with awss3.Bucket_FromBucketAttributes and its
	// EncryptionKey, so the function is granted kms:GenerateDataKey.
	//
	// Default: - no bucket; the on-failure destination is the queue.
	FailureBucket awss3.IBucket
	// FailureBucketEnabled creates an encrypted, TLS-only, private S3 bucket as the on-failure destination instead
	// of a queue.
	//
	// Default: false.
	FailureBucketEnabled *bool

	// Transform customizes the default processor's transform declaratively: key mapping, field selection, computed
	// attributes, a filter, a JSON Schema and a time-to-live. See TransformProps.
	//
	// Default: - each record's JSON object becomes one item keyed by the event id, plus metadata attributes.
	Transform *TransformProps
	// Metadata lists the metadata attributes the default processor writes on every item (MetadataAttribute_*; each
	// at most once; MetadataNone() for none, MetadataAll() for all four). Each costs its bytes on every write and
	// every month of storage. Under the default event-id key the key names the record's shard and sequence number,
	// so the arrival time is all most pipelines need to debug.
	//
	// Default: - MetadataAttribute_ARRIVAL_TIME only.
	Metadata *[]MetadataAttribute

	// --- Function ---

	// MemorySize of the processor function, in MB. Lambda gives CPU in proportion to memory.
	//
	// Default: 256 - enough for 10,000-record batches, with CPU for JSON decoding.
	MemorySize *float64
	// Timeout of one invocation. The processor writes what it can before the deadline and reports the rest
	// for retry.
	//
	// Default: - 1 minute (CDK's 3 seconds is too short for a batch writer).
	Timeout awscdk.Duration
	// Architecture of the processor function; the processor is compiled for it.
	//
	// Default: - awslambda.Architecture_ARM_64(), cheaper per GB-second than x86_64.
	Architecture awslambda.Architecture
	// ProcessorEntry names your own processor: a main package in your module that calls processor.Start with your
	// transform and options (see runtime/processor). Either a directory, relative to where the CDK app runs
	// ("./processor") or absolute, or an import path ("example.com/app/processor"). It is bundled like the default
	// processor (same pinned build, its own asset), from its own module root, and gets the same environment,
	// configuration file, permissions, error table and on-failure destination.
	//
	// Default: - the default processor, github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/processor.
	ProcessorEntry *string
	// Environment holds extra environment variables for the function. Names starting with "PIPELINE_" are
	// reserved for the construct.
	//
	// Default: - only the construct's own variables.
	Environment *map[string]*string
	// LogRetention is how long the function's log group keeps logs.
	//
	// Default: - awslogs.RetentionDays_ONE_MONTH.
	LogRetention awslogs.RetentionDays

	// --- Event source mapping ---

	// BatchSize is the largest number of records per invocation (1..10000).
	//
	// Default: 100.
	BatchSize *float64
	// MaxBatchingWindow is how long Lambda gathers records before invoking (0..300 seconds).
	//
	// Default: - no batching window: invoke as soon as records arrive.
	MaxBatchingWindow awscdk.Duration
	// ParallelizationFactor is the number of concurrent batches per shard (1..10). Records with the same partition
	// key stay in order.
	//
	// Default: 1.
	ParallelizationFactor *float64
	// StartingPosition is where a new mapping starts reading the stream.
	//
	// Default: - awslambda.StartingPosition_TRIM_HORIZON, the oldest record, so nothing already in the stream is skipped.
	StartingPosition awslambda.StartingPosition
	// StartingPositionTimestamp is the time to start reading from, in Unix seconds. Required with
	// StartingPosition AT_TIMESTAMP, and only allowed with it.
	//
	// Default: - none.
	StartingPositionTimestamp *float64
	// RetryAttempts is how often a failing batch is retried before it goes to the on-failure destination
	// (0..10000). For unlimited retries, set UnlimitedRetries instead.
	//
	// Default: 10 - finite, so one bad batch cannot block its shard until the records expire.
	RetryAttempts *float64
	// MaxRecordAge is the age after which a record is no longer retried and goes to the on-failure destination
	// (60 seconds to 7 days).
	//
	// Default: - 6 hours, well inside the default 24-hour retention so the record can still be redriven.
	MaxRecordAge awscdk.Duration
	// UnlimitedRetries retries failing batches until their records expire from the stream (Lambda's own default).
	// One bad record can then block its shard for the whole retention period. RetryAttempts and MaxRecordAge must be
	// unset.
	//
	// Default: false.
	UnlimitedRetries *bool
	// Filters are event filtering patterns of the event source mapping (at most 5; build them with
	// awslambda.FilterCriteria_Filter): records matching none of them are dropped before the function runs, at no
	// cost. Kinesis filters on `data` also drop records whose data is not JSON, so malformed records never reach the
	// error table; synth warns about it.
	//
	// Default: - no filtering, every record reaches the function.
	Filters *[]*map[string]interface{}
	// BisectBatchOnError splits a failing batch in two and retries each half, isolating a bad record.
	//
	// Default: true.
	BisectBatchOnError *bool
	// Enabled says whether the event source mapping is active. Disable it to pause processing without losing the
	// stream position.
	//
	// Default: true.
	Enabled *bool

	// --- Security ---

	// EncryptionKey is a customer-managed KMS key for every resource the construct creates: stream, tables, queue,
	// bucket and log group. The function is granted exactly the key use each resource needs. For the log group, the
	// key's policy must allow CloudWatch Logs; the construct adds that statement, which takes effect only for a key
	// defined in this app (an imported key's policy cannot be changed).
	//
	// Default: - AWS-managed keys (alias/aws/kinesis, alias/aws/dynamodb), SQS-managed and S3-managed encryption.
	EncryptionKey awskms.IKey
	// Tracing turns on AWS X-Ray tracing for the function.
	//
	// Default: - awslambda.Tracing_DISABLED.
	Tracing awslambda.Tracing
	// Vpc places the function in a VPC, with the AWSLambdaVPCAccessExecutionRole managed policy Lambda needs for
	// its network interfaces. The processor calls only DynamoDB: its subnets need a route to it, through a NAT
	// gateway or a DynamoDB gateway endpoint. The event source mapping reads the stream and delivers on-failure
	// records outside the VPC, and Lambda ships the function's logs itself.
	//
	// Default: - not in a VPC.
	Vpc awsec2.IVpc
	// VpcSubnets selects the subnets of Vpc the function uses. Only with Vpc.
	//
	// Default: - the VPC's private subnets with egress.
	VpcSubnets *awsec2.SubnetSelection
	// SecurityGroups of the function in Vpc. Only with Vpc.
	//
	// Default: - a new security group allowing all outbound traffic.
	SecurityGroups *[]awsec2.ISecurityGroup

	// --- Monitoring ---

	// AlarmsEnabled creates the pipeline's alarms (see PipelineAlarm). Each watches only this pipeline's resources.
	//
	// Default: true.
	AlarmsEnabled *bool
	// DisabledAlarms lists alarms not to create.
	//
	// Default: - every alarm of PipelineAlarm that applies is created (TABLE_WRITE_THROTTLES needs capped table writes
	// or its threshold, SELF_TEST a SelfTestSchedule).
	DisabledAlarms *[]PipelineAlarm
	// AlarmAction is notified when an alarm fires and when it recovers, for example an SNS topic action
	// (awscloudwatchactions.NewSnsAction).
	//
	// Default: - no action; the alarms only change state.
	AlarmAction awscloudwatch.IAlarmAction
	// IteratorAgeAlarmThreshold is how far the function may fall behind the stream (age of the last record read)
	// before the iterator-age alarm fires, for 3 consecutive minutes.
	//
	// Default: - 10 minutes.
	IteratorAgeAlarmThreshold awscdk.Duration
	// ErrorTableAlarmThreshold is the number of records sent to the error table in 5 minutes at which the
	// error-table alarm fires.
	//
	// Default: 1 - any record that could not be written.
	ErrorTableAlarmThreshold *float64
	// OutputsEnabled adds stack outputs naming the stream, the tables and the on-failure destination, the redrive
	// commands (runtime/cmd/redrive) and the kdp replay command ready to run against them (none with a
	// ProcessorEntry), and the self-test function (with SelfTestEnabled).
	//
	// Default: true.
	OutputsEnabled *bool
	// DashboardEnabled creates a CloudWatch dashboard with the pipeline's health on one screen.
	//
	// Default: false.
	DashboardEnabled *bool

	// --- Self-test ---

	// SelfTestEnabled adds a self-test (runtime/selftest): a function that puts a canary record into the stream,
	// waits for its item in the table, puts a malformed canary and waits for it in the error table (when there is
	// one and no Filters), and deletes the canary items. A custom resource runs it after every deployment that
	// changes the pipeline, and its failure fails the deployment; the SelfTestFunctionName output says how to run it
	// on demand. See the README's Self-test section for what it proves and costs.
	//
	// Default: false.
	SelfTestEnabled *bool
	// SelfTestTimeout is how long the self-test waits for its canaries (30 seconds to 14 minutes: the function gets
	// one more minute to clean up and answer, within Lambda's 15).
	//
	// Default: - 5 minutes.
	SelfTestTimeout awscdk.Duration
	// SelfTestRecord is the canary's payload, a JSON object the transform turns into an item (and which matches one
	// of Filters, if any). Required with ProcessorEntry, Filters, a Transform with a schema, a filter or computed
	// attributes, or a partition key read from the payload (a business key: the canary then writes an item under
	// that key, so give it a key of its own that no real record uses). "$nonce" anywhere in it stands for the run's
	// nonce: with a key like {"orderId": "kdp-selftest-$nonce"} every run has its own item, and runs that overlap (a
	// schedule during a deployment) do not overwrite each other's canary.
	//
	// Default: - derived from the key configuration: {"kdpSelfTest": "<nonce>"} plus a value for each key attribute
	// read from the payload.
	SelfTestRecord *string
	// SelfTestKey gives the canary item's key attributes: attribute name to value (a string for S, a number for N, a
	// base64 string for B); the string "$eventId", "$sequenceNumber" or "$partitionKey" stands for that value of the
	// canary record, and "$nonce" within a string for the run's nonce (as in SelfTestRecord). Required with ProcessorEntry (the construct cannot see your transform's keys) and for a key
	// attribute read from $shardId or $arrivalTime. Only with SelfTestEnabled.
	//
	// Default: - derived from the key configuration (PartitionKey, SortKey, Transform.PartitionKeyFrom, SortKeyFrom).
	SelfTestKey *map[string]interface{}
	// SelfTestSchedule also runs the self-test on this schedule (for example awsevents.Schedule_Rate of an hour),
	// with an alarm (PipelineAlarm_SELF_TEST, unless alarms are off) when a run fails.
	//
	// Default: - only at deployment and on demand.
	SelfTestSchedule awsevents.Schedule

	// --- Aggregates ---

	// Aggregates are windowed aggregates (counts, sums, minima, maxima per group and tumbling window) the default
	// processor keeps in the aggregate table, each stored record counted exactly once (see AggregateProps and the
	// README's "Aggregates"). ParallelizationFactor must then be 1.
	//
	// Default: - none, and no aggregate table.
	Aggregates *[]*AggregateProps
	// AggregateTable is an existing table for the aggregates, keyed by "pk" (STRING) and "sk" (STRING). Only with
	// Aggregates.
	//
	// Default: - a new table (encrypted, point-in-time recovery, on-demand, RemovalPolicy as the data table's).
	AggregateTable awsdynamodb.ITable
}
