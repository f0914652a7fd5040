package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// stored is an item a conditional test puts in the table before the batch: the position of the record that wrote
// it (shard and sequence number; no shard means an item without a position, as earlier versions wrote them) and,
// optionally, the metadata sequence number it claims.
type stored struct {
	shard, seq string
	sub        uint32
	metaSeq    string
	unverified bool // the position carries the unverified mark (written insert-only)
}

const otherShard = "shardId-000000000001"

// condRun is a batch through a processor with conditional options and what it left behind.
type condRun struct {
	db      *fakeDB
	keys    []KeyAttribute
	failure string         // the reported sequence number, "" for none
	metrics map[string]any // the batch's EMF line
	logs    string
	// unverified: the items were written insert-only, so their positions carry the unverified mark.
	unverified bool
}

func runConditional(t *testing.T, cfg Config, existing map[string]stored, opts func(*Options), getHook func(n int, table string) error, payloads ...string) condRun {
	t.Helper()
	keys := testKeys(cfg)
	db := newFakeDB(map[string][]KeyAttribute{testTable: keys, testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	db.getHook = getHook
	for id, st := range existing {
		it := Item{"id": s(id), "old": s("yes")}
		if st.shard != "" {
			pos := wantPosition(st.shard, st.seq, st.sub)
			if st.unverified {
				pos = append([]byte{0}, pos...)
			}
			it[AttrPosition] = &types.AttributeValueMemberB{Value: pos}
		}
		if st.metaSeq != "" {
			it[AttrSequenceNumber] = s(st.metaSeq)
		}
		db.tables[testTable][itemKey(Item{"id": s(id)}, keys)] = it
	}
	var metrics, logs bytes.Buffer
	p := newTestProcessor(t, db, func(o *Options) {
		o.Config = cfg
		o.MetricsWriter = &metrics
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}, opts)
	resp, err := p.Handle(context.Background(), event(payloads...))
	if err != nil || len(resp.BatchItemFailures) > 1 {
		t.Fatalf("Handle: %v, %v", resp.BatchItemFailures, err)
	}
	run := condRun{db: db, keys: keys, logs: logs.String()}
	if len(resp.BatchItemFailures) == 1 {
		run.failure = resp.BatchItemFailures[0].ItemIdentifier
	}
	if err := json.Unmarshal(metrics.Bytes(), &run.metrics); err != nil {
		t.Fatalf("metrics %q: %v", metrics.String(), err)
	}
	return run
}

// item returns the table's item for id.
func (r condRun) item(id string) Item {
	return r.db.tables[testTable][itemKey(Item{"id": s(id)}, r.keys)]
}

// checkItems checks, per id, which record's item the table holds: "old" for the item put there before the batch,
// or the index of the record whose position the item has.
func (r condRun) checkItems(t *testing.T, want map[string]string) {
	t.Helper()
	for id, w := range want {
		it := r.item(id)
		if it == nil {
			t.Errorf("%s: no item", id)
			continue
		}
		if _, old := it["old"]; old != (w == "old") {
			t.Errorf("%s: old item kept %v, want %s", id, old, w)
			continue
		}
		if w == "old" {
			continue
		}
		pos := func(i int) []byte {
			p := wantPosition(testShard, seq(i), 0)
			if r.unverified {
				p = append([]byte{0}, p...) // insert-only items carry an unverified position
			}
			return p
		}
		var i int
		for i = 0; i < 100 && !bytes.Equal(itemPosition(it), pos(i)); i++ {
		}
		if itoa(i) != w {
			t.Errorf("%s: item of record %d, want %s", id, i, w)
		}
	}
}

// TestHandleConditionalWrites: with Options.ConditionalWrites, a record replayed from the past never overwrites
// the item of a later record of the same shard, nor any item written from another shard (superseded: counted as
// stored); it overwrites items of earlier records of its shard, items without a position, and its own. Metadata
// attributes, even a payload's, play no part.
func TestHandleConditionalWrites(t *testing.T) {
	byID := Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: "id"}}
	omit := Config{PartitionKey: byID.PartitionKey, Metadata: []string{}}
	tests := []struct {
		name      string
		cfg       Config
		give      []string
		existing  map[string]stored
		want      map[string]string
		wantCalls map[string]int
	}{
		{
			name: "later record of the shard wins across invocations",
			cfg:  byID,
			give: []string{`{"id":"newer"}`, `{"id":"older"}`, `{"id":"none"}`, `{"id":"same"}`, `{"id":"shorter"}`, `{"id":"longer"}`, `{"id":"dup"}`, `{"id":"dup"}`, `{"id":"unplaced"}`},
			existing: map[string]stored{
				"newer":    {shard: testShard, seq: seq(50)},
				"older":    {shard: testShard, seq: seq(0)},
				"same":     {shard: testShard, seq: seq(3)},
				"shorter":  {shard: testShard, seq: "9"},          // shorter: earlier, though lexically greater
				"longer":   {shard: testShard, seq: seq(0) + "0"}, // longer: later, though lexically smaller than seq(5)
				"unplaced": {},                                    // written before positions existed
			},
			want: map[string]string{
				"newer": "old", "older": "1", "none": "2", "same": "3", "shorter": "4", "longer": "old", "dup": "7", "unplaced": "8",
			},
			wantCalls: map[string]int{"put:" + testTable: 8, "conditionFailed:" + testTable: 2},
		},
		{
			name: "another shard's item is never overwritten",
			cfg:  byID,
			give: []string{`{"id":"earlier"}`, `{"id":"later"}`},
			existing: map[string]stored{
				"earlier": {shard: otherShard, seq: "1"},
				"later":   {shard: otherShard, seq: seq(99)},
			},
			want:      map[string]string{"earlier": "old", "later": "old"},
			wantCalls: map[string]int{"put:" + testTable: 2, "conditionFailed:" + testTable: 2},
		},
		{
			name: "the metadata sequence number plays no part",
			cfg:  byID,
			give: []string{`{"id":"a"}`},
			existing: map[string]stored{
				"a": {shard: testShard, seq: seq(0), metaSeq: seq(99)},
			},
			want:      map[string]string{"a": "0"},
			wantCalls: map[string]int{"put:" + testTable: 1},
		},
		{
			name: "without metadata, a payload's sequence number cannot make a newer record superseded",
			cfg:  omit,
			give: []string{`{"id":"a","_kinesisSequenceNumber":"` + seq(0) + `"}`, `{"id":"b","_kinesisSequenceNumber":"99999999999999999999999999999999999999999999999999999999999"}`},
			existing: map[string]stored{
				"a": {shard: testShard, seq: seq(0)},
				"b": {shard: testShard, seq: seq(0), metaSeq: "99999999999999999999999999999999999999999999999999999999999"},
			},
			want:      map[string]string{"a": "0", "b": "1"},
			wantCalls: map[string]int{"put:" + testTable: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := runConditional(t, tt.cfg, tt.existing, func(o *Options) { o.ConditionalWrites = true }, nil, tt.give...)
			if run.failure != "" {
				t.Fatalf("reported %s; want no failure (superseded items count as stored)", run.failure)
			}
			run.checkItems(t, tt.want)
			for k, n := range tt.wantCalls {
				if run.db.calls[k] != n {
					t.Errorf("%d %s calls, want %d (all calls: %v)", run.db.calls[k], k, n, run.db.calls)
				}
			}
			if run.db.calls["batch:"+testTable] != 0 {
				t.Errorf("%d BatchWriteItem calls on the data table, want none", run.db.calls["batch:"+testTable])
			}
			if w := float64(len(tt.give)); run.metrics[MetricRecordsWritten] != w {
				t.Errorf("RecordsWritten %v, want %v", run.metrics[MetricRecordsWritten], w)
			}
			if n := tt.wantCalls["conditionFailed:"+testTable]; strings.Count(run.logs, "item superseded") != n {
				t.Errorf("%d superseded log lines, want %d:\n%s", strings.Count(run.logs, "item superseded"), n, run.logs)
			}
		})
	}
}

// TestHandleInsertOnly: with Options.InsertOnly, an item is written only where its key is free; a key holding the
// record's own item (a rerun) counts as stored, any other item refuses the record: reported, counted in
// RecordsRefused (not RecordsFailed), nothing overwritten.
func TestHandleInsertOnly(t *testing.T) {
	byID := Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: "id"}}
	tests := []struct {
		name        string
		give        []string
		existing    map[string]stored
		both        bool // ConditionalWrites too
		getHook     func(n int, table string) error
		want        map[string]string
		wantFailure int // index of the record reported, -1 for none
		wantRefused float64
		wantFailed  float64
		wantGets    int
	}{
		{
			name:        "free keys are inserted",
			give:        []string{`{"id":"a"}`, `{"id":"b"}`},
			want:        map[string]string{"a": "0", "b": "1"},
			wantFailure: -1,
		},
		{
			name:        "a rerun of the stored record counts as stored",
			give:        []string{`{"id":"a"}`, `{"id":"b"}`},
			existing:    map[string]stored{"a": {shard: testShard, seq: seq(0)}, "b": {shard: testShard, seq: seq(1)}},
			want:        map[string]string{"a": "old", "b": "old"},
			wantFailure: -1,
			wantGets:    2,
		},
		{
			name: "another record's item refuses the record",
			give: []string{`{"id":"free"}`, `{"id":"older"}`, `{"id":"newer"}`, `{"id":"shard"}`, `{"id":"unplaced"}`, `{"id":"sub"}`},
			existing: map[string]stored{
				"older":    {shard: testShard, seq: seq(0)},
				"newer":    {shard: testShard, seq: seq(60)},
				"shard":    {shard: otherShard, seq: seq(3)},
				"unplaced": {},
				"sub":      {shard: testShard, seq: seq(5), sub: 1},
			},
			want:        map[string]string{"free": "0", "older": "old", "newer": "old", "shard": "old", "unplaced": "old", "sub": "old"},
			wantFailure: 1,
			wantRefused: 5,
			wantGets:    5,
		},
		{
			name:        "insert only wins over conditional writes",
			give:        []string{`{"id":"older"}`},
			existing:    map[string]stored{"older": {shard: testShard, seq: "1"}},
			both:        true,
			want:        map[string]string{"older": "old"},
			wantFailure: 0,
			wantRefused: 1,
			wantGets:    1,
		},
		{
			name:        "within a batch the later record is inserted and the earlier counts as stored",
			give:        []string{`{"id":"dup"}`, `{"id":"dup"}`},
			want:        map[string]string{"dup": "1"},
			wantFailure: -1,
		},
		{
			name:        "within a batch, a rerun of the earlier record refuses only the later one",
			give:        []string{`{"id":"dup"}`, `{"id":"dup"}`, `{"id":"c"}`},
			existing:    map[string]stored{"dup": {shard: testShard, seq: seq(0)}},
			want:        map[string]string{"dup": "old", "c": "2"},
			wantFailure: 1,
			wantRefused: 1,
			wantGets:    1,
		},
		{
			name:     "a throttled read is retried",
			give:     []string{`{"id":"a"}`},
			existing: map[string]stored{"a": {shard: testShard, seq: seq(0)}},
			getHook: func(n int, _ string) error {
				if n == 1 {
					return throttle()
				}
				return nil
			},
			want:        map[string]string{"a": "old"},
			wantFailure: -1,
			wantGets:    2,
		},
		{
			name:        "a failed read fails the record: not refused",
			give:        []string{`{"id":"a"}`},
			existing:    map[string]stored{"a": {shard: otherShard, seq: seq(0)}},
			getHook:     func(int, string) error { return apiError("AccessDeniedException") },
			want:        map[string]string{"a": "old"},
			wantFailure: 0,
			wantFailed:  1,
			wantGets:    1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := runConditional(t, byID, tt.existing, func(o *Options) {
				o.InsertOnly = true
				o.ConditionalWrites = tt.both
			}, tt.getHook, tt.give...)
			wantFailure := ""
			if tt.wantFailure >= 0 {
				wantFailure = seq(tt.wantFailure)
			}
			if run.failure != wantFailure {
				t.Errorf("reported %q, want %q", run.failure, wantFailure)
			}
			run.unverified = true
			run.checkItems(t, tt.want)
			if run.metrics[MetricRecordsRefused] != tt.wantRefused || run.metrics[MetricRecordsFailed] != tt.wantFailed {
				t.Errorf("RecordsRefused %v, RecordsFailed %v; want %v, %v", run.metrics[MetricRecordsRefused], run.metrics[MetricRecordsFailed], tt.wantRefused, tt.wantFailed)
			}
			if got := run.db.calls["get:"+testTable]; got != tt.wantGets {
				t.Errorf("%d GetItem calls, want %d", got, tt.wantGets)
			}
			keys := map[string]bool{}
			for _, g := range tt.give {
				keys[g] = true
			}
			if run.db.calls["batch:"+testTable] != 0 || run.db.calls["put:"+testTable] != len(keys) {
				t.Errorf("calls %v, want one PutItem per key", run.db.calls)
			}
			if n := int(tt.wantRefused); strings.Count(run.logs, "item refused") != n {
				t.Errorf("%d refused log lines, want %d:\n%s", strings.Count(run.logs, "item refused"), n, run.logs)
			}
			for _, marker := range []string{`"free"`, `"older"`, `"dup"`} {
				if strings.Contains(run.logs, marker) {
					t.Errorf("logs quote the payload value %s:\n%s", marker, run.logs)
				}
			}
		})
	}
}

// TestNewInsertOnlyNeedsReader: InsertOnly needs a DB that reads items; New says so instead of failing later.
func TestNewInsertOnlyNeedsReader(t *testing.T) {
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{})})
	writeOnly := struct{ DB }{db} // the DB interface alone hides the fake's GetItem
	for _, tt := range []struct {
		db      DB
		insert  bool
		wantErr string
	}{
		{db: writeOnly, insert: true, wantErr: "insert only: db cannot read items"},
		{db: writeOnly, insert: false},
		{db: db, insert: true},
	} {
		_, err := New(tt.db, func(o *Options) { o.TableName, o.InsertOnly = testTable, tt.insert })
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("New(insert only %v, %T) = %v, want %q", tt.insert, tt.db, err, tt.wantErr)
		}
	}
}
