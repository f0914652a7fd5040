package kinesispipeline

import (
	"fmt"
	"math"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// AggregateMeasureKind is what an aggregate measure computes.
type AggregateMeasureKind string

// Kinds of aggregate measures.
const (
	AggregateMeasureKind_COUNT AggregateMeasureKind = "count" // the number of records
	AggregateMeasureKind_SUM   AggregateMeasureKind = "sum"   // the exact sum of a number
	AggregateMeasureKind_MIN   AggregateMeasureKind = "min"   // the smallest number
	AggregateMeasureKind_MAX   AggregateMeasureKind = "max"   // the largest number
)

// AggregateProps declares a windowed aggregate the default processor keeps in the aggregate table, exactly once per
// stored record under every retry and replay (see runtime/aggregate for the guarantee and its limits): for each
// group and tumbling window, counts, sums, minima and maxima over the records stored in the data table. Records
// skipped by Transform.Filter, sent to the error table or failed are not counted. Checked at synth with the
// processor's own code.
type AggregateProps struct {
	// Name names the aggregate (1 to 64 letters, digits, '_' or '-', starting with a letter), unique in the pipeline.
	Name *string
	// GroupBy lists payload dot paths ("Category", "device.site") whose values group records, in order. A missing
	// value groups as null.
	//
	// Default: - none: one group.
	GroupBy *[]*string
	// GroupByExpressions adds groups computed by expressions (as in Transform.Computed, but with exact numbers, as
	// a measure's Expression), after GroupBy. They may not read the processing time (now(), record.processedAt, or
	// record or $env as a whole): a redelivered record would count again in another group.
	//
	// Default: - none.
	GroupByExpressions *[]*string
	// Window is the tumbling window's length: whole seconds, at most 1 day, dividing a day (1 minute, 5 minutes,
	// 1 hour, ...). Windows start at UTC midnight and every window after.
	Window awscdk.Duration
	// TimeFrom is the payload dot path of the time records are windowed by: an RFC 3339 string, or a number of
	// Unix seconds (TimeInMilliseconds: milliseconds). A record without a readable time goes to the error table.
	// Late records count into their own window, however late.
	//
	// Default: - the record's arrival time in the stream (replays keep it, so a replay lands in the same window).
	TimeFrom *string
	// TimeInMilliseconds reads a numeric TimeFrom value as Unix milliseconds. Only with TimeFrom.
	//
	// Default: false - Unix seconds.
	TimeInMilliseconds *bool
	// Measures are the aggregate's measures: at least one.
	Measures *[]*AggregateMeasure
}

// AggregateMeasure is one measure of an aggregate: an attribute of its items.
type AggregateMeasure struct {
	// Name is the attribute's name (not pk, sk, aggregate, windowStart, group or _kfence).
	Name *string
	// Kind is what it computes.
	Kind AggregateMeasureKind
	// Path is the payload dot path of the number a sum, min or max reads (exact, as everywhere in this module). A
	// record without it adds nothing to this measure; one with something else than a number goes to the error table.
	// Not for a count; exactly one of Path and Expression for the others.
	//
	// Default: - none.
	Path *string
	// Expression computes the number a sum, min or max reads (as Transform.Computed's expressions, but exact:
	// numbers are exact decimals; a value DynamoDB cannot hold, a quotient with no finite decimal form (1 / 3) or a
	// number expr's functions cannot take exactly sends the record to the error table, never a rounded value).
	//
	// Default: - none.
	Expression *string
}

// aggregatesConfig converts the Aggregates prop to the processor's configuration, reporting what only the props
// can get wrong (nil entries, a window that is a token); the rest is processor.Config.Validate's job.
func aggregatesConfig(in *KinesisDynamoPipelineProps) ([]processor.AggregateConfig, []string) {
	if in.Aggregates == nil {
		return nil, nil
	}
	var out []processor.AggregateConfig
	var problems []string
	for i, a := range *in.Aggregates {
		if a == nil {
			problems = append(problems, fmt.Sprintf("Aggregates[%d]: is nil", i))
			continue
		}
		c := processor.AggregateConfig{Name: deref(a.Name), TimeFrom: deref(a.TimeFrom)}
		switch {
		case a.Window == nil:
			problems = append(problems, fmt.Sprintf("Aggregates[%d] (%s): Window is required", i, c.Name))
			c.WindowSeconds = 60 // reported once, here
		case *a.Window.IsUnresolved():
			problems = append(problems, fmt.Sprintf("Aggregates[%d] (%s): Window must be known at synth time", i, c.Name))
			c.WindowSeconds = 60
		default:
			s := seconds(a.Window)
			c.WindowSeconds = int64(s)
			if s != math.Trunc(s) {
				problems = append(problems, fmt.Sprintf("Aggregates[%d] (%s): Window must be whole seconds", i, c.Name))
				c.WindowSeconds = 60 // reported once, here
			}
		}
		if isTrue(a.TimeInMilliseconds) {
			c.TimeUnit = "milliseconds"
		}
		for _, g := range derefAll(a.GroupBy) {
			c.GroupBy = append(c.GroupBy, processor.AggregateValue{Path: g})
		}
		for _, g := range derefAll(a.GroupByExpressions) {
			c.GroupBy = append(c.GroupBy, processor.AggregateValue{Expression: g})
		}
		if a.Measures != nil {
			for j, m := range *a.Measures {
				if m == nil {
					problems = append(problems, fmt.Sprintf("Aggregates[%d] (%s): Measures[%d]: is nil", i, c.Name, j))
					continue
				}
				c.Measures = append(c.Measures, processor.AggregateMeasure{Name: deref(m.Name), Kind: string(m.Kind),
					Path: deref(m.Path), Expression: deref(m.Expression)})
			}
		}
		out = append(out, c)
	}
	return out, problems
}

// aggregateProblems reports the props that do not fit aggregates.
func aggregateProblems(in *KinesisDynamoPipelineProps) []string {
	var problems []string
	has := in.Aggregates != nil && len(*in.Aggregates) > 0
	if !has {
		if in.AggregateTable != nil {
			problems = append(problems, "AggregateTable: only allowed with Aggregates")
		}
		return problems
	}
	if f := in.ParallelizationFactor; f != nil && !*awscdk.Token_IsUnresolved(f) && *f > 1 {
		problems = append(problems, "ParallelizationFactor: must be 1 with Aggregates (above 1, Lambda keeps order per "+
			"partition key, not per shard, and the per-shard fences that count each record once would skip records)")
	}
	return problems
}

// createAggregates creates (or adopts) the aggregate table and gives the function its name and exactly the two
// calls the processor makes on it.
func (p *KinesisDynamoPipeline) createAggregates(in *KinesisDynamoPipelineProps, cfg processor.Config, removal awscdk.RemovalPolicy) {
	if len(cfg.Aggregates) == 0 {
		return
	}
	if in.AggregateTable != nil {
		p.aggregateTable = in.AggregateTable
	} else {
		p.aggregateTable = newTable(p, "AggregateTable",
			&awsdynamodb.Attribute{Name: jsii.String(aggregate.AttrPartitionKey), Type: awsdynamodb.AttributeType_STRING},
			&awsdynamodb.Attribute{Name: jsii.String(aggregate.AttrSortKey), Type: awsdynamodb.AttributeType_STRING},
			nil, in.EncryptionKey, removal, nil, nil)
	}
	if !isTrue(in.UnlimitedRetries) {
		awscdk.Annotations_Of(p).AddWarningV2(jsii.String("kinesispipeline:aggregatesWithFiniteRetries"),
			jsii.String("Aggregates with finite retries: a record the event source mapping gives up on stays uncounted "+
				"until it is redriven with the aggregate table (the stack outputs' redrive commands pass --aggregate-table; "+
				"see runtime/aggregate); set UnlimitedRetries where aggregates must never lag, and watch the on-failure destination"), nil)
	}
	p.function.AddEnvironment(jsii.String(processor.EnvAggregateTableName), p.aggregateTable.TableName(), nil)
	grant := p.aggregateTable.Grant(p.role, jsii.String("dynamodb:GetItem"), jsii.String("dynamodb:PutItem"))
	if key := p.aggregateTable.EncryptionKey(); key != nil {
		grant.Combine(key.GrantEncryptDecrypt(p.role))
	}
}

// AggregateTable returns the table holding the aggregates, or nil without Aggregates.
func (p *KinesisDynamoPipeline) AggregateTable() awsdynamodb.ITable { return p.aggregateTable }

// GrantReadAggregates lets grantee read the aggregate table (aggregate.Totals queries it). It returns nil without
// Aggregates.
func (p *KinesisDynamoPipeline) GrantReadAggregates(grantee awsiam.IGrantable) awsiam.Grant {
	if p.aggregateTable == nil {
		return nil
	}
	return p.aggregateTable.GrantReadData(grantee)
}

// MetricAggregateWrites returns the processor's count of aggregate items written (sum).
func (p *KinesisDynamoPipeline) MetricAggregateWrites(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricAggregateWrites, "Sum", props)
}

// MetricAggregateConflicts returns the processor's count of aggregate writes redone because another writer changed
// the item in between (sum).
func (p *KinesisDynamoPipeline) MetricAggregateConflicts(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricAggregateConflicts, "Sum", props)
}

// MetricAggregateFailures returns the processor's count of aggregate items not updated, whose records were reported
// for retry (sum).
func (p *KinesisDynamoPipeline) MetricAggregateFailures(props *awscloudwatch.MetricOptions) awscloudwatch.Metric {
	return p.processorMetric(processor.MetricAggregateFailures, "Sum", props)
}

// addAggregateWidgets adds the aggregate metrics to the dashboard.
func (p *KinesisDynamoPipeline) addAggregateWidgets() {
	if p.dashboard == nil || p.aggregateTable == nil {
		return
	}
	ms := []awscloudwatch.IMetric{p.MetricAggregateWrites(nil), p.MetricAggregateConflicts(nil), p.MetricAggregateFailures(nil)}
	p.dashboard.AddWidgets(awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
		Title: jsii.String("Aggregates"), Left: &ms, Width: jsii.Number(8)}))
}
