//go:build integration

package replay_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// TestWindowInTheMiddle: only the records that arrived between since and until are replayed, on every shard; the
// records before and after the window stay out of the table. A shard holding no record at or after since (its
// AT_TIMESTAMP iterator never answers on kinesalite) falls back to TRIM_HORIZON and skips what came before.
func TestWindowInTheMiddle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, 3, processor.DefaultConfig())
	before := e.putAll(t, "", byN, numbered("before", 0, 30)...)
	// The third shard gets records before the window only; the first two, records in and after it.
	e.putAll(t, lastShardHash, byN, numbered("before-last-shard", 100, 105)...)
	since := mark()
	in := append(e.putAll(t, firstShardHash, byN, numbered("in", 30, 50)...), e.putAll(t, middleHash, byN, numbered("in", 50, 70)...)...)
	until := mark()
	after := append(e.putAll(t, firstShardHash, byN, numbered("after", 70, 80)...), e.putAll(t, middleHash, byN, numbered("after", 80, 90)...)...)
	if len(before) == 0 || len(after) == 0 {
		t.Fatal("no records around the window")
	}

	sum := e.run(t, ctx, func(o *replay.Options) { o.Since, o.Until = since, until })
	items, total := scan(t, e.db, e.table, "id")
	if got, want := sortedKeys(items), ids(in); !equal(got, want) || total != len(want) {
		t.Errorf("table holds %d items %v, want the window's %d records %v", total, got, len(want), want)
	}
	for id, it := range items {
		if attr(it, "label") != "in" {
			t.Errorf("item %s from outside the window: %v", id, it)
		}
	}
	if !sum.Complete() || sum.Records.Read != len(in) || sum.Records.Written != len(in) || sum.PastRetention != "" {
		t.Errorf("summary %+v: want complete, %d read and written", sum, len(in))
	}
	starts := map[string]string{}
	for _, s := range sum.Shards {
		starts[s.ShardID] = s.Start
	}
	if len(starts) != 3 || starts["shardId-000000000002"] != "TRIM_HORIZON" || starts["shardId-000000000000"] != "AT_TIMESTAMP" {
		t.Errorf("shard starts %v: want AT_TIMESTAMP, and TRIM_HORIZON for the shard with nothing since the window began", starts)
	}
}

// TestReshardedStream: the shard is split during the window; the parent's records and the children's are all
// replayed, and every write of the parent's records comes before any of the children's (seen from the DynamoDB side).
func TestReshardedStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, 1, processor.DefaultConfig())
	e.putAll(t, "", byN, numbered("before", 0, 10)...)
	since := mark()
	inParent := e.putAll(t, "", byN, numbered("in", 10, 40)...)
	if _, err := e.kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(e.stream), ShardToSplit: aws.String(inParent[0].shard),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, ctx, e)
	time.Sleep(1100 * time.Millisecond) // kinesalite dates the children a second ahead: their records arrive then
	inChildren := e.putAll(t, "", byN, numbered("in", 40, 80)...)
	until := mark()
	e.putAll(t, "", byN, numbered("after", 80, 90)...)
	children := map[string]bool{}
	for _, p := range inChildren {
		if p.shard == inParent[0].shard {
			t.Fatalf("record %s went to the parent after the split", p.id)
		}
		children[p.shard] = true
	}
	if len(children) != 2 {
		t.Fatalf("records went to %d children, want 2 (spread the partition keys)", len(children))
	}

	rec := &recordingDB{DB: e.db, table: e.table}
	r, err := replay.New(replay.Clients{DB: rec, Kinesis: e.kc}, func(o *replay.Options) {
		o.StreamARN, o.TableName, o.ErrorTableName, o.Since, o.Until = e.arn, e.table, e.errors, since, until
		o.BatchSize = 7
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	items, total := scan(t, e.db, e.table, "id")
	want := ids(append(append([]put(nil), inParent...), inChildren...))
	if got := sortedKeys(items); !equal(got, want) || total != len(want) {
		t.Errorf("table holds %d items %v, want %d: %v", total, got, len(want), want)
	}
	parent := inParent[0].shard + ":"
	seenChild := false
	for i, id := range rec.ids {
		if !strings.HasPrefix(id, parent) {
			seenChild = true
		} else if seenChild {
			t.Errorf("write %d (%s) of the parent came after a child's write: %v", i, id, rec.ids)
			break
		}
	}
	if len(rec.ids) != len(want) {
		t.Errorf("%d writes, want %d", len(rec.ids), len(want))
	}
	if !sum.Complete() || len(sum.Shards) != 3 || sum.Shards[0].ShardID+":" != parent || len(sum.Shards[1].Parents) != 1 {
		t.Errorf("summary %+v", sum)
	}
}

func waitActive(t *testing.T, ctx context.Context, e *env) {
	t.Helper()
	for {
		out, err := e.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(e.stream)})
		if err != nil {
			t.Fatal(err)
		}
		if out.StreamDescriptionSummary.StreamStatus == "ACTIVE" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestThrottledReadsBackOff: GetShardIterator and GetRecords throttled every other call still replay the whole
// window, from AT_TIMESTAMP.
func TestThrottledReadsBackOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, 1, processor.DefaultConfig())
	since := mark()
	in := e.putAll(t, "", byN, numbered("in", 0, 25)...)
	until := mark()
	e.putAll(t, "", byN, numbered("after", 25, 30)...)
	tk := &throttlingKinesis{Kinesis: e.kc}
	r, err := replay.New(replay.Clients{DB: e.db, Kinesis: tk}, func(o *replay.Options) {
		o.StreamARN, o.TableName, o.Since, o.Until, o.Rate = e.arn, e.table, since, until, 10
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	items, _ := scan(t, e.db, e.table, "id")
	if got, want := sortedKeys(items), ids(in); !equal(got, want) {
		t.Errorf("table %v, want %v", got, want)
	}
	if tk.throttled < 3 || !sum.Complete() || sum.Shards[0].Start != "AT_TIMESTAMP" {
		t.Errorf("%d throttled calls, summary %+v: want complete, started AT_TIMESTAMP (throttling is no reason to fall back)", tk.throttled, sum)
	}
}

// TestDryRunWritesNothing: a dry run over a table the pipeline wrote reads and transforms, writes nothing (the
// tables are unchanged), and predicts the writes: items whose table item is the same record's are written again,
// the others superseded.
func TestDryRunWritesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := processor.Config{PartitionKey: processor.KeyAttribute{Name: "id", Type: processor.AttributeTypeString, Source: "device"}}
	e := newEnv(t, 1, cfg)
	since := mark()
	dev := func(p map[string]any) string { return p["device"].(string) }
	e.putAll(t, "", dev, map[string]any{"device": "a", "v": 1}, map[string]any{"device": "b", "v": 1}, map[string]any{"device": "a", "v": 2})
	e.putRaw(t, "c", []byte("not json"))
	until := mark()
	e.putAll(t, "", dev, map[string]any{"device": "b", "v": 2})
	// The pipeline's state: b at v2 (a later record), a missing.
	e.run(t, ctx, func(o *replay.Options) { o.Since, o.Until, o.Config = until, time.Time{}, cfg })
	before, _ := scan(t, e.db, e.table, "id")
	beforeErrors, _ := scan(t, e.db, e.errors, "id")

	sum := e.run(t, ctx, func(o *replay.Options) { o.Since, o.Until, o.Config, o.DryRun = since, until, cfg, true })
	after, _ := scan(t, e.db, e.table, "id")
	afterErrors, _ := scan(t, e.db, e.errors, "id")
	if len(after) != 1 || attr(after["b"], "v") != "2" || len(before) != 1 || len(afterErrors) != len(beforeErrors) {
		t.Errorf("the dry run changed the tables: %v -> %v; errors %d -> %d", before, after, len(beforeErrors), len(afterErrors))
	}
	// a v1 and a v2 dedupe in one batch (one item written); b v1 meets b v2: superseded; "not json": the error table.
	if c := sum.Records; !sum.DryRun || c.Read != 4 || c.Written != 1 || c.Superseded != 1 || c.ToErrorTable != 1 {
		t.Errorf("dry run counts %+v", c)
	}
}

// TestWindowPastRetention: a window that starts before the stream's retention (24 hours here) is reported and the
// run is not complete; what the stream holds is replayed all the same.
func TestWindowPastRetention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, 1, processor.DefaultConfig())
	in := e.putAll(t, "", byN, numbered("in", 0, 5)...)
	sum := e.run(t, ctx, func(o *replay.Options) { o.Since = time.Now().Add(-30 * time.Hour) })
	if sum.Complete() || !strings.Contains(sum.PastRetention, "before the stream's retention of 24h0m0s") {
		t.Errorf("a window 30 h back on a 24 h stream: complete %v, past retention %q", sum.Complete(), sum.PastRetention)
	}
	items, _ := scan(t, e.db, e.table, "id")
	if got, want := sortedKeys(items), ids(in); !equal(got, want) {
		t.Errorf("table %v, want what the stream holds %v", got, want)
	}
}

// TestInterruptedAndRerun: a replay stopped part way, then run again, ends in the state one uninterrupted replay
// gives (compared with a second table replayed in one go), with no duplicate item or error item.
func TestInterruptedAndRerun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, 2, processor.DefaultConfig())
	since := mark()
	in := e.putAll(t, "", byN, numbered("in", 0, 60)...)
	e.putRaw(t, "x", []byte("[1, 2]"))
	e.putRaw(t, "y", []byte("{broken"))
	until := mark()
	e.putAll(t, "", byN, numbered("after", 60, 64)...)

	stopCtx, stop := context.WithCancel(ctx)
	var once sync.Once
	first := e.run(t, stopCtx, func(o *replay.Options) {
		o.Since, o.Until, o.Rate, o.BatchSize = since, until, 40, 5
		o.Progress = func(s replay.ShardResult) {
			if s.Records.Read >= 10 {
				once.Do(stop)
			}
		}
	})
	stop()
	partial, _ := scan(t, e.db, e.table, "id")
	if first.Complete() || len(partial) == 0 || len(partial) >= len(in) {
		t.Fatalf("the interrupted run wrote %d of %d items (complete %v): the test proves nothing", len(partial), len(in), first.Complete())
	}
	second := e.run(t, ctx, func(o *replay.Options) { o.Since, o.Until = since, until })
	if !second.Complete() {
		t.Errorf("rerun: %+v", second)
	}

	// The reference: the same window replayed in one go into fresh tables.
	ref := *e
	ref.table, ref.errors = e.table+"-ref", e.errors+"-ref"
	for _, n := range []string{ref.table, ref.errors} {
		if err := createTable(ctx, e, n); err != nil {
			t.Fatal(err)
		}
	}
	ref.run(t, ctx, func(o *replay.Options) { o.Since, o.Until = since, until })

	for _, tables := range [][2]string{{e.table, ref.table}, {e.errors, ref.errors}} {
		got, gotTotal := scan(t, e.db, tables[0], "id")
		want, wantTotal := scan(t, e.db, tables[1], "id")
		if !equal(sortedKeys(got), sortedKeys(want)) || gotTotal != len(got) || wantTotal != len(want) {
			t.Errorf("%s: %d items (%d scanned) %v; one replay gives %d: %v", tables[0], len(got), gotTotal, sortedKeys(got), len(want), sortedKeys(want))
		}
		for id, it := range want {
			for _, a := range []string{"n", "label", processor.ErrorAttrPayload, processor.ErrorAttrReason} {
				if attr(got[id], a) != attr(it, a) {
					t.Errorf("%s %s: %s %q, want %q", tables[0], id, a, attr(got[id], a), attr(it, a))
				}
			}
		}
	}
	if items, _ := scan(t, e.db, e.table, "id"); len(items) != len(in) {
		t.Errorf("%d items, want %d", len(items), len(in))
	}
	if errs, _ := scan(t, e.db, e.errors, "id"); len(errs) != 2 {
		t.Errorf("%d error items, want 2", len(errs))
	}
}

// TestReplayAfterConfigurationFix: the pipeline stored items with a wrong computed attribute and sent records a
// wrong schema rejected to the error table; a replay of part of the stream with the fixed configuration corrects
// the items in the window (and stores the rejected record), and leaves the items outside it as they were.
func TestReplayAfterConfigurationFix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	config := func(factor, minimum string) processor.Config {
		cfg, err := processor.ParseConfig([]byte(`{"transform": {
			"schema": {"type": "object", "required": ["Value"], "properties": {"Value": {"type": "number"` + minimum + `}}},
			"computed": [{"name": "Doubled", "expression": "Value * ` + factor + `"}]}}`))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	wrong, fixed := config("3", `, "minimum": 0`), config("2", "")
	e := newEnv(t, 1, processor.DefaultConfig())
	value := func(v int) map[string]any { return map[string]any{"Value": v} }
	start := mark()
	early := e.putAll(t, "", byN, value(1), value(2))
	since := mark()
	in := e.putAll(t, "", byN, value(3), value(-7), value(5))
	until := mark()
	late := e.putAll(t, "", byN, value(6))
	// The pipeline ran the wrong configuration over everything.
	e.run(t, ctx, func(o *replay.Options) { o.Since, o.Config = start, wrong })
	items, _ := scan(t, e.db, e.table, "id")
	if len(items) != 5 || attr(items[in[0].id], "Doubled") != "9" {
		t.Fatalf("the wrong configuration's items: %v", items)
	}

	sum := e.run(t, ctx, func(o *replay.Options) { o.Since, o.Until, o.Config = since, until, fixed })
	items, _ = scan(t, e.db, e.table, "id")
	want := map[string]string{early[0].id: "3", early[1].id: "6", in[0].id: "6", in[1].id: "-14", in[2].id: "10", late[0].id: "18"}
	for id, doubled := range want {
		if got := attr(items[id], "Doubled"); got != doubled {
			t.Errorf("item %s: Doubled %q, want %q", id, got, doubled)
		}
	}
	if len(items) != len(want) || !sum.Complete() || sum.Records.Written != 3 {
		t.Errorf("%d items, summary %+v", len(items), sum)
	}
}

// TestMergedStream: two shards are merged during the window; both parents' records are written before any of the
// child's, and all of them are in the table.
func TestMergedStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, 2, processor.DefaultConfig())
	since := mark()
	inParents := append(e.putAll(t, firstShardHash, byN, numbered("in", 0, 10)...), e.putAll(t, lastShardHash, byN, numbered("in", 10, 20)...)...)
	if inParents[0].shard == inParents[len(inParents)-1].shard {
		t.Fatal("the records went to one shard")
	}
	if _, err := e.kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(e.stream),
		ShardToMerge: aws.String(inParents[0].shard), AdjacentShardToMerge: aws.String(inParents[len(inParents)-1].shard)}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, ctx, e)
	time.Sleep(1100 * time.Millisecond) // kinesalite dates the child a second ahead
	inChild := e.putAll(t, "", byN, numbered("in", 20, 40)...)
	until := mark()
	e.putAll(t, "", byN, numbered("after", 40, 45)...)

	rec := &recordingDB{DB: e.db, table: e.table}
	r, err := replay.New(replay.Clients{DB: rec, Kinesis: e.kc}, func(o *replay.Options) {
		o.StreamARN, o.TableName, o.Since, o.Until, o.BatchSize = e.arn, e.table, since, until, 4
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	child := inChild[0].shard + ":"
	lastParent, firstChild := -1, len(rec.ids)
	for i, id := range rec.ids {
		if strings.HasPrefix(id, child) {
			firstChild = min(firstChild, i)
		} else {
			lastParent = i
		}
	}
	if lastParent > firstChild {
		t.Errorf("a parent's write (%d) came after the child's first (%d): %v", lastParent, firstChild, rec.ids)
	}
	items, total := scan(t, e.db, e.table, "id")
	want := ids(append(append([]put(nil), inParents...), inChild...))
	if got := sortedKeys(items); !equal(got, want) || total != len(want) || len(rec.ids) != len(want) {
		t.Errorf("table holds %d items %v (%d writes), want %d: %v", total, got, len(rec.ids), len(want), want)
	}
	if !sum.Complete() || len(sum.Shards) != 3 || len(sum.Shards[2].Parents) != 2 {
		t.Errorf("summary %+v", sum)
	}
}
