//go:build kdp_noexpr

package processor_test

import (
	"strings"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAggregatesNoExpr: a processor without expressions runs path-only aggregates and reports each expression.
func TestAggregatesNoExpr(t *testing.T) {
	tests := []struct {
		name string
		give processor.AggregateConfig
		want string
	}{
		{"paths only", processor.AggregateConfig{Name: "a", WindowSeconds: 60, GroupBy: []processor.AggregateValue{{Path: "Category"}},
			Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Path: "Value"}}}, ""},
		{"an expression", processor.AggregateConfig{Name: "a", WindowSeconds: 60, GroupBy: []processor.AggregateValue{{Expression: "upper(Category)"}},
			Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}, "aggregates[0] (a): groupBy[0]: this processor was built with -tags kdp_noexpr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := processor.DefaultConfig()
			cfg.Aggregates = []processor.AggregateConfig{tt.give}
			err := cfg.WithDefaults().Validate()
			if tt.want == "" {
				if err != nil || cfg.NeedsExpressions() {
					t.Fatalf("Validate: %v, NeedsExpressions %v", err, cfg.NeedsExpressions())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !cfg.NeedsExpressions() {
				t.Fatalf("Validate: %v, want %q; NeedsExpressions %v", err, tt.want, cfg.NeedsExpressions())
			}
		})
	}
}
