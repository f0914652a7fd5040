package kinesispipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/jsii-runtime-go"
)

// DefaultTableWriteThrottlesAlarmThreshold is the number of throttled writes of the data table in 5 minutes at which
// PipelineAlarm_TABLE_WRITE_THROTTLES fires unless TableWriteThrottlesAlarmThreshold says otherwise.
const DefaultTableWriteThrottlesAlarmThreshold = 1

// validateCapacity adds the problems of the table capacity props: where they are allowed, and what CloudFormation
// would reject at deploy time.
func validateCapacity(v *validator, in *KinesisDynamoPipelineProps) {
	if in.Table != nil {
		v.check(in.TableBilling == nil, "TableBilling: must be unset when Table is given (the existing table keeps its capacity)")
		v.check(in.TableWarmThroughput == nil, "TableWarmThroughput: must be unset when Table is given (pre-warm your table yourself)")
	}
	if !enabled(in.ErrorTableEnabled) {
		v.check(in.ErrorTableBilling == nil, "ErrorTableBilling: must be unset when ErrorTableEnabled is false")
	} else if in.ErrorTable != nil {
		v.check(in.ErrorTableBilling == nil, "ErrorTableBilling: must be unset when ErrorTable is given (the existing table keeps its capacity)")
	}
	if in.AlarmsEnabled != nil && !*in.AlarmsEnabled {
		v.check(in.TableWriteThrottlesAlarmThreshold == nil, "TableWriteThrottlesAlarmThreshold: must be unset when AlarmsEnabled is false")
	}
	v.number("TableWriteThrottlesAlarmThreshold", in.TableWriteThrottlesAlarmThreshold, 1, math.MaxInt32, "at least 1")
	if w := in.TableWarmThroughput; w != nil {
		v.check(w.ReadUnitsPerSecond != nil || w.WriteUnitsPerSecond != nil,
			"TableWarmThroughput: set ReadUnitsPerSecond, WriteUnitsPerSecond or both")
		v.number("TableWarmThroughput.ReadUnitsPerSecond", w.ReadUnitsPerSecond, 1, math.MaxInt64, "at least 1")
		v.number("TableWarmThroughput.WriteUnitsPerSecond", w.WriteUnitsPerSecond, 1, math.MaxInt64, "at least 1")
	}
	if in.Table == nil && in.TableBilling != nil {
		for _, p := range billingProblems(in.TableBilling) {
			v.add("TableBilling: " + p)
		}
	}
	if in.ErrorTable == nil && enabled(in.ErrorTableEnabled) && in.ErrorTableBilling != nil {
		for _, p := range billingProblems(in.ErrorTableBilling) {
			v.add("ErrorTableBilling: " + p)
		}
	}
}

// billingProblems returns what is wrong with billing as CloudFormation will see it. In Go, CDK's Billing reveals only
// its mode, so it is rendered on a table in a scratch app and the table's CloudFormation properties are read back.
// CDK itself rejects what it knows (fixed write capacity, an autoscaled minimum above the maximum, a target
// utilization outside 20..90); CloudFormation also needs every capacity to be a whole number at least 1.
func billingProblems(billing awsdynamodb.Billing) (problems []string) {
	defer func() {
		if r := recover(); r != nil {
			msg := strings.SplitN(fmt.Sprint(r), "\n", 2)[0]
			if strings.Contains(msg, "writeCapacity") {
				msg += " (the construct creates a DynamoDB global table, whose provisioned writes are always autoscaled: " +
					"use awsdynamodb.Capacity_Autoscaled)"
			}
			problems = append(problems, msg)
		}
	}()
	// Never synthesized, and kept away from the real cloud assembly: under the CDK CLI (CDK_OUTDIR set) an app
	// registers to synthesize itself into CDK_OUTDIR when its process exits unless AutoSynth is off, and would then
	// overwrite the real app's manifest.
	props := &awscdk.AppProps{AutoSynth: jsii.Bool(false)}
	if dir, err := os.MkdirTemp("", "kdp-billing-"); err == nil {
		defer os.RemoveAll(dir)
		props.Outdir = jsii.String(dir)
	}
	stack := awscdk.NewStack(awscdk.NewApp(props), jsii.String("Scratch"), nil)
	table := awsdynamodb.NewTableV2(stack, jsii.String("Table"), &awsdynamodb.TablePropsV2{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("id"), Type: awsdynamodb.AttributeType_STRING},
		Billing:      billing,
	})
	cfn := table.Node().DefaultChild().(awsdynamodb.CfnGlobalTable)
	resolve := func(v interface{}) interface{} {
		if v == nil {
			return nil
		}
		// Through JSON: plain maps and numbers, whatever Go type jsii chose for the property.
		var out interface{}
		raw, err := json.Marshal(stack.Resolve(v))
		if err == nil && json.Unmarshal(raw, &out) == nil {
			return out
		}
		return nil
	}
	settings := map[string]interface{}{
		"write":   resolve(cfn.WriteOnDemandThroughputSettings()),
		"wp":      resolve(cfn.WriteProvisionedThroughputSettings()),
		"replica": lookup(resolve(cfn.Replicas()), "0"),
	}
	check := func(name string, path ...string) {
		n, ok := lookup(settings, path...).(float64)
		if ok && (n < 1 || n != math.Trunc(n)) {
			problems = append(problems, fmt.Sprintf("%s must be a whole number at least 1 (got %v)", name, n))
		}
	}
	check("MaxWriteRequestUnits", "write", "maxWriteRequestUnits")
	check("MaxReadRequestUnits", "replica", "readOnDemandThroughputSettings", "maxReadRequestUnits")
	check("write capacity MinCapacity", "wp", "writeCapacityAutoScalingSettings", "minCapacity")
	check("write capacity MaxCapacity", "wp", "writeCapacityAutoScalingSettings", "maxCapacity")
	check("read capacity", "replica", "readProvisionedThroughputSettings", "readCapacityUnits")
	check("read capacity MinCapacity", "replica", "readProvisionedThroughputSettings", "readCapacityAutoScalingSettings", "minCapacity")
	check("read capacity MaxCapacity", "replica", "readProvisionedThroughputSettings", "readCapacityAutoScalingSettings", "maxCapacity")
	return problems
}

// lookup walks nested JSON maps and lists; nil when a key is missing.
func lookup(v interface{}, keys ...string) interface{} {
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]interface{}:
			v = x[k]
		case []interface{}:
			var i int
			if _, err := fmt.Sscanf(k, "%d", &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// writesCapped says whether the construct created the data table with a write ceiling (on-demand with
// MaxWriteRequestUnits) or provisioned capacity: read from the table's CloudFormation properties.
func (p *KinesisDynamoPipeline) writesCapped(in *KinesisDynamoPipelineProps) bool {
	if in.Table != nil || in.TableBilling == nil {
		return false
	}
	cfn, ok := p.table.Node().DefaultChild().(awsdynamodb.CfnGlobalTable)
	if !ok {
		return false
	}
	return deref(cfn.BillingMode()) == string(awsdynamodb.BillingMode_PROVISIONED) || cfn.WriteOnDemandThroughputSettings() != nil
}

// tableWriteThrottlesAlarm returns the spec of PipelineAlarm_TABLE_WRITE_THROTTLES, or nil when the alarm is not
// wanted: it is created when the data table's writes are capped, or when TableWriteThrottlesAlarmThreshold is set.
func (p *KinesisDynamoPipeline) tableWriteThrottlesAlarm(in *KinesisDynamoPipelineProps) *alarmSpec {
	if in.TableWriteThrottlesAlarmThreshold == nil && !p.writesCapped(in) {
		return nil
	}
	threshold := float64(DefaultTableWriteThrottlesAlarmThreshold)
	if in.TableWriteThrottlesAlarmThreshold != nil {
		threshold = *in.TableWriteThrottlesAlarmThreshold
	}
	return &alarmSpec{PipelineAlarm_TABLE_WRITE_THROTTLES,
		p.MetricTableWriteThrottleEvents(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5))}),
		threshold, 1, awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		"writes to the data table were throttled (its write ceiling or provisioned capacity is reached); the processor " +
			"retries them, then the event source mapping does, then the records go to the on-failure destination"}
}

// MetricTableWriteThrottleEvents returns the data table's throttled writes (DynamoDB's WriteThrottleEvents for the
// table, sum): each item of a BatchWriteItem that the table's write ceiling, provisioned capacity or a hot partition
// turned away. The processor retries them, so throttling costs latency first and records only past the retry budget.
func (p *KinesisDynamoPipeline) MetricTableWriteThrottleEvents(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.table.Metric(jsii.String("WriteThrottleEvents"), withStatistic(props, "Sum"))
}
