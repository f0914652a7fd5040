//go:build !kdp_noexpr

package processor_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

func hugeExponentSetup(tb testing.TB, ts string) (*processor.Processor, []attackRec) {
	p, _ := attackProc(tb, dynamostandin.Options{Discard: true}, []processor.AggregateConfig{{Name: "w", WindowSeconds: 60, TimeFrom: "ts",
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}, nil)
	var recs []attackRec
	for i := range 20 {
		recs = append(recs, attackRec{seq: fmt.Sprint(i + 1), payload: `{"ts":` + ts + `}`, arrival: time.Now()})
	}
	return p, recs
}

// TestAttackAggHugeExponentTime: a payload time written with a huge exponent ("ts":1e999999, 10 bytes) must cost
// about what an ordinary time costs, not an exact power of ten of a million digits per record (a producer could
// slow the shard a hundredfold). Measured in bytes allocated, not time.
func TestAttackAggHugeExponentTime(t *testing.T) {
	alloc := func(ts string) uint64 {
		p, recs := hugeExponentSetup(t, ts)
		mustHandle(t, p, recs) // warm up
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		mustHandle(t, p, recs)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	base := alloc("1709294700")
	for _, ts := range []string{"1e999999", "-1e-999999", "0e999999", "1.5E+400000"} {
		if got := alloc(ts); got > 4*base+1<<20 {
			t.Errorf("ts %s: a batch of 20 allocates %d bytes, an ordinary time %d", ts, got, base)
		}
	}
}

// BenchmarkAttackAggHugeExponentTime: batches of 20 records with ordinary and huge-exponent payload times.
func BenchmarkAttackAggHugeExponentTime(b *testing.B) {
	for _, ts := range []string{"1709294700", "1e999999", "-1e-999999"} {
		b.Run(ts, func(b *testing.B) {
			p, recs := hugeExponentSetup(b, ts)
			for b.Loop() {
				mustHandle(b, p, recs)
			}
		})
	}
}
