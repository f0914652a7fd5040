package kinesispipeline

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// processorConfig derives the processor's static configuration from the props, with the problems only the props
// can have (Config.Validate finds the rest).
func processorConfig(in *KinesisDynamoPipelineProps) (processor.Config, []string) {
	var problems []string
	cfg := processor.DefaultConfig()
	if in.PartitionKey != nil {
		cfg.PartitionKey = processor.KeyAttribute{Name: deref(in.PartitionKey.Name), Type: attributeType(in.PartitionKey.Type)}
	}
	if in.SortKey != nil {
		cfg.SortKey = &processor.KeyAttribute{Name: deref(in.SortKey.Name), Type: attributeType(in.SortKey.Type)}
	}
	if in.ErrorRetention != nil && !*in.ErrorRetention.IsUnresolved() {
		cfg.ErrorTTLSeconds = int64(math.Ceil(seconds(in.ErrorRetention)))
	}
	if t := in.Transform; t != nil {
		if t.PartitionKeyFrom != nil {
			cfg.PartitionKey.Source = *t.PartitionKeyFrom
		}
		if t.SortKeyFrom != nil {
			if cfg.SortKey == nil {
				problems = append(problems, "Transform.SortKeyFrom: only allowed with SortKey")
			} else {
				cfg.SortKey.Source = *t.SortKeyFrom
			}
		}
		var more []string
		cfg.Transform, more = transformConfig(t)
		problems = append(problems, more...)
	}
	aggs, more := aggregatesConfig(in)
	cfg.Aggregates = aggs
	problems = append(problems, more...)
	if in.Metadata != nil {
		cfg.Metadata = make([]string, 0, len(*in.Metadata)) // empty, not nil: no metadata
		for _, m := range *in.Metadata {
			cfg.Metadata = append(cfg.Metadata, string(m))
		}
	}
	return cfg.WithDefaults(), problems
}

func attributeType(t awsdynamodb.AttributeType) processor.AttributeType {
	switch t {
	case awsdynamodb.AttributeType_NUMBER:
		return processor.AttributeTypeNumber
	case awsdynamodb.AttributeType_BINARY:
		return processor.AttributeTypeBinary
	case awsdynamodb.AttributeType_STRING:
		return processor.AttributeTypeString
	}
	return processor.AttributeType(t)
}

// validateProps returns every problem with the props, each naming the prop, sorted for a stable message.
func validateProps(scope constructs.Construct, in *KinesisDynamoPipelineProps, cfg processor.Config) []string {
	var v validator

	// Stream.
	if in.Stream != nil {
		v.check(in.ShardCount == nil, "ShardCount: must be unset when Stream is given (the existing stream keeps its shards)")
		v.check(in.StreamMode == "", "StreamMode: must be unset when Stream is given")
		v.check(in.RetentionPeriod == nil, "RetentionPeriod: must be unset when Stream is given")
	}
	if in.StreamMode == awskinesis.StreamMode_ON_DEMAND {
		v.check(in.ShardCount == nil, "ShardCount: must be unset with StreamMode ON_DEMAND (on-demand streams scale their own shards)")
	}
	v.number("ShardCount", in.ShardCount, 1, math.MaxInt32, "at least 1")
	v.duration("RetentionPeriod", in.RetentionPeriod, 24*3600, 8760*3600, "between 24 hours and 365 days")

	// Tables.
	if in.Table != nil {
		v.check(in.PartitionKey != nil, "PartitionKey: required when Table is given (an existing table does not reveal its key schema)")
	}
	for name, key := range map[string]*awsdynamodb.Attribute{"PartitionKey": in.PartitionKey, "SortKey": in.SortKey} {
		if key != nil {
			v.check(deref(key.Name) != "", name+": Name must not be empty")
		}
	}
	if err := cfg.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			v.add(configProblem(line))
		}
	}
	if in.Table != nil && in.Transform != nil && in.Transform.TimeToLive != nil {
		v.add("Transform.TimeToLive: not allowed with an existing Table (the construct cannot turn on TTL on a table it " +
			"does not own); enable TTL on your table and compute the attribute with Transform.Computed")
	}
	if in.Filters != nil {
		v.check(len(*in.Filters) <= 5, fmt.Sprintf("Filters: at most 5 filters per event source mapping (got %d)", len(*in.Filters)))
	}
	if !enabled(in.ErrorTableEnabled) {
		v.check(in.ErrorTable == nil, "ErrorTable: must be unset when ErrorTableEnabled is false")
		v.check(in.ErrorRetention == nil, "ErrorRetention: must be unset when ErrorTableEnabled is false")
	}
	if in.ErrorTable != nil {
		v.check(in.ErrorRetention == nil, "ErrorRetention: must be unset when ErrorTable is given (the construct cannot turn on "+
			"TTL on a table it does not own; enable TTL on its \""+processor.ErrorTTLAttribute+"\" attribute yourself)")
	}
	v.duration("ErrorRetention", in.ErrorRetention, 1, math.MaxInt32, "at least 1 second")
	validateCapacity(&v, in)

	// On-failure destination.
	if !enabled(in.DeadLetterQueueEnabled) {
		v.check(in.DeadLetterQueue == nil, "DeadLetterQueue: must be unset when DeadLetterQueueEnabled is false")
	}
	if in.FailureBucketEnabled != nil && !*in.FailureBucketEnabled {
		v.check(in.FailureBucket == nil, "FailureBucket: must be unset when FailureBucketEnabled is false")
	}
	if in.FailureBucket != nil || isTrue(in.FailureBucketEnabled) {
		v.check(in.DeadLetterQueue == nil, "DeadLetterQueue: must be unset with FailureBucket or FailureBucketEnabled "+
			"(an event source mapping has exactly one on-failure destination)")
		v.check(in.DeadLetterQueueEnabled == nil || !*in.DeadLetterQueueEnabled, "DeadLetterQueueEnabled: must not be "+
			"true with FailureBucket or FailureBucketEnabled (an event source mapping has exactly one on-failure destination)")
	}

	// Function.
	v.number("MemorySize", in.MemorySize, 128, 10240, "between 128 and 10240 MB")
	v.duration("Timeout", in.Timeout, 1, 900, "between 1 second and 15 minutes")
	if in.Architecture != nil {
		name := deref(in.Architecture.Name())
		v.check(name == deref(awslambda.Architecture_ARM_64().Name()) || name == deref(awslambda.Architecture_X86_64().Name()),
			fmt.Sprintf("Architecture: %q is not supported (use awslambda.Architecture_ARM_64() or Architecture_X86_64())", name))
	}
	if in.Environment != nil {
		for k := range *in.Environment {
			v.check(!strings.HasPrefix(k, "PIPELINE_"), fmt.Sprintf("Environment: %q uses the reserved prefix PIPELINE_", k))
		}
	}

	// Security.
	if in.EncryptionKey != nil {
		v.check(!*awscdk.Token_IsUnresolved(awscdk.Stack_Of(scope).Region()), "EncryptionKey: needs a stack with an "+
			"explicit region (StackProps.Env), because DynamoDB global tables name their customer-managed key per region")
	}
	if in.Vpc == nil {
		v.check(in.VpcSubnets == nil, "VpcSubnets: only allowed with Vpc")
		v.check(in.SecurityGroups == nil, "SecurityGroups: only allowed with Vpc")
	}

	// Monitoring.
	if in.AlarmsEnabled != nil && !*in.AlarmsEnabled {
		v.check(in.AlarmAction == nil, "AlarmAction: must be unset when AlarmsEnabled is false")
		v.check(in.DisabledAlarms == nil, "DisabledAlarms: must be unset when AlarmsEnabled is false")
		v.check(in.IteratorAgeAlarmThreshold == nil, "IteratorAgeAlarmThreshold: must be unset when AlarmsEnabled is false")
		v.check(in.ErrorTableAlarmThreshold == nil, "ErrorTableAlarmThreshold: must be unset when AlarmsEnabled is false")
	}
	if in.DisabledAlarms != nil {
		for _, a := range *in.DisabledAlarms {
			switch a {
			case PipelineAlarm_ITERATOR_AGE, PipelineAlarm_ON_FAILURE_DESTINATION, PipelineAlarm_ERROR_TABLE,
				PipelineAlarm_FUNCTION_ERRORS, PipelineAlarm_FUNCTION_THROTTLES, PipelineAlarm_READ_THROUGHPUT_EXCEEDED,
				PipelineAlarm_TABLE_WRITE_THROTTLES, PipelineAlarm_SELF_TEST:
			default:
				v.add(fmt.Sprintf("DisabledAlarms: %q is not a PipelineAlarm", a))
			}
		}
	}
	v.duration("IteratorAgeAlarmThreshold", in.IteratorAgeAlarmThreshold, 1, 7*24*3600, "between 1 second and 7 days")
	if !enabled(in.ErrorTableEnabled) {
		v.check(in.ErrorTableAlarmThreshold == nil, "ErrorTableAlarmThreshold: must be unset when ErrorTableEnabled is false")
	}
	// These durations end up in the processor's configuration file or an alarm threshold at synth time: a token
	// (known only at deploy time) cannot be written there.
	for prop, d := range map[string]awscdk.Duration{
		"ErrorRetention":            in.ErrorRetention,
		"IteratorAgeAlarmThreshold": in.IteratorAgeAlarmThreshold,
		"Transform.TimeToLive":      transformTTL(in.Transform),
	} {
		v.check(d == nil || !*d.IsUnresolved(), prop+": must be known at synth time, not a token (it is written into "+
			"the processor's configuration or an alarm)")
	}
	v.number("ErrorTableAlarmThreshold", in.ErrorTableAlarmThreshold, 1, math.MaxInt32, "at least 1")

	// Event source mapping.
	v.number("BatchSize", in.BatchSize, 1, 10000, "between 1 and 10000")
	v.duration("MaxBatchingWindow", in.MaxBatchingWindow, 0, 300, "between 0 and 300 seconds")
	v.number("ParallelizationFactor", in.ParallelizationFactor, 1, 10, "between 1 and 10")
	v.number("RetryAttempts", in.RetryAttempts, 0, 10000, "between 0 and 10000 (for unlimited retries, set UnlimitedRetries)")
	v.duration("MaxRecordAge", in.MaxRecordAge, 60, 604800, "between 60 seconds and 7 days")
	if isTrue(in.UnlimitedRetries) {
		v.check(in.RetryAttempts == nil, "RetryAttempts: must be unset with UnlimitedRetries")
		v.check(in.MaxRecordAge == nil, "MaxRecordAge: must be unset with UnlimitedRetries")
	}
	if in.StartingPosition == awslambda.StartingPosition_AT_TIMESTAMP {
		v.check(in.StartingPositionTimestamp != nil, "StartingPositionTimestamp: required with StartingPosition AT_TIMESTAMP")
	} else {
		v.check(in.StartingPositionTimestamp == nil, "StartingPositionTimestamp: only allowed with StartingPosition AT_TIMESTAMP")
	}
	return v.problems
}

type validator struct{ problems []string }

func (v *validator) add(problem string) { v.problems = append(v.problems, problem) }

func (v *validator) check(ok bool, problem string) {
	if !ok {
		v.add(problem)
	}
}

// number checks an optional number; tokens are not range-checked.
func (v *validator) number(prop string, n *float64, low, high float64, want string) {
	if n == nil || *awscdk.Token_IsUnresolved(n) {
		return
	}
	if *n < low || *n > high || *n != math.Trunc(*n) {
		v.add(fmt.Sprintf("%s: must be a whole number %s (got %v)", prop, want, *n))
	}
}

// duration checks an optional duration in seconds; tokens are not range-checked.
func (v *validator) duration(prop string, d awscdk.Duration, low, high float64, want string) {
	if d == nil || *d.IsUnresolved() {
		return
	}
	s := seconds(d)
	if s < low || s > high || s != math.Trunc(s) {
		v.add(fmt.Sprintf("%s: must be whole seconds %s (got %s)", prop, want, deref(d.ToHumanString())))
	}
}

func seconds(d awscdk.Duration) float64 {
	return *d.ToMilliseconds(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)}) / 1000
}

func propsError(path string, problems []string) string {
	if len(problems) == 1 {
		return fmt.Sprintf("kinesispipeline: invalid props for %q: %s", path, problems[0])
	}
	sort.Strings(problems)
	return fmt.Sprintf("kinesispipeline: invalid props for %q (%d problems):\n- %s", path, len(problems),
		strings.Join(problems, "\n- "))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func transformTTL(t *TransformProps) awscdk.Duration {
	if t == nil {
		return nil
	}
	return t.TimeToLive
}
