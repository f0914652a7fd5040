package processor

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
)

// aggOf returns a KPL aggregate of the payloads; user record j has partition key "u-<j>".
func aggOf(payloads ...string) string {
	recs := make([]kpl.UserRecord, len(payloads))
	for j, p := range payloads {
		recs[j] = kpl.UserRecord{PartitionKey: "u-" + itoa(j), Data: []byte(p)}
	}
	return string(kpl.Aggregate(recs))
}

// aggN returns an aggregate of n valid user records.
func aggN(n int) string { return aggOf(valid(n)...) }

// id returns the event id of record i of event(...), or of its user record sub when given.
func id(i int, sub ...int) string {
	s := testShard + ":" + seq(i)
	for _, j := range sub {
		s += "#" + itoa(j)
	}
	return s
}

// subIDs returns id(i, from), ..., id(i, to-1).
func subIDs(i, from, to int) []string {
	var out []string
	for j := from; j < to; j++ {
		out = append(out, id(i, j))
	}
	return out
}

// ids returns the sorted "id" attributes of a table's items.
func (f *fakeDB) ids(table string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, it := range f.tables[table] {
		out = append(out, it["id"].(*types.AttributeValueMemberS).Value)
	}
	slices.Sort(out)
	return out
}

func sorted(ss ...[]string) []string {
	out := slices.Concat(ss...)
	slices.Sort(out)
	return out
}

// withChecksum frames a protobuf message as an aggregate with a valid checksum.
func withChecksum(msg []byte) string {
	sum := md5.Sum(msg)
	return kpl.Magic + string(msg) + string(sum[:])
}

func newKPLTest(t *testing.T, cfg Config, optFns ...func(*Options)) (*fakeDB, *Processor) {
	t.Helper()
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(cfg), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	p := newTestProcessor(t, db, append([]func(*Options){func(o *Options) { o.Config = cfg }}, optFns...)...)
	return db, p
}

func reportedOf(t *testing.T, failures int, id string) string {
	t.Helper()
	if failures > 1 {
		t.Fatalf("%d batch item failures, want at most 1", failures)
	}
	return id
}

func TestHandleKPL(t *testing.T) {
	good := aggN(5)
	badSum := []byte(good)
	badSum[len(badSum)-1] ^= 1
	flipped := []byte(good)
	flipped[12] ^= 0x40
	tests := []struct {
		name         string
		give         []string
		noErrorTable bool
		wantStored   []string
		wantErrors   []string
		wantReported string
	}{
		{name: "aggregate of 1", give: []string{aggN(1)}, wantStored: subIDs(0, 0, 1)},
		{name: "aggregate of 2", give: []string{aggN(2)}, wantStored: subIDs(0, 0, 2)},
		{name: "aggregate of 500", give: []string{aggN(500)}, wantStored: subIDs(0, 0, 500)},
		{
			name:       "aggregated and plain records mixed",
			give:       []string{`{"p":0}`, aggN(3), `{"p":2}`, aggN(30), `{"p":4}`, aggN(1)},
			wantStored: sorted([]string{id(0), id(2), id(4)}, subIDs(1, 0, 3), subIDs(3, 0, 30), subIDs(5, 0, 1)),
		},
		{
			name:       "bad checksum: the whole record goes to the error table",
			give:       []string{`{"p":0}`, string(badSum), `{"p":2}`},
			wantStored: []string{id(0), id(2)},
			wantErrors: []string{id(1)},
		},
		{name: "corrupt byte", give: []string{string(flipped)}, wantErrors: []string{id(0)}},
		{
			name:       "truncated aggregates",
			give:       []string{good[:len(good)-7], good[:len(good)/2], kpl.Magic, good[:10], `{"p":4}`},
			wantStored: []string{id(4)},
			wantErrors: []string{id(0), id(1), id(2), id(3)},
		},
		{
			name:       "invalid protobuf with a valid checksum",
			give:       []string{withChecksum([]byte{0x1a, 0x05, 0x08}), withChecksum([]byte{0x1a, 0x02, 0x08, 0x00}), aggN(2)},
			wantStored: subIDs(2, 0, 2),
			wantErrors: []string{id(0), id(1)},
		},
		{
			name:       "user records failing validation go to the error table alone",
			give:       []string{aggOf(`{"u":0}`, `not json`, `{"u":2}`, `{"": 1}`, `{"n": 1e999}`, `{"u":5}`)},
			wantStored: []string{id(0, 0), id(0, 2), id(0, 5)},
			wantErrors: []string{id(0, 1), id(0, 3), id(0, 4)},
		},
		{name: "an empty aggregate is skipped", give: []string{aggOf(), `{"p":1}`}, wantStored: []string{id(1)}},
		{
			name:         "without an error table a bad aggregate is reported",
			give:         []string{aggN(2), string(badSum), `{"p":2}`},
			noErrorTable: true,
			wantStored:   sorted(subIDs(0, 0, 2), []string{id(2)}),
			wantReported: seq(1),
		},
		{
			name:         "without an error table a bad user record reports its aggregate",
			give:         []string{`{"p":0}`, aggOf(`{"u":0}`, `[]`, `{"u":2}`)},
			noErrorTable: true,
			wantStored:   []string{id(0), id(1, 0), id(1, 2)},
			wantReported: seq(1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, p := newKPLTest(t, Config{}, func(o *Options) {
				if tt.noErrorTable {
					o.ErrorTableName = ""
				}
			})
			resp, err := p.Handle(context.Background(), event(tt.give...))
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			var reported string
			if len(resp.BatchItemFailures) > 0 {
				reported = reportedOf(t, len(resp.BatchItemFailures), resp.BatchItemFailures[0].ItemIdentifier)
			}
			if reported != tt.wantReported {
				t.Errorf("reported %q, want %q", reported, tt.wantReported)
			}
			if got := db.ids(testTable); !slices.Equal(got, sorted(tt.wantStored)) {
				t.Errorf("data table holds\n%v\nwant\n%v", got, sorted(tt.wantStored))
			}
			if got := db.ids(testErrorTable); !slices.Equal(got, sorted(tt.wantErrors)) {
				t.Errorf("error table holds\n%v\nwant\n%v", got, sorted(tt.wantErrors))
			}
		})
	}
}

// TestKPLRecords checks what a Transform sees of plain and de-aggregated records, and the default items.
func TestKPLRecords(t *testing.T) {
	var seen []Record
	db, p := newKPLTest(t, Config{}, func(o *Options) {
		o.Transform = func(ctx context.Context, r *Record) ([]Item, error) {
			seen = append(seen, *r)
			return DefaultTransform(Config{Metadata: []string{AttrSequenceNumber, AttrPartitionKey, AttrArrivalTime}})(ctx, r)
		}
	})
	ev := event(`{"p":0}`, string(kpl.Aggregate([]kpl.UserRecord{
		{PartitionKey: "alpha", Data: []byte(`{"u":0}`)},
		{PartitionKey: "beta", ExplicitHashKey: "123", Data: []byte(`{"u":1}`)},
	})))
	if _, err := p.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	type view struct {
		EventID, SequenceNumber, PartitionKey, ShardID, Raw string
		Sub                                                 int
		Aggregated                                          bool
	}
	var got []view
	for _, r := range seen {
		got = append(got, view{r.EventID, r.SequenceNumber, r.PartitionKey, r.ShardID, string(r.Raw), r.SubSequenceNumber, r.Aggregated})
	}
	want := []view{
		{id(0), seq(0), "pk-0", testShard, `{"p":0}`, 0, false},
		{id(1, 0), seq(1), "alpha", testShard, `{"u":0}`, 0, true},
		{id(1, 1), seq(1), "beta", testShard, `{"u":1}`, 1, true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("records\n%+v\nwant\n%+v", got, want)
	}
	item := db.tables[testTable][itemKey(Item{"id": &types.AttributeValueMemberS{Value: id(1, 1)}}, testKeys(Config{}))]
	for attr, want := range map[string]string{AttrSequenceNumber: seq(1), AttrPartitionKey: "beta", AttrArrivalTime: "2024-09-13T23:06:56.123Z"} {
		if got := item[attr].(*types.AttributeValueMemberS).Value; got != want {
			t.Errorf("item %s = %q, want %q", attr, got, want)
		}
	}
}

// TestKPLErrorItems checks the error items of an unreadable aggregate and of a failing user record.
func TestKPLErrorItems(t *testing.T) {
	good := aggOf(`{"u":0}`, `{"u":1}`)
	bad := []byte(good)
	bad[len(bad)-3] ^= 1
	userAgg := aggOf(`{"u":0}`, `{"u": oops}`)
	db, p := newKPLTest(t, Config{})
	if _, err := p.Handle(context.Background(), event(string(bad), userAgg, good[:len(good)-1])); err != nil {
		t.Fatal(err)
	}
	s := func(it Item, attr string) string {
		switch v := it[attr].(type) {
		case *types.AttributeValueMemberS:
			return v.Value
		case *types.AttributeValueMemberN:
			return "N:" + v.Value
		case *types.AttributeValueMemberB:
			return "B:" + string(v.Value)
		case nil:
			return "<none>"
		}
		return "?"
	}
	get := func(id string) Item {
		return db.tables[testErrorTable][itemKey(Item{"id": &types.AttributeValueMemberS{Value: id}}, []KeyAttribute{{Name: "id", Type: AttributeTypeString}})]
	}
	tests := []struct {
		id         string
		want       map[string]string
		wantReason string
	}{
		{
			id: id(0),
			want: map[string]string{ErrorAttrSequenceNumber: seq(0), ErrorAttrPartitionKey: "pk-0", ErrorAttrPayload: "B:" + string(bad),
				ErrorAttrPayloadEncoding: PayloadEncodingRaw, ErrorAttrPayloadSize: "N:" + itoa(len(bad)), ErrorAttrSubSequenceNumber: "<none>"},
			wantReason: "kpl: aggregated record checksum mismatch",
		},
		{
			id: id(1, 1),
			want: map[string]string{ErrorAttrSequenceNumber: seq(1), ErrorAttrPartitionKey: "u-1", ErrorAttrPayload: `B:{"u": oops}`,
				ErrorAttrPayloadSize: "N:11", ErrorAttrSubSequenceNumber: "N:1", ErrorAttrShardID: testShard},
			wantReason: "payload is not valid JSON",
		},
		{id: id(2), want: map[string]string{ErrorAttrPayload: "B:" + good[:len(good)-1]}, wantReason: "checksum mismatch"},
	}
	for _, tt := range tests {
		it := get(tt.id)
		if it == nil {
			t.Errorf("no error item %s; error table holds %v", tt.id, db.ids(testErrorTable))
			continue
		}
		for attr, want := range tt.want {
			if got := s(it, attr); got != want {
				t.Errorf("%s: %s = %q, want %q", tt.id, attr, got, want)
			}
		}
		if got := s(it, ErrorAttrReason); !strings.Contains(got, tt.wantReason) {
			t.Errorf("%s: reason %q does not mention %q", tt.id, got, tt.wantReason)
		}
	}
	if got, want := db.ids(testTable), []string{id(1, 0)}; !slices.Equal(got, want) {
		t.Errorf("data table holds %v, want %v", got, want)
	}
}

// TestKPLPartialFailureReplay fails one user record's write: the aggregate's sequence number is reported, and the
// replay Lambda makes from there stores the rest without duplicating anything.
func TestKPLPartialFailureReplay(t *testing.T) {
	for _, cfg := range []Config{{}, {PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: "key"}}} {
		t.Run("key "+cfg.WithDefaults().PartitionKey.Source, func(t *testing.T) {
			db, p := newKPLTest(t, cfg)
			var users []string
			for j := range 40 {
				users = append(users, fmt.Sprintf(`{"key": "user-%d", "v": %d}`, j, j))
			}
			ev := event(`{"key": "plain-0"}`, `{"key": "plain-1"}`, aggOf(users...), `{"key": "plain-3"}`, aggOf(users[:3]...))
			stuck := id(2, 17)
			if cfg.PartitionKey.Source == "key" {
				stuck = "user-17"
			}
			db.batchHook = func(_ context.Context, _ int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
				for _, r := range reqs {
					if table == testTable && r.PutRequest.Item["id"].(*types.AttributeValueMemberS).Value == stuck {
						return []types.WriteRequest{r}, nil // never processed: throttled until the deadline
					}
				}
				return nil, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			resp, err := p.Handle(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != seq(2) {
				t.Fatalf("reported %+v, want the aggregate's sequence number %s", resp.BatchItemFailures, seq(2))
			}
			first := db.ids(testTable)
			if slices.Contains(first, stuck) {
				t.Fatalf("%s stored", stuck)
			}

			// Lambda retries from the reported record: the aggregate and everything after it.
			db.batchHook = nil
			replay := ev
			replay.Records = ev.Records[2:]
			resp, err = p.Handle(context.Background(), replay)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("replay: %v, %+v", err, resp.BatchItemFailures)
			}
			all := db.ids(testTable)
			want := len(first) + 1
			if cfg.PartitionKey.Source == "key" {
				want = 2 + 40 + 1 // the second aggregate repeats user-0..2
			} else if want != 2+40+1+3 {
				t.Errorf("first pass stored %d items, want %d", len(first), 2+40+1+3-1)
			}
			if len(all) != want || !slices.Contains(all, stuck) {
				t.Errorf("after the replay the table holds %d items (%s stored: %v), want %d", len(all), stuck, slices.Contains(all, stuck), want)
			}
			// A whole replay changes nothing either.
			if _, err := p.Handle(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			if again := db.ids(testTable); !slices.Equal(again, all) {
				t.Errorf("a second replay changed the keys: %d items, want %d", len(again), len(all))
			}
			// Business keys repeated inside a batch: the later user record wins (user-0 of the second aggregate).
			if cfg.PartitionKey.Source == "key" {
				it := db.tables[testTable][itemKey(Item{"id": &types.AttributeValueMemberS{Value: "user-1"}}, testKeys(cfg))]
				// A business key: the item carries its position.
				if got, _ := it[AttrPosition].(*types.AttributeValueMemberB); got == nil || !bytes.Equal(got.Value, wantPosition(testShard, seq(4), 1)) {
					t.Errorf("user-1 has position %v, want the later aggregate's user record 1 %v", got, wantPosition(testShard, seq(4), 1))
				}
			}
		})
	}
}

func TestInvokeKPL(t *testing.T) {
	bad := []byte(aggN(3))
	bad[len(bad)-1] ^= 1
	tests := []struct {
		name         string
		give         []string
		noErrorTable bool
		want         string
		wantStored   []string
	}{
		{name: "aggregates and plain", give: []string{aggN(2), `{"p":1}`, aggN(500)}, want: `{"batchItemFailures":[]}`,
			wantStored: sorted(subIDs(0, 0, 2), []string{id(1)}, subIDs(2, 0, 500))},
		{name: "bad checksum to the error table", give: []string{`{"p":0}`, string(bad)}, want: `{"batchItemFailures":[]}`, wantStored: []string{id(0)}},
		{name: "bad checksum reported", give: []string{`{"p":0}`, string(bad), aggN(2)}, noErrorTable: true,
			want: `{"batchItemFailures":[{"itemIdentifier":"` + seq(1) + `"}]}`, wantStored: sorted([]string{id(0)}, subIDs(2, 0, 2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, p := newKPLTest(t, Config{}, func(o *Options) {
				if tt.noErrorTable {
					o.ErrorTableName = ""
				}
			})
			out, err := lambda.NewHandler(p.Handle).Invoke(context.Background(), kinesisEventJSON(tt.give...))
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if string(out) != tt.want {
				t.Errorf("response %s, want %s", out, tt.want)
			}
			if got := db.ids(testTable); !slices.Equal(got, tt.wantStored) {
				t.Errorf("data table holds %d items\n%v\nwant %d", len(got), got, len(tt.wantStored))
			}
		})
	}
}

// FuzzHandleAggregate is FuzzHandle with KPL aggregates always on: a fuzzed payload and partition key in user
// records next to plain records and a truncated aggregate, every configuration and fault (runCase checks the
// outcome from the stand-in's storage). Its committed corpus is replayed against dynalite by the integration tier.
func FuzzHandleAggregate(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "k\xff", byte(0))
	f.Add([]byte(`not json`), "", byte(1))
	f.Add([]byte(`{"": 1}`), "p", byte(2))
	f.Add([]byte(aggN(2)), "pk", byte(3))
	f.Add([]byte{}, "é", byte(7))
	f.Fuzz(func(t *testing.T, payload []byte, pk string, mode byte) {
		shape := byte(shapeAggregate)
		if mode&0x80 != 0 {
			shape |= shapeTwoShards
		}
		runCase(t, handleCase{payload: payload, pk: pk, shape: shape, mode: mode &^ 0x80}, standinBackend(mode))
	})
}
