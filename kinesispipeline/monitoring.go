package kinesispipeline

import (
	"fmt"
	"sort"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// PipelineAlarm names one of the pipeline's alarms. The name is also the alarm's construct ID.
type PipelineAlarm string

// The alarms a pipeline creates by default. Thresholds are documented on each.
const (
	// PipelineAlarm_ITERATOR_AGE fires when the function falls behind the stream: Lambda's IteratorAge (maximum)
	// above IteratorAgeAlarmThreshold (default 10 minutes) for 3 consecutive minutes.
	PipelineAlarm_ITERATOR_AGE PipelineAlarm = "IteratorAgeAlarm"
	// PipelineAlarm_ON_FAILURE_DESTINATION fires when a batch went to the on-failure destination: with a queue, its
	// ApproximateNumberOfMessagesVisible (maximum) above 0; with a bucket, the event source mapping's
	// OnFailureDestinationDeliveredEventCount above 0 in 5 minutes.
	PipelineAlarm_ON_FAILURE_DESTINATION PipelineAlarm = "OnFailureDestinationAlarm"
	// PipelineAlarm_ERROR_TABLE fires when the processor sent records to the error table: its RecordsToErrorTable
	// metric (sum over 5 minutes) at or above ErrorTableAlarmThreshold (default 1).
	PipelineAlarm_ERROR_TABLE PipelineAlarm = "ErrorTableAlarm"
	// PipelineAlarm_FUNCTION_ERRORS fires on any function error in 5 minutes. The processor reports failed records
	// through partial-batch responses, so an error means a crash or a timeout.
	PipelineAlarm_FUNCTION_ERRORS PipelineAlarm = "FunctionErrorsAlarm"
	// PipelineAlarm_FUNCTION_THROTTLES fires on any throttled invocation in 5 minutes.
	PipelineAlarm_FUNCTION_THROTTLES PipelineAlarm = "FunctionThrottlesAlarm"
	// PipelineAlarm_READ_THROUGHPUT_EXCEEDED fires when reads of the stream were throttled (the stream's
	// ReadProvisionedThroughputExceeded, sum over 5 minutes, above 0) in 3 consecutive periods.
	PipelineAlarm_READ_THROUGHPUT_EXCEEDED PipelineAlarm = "ReadThroughputExceededAlarm"
	// PipelineAlarm_TABLE_WRITE_THROTTLES fires when writes to the data table were throttled: its WriteThrottleEvents
	// (sum over 5 minutes) at or above TableWriteThrottlesAlarmThreshold (default 1). Created only when TableBilling
	// caps writes (a write ceiling or provisioned capacity) or the threshold is set.
	PipelineAlarm_TABLE_WRITE_THROTTLES PipelineAlarm = "TableWriteThrottlesAlarm"
	// PipelineAlarm_SELF_TEST fires when a run of the self-test function failed (its Errors, sum over 5 minutes,
	// above 0). Created only with SelfTestEnabled and a SelfTestSchedule.
	PipelineAlarm_SELF_TEST PipelineAlarm = "SelfTestAlarm"
)

// Alarms returns the pipeline's alarms, ordered by construct ID; empty when AlarmsEnabled is false.
func (p *KinesisDynamoPipeline) Alarms() []awscloudwatch.Alarm {
	names := make([]string, 0, len(p.alarms))
	for name := range p.alarms {
		names = append(names, string(name))
	}
	sort.Strings(names)
	out := make([]awscloudwatch.Alarm, 0, len(names))
	for _, name := range names {
		out = append(out, p.alarms[PipelineAlarm(name)])
	}
	return out
}

// Alarm returns one alarm, or nil when it was not created.
func (p *KinesisDynamoPipeline) Alarm(alarm PipelineAlarm) awscloudwatch.Alarm {
	return p.alarms[alarm]
}

// MetricIteratorAge returns Lambda's IteratorAge for the function (maximum, milliseconds): the age of the last
// record of each batch when it was read, the measure of how far the pipeline is behind.
func (p *KinesisDynamoPipeline) MetricIteratorAge(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.function.Metric(jsii.String("IteratorAge"), withStatistic(props, "Maximum"))
}

// MetricApproximateNumberOfMessagesVisible returns the on-failure queue's depth (maximum), or nil without a queue.
func (p *KinesisDynamoPipeline) MetricApproximateNumberOfMessagesVisible(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	if p.queue == nil {
		return nil
	}
	return p.queue.MetricApproximateNumberOfMessagesVisible(withStatistic(props, "Maximum"))
}

// MetricOnFailureDestinationDeliveredEventCount returns the number of records the event source mapping sent to its
// on-failure bucket (sum), or nil without a bucket. The mapping publishes it only with event-count metrics on, which
// the construct turns on for a bucket destination (a queue has its own depth metric).
func (p *KinesisDynamoPipeline) MetricOnFailureDestinationDeliveredEventCount(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	if p.bucket == nil {
		return nil
	}
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String("AWS/Lambda"),
		MetricName:    jsii.String("OnFailureDestinationDeliveredEventCount"),
		DimensionsMap: &map[string]*string{"EventSourceMappingUUID": p.mapping.EventSourceMappingId()},
	}).With(withStatistic(props, "Sum"))
}

// MetricRecordsWritten returns the processor's count of records stored in the table (sum).
func (p *KinesisDynamoPipeline) MetricRecordsWritten(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricRecordsWritten, "Sum", props)
}

// MetricRecordsToErrorTable returns the processor's count of records sent to the error table (sum).
func (p *KinesisDynamoPipeline) MetricRecordsToErrorTable(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricRecordsToErrorTable, "Sum", props)
}

// MetricRecordsSkipped returns the processor's count of records a transform skipped (sum).
func (p *KinesisDynamoPipeline) MetricRecordsSkipped(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricRecordsSkipped, "Sum", props)
}

// MetricRecordsFailed returns the processor's count of records it reported for retry (sum).
func (p *KinesisDynamoPipeline) MetricRecordsFailed(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricRecordsFailed, "Sum", props)
}

// MetricBatchLatency returns the processor's time to handle one batch (average, milliseconds).
func (p *KinesisDynamoPipeline) MetricBatchLatency(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricBatchLatency, "Average", props)
}

// MetricErrors returns the function's invocation errors (sum).
func (p *KinesisDynamoPipeline) MetricErrors(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.function.MetricErrors(withStatistic(props, "Sum"))
}

// MetricThrottles returns the function's throttled invocations (sum).
func (p *KinesisDynamoPipeline) MetricThrottles(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.function.MetricThrottles(withStatistic(props, "Sum"))
}

// MetricReadProvisionedThroughputExceeded returns the stream's throttled reads (sum).
func (p *KinesisDynamoPipeline) MetricReadProvisionedThroughputExceeded(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.stream.MetricReadProvisionedThroughputExceeded(withStatistic(props, "Sum"))
}

// processorMetric returns one of the processor's Embedded Metric Format metrics, scoped to this function.
func (p *KinesisDynamoPipeline) processorMetric(name, statistic string, props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(processor.MetricNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{processor.MetricDimensionFunctionName: p.function.FunctionName()},
	}).With(withStatistic(props, statistic))
}

// withStatistic returns props with the statistic set unless the caller chose one.
func withStatistic(props *awscloudwatch.MetricOptions, statistic string) *awscloudwatch.MetricOptions {
	out := awscloudwatch.MetricOptions{}
	if props != nil {
		out = *props
	}
	if out.Statistic == nil {
		out.Statistic = jsii.String(statistic)
	}
	return &out
}

type alarmSpec struct {
	name      PipelineAlarm
	metric    awscloudwatch.IMetric
	threshold float64
	periods   float64
	op        awscloudwatch.ComparisonOperator
	what      string
}

func (p *KinesisDynamoPipeline) createAlarms(in *KinesisDynamoPipelineProps) {
	p.alarms = map[PipelineAlarm]awscloudwatch.Alarm{}
	if !enabled(in.AlarmsEnabled) {
		return
	}
	disabled := map[PipelineAlarm]bool{}
	if in.DisabledAlarms != nil {
		for _, a := range *in.DisabledAlarms {
			disabled[a] = true
		}
	}
	fiveMinutes := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5))}
	oneMinute := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(1))}
	iteratorAge := 10 * 60 * 1000.0
	if in.IteratorAgeAlarmThreshold != nil {
		iteratorAge = *in.IteratorAgeAlarmThreshold.ToMilliseconds(nil)
	}
	errorTable := 1.0
	if in.ErrorTableAlarmThreshold != nil {
		errorTable = *in.ErrorTableAlarmThreshold
	}
	specs := []alarmSpec{
		{PipelineAlarm_ITERATOR_AGE, p.MetricIteratorAge(oneMinute), iteratorAge, 3,
			awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, "the processor is falling behind the stream"},
		{PipelineAlarm_FUNCTION_ERRORS, p.MetricErrors(fiveMinutes), 0, 1,
			awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, "the processor crashed or timed out"},
		{PipelineAlarm_FUNCTION_THROTTLES, p.MetricThrottles(fiveMinutes), 0, 1,
			awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, "invocations of the processor were throttled"},
		{PipelineAlarm_READ_THROUGHPUT_EXCEEDED, p.MetricReadProvisionedThroughputExceeded(fiveMinutes), 0, 3,
			awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, "reads of the stream are throttled; add shards or use enhanced fan-out"},
	}
	if p.errorTable != nil {
		specs = append(specs, alarmSpec{PipelineAlarm_ERROR_TABLE, p.MetricRecordsToErrorTable(fiveMinutes), errorTable, 1,
			awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, "records were sent to the error table"})
	}
	if s := p.tableWriteThrottlesAlarm(in); s != nil {
		specs = append(specs, *s)
	}
	switch {
	case p.queue != nil:
		specs = append(specs, alarmSpec{PipelineAlarm_ON_FAILURE_DESTINATION, p.MetricApproximateNumberOfMessagesVisible(oneMinute), 0, 1,
			awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, "batches were sent to the on-failure queue; redrive them before the stream's retention ends"})
	case p.bucket != nil:
		specs = append(specs, alarmSpec{PipelineAlarm_ON_FAILURE_DESTINATION, p.MetricOnFailureDestinationDeliveredEventCount(fiveMinutes), 0, 1,
			awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, "batches were sent to the on-failure bucket"})
	}
	for _, s := range specs {
		if disabled[s.name] {
			continue
		}
		alarm := awscloudwatch.NewAlarm(p, jsii.String(string(s.name)), &awscloudwatch.AlarmProps{
			Metric:             s.metric,
			Threshold:          jsii.Number(s.threshold),
			EvaluationPeriods:  jsii.Number(s.periods),
			DatapointsToAlarm:  jsii.Number(s.periods),
			ComparisonOperator: s.op,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
			AlarmDescription:   jsii.String(fmt.Sprintf("%s: %s", *p.Node().Path(), s.what)),
		})
		if in.AlarmAction != nil {
			alarm.AddAlarmAction(in.AlarmAction)
			alarm.AddOkAction(in.AlarmAction)
		}
		p.alarms[s.name] = alarm
	}
}

func (p *KinesisDynamoPipeline) createDashboard(in *KinesisDynamoPipelineProps) {
	if !isTrue(in.DashboardEnabled) {
		return
	}
	graph := func(title string, metrics ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		var ms []awscloudwatch.IMetric
		for _, m := range metrics {
			if m != nil {
				ms = append(ms, m)
			}
		}
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &ms, Width: jsii.Number(8)})
	}
	var failure awscloudwatch.IMetric
	switch {
	case p.queue != nil:
		failure = p.MetricApproximateNumberOfMessagesVisible(nil)
	case p.bucket != nil:
		failure = p.MetricOnFailureDestinationDeliveredEventCount(nil)
	}
	dashboard := awscloudwatch.NewDashboard(p, jsii.String("Dashboard"), nil)
	dashboard.AddWidgets(
		graph("Records", p.MetricRecordsWritten(nil), p.MetricRecordsToErrorTable(nil), p.MetricRecordsSkipped(nil), p.MetricRecordsFailed(nil)),
		graph("Iterator age (ms)", p.MetricIteratorAge(nil)),
		graph("Batch latency (ms)", p.MetricBatchLatency(nil)),
	)
	dashboard.AddWidgets(
		graph("On-failure destination", failure),
		graph("Function errors and throttles", p.MetricErrors(nil), p.MetricThrottles(nil)),
		graph("Stream read throttling", p.MetricReadProvisionedThroughputExceeded(nil)),
	)
	dashboard.AddWidgets(graph("Table write throttling", p.MetricTableWriteThrottleEvents(nil)))
	if alarms := p.Alarms(); len(alarms) > 0 {
		ia := make([]interfacesawscloudwatch.IAlarmRef, len(alarms))
		for i, a := range alarms {
			ia[i] = a
		}
		dashboard.AddWidgets(awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
			Title: jsii.String("Alarms"), Alarms: &ia, Width: jsii.Number(24),
		}))
	}
	p.dashboard = dashboard
}

// Dashboard returns the pipeline's dashboard, or nil without DashboardEnabled.
func (p *KinesisDynamoPipeline) Dashboard() awscloudwatch.Dashboard { return p.dashboard }
