package kinesispipeline_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

func TestValidation(t *testing.T) {
	stringKey := &awsdynamodb.Attribute{Name: jsii.String("id"), Type: awsdynamodb.AttributeType_STRING}
	tests := []struct {
		name  string
		props func(scope constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps
		want  string
	}{
		{"shard count below 1", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ShardCount: jsii.Number(0)}
		}, "ShardCount: must be a whole number at least 1 (got 0)"},
		{"shard count with on-demand", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ShardCount: jsii.Number(2), StreamMode: awskinesis.StreamMode_ON_DEMAND}
		}, "ShardCount: must be unset with StreamMode ON_DEMAND"},
		{"stream settings with an existing stream", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				Stream:     awskinesis.Stream_FromStreamArn(s, jsii.String("S"), jsii.String("arn:aws:kinesis:eu-west-1:123456789012:stream/x")),
				ShardCount: jsii.Number(2),
			}
		}, "ShardCount: must be unset when Stream is given"},
		{"retention too short", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{RetentionPeriod: awscdk.Duration_Hours(jsii.Number(1))}
		}, "RetentionPeriod: must be whole seconds between 24 hours and 365 days (got 1 hour)"},
		{"batch size 0", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{BatchSize: jsii.Number(0)}
		}, "BatchSize: must be a whole number between 1 and 10000 (got 0)"},
		{"batch size 10001", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{BatchSize: jsii.Number(10001)}
		}, "BatchSize: must be a whole number between 1 and 10000 (got 10001)"},
		{"retries -2", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{RetryAttempts: jsii.Number(-2)}
		}, "RetryAttempts: must be a whole number between 0 and 10000 (for unlimited retries, set UnlimitedRetries) (got -2)"},
		{"retries 10001", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{RetryAttempts: jsii.Number(10001)}
		}, "RetryAttempts: must be a whole number between 0 and 10000 (for unlimited retries, set UnlimitedRetries) (got 10001)"},
		{"retries -1 instead of UnlimitedRetries", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{RetryAttempts: jsii.Number(-1)}
		}, "for unlimited retries, set UnlimitedRetries"},
		{"error-table alarm threshold without an error table", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ErrorTableEnabled: jsii.Bool(false), ErrorTableAlarmThreshold: jsii.Number(5)}
		}, "ErrorTableAlarmThreshold: must be unset when ErrorTableEnabled is false"},
		{"error retention as a token", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			days := awscdk.NewCfnParameter(s, jsii.String("Days"), &awscdk.CfnParameterProps{Type: jsii.String("Number")})
			return &kinesispipeline.KinesisDynamoPipelineProps{ErrorRetention: awscdk.Duration_Days(days.ValueAsNumber())}
		}, "ErrorRetention: must be known at synth time, not a token"},
		{"record age 59 s", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{MaxRecordAge: awscdk.Duration_Seconds(jsii.Number(59))}
		}, "MaxRecordAge: must be whole seconds between 60 seconds and 7 days (got 59 seconds)"},
		{"record age 8 days", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{MaxRecordAge: awscdk.Duration_Days(jsii.Number(8))}
		}, "MaxRecordAge: must be whole seconds between 60 seconds and 7 days (got 8 days)"},
		{"parallelization 11", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ParallelizationFactor: jsii.Number(11)}
		}, "ParallelizationFactor: must be a whole number between 1 and 10 (got 11)"},
		{"batching window 301 s", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{MaxBatchingWindow: awscdk.Duration_Seconds(jsii.Number(301))}
		}, "MaxBatchingWindow: must be whole seconds between 0 and 300 seconds"},
		{"queue with DLQ disabled", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				DeadLetterQueueEnabled: jsii.Bool(false),
				DeadLetterQueue:        awssqs.NewQueue(s, jsii.String("Q"), nil),
			}
		}, "DeadLetterQueue: must be unset when DeadLetterQueueEnabled is false"},
		{"queue and bucket", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				DeadLetterQueue: awssqs.NewQueue(s, jsii.String("Q"), nil),
				FailureBucket:   awss3.Bucket_FromBucketName(s, jsii.String("B"), jsii.String("failure-bucket")),
			}
		}, "DeadLetterQueue: must be unset with FailureBucket or FailureBucketEnabled (an event source mapping has exactly one on-failure destination)"},
		{"bucket with bucket disabled", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				FailureBucketEnabled: jsii.Bool(false),
				FailureBucket:        awss3.Bucket_FromBucketName(s, jsii.String("B"), jsii.String("failure-bucket")),
			}
		}, "FailureBucket: must be unset when FailureBucketEnabled is false"},
		{"existing table without key", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Table: awsdynamodb.TableV2_FromTableName(s, jsii.String("T"), jsii.String("t"))}
		}, "PartitionKey: required when Table is given"},
		{"numeric partition key from the event id", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("n"), Type: awsdynamodb.AttributeType_NUMBER}}
		}, "PartitionKey: source $eventId gives a string, but the attribute's type is N"},
		{"sort key named like the partition key", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{PartitionKey: stringKey, SortKey: stringKey}
		}, `SortKey: name "id" is also the partition key's name`},
		{"empty key name", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(""), Type: awsdynamodb.AttributeType_STRING}}
		}, "PartitionKey: Name must not be empty"},
		{"error table with error table disabled", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				ErrorTableEnabled: jsii.Bool(false),
				ErrorTable:        awsdynamodb.TableV2_FromTableName(s, jsii.String("E"), jsii.String("e")),
			}
		}, "ErrorTable: must be unset when ErrorTableEnabled is false"},
		{"error retention on an existing error table", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				ErrorTable:     awsdynamodb.TableV2_FromTableName(s, jsii.String("E"), jsii.String("e")),
				ErrorRetention: awscdk.Duration_Days(jsii.Number(1)),
			}
		}, "ErrorRetention: must be unset when ErrorTable is given"},
		{"memory 64 MB", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{MemorySize: jsii.Number(64)}
		}, "MemorySize: must be a whole number between 128 and 10240 MB (got 64)"},
		{"timeout 16 minutes", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Timeout: awscdk.Duration_Minutes(jsii.Number(16))}
		}, "Timeout: must be whole seconds between 1 second and 15 minutes (got 16 minutes)"},
		{"reserved environment variable", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Environment: &map[string]*string{"PIPELINE_TABLE_NAME": jsii.String("x")}}
		}, `Environment: "PIPELINE_TABLE_NAME" uses the reserved prefix PIPELINE_`},
		{"timestamp without AT_TIMESTAMP", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{StartingPositionTimestamp: jsii.Number(1)}
		}, "StartingPositionTimestamp: only allowed with StartingPosition AT_TIMESTAMP"},
		{"AT_TIMESTAMP without timestamp", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{StartingPosition: awslambda.StartingPosition_AT_TIMESTAMP}
		}, "StartingPositionTimestamp: required with StartingPosition AT_TIMESTAMP"},
		{"unlimited retries with a retry count", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{UnlimitedRetries: jsii.Bool(true), RetryAttempts: jsii.Number(3)}
		}, "RetryAttempts: must be unset with UnlimitedRetries"},
		{"unlimited retries with a record age", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{UnlimitedRetries: jsii.Bool(true), MaxRecordAge: awscdk.Duration_Hours(jsii.Number(1))}
		}, "MaxRecordAge: must be unset with UnlimitedRetries"},
		{"stream mode with an existing stream", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				Stream:     awskinesis.Stream_FromStreamArn(s, jsii.String("S"), jsii.String("arn:aws:kinesis:eu-west-1:123456789012:stream/x")),
				StreamMode: awskinesis.StreamMode_ON_DEMAND,
			}
		}, "StreamMode: must be unset when Stream is given"},
		{"retention with an existing stream", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				Stream:          awskinesis.Stream_FromStreamArn(s, jsii.String("S"), jsii.String("arn:aws:kinesis:eu-west-1:123456789012:stream/x")),
				RetentionPeriod: awscdk.Duration_Days(jsii.Number(2)),
			}
		}, "RetentionPeriod: must be unset when Stream is given"},
		{"queue enabled with a bucket", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{FailureBucketEnabled: jsii.Bool(true), DeadLetterQueueEnabled: jsii.Bool(true)}
		}, "DeadLetterQueueEnabled: must not be true with FailureBucket or FailureBucketEnabled"},
		{"custom architecture", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Architecture: awslambda.Architecture_Custom(jsii.String("riscv64"), jsii.String("linux/riscv64"))}
		}, `Architecture: "riscv64" is not supported`},
		{"error retention without an error table", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ErrorTableEnabled: jsii.Bool(false), ErrorRetention: awscdk.Duration_Days(jsii.Number(1))}
		}, "ErrorRetention: must be unset when ErrorTableEnabled is false"},
		{"error retention below a second", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ErrorRetention: awscdk.Duration_Millis(jsii.Number(500))}
		}, "ErrorRetention: must be whole seconds at least 1 second"},
		{"security groups without a VPC", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{SecurityGroups: &[]awsec2.ISecurityGroup{
				awsec2.SecurityGroup_FromSecurityGroupId(s, jsii.String("SG"), jsii.String("sg-12345678"), nil),
			}}
		}, "SecurityGroups: only allowed with Vpc"},
		{"alarm action with alarms off", func(s constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{AlarmsEnabled: jsii.Bool(false),
				AlarmAction: awscloudwatchactions.NewSnsAction(awssns.NewTopic(s, jsii.String("T"), nil))}
		}, "AlarmAction: must be unset when AlarmsEnabled is false"},
		{"unknown disabled alarm", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{DisabledAlarms: &[]kinesispipeline.PipelineAlarm{"NoSuchAlarm"}}
		}, `DisabledAlarms: "NoSuchAlarm" is not a PipelineAlarm`},
		{"error-table alarm threshold 0", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ErrorTableAlarmThreshold: jsii.Number(0)}
		}, "ErrorTableAlarmThreshold: must be a whole number at least 1 (got 0)"},
		{"iterator age threshold 8 days", func(constructs.Construct) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{IteratorAgeAlarmThreshold: awscdk.Duration_Days(jsii.Number(8))}
		}, "IteratorAgeAlarmThreshold: must be whole seconds between 1 second and 7 days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := testutil.NewStack()
			msg := testutil.PanicMessage(t, func() {
				kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), tt.props(stack))
			})
			if !strings.Contains(msg, tt.want) {
				t.Errorf("panic message\n%s\nmust contain\n%s", msg, tt.want)
			}
			if !strings.HasPrefix(msg, `kinesispipeline: invalid props for "Test/Pipeline": `) || strings.Contains(msg, "problems)") {
				t.Errorf("want exactly one problem reported after the construct path, without a count, got\n%s", msg)
			}
		})
	}
}

// TestValidationListsEveryProblem checks that all problems come in one message, not one per synth.
func TestValidationListsEveryProblem(t *testing.T) {
	stack := testutil.NewStack()
	msg := testutil.PanicMessage(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			ShardCount:            jsii.Number(0),
			BatchSize:             jsii.Number(20000),
			ParallelizationFactor: jsii.Number(0),
			RetryAttempts:         jsii.Number(-5),
		})
	})
	for _, want := range []string{"(4 problems)", "\n- BatchSize:", "\n- ParallelizationFactor:", "\n- RetryAttempts:", "\n- ShardCount:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message must contain %q:\n%s", want, msg)
		}
	}
}

// TestValidationSkipsTokens checks that values only known at deploy time are not range-checked.
func TestValidationSkipsTokens(t *testing.T) {
	stack := testutil.NewStack()
	batch := awscdk.NewCfnParameter(stack, jsii.String("BatchSize"), &awscdk.CfnParameterProps{Type: jsii.String("Number")})
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			BatchSize: batch.ValueAsNumber(),
		})
	})
	got := testutil.Get(testutil.Properties(t, testutil.Template(t, stack), typeMapping), "BatchSize")
	assertEqual(t, "batch size", got, map[string]interface{}{"Ref": "BatchSize"})
}
