//go:build !kdp_noexpr

package processor_test

import (
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackAggExpressionExact: a measure given by an expression must not round silently: either the stored sum is
// the exact value computed here, or the record goes to the error table (and counts nowhere).
func TestAttackAggExpressionExact(t *testing.T) {
	tests := []struct{ name, expr, v, want string }{
		{"identity of a 23-digit integer", "v", "12345678901234567890123", "12345678901234567890123"},
		{"identity of a 20-digit decimal", "v", "1234567890.1234567891", "1234567890.1234567891"},
		{"sum of decimals", "v + 0.2", "0.1", "0.3"},
		{"int64 overflow", "v + 1", "9223372036854775807", "9223372036854775808"},
		{"product", "v * 3", "0.1", "0.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aggs := []processor.AggregateConfig{{Name: "e", WindowSeconds: 60,
				Measures: []processor.AggregateMeasure{{Name: "s", Kind: "sum", Expression: tt.expr}}}}
			p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
			at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
			if resp := mustHandle(t, p, []attackRec{{seq: "1", payload: `{"v":` + tt.v + `}`, arrival: at}}); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %v", resp.BatchItemFailures)
			}
			got := rawTotals(t, s, map[string]string{"s": "sum"})["e#2024-03-01T12:00:00Z#[]"]["s"]
			_, inErr := s.Items(aggErrTable)[attackShard+":1"]
			switch {
			case inErr && got == nil:
			case !inErr && got != nil && got.Cmp(rat(t, tt.want)) == 0:
			default:
				t.Errorf("%s with v=%s: stored sum %v (error table %v), want %s exactly or the error table", tt.expr, tt.v, fmtRat(got), inErr, tt.want)
			}
		})
	}
}
