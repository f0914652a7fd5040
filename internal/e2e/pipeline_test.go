//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// byBusinessID keys items by the payload's businessId, as the construct's transform props can.
var byBusinessID = processor.Config{PartitionKey: processor.KeyAttribute{Name: "businessId", Type: processor.AttributeTypeString, Source: "businessId"}}

// twentyPercent throttles or partially rejects 20% of the writes: 10% throttled, 10% (of all) with half their items
// returned unprocessed.
func twentyPercent(seed uint64) dynamostandin.Options {
	return dynamostandin.Options{
		Seed:            seed,
		ThrottleRate:    0.10,
		UnprocessedRate: 0.10 / 0.90, // drawn only for requests not throttled
		FaultOperations: []string{dynamostandin.OpBatchWriteItem, dynamostandin.OpPutItem},
	}
}

// workload is what a producer put: valid records by business id, malformed payloads by content.
type workload struct {
	entries   []entry
	valid     map[string]string // businessId -> the JSON payload
	malformed map[string]bool   // raw payloads
	dupes     int
}

// makeWorkload makes n records: 5% malformed, the rest valid with unique business ids, 2% of them put twice.
func makeWorkload(n int, seed uint64) workload {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := workload{valid: map[string]string{}, malformed: map[string]bool{}}
	categories := []string{"A", "B", "C", "D"}
	base := time.Date(2024, 9, 13, 23, 6, 55, 934081000, time.UTC)
	for i := 0; len(w.entries) < n; i++ {
		if len(w.entries)%20 == 7 { // 5% malformed: broken JSON, not an object, an object without the key
			var raw string
			switch i % 3 {
			case 0:
				raw = fmt.Sprintf(`{"businessId": "m-%05d", "Value": `, i)
			case 1:
				raw = fmt.Sprintf(`["m-%05d", 1]`, i)
			default:
				raw = fmt.Sprintf(`{"Value": %d, "Category": "X", "n": %d}`, i, i)
			}
			w.malformed[raw] = true
			w.entries = append(w.entries, entry{partitionKey: fmt.Sprintf("m-%05d", i), data: []byte(raw)})
			continue
		}
		id := fmt.Sprintf("b-%05d", i)
		payload := fmt.Sprintf(`{"businessId":%q,"Timestamp":%q,"Value":%d,"Category":%q}`, id,
			base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), rng.IntN(1000), categories[rng.IntN(4)])
		w.valid[id] = payload
		w.entries = append(w.entries, entry{partitionKey: id, data: []byte(payload)})
		if len(w.entries)%50 == 12 && len(w.entries) < n { // 2% put twice by the producer, right after the first
			w.entries = append(w.entries, entry{partitionKey: id, data: []byte(payload)})
			w.dupes++
		}
	}
	return w
}

// check compares the tables with w and returns the lost and duplicated counts.
func check(t *testing.T, ctx context.Context, p *pipeline, w workload) (lost, duplicated int) {
	t.Helper()
	items, total := p.scan(t, ctx, p.table, "businessId")
	duplicated += total - len(items)
	for id, payload := range w.valid {
		it, ok := items[id]
		if !ok {
			lost++
			if lost <= 5 {
				t.Errorf("business id %s is not in the table", id)
			}
			continue
		}
		for _, field := range []string{"Timestamp", "Value", "Category"} {
			want := payloadField(payload, field)
			if got := str(it[field]); got != want {
				t.Errorf("item %s: %s = %q, want %q", id, field, got, want)
			}
		}
	}
	for id := range items {
		if _, ok := w.valid[id]; !ok {
			duplicated++
			t.Errorf("unexpected item %s in the table", id)
		}
	}
	errs, errTotal := p.scan(t, ctx, p.errTable, "id")
	duplicated += errTotal - len(errs)
	seen := map[string]int{}
	for id, it := range errs {
		raw := str(it[processor.ErrorAttrPayload])
		if !w.malformed[raw] {
			t.Errorf("error item %s holds payload %q, not one of the malformed records", id, raw)
		}
		if enc := str(it[processor.ErrorAttrPayloadEncoding]); enc != processor.PayloadEncodingRaw {
			t.Errorf("error item %s: payload encoding %s", id, enc)
		}
		if !strings.HasPrefix(id, str(it[processor.ErrorAttrShardID])+":") || str(it[processor.ErrorAttrReason]) == "" {
			t.Errorf("error item %s: shard %s, reason %q", id, str(it[processor.ErrorAttrShardID]), str(it[processor.ErrorAttrReason]))
		}
		seen[raw]++
	}
	for raw := range w.malformed {
		switch seen[raw] {
		case 1:
		case 0:
			lost++
			t.Errorf("malformed record %q is not in the error table", raw)
		default:
			duplicated += seen[raw] - 1
			t.Errorf("malformed record %q is %d times in the error table", raw, seen[raw])
		}
	}
	if len(items)+len(errs)+w.dupes != len(w.entries) && lost == 0 && duplicated == 0 {
		t.Errorf("counts: %d items + %d error items + %d producer duplicates != %d records put", len(items), len(errs), w.dupes, len(w.entries))
	}
	return lost, duplicated
}

// payloadField extracts a top-level scalar of a flat JSON payload as DynamoDB stores it (numbers as written).
func payloadField(payload, field string) string {
	_, rest, ok := strings.Cut(payload, `"`+field+`":`)
	if !ok {
		return ""
	}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, `"`) {
		v, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return ""
		}
		s, _ := strconv.Unquote(v)
		return s
	}
	end := strings.IndexAny(rest, ",}")
	return strings.TrimSpace(rest[:end])
}

func TestTenThousandRecordsUnderFaults(t *testing.T) {
	tests := []struct {
		name string
		// invoker returns how the runner invokes the processor.
		invoker func(t *testing.T, ctx context.Context, p *pipeline) localrun.Invoker
	}{
		{"in process", func(t *testing.T, _ context.Context, p *pipeline) localrun.Invoker {
			return localrun.InProcess(p.processor(t).Handle)
		}},
		{"bootstrap under aws-lambda-rie", func(t *testing.T, ctx context.Context, p *pipeline) localrun.Invoker {
			return p.rie(t, ctx, 60*time.Second, io.Discard)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 10000
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			p := newPipeline(t, ctx, 4, byBusinessID, twentyPercent(uint64(1+i)))
			w := makeWorkload(n, uint64(1+i))
			if len(w.entries) != n || len(w.malformed) != n/20 || w.dupes != n/50 {
				t.Fatalf("workload: %d records, %d malformed, %d put twice", len(w.entries), len(w.malformed), w.dupes)
			}
			p.put(t, ctx, w.entries)
			sink := &localrun.MemorySink{}
			r := p.runner(t, tt.invoker(t, ctx, p), func(o *localrun.Options) { o.OnFailure = sink })
			drain(t, ctx, r, 3*time.Minute)

			lost, duplicated := check(t, ctx, p, w)
			if recs := sink.Records(); len(recs) != 0 {
				t.Errorf("on-failure sink holds %d records: %s", len(recs), recs[0].KinesisBatchInfo.StartSequenceNumber)
			}
			st, ss := r.Stats(), p.standin.Stats()
			if st.RecordsAcknowledged != n || st.RecordsGivenUp != 0 {
				t.Errorf("runner acknowledged %d records and gave up on %d, want %d and 0", st.RecordsAcknowledged, st.RecordsGivenUp, n)
			}
			if faultsInjected(ss) < int64(ss.Operations[dynamostandin.OpBatchWriteItem])/10 {
				t.Errorf("only %d faults injected in %d writes", faultsInjected(ss), ss.Operations[dynamostandin.OpBatchWriteItem])
			}
			t.Logf("runner %+v; stand-in: %d requests, %d throttled, %d partial (%d items unprocessed)", st, ss.Requests, ss.Throttled, ss.PartialBatches, ss.UnprocessedItems)
			report(t, figures{Test: "10,000 records, 4 shards, 5% malformed, 2% put twice, 20% of writes throttled or partial (" + tt.name + ")",
				Records: n, FaultsInjected: faultsInjected(ss), Lost: lost, Duplicated: duplicated, Seconds: time.Since(start).Seconds()})
		})
	}
}

func TestOrderingLastWriteWins(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := newPipeline(t, ctx, 2, byBusinessID, twentyPercent(2))
	// 8 business ids, 40 versions each, interleaved; each id always under the same partition key.
	var entries []entry
	for v := 0; v < 40; v++ {
		for id := 0; id < 8; id++ {
			entries = append(entries, entry{partitionKey: fmt.Sprintf("pk-%d", id),
				data: fmt.Appendf(nil, `{"businessId":"o-%d","Value":%d,"Category":"v%d"}`, id, v, v)})
		}
	}
	p.put(t, ctx, entries)
	r := p.runner(t, localrun.InProcess(p.processor(t).Handle), func(o *localrun.Options) { o.BatchSize = 7 })
	drain(t, ctx, r, time.Minute)
	items, total := p.scan(t, ctx, p.table, "businessId")
	if total != 8 {
		t.Errorf("%d items, want 8", total)
	}
	for id := 0; id < 8; id++ {
		it := items[fmt.Sprintf("o-%d", id)]
		if it == nil || str(it["Value"]) != "39" || str(it["Category"]) != "v39" {
			t.Errorf("item o-%d = %v, want the last version (39)", id, it)
		}
	}
	ss := p.standin.Stats()
	report(t, figures{Test: "ordering: 8 keys x 40 versions, batches of 7, 20% faults", Records: len(entries),
		FaultsInjected: faultsInjected(ss), Seconds: time.Since(start).Seconds()})
}

func TestDynamoDBUnreachableEndsInTheSink(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Every write's connection is reset: DynamoDB is unreachable for longer than the retries allow.
	p := newPipeline(t, ctx, 1, byBusinessID, dynamostandin.Options{DropRate: 1, FaultOperations: []string{dynamostandin.OpBatchWriteItem, dynamostandin.OpPutItem}})
	w := makeWorkload(25, 3)
	p.put(t, ctx, w.entries)
	sink := &localrun.MemorySink{}
	r := p.runner(t, localrun.InProcess(p.processor(t).Handle), func(o *localrun.Options) {
		o.BatchSize = 10
		o.MaximumRetryAttempts = 1
		o.FunctionTimeout = 2 * time.Second
		o.OnFailure = sink
	})
	drain(t, ctx, r, time.Minute)

	recs := sink.Records()
	shard := *p.shards[0].ShardId
	// The batches of 10, 10 and 5 records, each given up on after two attempts, in order and without gaps.
	if len(recs) != 3 {
		t.Fatalf("%d on-failure records, want 3", len(recs))
	}
	seqs := allSequenceNumbers(t, ctx, p)
	covered := 0
	for i, rec := range recs {
		bi := rec.KinesisBatchInfo
		if bi.ShardID != shard || bi.StartSequenceNumber != seqs[covered] || bi.EndSequenceNumber != seqs[covered+bi.BatchSize-1] ||
			rec.RequestContext.Condition != redrive.ConditionRetryAttemptsExhausted || rec.RequestContext.ApproximateInvokeCount != 2 {
			t.Errorf("on-failure record %d = %+v", i, rec)
		}
		covered += bi.BatchSize
	}
	if covered != len(seqs) {
		t.Errorf("on-failure records cover %d records, want %d", covered, len(seqs))
	}
	st := r.Stats()
	items, _ := p.scan(t, ctx, p.table, "businessId")
	errs, _ := p.scan(t, ctx, p.errTable, "id")
	if st.RecordsAcknowledged != 0 || len(items) != 0 || len(errs) != 0 {
		t.Errorf("acknowledged %d records with %d items and %d error items stored: want nothing acknowledged", st.RecordsAcknowledged, len(items), len(errs))
	}
	report(t, figures{Test: "DynamoDB unreachable: every write dropped, 1 retry", Records: len(w.entries),
		FaultsInjected: faultsInjected(p.standin.Stats()), Seconds: time.Since(start).Seconds()})
}

// TestFiltersDropRecordsBeforeTheProcessor shows what the construct's Filters prop warns about, on the real
// processor: records matching no filter, malformed ones included, are dropped before the function runs: checkpointed,
// never in the table, the error table or the on-failure sink.
func TestFiltersDropRecordsBeforeTheProcessor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := newPipeline(t, ctx, 1, byBusinessID, twentyPercent(6))
	w := makeWorkload(500, 6)
	p.put(t, ctx, w.entries)
	// The oracle: a record passes when its data is a JSON object whose Category is A or B.
	wantIDs := map[string]bool{}
	passed := 0
	for _, e := range w.entries {
		var obj map[string]any
		if json.Unmarshal(e.data, &obj) != nil {
			continue
		}
		if c, _ := obj["Category"].(string); c == "A" || c == "B" {
			passed++
			wantIDs[obj["businessId"].(string)] = true
		}
	}
	if passed == 0 || passed == len(w.entries) {
		t.Fatalf("%d of %d records pass the filter: the test proves nothing", passed, len(w.entries))
	}
	sink := &localrun.MemorySink{}
	r := p.runner(t, localrun.InProcess(p.processor(t).Handle), func(o *localrun.Options) {
		o.FilterPatterns = []string{`{"data":{"Category":["A","B"]}}`}
		o.OnFailure = sink
	})
	drain(t, ctx, r, time.Minute)

	items, _ := p.scan(t, ctx, p.table, "businessId")
	for id := range wantIDs {
		if items[id] == nil {
			t.Errorf("item %s (Category A or B) is not in the table", id)
		}
	}
	for id, it := range items {
		if !wantIDs[id] {
			t.Errorf("item %s (Category %s) is in the table", id, str(it["Category"]))
		}
	}
	if errs, n := p.scan(t, ctx, p.errTable, "id"); n != 0 {
		t.Errorf("%d error items (first %v): dropped records reached the processor", n, sortedKeys(errs)[0])
	}
	st := r.Stats()
	if st.RecordsAcknowledged != int64(passed) || st.RecordsFiltered != int64(len(w.entries)-passed) || len(sink.Records()) != 0 {
		t.Errorf("stats %+v, on-failure records %d; want %d acknowledged, %d filtered", st, len(sink.Records()), passed, len(w.entries)-passed)
	}
	seqs := allSequenceNumbers(t, ctx, p)
	if cp := r.Checkpoints()[*p.shards[0].ShardId]; cp != seqs[len(seqs)-1] {
		t.Errorf("checkpoint %s, want the last record %s", cp, seqs[len(seqs)-1])
	}
}

// allSequenceNumbers reads every sequence number of the pipeline's first shard.
func allSequenceNumbers(t *testing.T, ctx context.Context, p *pipeline) []string {
	t.Helper()
	var seqs []string
	sink := localrun.InvokerFunc(func(_ context.Context, payload []byte) ([]byte, error) {
		for _, part := range bytes.Split(payload, []byte(`"sequenceNumber":"`))[1:] {
			seqs = append(seqs, string(part[:bytes.IndexByte(part, '"')]))
		}
		return nil, nil
	})
	r, err := localrun.New(p.kc, sink, func(o *localrun.Options) {
		o.StreamName = p.stream
		o.BatchSize = 10000
		o.PollInterval = 20 * time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	drain(t, ctx, r, 30*time.Second)
	return seqs
}
