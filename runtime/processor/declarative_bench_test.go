//go:build !kdp_noexpr

package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// benchConfigs are the configurations the declarative benchmarks compare: the default transform, the seed's
// processing declared (keys from the payload, ProcessedValue = Value * 2, a processed timestamp), that plus a
// filter, field selection and a TTL, and all of it plus a JSON Schema. Keys are unique per record, so every record is written.
func benchConfigs() []struct {
	name string
	cfg  processor.Config
} {
	keys := func(t *processor.TransformConfig) processor.Config {
		return processor.Config{
			PartitionKey: processor.KeyAttribute{Name: "Category", Type: processor.AttributeTypeString, Source: "Category"},
			SortKey:      &processor.KeyAttribute{Name: "seq", Type: processor.AttributeTypeString, Source: processor.SourceSequenceNumber},
			Transform:    t,
		}
	}
	computed := []processor.ComputedAttribute{
		{Name: "ProcessedValue", Expression: "Value * 2"},
		{Name: "ProcessedTimestamp", Expression: "iso8601(record.processedAt)"},
	}
	noSchema := &processor.TransformConfig{
		Computed: computed,
		Filter:   `Value >= 0 && Category != "Z"`,
		Exclude:  []string{"Note"},
		Rename:   map[string]string{"Timestamp": "MeasuredAt"},
		TTL:      &processor.TTLConfig{Attribute: "expiresAt", Seconds: 86400},
	}
	return []struct {
		name string
		cfg  processor.Config
	}{
		{"transform=default", processor.Config{}},
		{"transform=sample", keys(&processor.TransformConfig{Computed: computed})},
		{"transform=full-without-schema", keys(noSchema)},
		{"transform=full", keys(&processor.TransformConfig{
			Computed: computed,
			Filter:   `Value >= 0 && Category != "Z"`,
			Schema: json.RawMessage(`{"type": "object", "required": ["Timestamp", "Value", "Category"], "properties": {
				"Timestamp": {"type": "string"}, "Value": {"type": "integer"}, "Category": {"enum": ["A", "B", "C"]}}}`),
			Exclude: []string{"Note"},
			Rename:  map[string]string{"Timestamp": "MeasuredAt"},
			TTL:     &processor.TTLConfig{Attribute: "expiresAt", Seconds: 86400},
		})},
	}
}

// BenchmarkDeclarativeHandleCPU is BenchmarkHandleCPU (db=fake) per transform configuration: the whole processor's
// CPU cost per record (decode, transform, validate, build the requests), without I/O.
func BenchmarkDeclarativeHandleCPU(b *testing.B) {
	const n = 1000
	ev := buildEvent(samplePayloads(n, 0)...)
	for _, tt := range benchConfigs() {
		b.Run(tt.name, func(b *testing.B) {
			p, err := processor.New(discardDB{}, quiet(benchTable, benchErrorTable), func(o *processor.Options) { o.Config = tt.cfg })
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := p.Handle(ctx, ev)
				if err != nil || len(resp.BatchItemFailures) > 0 {
					b.Fatalf("handle: %v, failures %v", err, resp.BatchItemFailures)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/record")
		})
	}
}

// BenchmarkDeclarativeTransform measures the transform alone, per record.
func BenchmarkDeclarativeTransform(b *testing.B) {
	raw := samplePayloads(1, 0)[0]
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		b.Fatal(err)
	}
	rec := &processor.Record{EventID: benchShard + ":" + buildSeq(0), ShardID: benchShard, SequenceNumber: buildSeq(0),
		PartitionKey: "pk-0", ArrivalTime: benchArrival(), Raw: raw, Data: data}
	for _, tt := range benchConfigs() {
		b.Run(tt.name, func(b *testing.B) {
			tr := processor.DefaultTransform(tt.cfg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if items, err := tr(ctx, rec); err != nil || len(items) != 1 {
					b.Fatal(items, err)
				}
			}
		})
	}
}

// BenchmarkDeclarativeCompile measures compiling the full configuration (once per cold start, in New).
func BenchmarkDeclarativeCompile(b *testing.B) {
	cfg := benchConfigs()[3].cfg
	b.ReportAllocs()
	for b.Loop() {
		if err := cfg.WithDefaults().Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
