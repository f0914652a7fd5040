//go:build !kdp_noexpr

package processor_test

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackAggOutageAndDuplicates: the aggregate table alone is down half the time (GetItem and PutItem dropped,
// half of the drops after the write applied) while the data writes succeed; batches (with KPL aggregates among plain
// records) are retried from the reported record, invocations crash after writing, every batch is also delivered
// twice at the same time (a duplicate invocation), and old ranges are replayed. Each stored record counts once: the
// totals equal those computed here from the payloads with math/big.
func TestAttackAggOutageAndDuplicates(t *testing.T) {
	for _, seed := range []uint64{11, 12} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 5))
			aggs := []processor.AggregateConfig{{Name: "o", WindowSeconds: 60, GroupBy: []processor.AggregateValue{{Path: "g"}},
				Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Path: "v"},
					{Name: "lo", Kind: "min", Path: "v"}, {Name: "hi", Kind: "max", Path: "v"}}}}
			p, s := attackProc(t, dynamostandin.Options{Seed: seed, DropRate: 0.5, DropAfterApply: true,
				FaultOperations: []string{"GetItem", "PutItem"}}, aggs, nil)
			base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
			// 80 Kinesis records; every 5th is a KPL aggregate of 3 user records.
			type want struct {
				n           int64
				sum, lo, hi *big.Rat
			}
			wants := map[string]*want{}
			count := func(key, v string) {
				w := wants[key]
				if w == nil {
					w = &want{sum: new(big.Rat)}
					wants[key] = w
				}
				w.n++
				r := rat(t, v)
				w.sum = new(big.Rat).Add(w.sum, r)
				if w.lo == nil || r.Cmp(w.lo) < 0 {
					w.lo = r
				}
				if w.hi == nil || r.Cmp(w.hi) > 0 {
					w.hi = r
				}
			}
			var recs []attackRec
			for i := range 80 {
				arrival := base.Add(time.Duration(i) * 3 * time.Second)
				key := func(g string) string {
					return `o#` + arrival.Truncate(time.Minute).Format(time.RFC3339) + `#["` + g + `"]`
				}
				mk := func() (string, string) {
					g := string(rune('a' + rng.IntN(3)))
					v := fmt.Sprintf("%d.%03d", rng.IntN(2000)-1000, rng.IntN(1000))
					count(key(g), v)
					return g, v
				}
				seq := fmt.Sprintf("496%020d", 10+i)
				if i%5 == 4 {
					var urs []kpl.UserRecord
					for range 3 {
						g, v := mk()
						urs = append(urs, kpl.UserRecord{PartitionKey: "u", Data: fmt.Appendf(nil, `{"g":%q,"v":%s}`, g, v)})
					}
					recs = append(recs, attackRec{seq: seq, payload: string(kpl.Aggregate(urs)), arrival: arrival})
					continue
				}
				g, v := mk()
				recs = append(recs, attackRec{seq: seq, payload: fmt.Sprintf(`{"g":%q,"v":%s}`, g, v), arrival: arrival})
			}
			invoke := func(batch []attackRec) int {
				var wg sync.WaitGroup
				resps := make([]events.KinesisEventResponse, 2)
				for k := range resps {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						defer cancel()
						r, err := p.Handle(ctx, attackEvent(batch))
						if err != nil {
							t.Errorf("Handle: %v", err)
						}
						resps[k] = r
					}()
				}
				wg.Wait()
				resp := resps[rng.IntN(2)] // Lambda keeps one answer
				if len(resp.BatchItemFailures) == 0 {
					return len(batch)
				}
				for i, r := range batch {
					if r.seq == resp.BatchItemFailures[0].ItemIdentifier {
						return i
					}
				}
				t.Fatalf("reported %v, not in the batch", resp.BatchItemFailures)
				return 0
			}
			checkpoint := 0
			for steps := 0; checkpoint < len(recs); steps++ {
				if steps > 3000 {
					t.Fatalf("no progress at %d", checkpoint)
				}
				end := min(len(recs), checkpoint+1+rng.IntN(12))
				acked := invoke(recs[checkpoint:end])
				if rng.IntN(6) == 0 {
					acked = 0 // crashed after its writes
				}
				checkpoint += acked
				if checkpoint > 0 && rng.IntN(6) == 0 {
					a := rng.IntN(checkpoint)
					invoke(recs[a : a+1+rng.IntN(checkpoint-a)])
				}
			}
			got := rawTotals(t, s, map[string]string{"n": "count", "s": "sum", "lo": "min", "hi": "max"})
			if len(got) != len(wants) {
				t.Errorf("%d aggregate keys, want %d", len(got), len(wants))
			}
			for key, w := range wants {
				g := got[key]
				if g["n"] == nil || g["n"].Cmp(big.NewRat(w.n, 1)) != 0 || g["s"].Cmp(w.sum) != 0 || g["lo"].Cmp(w.lo) != 0 || g["hi"].Cmp(w.hi) != 0 {
					t.Errorf("%s = n %v s %v lo %v hi %v, want n %d s %v lo %v hi %v", key, g["n"], g["s"], g["lo"], g["hi"], w.n, w.sum, w.lo, w.hi)
				}
			}
			if st := s.Stats(); st.Dropped == 0 {
				t.Errorf("no faults: %+v", st)
			}
		})
	}
}
