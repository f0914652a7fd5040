package processor_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
)

// BenchmarkHandleKPL measures the CPU cost per user record of 1000 sample-like records carried in KPL aggregates of
// the given size, next to BenchmarkHandleCPU's plain records (db=fake).
func BenchmarkHandleKPL(b *testing.B) {
	const n = 1000
	payloads := samplePayloads(n, 0)
	for _, per := range []int{1, 10, 500} {
		b.Run("per-aggregate="+strconv.Itoa(per), func(b *testing.B) {
			var aggs [][]byte
			for i := 0; i < n; i += per {
				var recs []kpl.UserRecord
				for j := i; j < min(i+per, n); j++ {
					recs = append(recs, kpl.UserRecord{PartitionKey: "pk-" + strconv.Itoa(j%7), Data: payloads[j]})
				}
				aggs = append(aggs, kpl.Aggregate(recs))
			}
			ev := buildEvent(aggs...)
			p := newBenchProcessor(b, discardDB{})
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
