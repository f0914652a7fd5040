package kinesispipeline_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// capacityProps uses every table capacity prop: provisioned data table with autoscaled writes, pre-warmed, and an
// error table with a write ceiling.
func capacityProps(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
	return &kinesispipeline.KinesisDynamoPipelineProps{
		TableBilling: awsdynamodb.Billing_Provisioned(&awsdynamodb.ThroughputProps{
			ReadCapacity: awsdynamodb.Capacity_Fixed(jsii.Number(10)),
			WriteCapacity: awsdynamodb.Capacity_Autoscaled(&awsdynamodb.AutoscaledCapacityOptions{
				MinCapacity: jsii.Number(5), MaxCapacity: jsii.Number(100), TargetUtilizationPercent: jsii.Number(60),
			}),
		}),
		TableWarmThroughput: &awsdynamodb.WarmThroughput{WriteUnitsPerSecond: jsii.Number(8000)},
		ErrorTableBilling:   awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{MaxWriteRequestUnits: jsii.Number(50)}),
	}
}

// tableProps returns the Properties of the data table and of the error table (nil if absent), by logical ID prefix.
func tableProps(t *testing.T, tmpl map[string]interface{}) (data, errs map[string]interface{}) {
	t.Helper()
	for id, r := range testutil.Resources(tmpl, typeTable) {
		props, _ := r["Properties"].(map[string]interface{})
		switch {
		case strings.HasPrefix(id, "PipelineErrorTable"):
			errs = props
		case strings.HasPrefix(id, "PipelineTable"):
			data = props
		}
	}
	if data == nil {
		t.Fatalf("no data table in %v", testutil.LogicalIDs(testutil.Resources(tmpl, typeTable)))
	}
	return data, errs
}

// assertPlainOnDemand checks what CloudFormation gets for an on-demand table without a ceiling or pre-warming.
func assertPlainOnDemand(t *testing.T, what string, props map[string]interface{}) {
	t.Helper()
	assertEqual(t, what+" billing", props["BillingMode"], "PAY_PER_REQUEST")
	for _, key := range []string{"WriteOnDemandThroughputSettings", "WriteProvisionedThroughputSettings", "WarmThroughput"} {
		assertEqual(t, what+" "+key, props[key], nil)
	}
	assertEqual(t, what+" read ceiling", testutil.Get(props, "Replicas", "0", "ReadOnDemandThroughputSettings"), nil)
	assertEqual(t, what+" read capacity", testutil.Get(props, "Replicas", "0", "ReadProvisionedThroughputSettings"), nil)
}

func TestTableCapacity(t *testing.T) {
	tests := []struct {
		name      string
		props     func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps
		check     func(t *testing.T, data, errs map[string]interface{})
		wantAlarm float64 // the write-throttles alarm's threshold; 0: no alarm
	}{
		{"default: on-demand, no ceiling, no alarm", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps { return nil },
			func(t *testing.T, data, errs map[string]interface{}) {
				assertPlainOnDemand(t, "data table", data)
				assertPlainOnDemand(t, "error table", errs)
			}, 0},
		{"on-demand with a write ceiling", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableBilling: awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{
				MaxWriteRequestUnits: jsii.Number(500), MaxReadRequestUnits: jsii.Number(200),
			})}
		}, func(t *testing.T, data, errs map[string]interface{}) {
			assertEqual(t, "billing", data["BillingMode"], "PAY_PER_REQUEST")
			assertEqual(t, "write ceiling", data["WriteOnDemandThroughputSettings"], map[string]interface{}{"MaxWriteRequestUnits": 500})
			assertEqual(t, "read ceiling", testutil.Get(data, "Replicas", "0", "ReadOnDemandThroughputSettings"),
				map[string]interface{}{"MaxReadRequestUnits": 200})
			assertPlainOnDemand(t, "error table (its own default)", errs)
		}, 1},
		{"warm throughput alone: pre-warmed, no alarm", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableWarmThroughput: &awsdynamodb.WarmThroughput{
				ReadUnitsPerSecond: jsii.Number(15000), WriteUnitsPerSecond: jsii.Number(8000),
			}}
		}, func(t *testing.T, data, errs map[string]interface{}) {
			assertEqual(t, "warm throughput", data["WarmThroughput"], map[string]interface{}{"ReadUnitsPerSecond": 15000, "WriteUnitsPerSecond": 8000})
			assertEqual(t, "billing", data["BillingMode"], "PAY_PER_REQUEST")
			assertPlainOnDemand(t, "error table", errs)
		}, 0},
		{"provisioned with autoscaled writes, pre-warmed; error table with a ceiling", capacityProps,
			func(t *testing.T, data, errs map[string]interface{}) {
				assertEqual(t, "billing", data["BillingMode"], "PROVISIONED")
				assertEqual(t, "write autoscaling", data["WriteProvisionedThroughputSettings"], map[string]interface{}{
					"WriteCapacityAutoScalingSettings": map[string]interface{}{
						"MaxCapacity": 100, "MinCapacity": 5,
						"TargetTrackingScalingPolicyConfiguration": map[string]interface{}{"TargetValue": 60},
					},
				})
				assertEqual(t, "read capacity", testutil.Get(data, "Replicas", "0", "ReadProvisionedThroughputSettings"),
					map[string]interface{}{"ReadCapacityUnits": 10})
				assertEqual(t, "warm throughput", data["WarmThroughput"], map[string]interface{}{"WriteUnitsPerSecond": 8000})
				assertEqual(t, "error table billing", errs["BillingMode"], "PAY_PER_REQUEST")
				assertEqual(t, "error table ceiling", errs["WriteOnDemandThroughputSettings"], map[string]interface{}{"MaxWriteRequestUnits": 50})
			}, 1},
		{"error-table ceiling alone: no alarm on the data table", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				ErrorTableBilling: awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{MaxWriteRequestUnits: jsii.Number(50)}),
			}
		}, func(t *testing.T, data, errs map[string]interface{}) {
			assertPlainOnDemand(t, "data table", data)
			assertEqual(t, "error table ceiling", errs["WriteOnDemandThroughputSettings"], map[string]interface{}{"MaxWriteRequestUnits": 50})
		}, 0},
		{"threshold creates the alarm on an uncapped table", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableWriteThrottlesAlarmThreshold: jsii.Number(25)}
		}, func(t *testing.T, data, errs map[string]interface{}) {
			assertPlainOnDemand(t, "data table", data)
		}, 25},
		{"DisabledAlarms removes it", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				TableBilling:   awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{MaxWriteRequestUnits: jsii.Number(500)}),
				DisabledAlarms: &[]kinesispipeline.PipelineAlarm{kinesispipeline.PipelineAlarm_TABLE_WRITE_THROTTLES},
			}
		}, func(*testing.T, map[string]interface{}, map[string]interface{}) {}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := testutil.NewStack()
			var p *kinesispipeline.KinesisDynamoPipeline
			testutil.Must(t, func() { p = kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), tt.props(stack)) })
			tmpl := testutil.Template(t, stack)
			data, errs := tableProps(t, tmpl)
			tt.check(t, data, errs)

			dataID := ""
			for id := range testutil.Resources(tmpl, typeTable) {
				if strings.HasPrefix(id, "PipelineTable") {
					dataID = id
				}
			}
			alarm, ok := alarmsByPrefix(tmpl)[string(kinesispipeline.PipelineAlarm_TABLE_WRITE_THROTTLES)]
			if tt.wantAlarm == 0 {
				if ok || p.Alarm(kinesispipeline.PipelineAlarm_TABLE_WRITE_THROTTLES) != nil {
					t.Errorf("unexpected write-throttles alarm: %v", alarm)
				}
				return
			}
			if !ok {
				t.Fatalf("no write-throttles alarm in %v", testutil.LogicalIDs(testutil.Resources(tmpl, typeAlarm)))
			}
			assertEqual(t, "namespace", alarm["Namespace"], "AWS/DynamoDB")
			assertEqual(t, "metric", alarm["MetricName"], "WriteThrottleEvents")
			assertEqual(t, "statistic", alarm["Statistic"], "Sum")
			assertEqual(t, "dimensions", alarm["Dimensions"], []interface{}{map[string]interface{}{"Name": "TableName", "Value": map[string]interface{}{"Ref": dataID}}})
			assertEqual(t, "threshold", alarm["Threshold"], tt.wantAlarm)
			assertEqual(t, "comparison", alarm["ComparisonOperator"], "GreaterThanOrEqualToThreshold")
			assertEqual(t, "period", alarm["Period"], 300)
			assertEqual(t, "periods", alarm["EvaluationPeriods"], 1)
			assertEqual(t, "missing data", alarm["TreatMissingData"], "notBreaching")
			found := false
			for _, a := range p.Alarms() {
				found = found || a == p.Alarm(kinesispipeline.PipelineAlarm_TABLE_WRITE_THROTTLES)
			}
			if !found {
				t.Error("Alarms() lacks the write-throttles alarm")
			}
		})
	}
}

// TestTableWriteThrottlesOnExistingTable: a threshold alarms on an existing table too, scoped to it by name.
func TestTableWriteThrottlesOnExistingTable(t *testing.T) {
	stack := testutil.NewStack()
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			Table:                             awsdynamodb.TableV2_FromTableName(stack, jsii.String("T"), jsii.String("existing-table")),
			PartitionKey:                      &awsdynamodb.Attribute{Name: jsii.String("id"), Type: awsdynamodb.AttributeType_STRING},
			TableWriteThrottlesAlarmThreshold: jsii.Number(10),
		})
	})
	alarm := alarmsByPrefix(testutil.Template(t, stack))[string(kinesispipeline.PipelineAlarm_TABLE_WRITE_THROTTLES)]
	assertEqual(t, "dimensions", alarm["Dimensions"], []interface{}{map[string]interface{}{"Name": "TableName", "Value": "existing-table"}})
	assertEqual(t, "threshold", alarm["Threshold"], 10)
}

func TestMetricTableWriteThrottleEvents(t *testing.T) {
	stack, p, _ := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{DashboardEnabled: jsii.Bool(true)})
	m := p.MetricTableWriteThrottleEvents(nil)
	assertEqual(t, "namespace", *m.Namespace(), "AWS/DynamoDB")
	assertEqual(t, "name", *m.MetricName(), "WriteThrottleEvents")
	assertEqual(t, "statistic", *m.Statistic(), "Sum")
	dims := m.Dimensions()
	if dims == nil || len(*dims) != 1 || (*dims)["TableName"] == nil {
		t.Fatalf("want exactly the dimension TableName, got %v", dims)
	}
	assertEqual(t, "table", stack.Resolve((*dims)["TableName"]), stack.Resolve(p.Table().TableName()))
	body := testutil.Get(testutil.Properties(t, testutil.Template(t, stack), "AWS::CloudWatch::Dashboard"), "DashboardBody")
	raw, _ := json.Marshal(body)
	if !strings.Contains(string(raw), "WriteThrottleEvents") {
		t.Error("dashboard lacks the table's write throttling")
	}
}

func TestTableCapacityValidation(t *testing.T) {
	ceiling := func(write, read float64) awsdynamodb.Billing {
		return awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{MaxWriteRequestUnits: jsii.Number(write), MaxReadRequestUnits: jsii.Number(read)})
	}
	autoscaled := func(min, max float64) awsdynamodb.Capacity {
		return awsdynamodb.Capacity_Autoscaled(&awsdynamodb.AutoscaledCapacityOptions{MinCapacity: jsii.Number(min), MaxCapacity: jsii.Number(max)})
	}
	key := &awsdynamodb.Attribute{Name: jsii.String("id"), Type: awsdynamodb.AttributeType_STRING}
	tests := []struct {
		name  string
		props func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps
		want  []string
	}{
		{"capacity of an existing table", func(s awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				Table: awsdynamodb.TableV2_FromTableName(s, jsii.String("T"), jsii.String("t")), PartitionKey: key,
				TableBilling:        ceiling(10, 10),
				TableWarmThroughput: &awsdynamodb.WarmThroughput{WriteUnitsPerSecond: jsii.Number(5000)},
			}
		}, []string{"TableBilling: must be unset when Table is given", "TableWarmThroughput: must be unset when Table is given"}},
		{"error-table billing without an error table of ours", func(s awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{ErrorTableEnabled: jsii.Bool(false), ErrorTableBilling: ceiling(10, 10)}
		}, []string{"ErrorTableBilling: must be unset when ErrorTableEnabled is false"}},
		{"error-table billing with an existing error table", func(s awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				ErrorTable:        awsdynamodb.Table_FromTableName(s, jsii.String("E"), jsii.String("e")),
				ErrorTableBilling: ceiling(10, 10),
			}
		}, []string{"ErrorTableBilling: must be unset when ErrorTable is given"}},
		{"threshold without alarms", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{AlarmsEnabled: jsii.Bool(false), TableWriteThrottlesAlarmThreshold: jsii.Number(5)}
		}, []string{"TableWriteThrottlesAlarmThreshold: must be unset when AlarmsEnabled is false"}},
		{"threshold 0", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableWriteThrottlesAlarmThreshold: jsii.Number(0)}
		}, []string{"TableWriteThrottlesAlarmThreshold: must be a whole number at least 1 (got 0)"}},
		{"empty warm throughput", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableWarmThroughput: &awsdynamodb.WarmThroughput{}}
		}, []string{"TableWarmThroughput: set ReadUnitsPerSecond, WriteUnitsPerSecond or both"}},
		{"warm throughput below 1 and fractional", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableWarmThroughput: &awsdynamodb.WarmThroughput{
				ReadUnitsPerSecond: jsii.Number(0), WriteUnitsPerSecond: jsii.Number(4000.5),
			}}
		}, []string{"TableWarmThroughput.ReadUnitsPerSecond: must be a whole number at least 1 (got 0)",
			"TableWarmThroughput.WriteUnitsPerSecond: must be a whole number at least 1 (got 4000.5)"}},
		{"ceilings below 1 and fractional", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableBilling: ceiling(-3, 2.5), ErrorTableBilling: ceiling(0.5, 10)}
		}, []string{"TableBilling: MaxWriteRequestUnits must be a whole number at least 1 (got -3)",
			"TableBilling: MaxReadRequestUnits must be a whole number at least 1 (got 2.5)",
			"ErrorTableBilling: MaxWriteRequestUnits must be a whole number at least 1 (got 0.5)"}},
		{"fixed write capacity", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableBilling: awsdynamodb.Billing_Provisioned(&awsdynamodb.ThroughputProps{
				ReadCapacity: awsdynamodb.Capacity_Fixed(jsii.Number(5)), WriteCapacity: awsdynamodb.Capacity_Fixed(jsii.Number(5)),
			})}
		}, []string{"TableBilling: You cannot configure 'writeCapacity' with FIXED capacity mode", "use awsdynamodb.Capacity_Autoscaled"}},
		{"provisioned capacities below 1", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableBilling: awsdynamodb.Billing_Provisioned(&awsdynamodb.ThroughputProps{
				ReadCapacity: awsdynamodb.Capacity_Fixed(jsii.Number(0)), WriteCapacity: autoscaled(-2, 10),
			})}
		}, []string{"TableBilling: read capacity must be a whole number at least 1 (got 0)",
			"TableBilling: write capacity MinCapacity must be a whole number at least 1 (got -2)"}},
		{"autoscaled read capacity below 1", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{TableBilling: awsdynamodb.Billing_Provisioned(&awsdynamodb.ThroughputProps{
				ReadCapacity: autoscaled(0, 0.5), WriteCapacity: autoscaled(1, 10),
			})}
		}, []string{"TableBilling: read capacity MinCapacity must be a whole number at least 1 (got 0)",
			"TableBilling: read capacity MaxCapacity must be a whole number at least 1 (got 0.5)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := testutil.NewStack()
			msg := testutil.PanicMessage(t, func() {
				kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), tt.props(stack))
			})
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
		})
	}
}

// TestTableCapacityProblemsComeInOneMessage: problems found by rendering CDK's Billing join the others in one panic.
func TestTableCapacityProblemsComeInOneMessage(t *testing.T) {
	stack := testutil.NewStack()
	msg := testutil.PanicMessage(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			BatchSize:           jsii.Number(0),
			TableBilling:        awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{MaxWriteRequestUnits: jsii.Number(-1)}),
			TableWarmThroughput: &awsdynamodb.WarmThroughput{},
		})
	})
	for _, want := range []string{"(3 problems)", "\n- BatchSize:", "\n- TableBilling: MaxWriteRequestUnits", "\n- TableWarmThroughput:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message must contain %q:\n%s", want, msg)
		}
	}
}

// TestTableCapacitySkipsTokens: a ceiling known only at deploy time is passed through, not range-checked.
func TestTableCapacitySkipsTokens(t *testing.T) {
	stack := testutil.NewStack()
	param := awscdk.NewCfnParameter(stack, jsii.String("MaxWrites"), &awscdk.CfnParameterProps{Type: jsii.String("Number")})
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			TableBilling: awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{MaxWriteRequestUnits: param.ValueAsNumber()}),
		})
	})
	data, _ := tableProps(t, testutil.Template(t, stack))
	assertEqual(t, "write ceiling", data["WriteOnDemandThroughputSettings"], map[string]interface{}{"MaxWriteRequestUnits": map[string]interface{}{"Ref": "MaxWrites"}})
}
