//go:build !kdp_noexpr

package processor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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

// TestAggExpressionNotExactGoesToErrorTable: a measure's expression whose exact value DynamoDB cannot hold, or whose
// quotient has no finite decimal form, sends the record to the error table with a reason naming the expression; the
// record counts nowhere (not even in the count), and the next record counts.
func TestAggExpressionNotExactGoesToErrorTable(t *testing.T) {
	tests := []struct{ name, expr, v, wantReason string }{
		{"non-terminating quotient", "v / 3", "1", `expression "v / 3": 1 / 3 has no finite decimal form`},
		{"39 significant digits", "v * v", "12345678901234567891", `expression "v * v": its value has 39 significant digits, more than DynamoDB's 38`},
		{"out of range", "v * 1e200", "1", `expression "v * 1e200": its value is larger in magnitude`},
		{"function beyond float64", "max(v, 0)", "12345678901234567890123", `expression "max(v, 0)": max(): the number 12345678901234567890123 has no exact int or float64 form`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aggs := []processor.AggregateConfig{{Name: "e", WindowSeconds: 60,
				Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Expression: tt.expr}}}}
			p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
			at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
			resp := mustHandle(t, p, []attackRec{{seq: "1", payload: `{"v":` + tt.v + `}`, arrival: at}, {seq: "2", payload: `{"v":0}`, arrival: at}})
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %v", resp.BatchItemFailures)
			}
			item, inErr := s.Items(aggErrTable)[attackShard+":1"]
			if !inErr {
				t.Fatal("record 1 is not in the error table")
			}
			reason, _ := item[processor.ErrorAttrReason].(*types.AttributeValueMemberS)
			if reason == nil || !strings.Contains(reason.Value, tt.wantReason) {
				t.Errorf("reason %v, want it to contain %q", item[processor.ErrorAttrReason], tt.wantReason)
			}
			got := rawTotals(t, s, map[string]string{"n": "count", "s": "sum"})["e#2024-03-01T12:00:00Z#[]"]
			if got["n"] == nil || got["n"].Cmp(rat(t, "1")) != 0 || got["s"] == nil || got["s"].Sign() != 0 {
				t.Errorf("totals %v, want n=1 (record 2 only) and s=0", got)
			}
		})
	}
}
