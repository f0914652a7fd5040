//go:build !kdp_noexpr

package processor_test

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackAggSumPrecisionStallsShard: two values DynamoDB holds (20 significant digits each) whose exact sum has 40:
// the second record must not be reported for retry forever (with UnlimitedRetries, as the README recommends for
// aggregates, the shard would stop). It is counted at once, and the item holds the exact sum (as a string, S).
func TestAttackAggSumPrecisionStallsShard(t *testing.T) {
	aggs := []processor.AggregateConfig{{Name: "x", WindowSeconds: 60,
		Measures: []processor.AggregateMeasure{{Name: "s", Kind: "sum", Path: "v"}}}}
	p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	if resp := mustHandle(t, p, []attackRec{{seq: "1", payload: `{"v":12345678901234567890}`, arrival: at}}); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("first: %v", resp.BatchItemFailures)
	}
	batch := []attackRec{{seq: "2", payload: `{"v":1}`, arrival: at}, {seq: "3", payload: `{"v":0.12345678901234567890}`, arrival: at}}
	for try := range 10 {
		resp := mustHandle(t, p, batch)
		if len(resp.BatchItemFailures) == 0 {
			want := rat(t, "12345678901234567891.12345678901234567890")
			if got := rawTotals(t, s, map[string]string{"s": "sum"})["x#2024-03-01T12:00:00Z#[]"]["s"]; got == nil || got.Cmp(want) != 0 || try != 0 {
				t.Errorf("after %d deliveries the sum is %v, want %s after one", try+1, fmtRat(got), want.FloatString(20))
			}
			return
		}
		for i, r := range batch {
			if r.seq == resp.BatchItemFailures[0].ItemIdentifier {
				batch = batch[i:]
			}
		}
		t.Logf("delivery %d: reported %s", try, resp.BatchItemFailures[0].ItemIdentifier)
	}
	_, inErr := s.Items(aggErrTable)[attackShard+":3"]
	t.Errorf("after 10 deliveries record 3 is still reported for retry (error table: %v); batch left %d records", inErr, len(batch))
}

// fmtRat formats a total for a failure message.
func fmtRat(r *big.Rat) string {
	if r == nil {
		return "<none>"
	}
	return fmt.Sprint(r.FloatString(20))
}
