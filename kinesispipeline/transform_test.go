package kinesispipeline_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

func TestTransformConfiguration(t *testing.T) {
	stringKey := func(name string) *awsdynamodb.Attribute {
		return &awsdynamodb.Attribute{Name: jsii.String(name), Type: awsdynamodb.AttributeType_STRING}
	}
	tests := []struct {
		name  string
		props kinesispipeline.KinesisDynamoPipelineProps
		want  string // the processor configuration file, compact
	}{
		{"key from payload fields", kinesispipeline.KinesisDynamoPipelineProps{
			PartitionKey: stringKey("orderId"), SortKey: stringKey("ts"),
			Transform: &kinesispipeline.TransformProps{PartitionKeyFrom: jsii.String("order.id"), SortKeyFrom: jsii.String(kinesispipeline.KeySource_ARRIVAL_TIME)},
		}, `{"partitionKey":{"name":"orderId","type":"S","source":"order.id"},"sortKey":{"name":"ts","type":"S","source":"$arrivalTime"},"transform":{},"metadata":["_kinesisArrivalTime"]}`},
		{"field selection", kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{
			Include: jsii.Strings("a", "b.c"), Exclude: jsii.Strings("b.secret"), Rename: &map[string]*string{"b.c": jsii.String("bc")},
		}}, `{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"transform":{"include":["a","b.c"],"exclude":["b.secret"],"rename":{"b.c":"bc"}},"metadata":["_kinesisArrivalTime"]}`},
		{"computed, filter, no metadata", kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{
			Computed: &[]*kinesispipeline.ComputedAttribute{{Name: jsii.String("Double"), Expression: jsii.String("Value * 2")}},
			Filter:   jsii.String(`Category != "TEST"`),
		}, Metadata: kinesispipeline.MetadataNone()}, `{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"transform":{"computed":[{"name":"Double","expression":"Value * 2"}],"filter":"Category != \"TEST\""},"metadata":[]}`},
		{"default metadata: the arrival time", kinesispipeline.KinesisDynamoPipelineProps{},
			`{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"metadata":["_kinesisArrivalTime"]}`},
		{"all metadata", kinesispipeline.KinesisDynamoPipelineProps{Metadata: kinesispipeline.MetadataAll()},
			`{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"metadata":["_kinesisSequenceNumber","_kinesisPartitionKey","_kinesisArrivalTime","_processedAt"]}`},
		{"chosen metadata, in the order given", kinesispipeline.KinesisDynamoPipelineProps{Metadata: &[]kinesispipeline.MetadataAttribute{
			kinesispipeline.MetadataAttribute_PROCESSED_AT, kinesispipeline.MetadataAttribute_PARTITION_KEY,
		}}, `{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"metadata":["_processedAt","_kinesisPartitionKey"]}`},
		{"schema", kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{
			Schema: jsii.String(`{"type":"object","required":["Value"]}`),
		}}, `{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"transform":{"schema":{"type":"object","required":["Value"]}},"metadata":["_kinesisArrivalTime"]}`},
		{"time to live", kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{
			TimeToLive: awscdk.Duration_Days(jsii.Number(7)),
		}}, `{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"transform":{"ttl":{"attribute":"expiresAt","seconds":604800}},"metadata":["_kinesisArrivalTime"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			props := tt.props
			_, p, _ := synth(t, &props)
			assertEqual(t, "config", configJSON(t, p), tt.want)
		})
	}
}

func TestTransformTimeToLiveOnTable(t *testing.T) {
	_, _, tmpl := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{
		TimeToLive: awscdk.Duration_Days(jsii.Number(1)), TimeToLiveAttribute: jsii.String("ttl"),
	}})
	id, _ := tableID(t, tmpl, "PipelineTable")
	assertEqual(t, "TTL", testutil.Get(testutil.Resources(tmpl, typeTable)[id], "Properties", "TimeToLiveSpecification"),
		map[string]interface{}{"AttributeName": "ttl", "Enabled": true})
}

func TestFilters(t *testing.T) {
	stack, _, tmpl := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{Filters: &[]*map[string]interface{}{
		awslambda.FilterCriteria_Filter(&map[string]interface{}{"data": map[string]interface{}{"Category": awslambda.FilterRule_IsEqual("C")}}),
	}})
	assertEqual(t, "filter criteria", testutil.Get(testutil.Properties(t, tmpl, typeMapping), "FilterCriteria"),
		map[string]interface{}{"Filters": []interface{}{map[string]interface{}{"Pattern": `{"data":{"Category":["C"]}}`}}})
	w := testutil.Warnings(t, stack)
	if len(w) != 1 || !strings.Contains(w[0], "malformed records never reach the error table") {
		t.Errorf("want the warning that filters bypass the error table, got %q", w)
	}
}

func TestTransformValidation(t *testing.T) {
	tests := []struct {
		name  string
		props func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps
		want  []string
	}{
		{"bad expression", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{
				Computed: &[]*kinesispipeline.ComputedAttribute{{Name: jsii.String("X"), Expression: jsii.String("Value * * 2")}},
			}}
		}, []string{"Transform.Computed[0] (X):", "Value * * 2"}},
		{"misspelled function", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{
				Computed: &[]*kinesispipeline.ComputedAttribute{{Name: jsii.String("Upper"), Expression: jsii.String("uper(Category)")}},
			}}
		}, []string{`Transform.Computed[0] (Upper): expression "uper(Category)": unknown function uper (nearest known function: upper)`}},
		{"misspelled function in the filter", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{Filter: jsii.String(`lowr(Category) == "c"`)}}
		}, []string{`Transform.Filter: expression "lowr(Category) == \"c\"": unknown function lowr (nearest known function: lower)`}},
		{"filter that is not boolean", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{Filter: jsii.String(`"yes"`)}}
		}, []string{"Transform.Filter:", "expected bool"}},
		{"schema that is not JSON", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{Schema: jsii.String(`{"type":`)}}
		}, []string{"Transform.Schema: is not valid JSON"}},
		{"schema that does not compile", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{Schema: jsii.String(`{"type":"no-such-type"}`)}}
		}, []string{"Transform.Schema:"}},
		{"key source that cannot be a key", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{PartitionKeyFrom: jsii.String("$bogus")}}
		}, []string{`PartitionKey: unknown metadata source "$bogus"`}},
		{"key path with an empty segment", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{PartitionKeyFrom: jsii.String("order..id")}}
		}, []string{"PartitionKey: source path", "empty segment"}},
		{"sort key source without a sort key", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{SortKeyFrom: jsii.String("ts")}}
		}, []string{"Transform.SortKeyFrom: only allowed with SortKey"}},
		{"TTL on an imported table", func(s awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{
				Table:        awsdynamodb.TableV2_FromTableName(s, jsii.String("T"), jsii.String("t")),
				PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("id"), Type: awsdynamodb.AttributeType_STRING},
				Transform:    &kinesispipeline.TransformProps{TimeToLive: awscdk.Duration_Days(jsii.Number(1))},
			}
		}, []string{"Transform.TimeToLive: not allowed with an existing Table"}},
		{"unknown and repeated metadata, each reported", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Metadata: &[]kinesispipeline.MetadataAttribute{
				kinesispipeline.MetadataAttribute_ARRIVAL_TIME, "_kinesisSeqNo", kinesispipeline.MetadataAttribute_ARRIVAL_TIME, "",
			}}
		}, []string{
			`Metadata[1]: "_kinesisSeqNo" is not a metadata attribute (want _kinesisSequenceNumber, _kinesisPartitionKey, _kinesisArrivalTime, _processedAt)`,
			"Metadata[2]: _kinesisArrivalTime is listed twice",
			`Metadata[3]: "" is not a metadata attribute`,
		}},
		{"metadata attribute also renamed to", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Metadata: kinesispipeline.MetadataAll(),
				Transform: &kinesispipeline.TransformProps{Rename: &map[string]*string{"a": jsii.String("_processedAt")}}}
		}, []string{`Transform.Rename[a]: attribute "_processedAt" is also a metadata attribute written on every item`}},
		{"more than 5 filters", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			f := awslambda.FilterCriteria_Filter(&map[string]interface{}{"data": map[string]interface{}{"a": awslambda.FilterRule_Exists()}})
			return &kinesispipeline.KinesisDynamoPipelineProps{Filters: &[]*map[string]interface{}{f, f, f, f, f, f}}
		}, []string{"Filters: at most 5 filters per event source mapping (got 6)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := testutil.NewStack()
			msg := testutil.PanicMessage(t, func() {
				kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), tt.props(stack))
			})
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("panic message must contain %q, got:\n%s", want, msg)
				}
			}
		})
	}
}
