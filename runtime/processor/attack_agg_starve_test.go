//go:build !kdp_noexpr

package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackAggDeadlineStarvation: a slow data table whose writes for a batch run up to the invocation's write
// deadline. Without aggregates the records stored before the deadline are acknowledged, so the shard moves on;
// with aggregates the same must hold (some time kept for the aggregate writes), or the shard never moves.
func TestAttackAggDeadlineStarvation(t *testing.T) {
	for _, withAggs := range []bool{false, true} {
		t.Run(fmt.Sprint("aggregates=", withAggs), func(t *testing.T) {
			var aggs []processor.AggregateConfig
			if withAggs {
				aggs = []processor.AggregateConfig{{Name: "x", WindowSeconds: 60, Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
			}
			p, _ := attackProc(t, dynamostandin.Options{Latency: 300 * time.Millisecond, FaultOperations: []string{"BatchWriteItem"}}, aggs,
				func(o *processor.Options) {
					o.MaxInFlight = 1
					if !withAggs {
						o.AggregateTableName = ""
					}
				})
			var recs []attackRec
			for i := range 100 {
				recs = append(recs, attackRec{seq: fmt.Sprint(1000 + i), payload: fmt.Sprintf(`{"i":%d}`, i), arrival: time.Now()})
			}
			checkpoint := 0
			for range 4 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				resp, err := p.Handle(ctx, attackEvent(recs[checkpoint:]))
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.BatchItemFailures) == 0 {
					checkpoint = len(recs)
					break
				}
				for i, r := range recs {
					if r.seq == resp.BatchItemFailures[0].ItemIdentifier {
						checkpoint = i
					}
				}
			}
			if checkpoint == 0 {
				t.Errorf("after 4 invocations of 1 s the checkpoint has not moved")
			}
			t.Logf("checkpoint %d", checkpoint)
		})
	}
}
