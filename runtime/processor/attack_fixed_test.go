package processor_test

// Adversarial tests of bugs an independent review found (each failed before its fix): a starved error item blocking
// a shard, a transform's shared item map, transform errors quoting the record in logs.

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackTransformReturnsSharedItem has a transform return the same map for every record, as a careless cache
// would: each record must still be stored under its own key with its own position, or fail; never acknowledged with
// another record's item in its place.
func TestAttackTransformReturnsSharedItem(t *testing.T) {
	env := newAtkEnv(t, dynamostandin.Options{})
	shared := processor.Item{}
	p := env.processor(t, nil, func(o *processor.Options) {
		o.Transform = func(_ context.Context, r *processor.Record) ([]processor.Item, error) {
			shared["id"] = &types.AttributeValueMemberS{Value: r.EventID}
			return []processor.Item{shared}, nil
		}
	})
	var recs []atkRec
	for i := range 5 {
		recs = append(recs, atkRec{shard: "shardId-000000000003", seq: atkSeq(i), data: []byte(`{}`)})
	}
	resp, err := p.Handle(context.Background(), atkEvent(recs))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if !atkAcked(resp, r.seq) {
			continue
		}
		if len(env.atkFindS(env.table, "id", r.eventID())) != 1 {
			if _, _, perr := env.errorPayload(r.eventID()); perr != nil {
				t.Errorf("record %s acknowledged, stored nowhere (the transform reused one map)", r.seq)
			} else {
				t.Logf("record %s in the error table", r.seq)
			}
		}
	}
}

// TestAttackStatefulTransformSameMap: a transform keeping a running state per key returns the same map for two
// records of that key. Both records are valid: they must be acknowledged, the item holding the latest state. The
// processor adds _kpos to the returned map in place, so the second record sees "its" item already holding _kpos and
// fails as "reserved".
func TestAttackStatefulTransformSameMap(t *testing.T) {
	env := newAtkEnv(t, dynamostandin.Options{})
	state := map[string]processor.Item{}
	p := env.processor(t, nil, func(o *processor.Options) {
		o.Transform = func(_ context.Context, r *processor.Record) ([]processor.Item, error) {
			dev, _ := r.Data["device"].(string)
			it := state[dev]
			if it == nil {
				it = processor.Item{"id": &types.AttributeValueMemberS{Value: dev}}
				state[dev] = it
			}
			it["last"] = &types.AttributeValueMemberS{Value: r.SequenceNumber}
			return []processor.Item{it}, nil
		}
	})
	recs := []atkRec{
		{shard: "shardId-000000000003", seq: atkSeq(1), data: []byte(`{"device":"d1"}`)},
		{shard: "shardId-000000000003", seq: atkSeq(2), data: []byte(`{"device":"d1"}`)},
	}
	resp, err := p.Handle(context.Background(), atkEvent(recs))
	if err != nil {
		t.Fatal(err)
	}
	if _, errItem, _ := env.errorPayload(recs[1].eventID()); errItem != nil {
		t.Errorf("the second record went to the error table: %v", errItem["reason"])
	}
	items := env.atkFindS(env.table, "id", "d1")
	if len(items) != 1 || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%d items, failures %v", len(items), resp.BatchItemFailures)
	}
	if v, _ := items[0]["last"].(*types.AttributeValueMemberS); v == nil || v.Value != recs[1].seq {
		t.Errorf("item holds %v, want the latest state", items[0]["last"])
	}
}

// TestAttackLogsTransformErrors: a transform that panics or fails transiently with a message quoting the record
// (strconv's errors do) must not have that value logged: README promises logs never quote a value from a record.
func TestAttackLogsTransformErrors(t *testing.T) {
	tests := []struct {
		name string
		tr   processor.Transform
	}{
		{"panic with a strconv error", func(_ context.Context, r *processor.Record) ([]processor.Item, error) {
			s, _ := r.Data["count"].(string)
			n, err := strconv.Atoi(s)
			if err != nil {
				panic(err)
			}
			return []processor.Item{{"id": &types.AttributeValueMemberS{Value: r.EventID}, "n": &types.AttributeValueMemberN{Value: strconv.Itoa(n)}}}, nil
		}},
		{"transient error quoting the record", func(_ context.Context, r *processor.Record) ([]processor.Item, error) {
			return nil, fmt.Errorf("lookup of customer %v failed: timeout", r.Data["count"])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newAtkEnv(t, dynamostandin.Options{})
			p := env.processor(t, nil, func(o *processor.Options) { o.Transform = tt.tr })
			recs := []atkRec{{shard: "shardId-000000000003", seq: atkSeq(1), data: []byte(`{"count":"` + atkMarker + `"}`)}}
			resp, err := p.Handle(context.Background(), atkEvent(recs))
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.BatchItemFailures) != 1 {
				t.Errorf("failures %v, want the record reported (transient)", resp.BatchItemFailures)
			}
			atkNoMarker(t, env.logs.String())
		})
	}
}

// TestAttackErrorItemStarved: when a batch's data writes take longer than the invocation allows (per-item PutItem in
// InsertOnly or ConditionalWrites mode, or many chunks under a slow or throttled table), the error item of an early
// permanent failure is queued behind every data write, is never written before the deadline, and that record, the
// lowest, is reported on every invocation: Lambda retries the same batch forever and the shard makes no progress.
// Each invocation must make progress.
func TestAttackErrorItemStarved(t *testing.T) {
	modes := []struct {
		name string
		fn   func(*processor.Options)
		n    int
		good bool // control: no permanent record, progress is made
	}{
		{"control: insert only without a permanent record", func(o *processor.Options) { o.InsertOnly = true }, 200, true},
		{"control: plain without a permanent record", func(o *processor.Options) {}, 6000, true},
		{"insert only", func(o *processor.Options) { o.InsertOnly = true }, 200, false},
		{"conditional", func(o *processor.Options) { o.ConditionalWrites = true }, 200, false},
		{"plain", func(o *processor.Options) {}, 6000, false},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			env := newAtkEnv(t, dynamostandin.Options{Latency: 40 * time.Millisecond})
			p := env.processor(t, nil, m.fn)
			var recs []atkRec
			for i := range m.n {
				data := fmt.Sprintf(`{"i":%d}`, i)
				if i == 0 && !m.good {
					data = `{"bad":1e999}` // permanent: goes to the error table
				}
				recs = append(recs, atkRec{shard: "shardId-000000000006", seq: atkSeq(i), data: []byte(data)})
			}
			// Lambda retries from the reported record. Each invocation must move it; some in a row without progress
			// are tolerated, as a busy machine (other test packages running alongside) can starve an invocation of its
			// whole 400 ms. Before the fix no invocation ever made progress.
			from, stuck := 0, 0
			for round := 0; from < len(recs); round++ {
				if stuck == 20 {
					t.Fatalf("no progress in %d invocations in a row: every one reports record %d", stuck, from)
				}
				before := from
				ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
				resp, err := p.Handle(ctx, atkEvent(recs[from:]))
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.BatchItemFailures) == 0 {
					return
				}
				for i := from; i < len(recs); i++ {
					if recs[i].seq == resp.BatchItemFailures[0].ItemIdentifier {
						from = i
					}
				}
				if stuck++; from > before {
					stuck = 0
				}
			}
		})
	}
}
