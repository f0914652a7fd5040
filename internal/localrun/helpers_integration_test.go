//go:build integration || e2e

package localrun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
)

// testStream is a kinesalite stream for one test.
type testStream struct {
	kc     *kinesis.Client
	name   string
	shards []ktypes.Shard
}

// newStream creates a stream with n shards on a kinesalite started for the test.
func newStream(t *testing.T, ctx context.Context, n int32) *testStream {
	t.Helper()
	kc := emulators.KinesisClient(emulators.Kinesalite(t))
	name := emulators.UniqueName(t.Name())
	if err := emulators.CreateStream(ctx, kc, name, n); err != nil {
		t.Fatal(err)
	}
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Shards) != int(n) {
		t.Fatalf("stream has %d shards, want %d", len(out.Shards), n)
	}
	return &testStream{kc: kc, name: name, shards: out.Shards}
}

// put puts payloads to shard (by index) in order, 500 per PutRecords, and returns their sequence numbers.
func (s *testStream) put(t *testing.T, ctx context.Context, shard int, partitionKey string, payloads ...[]byte) []string {
	t.Helper()
	var seqs []string
	for start := 0; start < len(payloads); start += 500 {
		end := min(start+500, len(payloads))
		var entries []ktypes.PutRecordsRequestEntry
		for _, p := range payloads[start:end] {
			entries = append(entries, ktypes.PutRecordsRequestEntry{Data: p, PartitionKey: aws.String(partitionKey),
				ExplicitHashKey: s.shards[shard].HashKeyRange.StartingHashKey})
		}
		out, err := s.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(s.name), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("%d records failed to put", aws.ToInt32(out.FailedRecordCount))
		}
		for _, r := range out.Records {
			if aws.ToString(r.ShardId) != aws.ToString(s.shards[shard].ShardId) {
				t.Fatalf("record went to %s, want %s", aws.ToString(r.ShardId), aws.ToString(s.shards[shard].ShardId))
			}
			seqs = append(seqs, aws.ToString(r.SequenceNumber))
		}
	}
	return seqs
}

// numbered returns n JSON payloads {"n": from..from+n-1}.
func numbered(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"n":%d}`, from+i)
	}
	return out
}

// call is one invocation a scriptedHandler saw.
type call struct {
	shard string
	seqs  []string
	ev    events.KinesisEvent
}

// scriptedHandler records every invocation and answers with respond (nil: success).
type scriptedHandler struct {
	mu      sync.Mutex
	calls   []call
	respond func(n int, ev events.KinesisEvent) (events.KinesisEventResponse, error)
}

func (h *scriptedHandler) handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	h.mu.Lock()
	n := len(h.calls)
	c := call{ev: ev}
	for _, r := range ev.Records {
		c.shard = r.EventID[:len("shardId-000000000000")]
		c.seqs = append(c.seqs, r.Kinesis.SequenceNumber)
	}
	h.calls = append(h.calls, c)
	h.mu.Unlock()
	if h.respond == nil {
		return events.KinesisEventResponse{}, nil
	}
	return h.respond(n, ev)
}

func (h *scriptedHandler) snapshot() []call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]call(nil), h.calls...)
}

// delivered returns, per shard, the sequence numbers delivered, in delivery order.
func delivered(calls []call) map[string][]string {
	out := map[string][]string{}
	for _, c := range calls {
		out[c.shard] = append(out[c.shard], c.seqs...)
	}
	return out
}

// failAt answers a partial failure at seq.
func failAt(seqs ...string) events.KinesisEventResponse {
	var r events.KinesisEventResponse
	for _, s := range seqs {
		r.BatchItemFailures = append(r.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: s})
	}
	return r
}

// drain runs r.Drain with a bound.
func drain(t *testing.T, ctx context.Context, d interface{ Drain(context.Context) error }, bound time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
