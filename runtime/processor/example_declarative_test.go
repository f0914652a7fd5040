//go:build !kdp_noexpr

package processor_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// A declarative transform, as the construct writes it into the configuration file: the seed's processing (key
// Category + Timestamp, ProcessedValue = Value * 2, a processed timestamp), a filter, a schema and a time to live.
// Test records are skipped; a record that does not match the schema goes to the error table.
func ExampleTransformConfig() {
	cfg, err := processor.ParseConfig([]byte(`{
		"partitionKey": {"name": "Category", "type": "S", "source": "Category"},
		"sortKey": {"name": "Timestamp", "type": "S", "source": "Timestamp"},
		"transform": {
			"computed": [
				{"name": "ProcessedValue", "expression": "Value * 2"},
				{"name": "ProcessedTimestamp", "expression": "iso8601(record.processedAt)"}
			],
			"filter": "Category != 'test'",
			"schema": {"type": "object", "required": ["Category", "Timestamp", "Value"], "properties": {"Value": {"type": "number"}}},
			"ttl": {"attribute": "expiresAt", "seconds": 604800}
		},
		"metadata": []
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	db := &exampleDB{tables: map[string][]processor.Item{}}
	p, err := processor.New(db, exampleOptions("readings", "reading-errors"), func(o *processor.Options) { o.Config = cfg })
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := p.Handle(context.Background(), exampleEvent(
		`{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`,
		`{"Timestamp": "2024-09-13T23:06:56.000000Z", "Value": 1, "Category": "test"}`,
		`{"Timestamp": "2024-09-13T23:06:57.000000Z", "Value": "high", "Category": "C"}`,
	))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, item := range db.tables["readings"] {
		showItem(item)
	}
	for _, item := range db.tables["reading-errors"] {
		fmt.Println("error:", item[processor.ErrorAttrReason].(*types.AttributeValueMemberS).Value)
	}
	fmt.Println("batch item failures:", len(resp.BatchItemFailures))
	// Output:
	//   Category: S C
	//   ProcessedTimestamp: S 2024-09-14T00:00:00Z
	//   ProcessedValue: N 162
	//   Timestamp: S 2024-09-13T23:06:55.934081Z
	//   Value: N 81
	//   _kpos: B position shardId-000000000000 49590000000000000000000000000000000000000000000000000001 #0
	//   expiresAt: N 1726873616
	// error: does not match the schema: at '/Value': got string, want number
	// batch item failures: 0
}

// Validate reports every problem of a configuration, one per line, each naming the option and quoting the
// expression with the compiler's message. The construct runs it at synth time, the processor at cold start.
func ExampleConfig_Validate() {
	cfg := processor.Config{
		PartitionKey: processor.KeyAttribute{Name: "Category", Type: processor.AttributeTypeString, Source: "Category"},
		Transform: &processor.TransformConfig{
			Include:  []string{"order..id"},
			Computed: []processor.ComputedAttribute{{Name: "ProcessedValue", Expression: "Value * "}, {Name: "Category", Expression: "'x'"}},
			Filter:   "len(Category)",
			Schema:   []byte(`{"type": "decimal"}`),
			TTL:      &processor.TTLConfig{Attribute: "expiresAt"},
		},
	}
	fmt.Println(cfg.WithDefaults().Validate())
	// Output:
	// transform.ttl: seconds 0 must be between 1 and 3155760000 (100 years)
	// transform.include[0]: path "order..id" has an empty segment
	// transform.computed[0] (ProcessedValue): expression "Value * ": unexpected token EOF (1:8)
	// transform.computed[1] (Category): attribute "Category" is also the partition key
	// transform.filter: expression "len(Category)": expected bool, but got int
	// transform.schema: not a valid schema: at '/type': got string, want array; at '/type': value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'
}
