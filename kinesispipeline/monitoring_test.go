package kinesispipeline_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

const typeAlarm = "AWS::CloudWatch::Alarm"

// alarmsByPrefix returns the alarms keyed by their construct ID (the logical ID without the pipeline prefix and hash).
func alarmsByPrefix(tmpl map[string]interface{}) map[string]map[string]interface{} {
	out := map[string]map[string]interface{}{}
	for id, r := range testutil.Resources(tmpl, typeAlarm) {
		name := strings.TrimPrefix(id, "Pipeline")
		name = name[:len(name)-8] // the logical ID's hash suffix
		out[name], _ = r["Properties"].(map[string]interface{})
	}
	return out
}

func TestAlarms(t *testing.T) {
	_, p, tmpl := synth(t, nil)
	ids := map[string]string{}
	for _, typ := range []string{typeFunction, typeQueue, typeStream} {
		ids[typ], _ = testutil.OneResource(t, tmpl, typ)
	}
	ref := func(id string) map[string]interface{} { return map[string]interface{}{"Ref": id} }
	type want struct {
		namespace, metric, statistic, comparison string
		dimensions                               []interface{}
		threshold, periods, period               float64
	}
	wants := map[kinesispipeline.PipelineAlarm]want{
		kinesispipeline.PipelineAlarm_ITERATOR_AGE: {"AWS/Lambda", "IteratorAge", "Maximum", "GreaterThanThreshold",
			[]interface{}{map[string]interface{}{"Name": "FunctionName", "Value": ref(ids[typeFunction])}}, 600000, 3, 60},
		kinesispipeline.PipelineAlarm_FUNCTION_ERRORS: {"AWS/Lambda", "Errors", "Sum", "GreaterThanThreshold",
			[]interface{}{map[string]interface{}{"Name": "FunctionName", "Value": ref(ids[typeFunction])}}, 0, 1, 300},
		kinesispipeline.PipelineAlarm_FUNCTION_THROTTLES: {"AWS/Lambda", "Throttles", "Sum", "GreaterThanThreshold",
			[]interface{}{map[string]interface{}{"Name": "FunctionName", "Value": ref(ids[typeFunction])}}, 0, 1, 300},
		kinesispipeline.PipelineAlarm_ERROR_TABLE: {processor.MetricNamespace, processor.MetricRecordsToErrorTable, "Sum", "GreaterThanOrEqualToThreshold",
			[]interface{}{map[string]interface{}{"Name": processor.MetricDimensionFunctionName, "Value": ref(ids[typeFunction])}}, 1, 1, 300},
		kinesispipeline.PipelineAlarm_ON_FAILURE_DESTINATION: {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "GreaterThanThreshold",
			[]interface{}{map[string]interface{}{"Name": "QueueName", "Value": map[string]interface{}{"Fn::GetAtt": []string{ids[typeQueue], "QueueName"}}}}, 0, 1, 60},
		kinesispipeline.PipelineAlarm_READ_THROUGHPUT_EXCEEDED: {"AWS/Kinesis", "ReadProvisionedThroughputExceeded", "Sum", "GreaterThanThreshold",
			[]interface{}{map[string]interface{}{"Name": "StreamName", "Value": ref(ids[typeStream])}}, 0, 3, 300},
	}
	got := alarmsByPrefix(tmpl)
	if len(got) != len(wants) {
		t.Fatalf("want %d alarms, got %d: %v", len(wants), len(got), testutil.LogicalIDs(testutil.Resources(tmpl, typeAlarm)))
	}
	for name, w := range wants {
		a := got[string(name)]
		if a == nil {
			t.Errorf("alarm %s missing", name)
			continue
		}
		assertEqual(t, string(name)+" namespace", a["Namespace"], w.namespace)
		assertEqual(t, string(name)+" metric", a["MetricName"], w.metric)
		assertEqual(t, string(name)+" statistic", a["Statistic"], w.statistic)
		assertEqual(t, string(name)+" comparison", a["ComparisonOperator"], w.comparison)
		assertEqual(t, string(name)+" dimensions", a["Dimensions"], w.dimensions)
		assertEqual(t, string(name)+" threshold", a["Threshold"], w.threshold)
		assertEqual(t, string(name)+" periods", a["EvaluationPeriods"], w.periods)
		assertEqual(t, string(name)+" period", a["Period"], w.period)
		assertEqual(t, string(name)+" missing data", a["TreatMissingData"], "notBreaching")
		if p.Alarm(name) == nil {
			t.Errorf("Alarm(%s) is nil", name)
		}
	}
	if n := len(p.Alarms()); n != len(wants) {
		t.Errorf("Alarms() returned %d alarms, want %d", n, len(wants))
	}
}

func TestAlarmProps(t *testing.T) {
	tests := []struct {
		name  string
		props func(stack awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps
		check func(t *testing.T, tmpl map[string]interface{})
	}{
		{"AlarmsEnabled false removes every alarm", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{AlarmsEnabled: jsii.Bool(false)}
		}, func(t *testing.T, tmpl map[string]interface{}) {
			assertEqual(t, "alarms", len(testutil.Resources(tmpl, typeAlarm)), 0)
		}},
		{"DisabledAlarms removes one", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{DisabledAlarms: &[]kinesispipeline.PipelineAlarm{kinesispipeline.PipelineAlarm_FUNCTION_THROTTLES}}
		}, func(t *testing.T, tmpl map[string]interface{}) {
			got := alarmsByPrefix(tmpl)
			if _, ok := got[string(kinesispipeline.PipelineAlarm_FUNCTION_THROTTLES)]; ok || len(got) != 5 {
				t.Errorf("want the 5 other alarms, got %v", testutil.LogicalIDs(testutil.Resources(tmpl, typeAlarm)))
			}
		}},
		{"thresholds", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				IteratorAgeAlarmThreshold: awscdk.Duration_Minutes(jsii.Number(2)),
				ErrorTableAlarmThreshold:  jsii.Number(50),
			}
		}, func(t *testing.T, tmpl map[string]interface{}) {
			got := alarmsByPrefix(tmpl)
			assertEqual(t, "iterator age", got[string(kinesispipeline.PipelineAlarm_ITERATOR_AGE)]["Threshold"], 120000)
			assertEqual(t, "error table", got[string(kinesispipeline.PipelineAlarm_ERROR_TABLE)]["Threshold"], 50)
		}},
		{"AlarmAction on alarm and OK", func(stack awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			topic := awssns.NewTopic(stack, jsii.String("Pager"), nil)
			return &kinesispipeline.KinesisDynamoPipelineProps{AlarmAction: awscloudwatchactions.NewSnsAction(topic)}
		}, func(t *testing.T, tmpl map[string]interface{}) {
			topicID, _ := testutil.OneResource(t, tmpl, "AWS::SNS::Topic")
			for name, a := range alarmsByPrefix(tmpl) {
				assertEqual(t, name+" alarm actions", a["AlarmActions"], []interface{}{map[string]interface{}{"Ref": topicID}})
				assertEqual(t, name+" ok actions", a["OKActions"], []interface{}{map[string]interface{}{"Ref": topicID}})
			}
		}},
		{"bucket destination alarm uses the mapping's delivered-event metric", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{FailureBucketEnabled: jsii.Bool(true)}
		}, func(t *testing.T, tmpl map[string]interface{}) {
			mappingID, mapping := testutil.OneResource(t, tmpl, typeMapping)
			assertEqual(t, "metrics config", testutil.Get(mapping, "Properties", "MetricsConfig"), map[string]interface{}{"Metrics": []string{"EventCount"}})
			a := alarmsByPrefix(tmpl)[string(kinesispipeline.PipelineAlarm_ON_FAILURE_DESTINATION)]
			assertEqual(t, "metric", a["MetricName"], "OnFailureDestinationDeliveredEventCount")
			assertEqual(t, "dimensions", a["Dimensions"], []interface{}{map[string]interface{}{"Name": "EventSourceMappingUUID", "Value": map[string]interface{}{"Ref": mappingID}}})
		}},
		{"no error table, no error-table alarm", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ErrorTableEnabled: jsii.Bool(false)}
		}, func(t *testing.T, tmpl map[string]interface{}) {
			if _, ok := alarmsByPrefix(tmpl)[string(kinesispipeline.PipelineAlarm_ERROR_TABLE)]; ok {
				t.Error("error-table alarm without an error table")
			}
		}},
		{"DashboardEnabled", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{DashboardEnabled: jsii.Bool(true)}
		}, func(t *testing.T, tmpl map[string]interface{}) {
			body, _ := json.Marshal(testutil.Properties(t, tmpl, "AWS::CloudWatch::Dashboard")["DashboardBody"])
			for _, want := range []string{"IteratorAge", processor.MetricRecordsWritten, processor.MetricRecordsToErrorTable, "ApproximateNumberOfMessagesVisible", "alarms"} {
				if !strings.Contains(string(body), want) {
					t.Errorf("dashboard lacks %s", want)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := testutil.NewStack()
			testutil.Must(t, func() { kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), tt.props(stack)) })
			tt.check(t, testutil.Template(t, stack))
		})
	}
}

func TestMetricMethods(t *testing.T) {
	_, p, _ := synth(t, nil)
	tests := []struct {
		name                        string
		metric                      awscloudwatch.Metric
		namespace, metricName, stat string
		dimension                   string
	}{
		{"MetricIteratorAge", p.MetricIteratorAge(nil), "AWS/Lambda", "IteratorAge", "Maximum", "FunctionName"},
		{"MetricApproximateNumberOfMessagesVisible", p.MetricApproximateNumberOfMessagesVisible(nil), "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "QueueName"},
		{"MetricRecordsWritten", p.MetricRecordsWritten(nil), processor.MetricNamespace, processor.MetricRecordsWritten, "Sum", processor.MetricDimensionFunctionName},
		{"MetricRecordsToErrorTable", p.MetricRecordsToErrorTable(nil), processor.MetricNamespace, processor.MetricRecordsToErrorTable, "Sum", processor.MetricDimensionFunctionName},
		{"MetricRecordsSkipped", p.MetricRecordsSkipped(nil), processor.MetricNamespace, processor.MetricRecordsSkipped, "Sum", processor.MetricDimensionFunctionName},
		{"MetricRecordsFailed", p.MetricRecordsFailed(nil), processor.MetricNamespace, processor.MetricRecordsFailed, "Sum", processor.MetricDimensionFunctionName},
		{"MetricBatchLatency", p.MetricBatchLatency(nil), processor.MetricNamespace, processor.MetricBatchLatency, "Average", processor.MetricDimensionFunctionName},
		{"MetricErrors", p.MetricErrors(nil), "AWS/Lambda", "Errors", "Sum", "FunctionName"},
		{"MetricThrottles", p.MetricThrottles(nil), "AWS/Lambda", "Throttles", "Sum", "FunctionName"},
		{"MetricReadProvisionedThroughputExceeded", p.MetricReadProvisionedThroughputExceeded(nil), "AWS/Kinesis", "ReadProvisionedThroughputExceeded", "Sum", "StreamName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertEqual(t, "namespace", *tt.metric.Namespace(), tt.namespace)
			assertEqual(t, "name", *tt.metric.MetricName(), tt.metricName)
			assertEqual(t, "statistic", *tt.metric.Statistic(), tt.stat)
			if dims := tt.metric.Dimensions(); dims == nil || (*dims)[tt.dimension] == nil || len(*dims) != 1 {
				t.Errorf("want exactly the dimension %s, got %v", tt.dimension, dims)
			}
		})
	}
	if p.MetricOnFailureDestinationDeliveredEventCount(nil) != nil {
		t.Error("MetricOnFailureDestinationDeliveredEventCount must be nil with a queue destination (never published)")
	}
	_, withBucket, _ := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{FailureBucketEnabled: jsii.Bool(true)})
	delivered := withBucket.MetricOnFailureDestinationDeliveredEventCount(nil)
	assertEqual(t, "delivered metric", *delivered.MetricName(), "OnFailureDestinationDeliveredEventCount")
	if withBucket.MetricApproximateNumberOfMessagesVisible(nil) != nil {
		t.Error("MetricApproximateNumberOfMessagesVisible must be nil without a queue")
	}
	custom := p.MetricRecordsWritten(&awscloudwatch.MetricOptions{Statistic: jsii.String("Average"), Period: awscdk.Duration_Minutes(jsii.Number(1))})
	assertEqual(t, "caller's statistic wins", *custom.Statistic(), "Average")
}
