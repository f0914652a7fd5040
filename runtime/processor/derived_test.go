package processor

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
)

// Issue 17: under the default event-id key the processor's own items carry no AttrPosition; their key names it.

func eid(i int) string { return testShard + ":" + seq(i) }

// TestEventIDKeyConditionalWrites: with ConditionalWrites under the default key, a replayed record's item (no
// AttrPosition) replaces what the table holds at its key when that is its own item in any format (without a
// position, with its own position as earlier versions wrote it, with only _kinesisSequenceNumber as versions before
// positions wrote it) or an unverified item; an item whose stored AttrPosition is later in the shard or from another
// shard (hand-made or forged: no record of the pipeline writes such an item at that key) still wins, as the
// server-side condition reads the stored AttrPosition whenever the item has one.
func TestEventIDKeyConditionalWrites(t *testing.T) {
	tests := []struct {
		name        string
		existing    *stored // nil: the key is free
		wantWritten bool    // the record's item replaced the existing one
	}{
		{name: "free key", wantWritten: true},
		{name: "its own item without a position (this version)", existing: &stored{}, wantWritten: true},
		{name: "its own item with its position (earlier versions' items)", existing: &stored{shard: testShard, seq: seq(0)}, wantWritten: true},
		{name: "its own item with the old metadata only", existing: &stored{metaSeq: seq(0)}, wantWritten: true},
		{name: "an unverified item claiming a far-future position", existing: &stored{shard: testShard, seq: seq(0) + "9", unverified: true}, wantWritten: true},
		{name: "an unverified item of the same record", existing: &stored{shard: testShard, seq: seq(0), unverified: true}, wantWritten: true},
		{name: "an item with a later position of the shard", existing: &stored{shard: testShard, seq: seq(50)}, wantWritten: false},
		{name: "an item with another shard's position", existing: &stored{shard: otherShard, seq: "1"}, wantWritten: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			existing := map[string]stored{}
			if tt.existing != nil {
				existing[eid(0)] = *tt.existing
			}
			run := runConditional(t, Config{}, existing, func(o *Options) { o.ConditionalWrites = true }, nil, `{"v":1}`)
			if run.failure != "" {
				t.Fatalf("reported %s, want none (a superseded item counts as stored)", run.failure)
			}
			if run.metrics[MetricRecordsWritten] != 1.0 {
				t.Errorf("RecordsWritten %v, want 1", run.metrics[MetricRecordsWritten])
			}
			it := run.item(eid(0))
			_, old := it["old"]
			if old == tt.wantWritten {
				t.Fatalf("item %v: replaced %v, want %v", renderItem(it), !old, tt.wantWritten)
			}
			if tt.wantWritten {
				if _, ok := it[AttrPosition]; ok {
					t.Errorf("the written item carries %s: %v", AttrPosition, renderItem(it))
				}
				if _, ok := it[AttrSequenceNumber]; ok {
					t.Errorf("the written item kept the old metadata: %v", renderItem(it))
				}
				if !avEqual(it["v"], n("1")) || !avEqual(it[AttrArrivalTime], s("2024-09-13T23:06:56.123Z")) || len(it) != 3 {
					t.Errorf("written item %v, want id, v and the arrival time", renderItem(it))
				}
			}
			if got := run.db.calls["put:"+testTable]; got != 1 {
				t.Errorf("%d PutItem calls, want 1", got)
			}
		})
	}
}

// TestEventIDKeyInsertOnly: with InsertOnly under the default key, an item is inserted with its position marked
// unverified; a key holding the record's own item in any format (this version's, without AttrPosition; earlier
// versions', with its position or only the old metadata; an unverified one) is a rerun, counted stored; a key holding
// an item whose stored position names another record refuses the record.
func TestEventIDKeyInsertOnly(t *testing.T) {
	tests := []struct {
		name        string
		existing    *stored
		wantRefused bool
		wantGets    int
	}{
		{name: "free key: inserted, unverified"},
		{name: "its own verified item without a position: rerun", existing: &stored{}, wantGets: 1},
		{name: "its own item with its position (earlier versions' items): rerun", existing: &stored{shard: testShard, seq: seq(0)}, wantGets: 1},
		{name: "its own item with the old metadata only: rerun", existing: &stored{metaSeq: seq(0)}, wantGets: 1},
		{name: "its own unverified item: rerun", existing: &stored{shard: testShard, seq: seq(0), unverified: true}, wantGets: 1},
		{name: "an item naming another record: refused", existing: &stored{shard: testShard, seq: seq(7)}, wantRefused: true, wantGets: 1},
		{name: "an item naming another user record: refused", existing: &stored{shard: testShard, seq: seq(0), sub: 2}, wantRefused: true, wantGets: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			existing := map[string]stored{}
			if tt.existing != nil {
				existing[eid(0)] = *tt.existing
			}
			run := runConditional(t, Config{}, existing, func(o *Options) { o.InsertOnly = true }, nil, `{"v":1}`)
			wantFailure, wantRefused := "", 0.0
			if tt.wantRefused {
				wantFailure, wantRefused = seq(0), 1
			}
			if run.failure != wantFailure || run.metrics[MetricRecordsRefused] != wantRefused {
				t.Errorf("reported %q, refused %v; want %q, %v", run.failure, run.metrics[MetricRecordsRefused], wantFailure, wantRefused)
			}
			if got := run.db.calls["get:"+testTable]; got != tt.wantGets {
				t.Errorf("%d GetItem calls, want %d", got, tt.wantGets)
			}
			it := run.item(eid(0))
			if tt.existing != nil {
				if _, old := it["old"]; !old {
					t.Errorf("the existing item was replaced: %v", renderItem(it))
				}
				return
			}
			want := append([]byte{0}, wantPosition(testShard, seq(0), 0)...)
			if got, _ := it[AttrPosition].(*types.AttributeValueMemberB); got == nil || !bytes.Equal(got.Value, want) {
				t.Errorf("inserted item %v, want %s = the unverified position %x", renderItem(it), AttrPosition, want)
			}
		})
	}
}

// TestEventIDKeyUnverifiedThenVerified: an item inserted unverified (with its marked position) is replaced by the
// verified write of the same record, which carries no position; a later insert-only rerun finds that item and
// counts as stored, deriving the position from the key.
func TestEventIDKeyUnverifiedThenVerified(t *testing.T) {
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	ev := event(`{"v":1}`, `{"v":2}`)
	for step, tc := range []struct {
		insertOnly bool
		wantPos    bool // the items carry AttrPosition (unverified) afterwards
	}{{true, true}, {false, false}, {true, false}} {
		p := newTestProcessor(t, db, func(o *Options) { o.InsertOnly, o.ConditionalWrites = tc.insertOnly, !tc.insertOnly })
		resp, err := p.Handle(context.Background(), ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("step %d: %v, %v", step, resp.BatchItemFailures, err)
		}
		for i := range 2 {
			it := db.tables[testTable][itemKey(Item{"id": s(eid(i))}, testKeys(Config{}))]
			got, has := it[AttrPosition].(*types.AttributeValueMemberB)
			if has != tc.wantPos {
				t.Fatalf("step %d: item %d has %s %v, want %v", step, i, AttrPosition, has, tc.wantPos)
			}
			if has && !bytes.Equal(got.Value, append([]byte{0}, wantPosition(testShard, seq(i), 0)...)) {
				t.Errorf("step %d: item %d position %x", step, i, got.Value)
			}
		}
	}
	if db.calls["get:"+testTable] != 2 {
		t.Errorf("%d GetItem calls, want 2 (the last insert-only run finds both keys taken)", db.calls["get:"+testTable])
	}
}

// TestWhoCarriesPosition: which items carry AttrPosition. Only the processor's own transform under an event-id key
// leaves it out, and only when the event id names the record's position exactly.
func TestWhoCarriesPosition(t *testing.T) {
	plain := func() events.KinesisEvent { return event(`{"v":1}`) }
	custom := func(_ context.Context, r *Record) ([]Item, error) {
		return []Item{{"id": s(r.EventID), "v": n("1")}}, nil
	}
	tests := []struct {
		name      string
		cfg       Config
		transform Transform
		ev        events.KinesisEvent
		wantIDs   map[string]bool // key -> carries AttrPosition
	}{
		{name: "default", ev: plain(), wantIDs: map[string]bool{eid(0): false}},
		{name: "declarative", cfg: Config{Transform: &TransformConfig{Exclude: []string{"x"}}}, ev: plain(), wantIDs: map[string]bool{eid(0): false}},
		{name: "no metadata", cfg: Config{Metadata: []string{}}, ev: plain(), wantIDs: map[string]bool{eid(0): false}},
		{name: "KPL user records", ev: event(string(kpl.Aggregate([]kpl.UserRecord{{PartitionKey: "a", Data: []byte(`{"u":0}`)}, {PartitionKey: "b", Data: []byte(`{"u":1}`)}}))),
			wantIDs: map[string]bool{eid(0) + "#0": false, eid(0) + "#1": false}},
		{name: "a user record rebuilt from its error item", ev: func() events.KinesisEvent {
			ev := plain()
			ev.Records[0].EventID += "#3"
			return ev
		}(), wantIDs: map[string]bool{eid(0) + "#3": false}},
		{name: "an event id that disagrees with the sequence number", ev: func() events.KinesisEvent {
			ev := plain()
			ev.Records[0].EventID = testShard + ":" + seq(5)
			return ev
		}(), wantIDs: map[string]bool{eid(5): true}},
		{name: "an event id with a leading-zero sub-sequence number", ev: func() events.KinesisEvent {
			ev := plain()
			ev.Records[0].EventID += "#03"
			return ev
		}(), wantIDs: map[string]bool{eid(0) + "#03": true}},
		{name: "a custom transform keyed by event id", transform: custom, ev: plain(), wantIDs: map[string]bool{eid(0): true}},
		{name: "a key from the payload", cfg: Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: "k"}}, ev: event(`{"k":"x"}`), wantIDs: map[string]bool{"x": true}},
		{name: "a key from the sequence number", cfg: Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: SourceSequenceNumber}}, ev: plain(), wantIDs: map[string]bool{seq(0): true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(tt.cfg), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
			p := newTestProcessor(t, db, func(o *Options) { o.Config, o.Transform = tt.cfg, tt.transform })
			resp, err := p.Handle(context.Background(), tt.ev)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("Handle: %v, %v", resp.BatchItemFailures, err)
			}
			if len(db.tables[testTable]) != len(tt.wantIDs) {
				t.Fatalf("data table holds %d items, want %d", len(db.tables[testTable]), len(tt.wantIDs))
			}
			for id, wantPos := range tt.wantIDs {
				it := db.tables[testTable][itemKey(Item{"id": s(id)}, testKeys(tt.cfg))]
				if it == nil {
					t.Fatalf("no item %q", id)
				}
				if _, has := it[AttrPosition]; has != wantPos {
					t.Errorf("item %q carries %s: %v, want %v", id, AttrPosition, has, wantPos)
				}
			}
		})
	}
}

// TestPositionFromEventID checks the decoding of event ids against the tests' own encoder.
func TestPositionFromEventID(t *testing.T) {
	tests := []struct {
		give    string
		want    []byte // nil: an error
		wantErr bool
	}{
		{give: eid(0), want: wantPosition(testShard, seq(0), 0)},
		{give: eid(0) + "#0", want: wantPosition(testShard, seq(0), 0)},
		{give: eid(0) + "#17", want: wantPosition(testShard, seq(0), 17)},
		{give: "s:1#4294967295", want: wantPosition("s", "1", 4294967295)},
		{give: "s:1#4294967296", wantErr: true},
		{give: "s:1#07", wantErr: true},
		{give: "s:1#", wantErr: true},
		{give: "s:1#-1", wantErr: true},
		{give: "s:1#+1", wantErr: true},
		{give: "s:12x", wantErr: true},
		{give: ":1", wantErr: true},
		{give: "s:", wantErr: true},
		{give: "no colon", wantErr: true},
	}
	for _, tt := range tests {
		got, err := PositionFromEventID(tt.give)
		if (err != nil) != tt.wantErr || !bytes.Equal(got, tt.want) {
			t.Errorf("PositionFromEventID(%q) = %s, %v; want %s, error %v", tt.give, hex.EncodeToString(got), err, hex.EncodeToString(tt.want), tt.wantErr)
		}
	}
}

// TestMetadataConfig: Config.Metadata chooses the metadata attributes; Validate reports unknown names and
// duplicates, each on its own line.
func TestMetadataConfig(t *testing.T) {
	tests := []struct {
		name    string
		give    []string
		want    []string // the metadata attributes of the item
		wantErr []string
	}{
		{name: "default", give: nil, want: []string{"_kinesisArrivalTime"}},
		{name: "none", give: []string{}, want: nil},
		{name: "all", give: []string{"_processedAt", "_kinesisSequenceNumber", "_kinesisArrivalTime", "_kinesisPartitionKey"},
			want: []string{"_kinesisArrivalTime", "_kinesisPartitionKey", "_kinesisSequenceNumber", "_processedAt"}},
		{name: "unknown and duplicate", give: []string{"_kinesisArrivalTime", "arrivalTime", "_kinesisArrivalTime", "_kpos"},
			wantErr: []string{
				`metadata[1]: "arrivalTime" is not a metadata attribute (want _kinesisSequenceNumber, _kinesisPartitionKey, _kinesisArrivalTime, _processedAt)`,
				"metadata[2]: _kinesisArrivalTime is listed twice",
				`metadata[3]: "_kpos" is not a metadata attribute (want _kinesisSequenceNumber, _kinesisPartitionKey, _kinesisArrivalTime, _processedAt)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Metadata: tt.give}
			err := cfg.WithDefaults().Validate()
			if tt.wantErr != nil {
				want := ""
				for i, l := range tt.wantErr {
					if i > 0 {
						want += "\n"
					}
					want += l
				}
				if err == nil || err.Error() != want {
					t.Fatalf("Validate() = %v, want\n%s", err, want)
				}
				if _, nerr := New(newFakeDB(nil), func(o *Options) { o.TableName, o.Config = testTable, cfg }); nerr == nil {
					t.Error("New accepted the configuration")
				}
				if _, perr := DefaultTransform(cfg)(context.Background(), &Record{EventID: eid(0), ShardID: testShard, SequenceNumber: seq(0), Data: map[string]any{}}); perr == nil {
					t.Error("DefaultTransform built a working transform from the configuration")
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			// The file format keeps "none" apart from "default".
			b, merr := cfg.WithDefaults().Marshal()
			if merr != nil {
				t.Fatal(merr)
			}
			back, perr := ParseConfig(b)
			if perr != nil {
				t.Fatal(perr)
			}
			res := runDeclarative(t, back, `{"v":1}`)
			if len(res.items) != 1 {
				t.Fatalf("items %v", res.items)
			}
			var got []string
			for k := range res.items[0] {
				if k != "id" && k != "v" {
					got = append(got, k)
				}
			}
			slicesSort(got)
			if len(got) != len(tt.want) || (len(got) > 0 && !equalStrings(got, tt.want)) {
				t.Errorf("metadata attributes %v, want %v", got, tt.want)
			}
		})
	}
}
