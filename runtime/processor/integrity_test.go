package processor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
)

// batchOutcome is what a batch through Handle left behind, per record of the event (by index): the data item (by
// its position), the error item (by its id) and the log lines.
type batchOutcome struct {
	cfg     Config // the processor's configuration (its key decides where an item's position is read)
	db      *fakeDB
	failure string
	logs    string
}

func runBatch(t *testing.T, cfg Config, transform Transform, ev eventLike) batchOutcome {
	t.Helper()
	keys := testKeys(cfg)
	db := newFakeDB(map[string][]KeyAttribute{testTable: keys, testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	var logs bytes.Buffer
	p := newTestProcessor(t, db, func(o *Options) {
		o.Config = cfg
		o.Transform = transform
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	resp, err := p.Handle(context.Background(), ev.event())
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	out := batchOutcome{cfg: cfg, db: db, logs: logs.String()}
	if len(resp.BatchItemFailures) > 0 {
		out.failure = resp.BatchItemFailures[0].ItemIdentifier
	}
	return out
}

// errorItem returns the error item with id.
func (o batchOutcome) errorItem(id string) Item {
	return o.db.tables[testErrorTable][itemKey(Item{"id": s(id)}, []KeyAttribute{{Name: "id", Type: AttributeTypeString}})]
}

// reason returns the reason of the error item with id, "" if there is none.
func (o batchOutcome) reason(id string) string {
	if r, ok := o.errorItem(id)[ErrorAttrReason].(*types.AttributeValueMemberS); ok {
		return r.Value
	}
	return ""
}

// dataItems returns the data items written for the record at (seq, sub), by position (AttrPosition, or the one an
// event-id key names).
func (o batchOutcome) dataItems(seqNo string, sub uint32) []Item {
	var out []Item
	for _, it := range o.db.tables[testTable] {
		if pos, ok := testPositionOf(o.cfg, it); ok && bytes.Equal(pos, wantPosition(testShard, seqNo, sub)) {
			out = append(out, it)
		}
	}
	return out
}

// eventLike builds an event.
type eventLike interface{ event() events.KinesisEvent }

type payloads []string

func (p payloads) event() events.KinesisEvent { return event(p...) }

// withAggregates is event(...) where the records listed hold KPL aggregates of user records instead.
type withAggregates struct {
	plain []string
	aggs  map[int][]kpl.UserRecord
}

func (w withAggregates) event() events.KinesisEvent {
	ev := event(w.plain...)
	for i, recs := range w.aggs {
		ev.Records[i].Kinesis.Data = kpl.Aggregate(recs)
	}
	return ev
}

// fixedTransform returns a transform giving each record the items make returns for its payload (DefaultTransform
// for payloads it does not know).
func fixedTransform(items map[string]func(r *Record) []Item) Transform {
	def := DefaultTransform(Config{})
	return func(ctx context.Context, r *Record) ([]Item, error) {
		if mk, ok := items[string(r.Raw)]; ok {
			return mk(r), nil
		}
		return def(ctx, r)
	}
}

// keyed returns an item keyed like DefaultTransform (the event id) with attrs.
func keyed(r *Record, attrs Item) Item {
	it := Item{"id": s(r.EventID)}
	for k, v := range attrs {
		it[k] = v
	}
	return it
}

// TestInvalidUTF8 (issue 12, finding 1): strings that are not valid UTF-8 in what a transform returns are a
// permanent failure of their record, with the path and the rule; the SDK would otherwise store them rewritten. A KPL
// user record's partition key that is not valid UTF-8 is metadata: stored as binary, byte for byte; as a key it is
// a permanent failure.
func TestInvalidUTF8(t *testing.T) {
	bad := "ok\xff\xfeok"
	tests := []struct {
		name  string
		items func(r *Record) []Item
		want  string // reason substring
	}{
		{name: "value", items: func(r *Record) []Item { return []Item{keyed(r, Item{"v": s(bad)})} }, want: "attribute v: string is not valid UTF-8 (byte 2 of 6)"},
		{name: "attribute name", items: func(r *Record) []Item { return []Item{keyed(r, Item{bad: s("x")})} }, want: `attribute "ok\xff\xfeok": the name is not valid UTF-8`},
		{name: "string set member", items: func(r *Record) []Item {
			return []Item{keyed(r, Item{"ss": &types.AttributeValueMemberSS{Value: []string{"a", bad}}})}
		}, want: "attribute ss<1>: string is not valid UTF-8"},
		{name: "map key", items: func(r *Record) []Item {
			return []Item{keyed(r, Item{"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{bad: s("x")}}})}
		}, want: `attribute m."ok\xff\xfeok": the name is not valid UTF-8`},
		{name: "nested in a list and a map", items: func(r *Record) []Item {
			return []Item{keyed(r, Item{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("a"),
				&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": s(bad)}}}}})}
		}, want: "attribute l[1].k: string is not valid UTF-8"},
		{name: "key", items: func(r *Record) []Item { return []Item{{"id": s(r.EventID + bad)}} }, want: "partition key id: is not valid UTF-8"},
		{name: "second item", items: func(r *Record) []Item { return []Item{keyed(r, nil), {"id": s("b"), "v": s(bad)}} }, want: "item 1: attribute v: string is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			give := payloads{`{"a":1}`, `{"bad":true}`, `{"c":3}`}
			out := runBatch(t, Config{}, fixedTransform(map[string]func(*Record) []Item{`{"bad":true}`: tt.items}), give)
			if out.failure != "" {
				t.Fatalf("reported %s, want no failure", out.failure)
			}
			if got := out.reason(id(1)); !strings.Contains(got, tt.want) {
				t.Errorf("reason %q, want it to contain %q", got, tt.want)
			}
			if len(out.dataItems(seq(1), 0)) != 0 {
				t.Errorf("the record's items were written too")
			}
			for _, i := range []int{0, 2} {
				if len(out.dataItems(seq(i), 0)) != 1 {
					t.Errorf("record %d not stored", i)
				}
			}
			if !utf8.ValidString(out.logs) {
				t.Errorf("logs are not valid UTF-8")
			}
		})
	}
}

// TestInvalidUTF8PartitionKeys: KPL user records whose partition keys are not valid UTF-8 (Kinesis checks only the
// aggregate's own key) keep them byte for byte as binary metadata, in the data item and in the error item; keyed
// by partition key, they fail permanently instead of collapsing into one item.
func TestInvalidUTF8PartitionKeys(t *testing.T) {
	pkA, pkB := "k\xff", "k\xfe" // the SDK would send both as "k\uFFFD"
	aggs := withAggregates{
		plain: []string{"", `{"plain":1}`},
		aggs: map[int][]kpl.UserRecord{0: {
			{PartitionKey: pkA, Data: []byte(`{"u":0}`)},
			{PartitionKey: pkB, Data: []byte(`{"u":1}`)},
			{PartitionKey: "fine", Data: []byte(`{"u":2}`)},
			{PartitionKey: pkA, Data: []byte(`not json`)},
		}},
	}
	t.Run("metadata", func(t *testing.T) {
		out := runBatch(t, Config{Metadata: []string{AttrPartitionKey}}, nil, aggs)
		if out.failure != "" {
			t.Fatalf("reported %s, want no failure", out.failure)
		}
		for sub, want := range map[uint32]types.AttributeValue{
			0: &types.AttributeValueMemberB{Value: []byte(pkA)},
			1: &types.AttributeValueMemberB{Value: []byte(pkB)},
			2: s("fine"),
		} {
			items := out.dataItems(seq(0), sub)
			if len(items) != 1 {
				t.Fatalf("user record %d: %d items", sub, len(items))
			}
			if got := items[0][AttrPartitionKey]; !avEqual(got, want) {
				t.Errorf("user record %d: partition key %#v, want %#v", sub, got, want)
			}
		}
		if got := out.errorItem(id(0, 3))[ErrorAttrPartitionKey]; !avEqual(got, &types.AttributeValueMemberB{Value: []byte(pkA)}) {
			t.Errorf("error item partition key %#v, want B %q", got, pkA)
		}
	})
	t.Run("key", func(t *testing.T) {
		cfg := Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: SourcePartitionKey}}
		out := runBatch(t, cfg, nil, aggs)
		if out.failure != "" {
			t.Fatalf("reported %s, want no failure", out.failure)
		}
		for _, sub := range []int{0, 1} {
			if got := out.reason(id(0, sub)); !strings.Contains(got, "partition key id: is not valid UTF-8") {
				t.Errorf("user record %d: reason %q", sub, got)
			}
		}
		if n := len(out.db.tables[testTable]); n != 2 {
			t.Errorf("data table holds %d items, want 2 (fine, pk-1)", n)
		}
	})
}

// unmatchedDB answers the first BatchWriteItem without writing anything, returning the request's items unprocessed
// as mangle makes them (as the SDK would after rewriting invalid UTF-8); later calls go to the fake.
type unmatchedDB struct {
	*fakeDB
	mangle func(reqs []types.WriteRequest) map[string][]types.WriteRequest
	done   bool
}

func (d *unmatchedDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if d.done {
		return d.fakeDB.BatchWriteItem(ctx, in, optFns...)
	}
	d.done = true
	return &dynamodb.BatchWriteItemOutput{UnprocessedItems: d.mangle(in.RequestItems[testTable])}, nil
}

// TestUnmatchedUnprocessedItems (issue 12, finding 1): when UnprocessedItems cannot be matched to the request,
// nothing of the request counts as stored: its items are written one by one, and that is logged and counted.
func TestUnmatchedUnprocessedItems(t *testing.T) {
	put := func(it Item) types.WriteRequest { return types.WriteRequest{PutRequest: &types.PutRequest{Item: it}} }
	rekey := func(w types.WriteRequest, id string) types.WriteRequest {
		it := Item{}
		for k, v := range w.PutRequest.Item {
			it[k] = v
		}
		it["id"] = s(id)
		return put(it)
	}
	tests := []struct {
		name   string
		mangle func(reqs []types.WriteRequest) map[string][]types.WriteRequest
	}{
		{name: "a key rewritten", mangle: func(reqs []types.WriteRequest) map[string][]types.WriteRequest {
			out := append([]types.WriteRequest(nil), reqs...)
			out[1] = rekey(out[1], "rewritten\uFFFD")
			return map[string][]types.WriteRequest{testTable: out}
		}},
		{name: "a key twice", mangle: func(reqs []types.WriteRequest) map[string][]types.WriteRequest {
			return map[string][]types.WriteRequest{testTable: {reqs[0], reqs[0]}}
		}},
		{name: "more than sent", mangle: func(reqs []types.WriteRequest) map[string][]types.WriteRequest {
			return map[string][]types.WriteRequest{testTable: append(append([]types.WriteRequest(nil), reqs...), reqs[0])}
		}},
		{name: "another table", mangle: func(reqs []types.WriteRequest) map[string][]types.WriteRequest {
			return map[string][]types.WriteRequest{"other": reqs}
		}},
		{name: "a delete request", mangle: func(reqs []types.WriteRequest) map[string][]types.WriteRequest {
			return map[string][]types.WriteRequest{testTable: {{DeleteRequest: &types.DeleteRequest{Key: Item{"id": reqs[0].PutRequest.Item["id"]}}}}}
		}},
		{name: "an item without its key", mangle: func(reqs []types.WriteRequest) map[string][]types.WriteRequest {
			return map[string][]types.WriteRequest{testTable: {put(Item{"x": s("y")})}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
			db := &unmatchedDB{fakeDB: fake, mangle: tt.mangle}
			var logs bytes.Buffer
			p := newTestProcessor(t, db, func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
			resp, err := p.Handle(context.Background(), event(valid(5)...))
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("Handle: %v, %v", resp.BatchItemFailures, err)
			}
			if got := fake.keySeqs(testTable); len(got) != 5 {
				t.Errorf("data table holds %v, want the 5 records", got)
			}
			if fake.calls["put:"+testTable] != 5 {
				t.Errorf("%d PutItem calls, want 5: the request's items one by one", fake.calls["put:"+testTable])
			}
			if !strings.Contains(logs.String(), `"unmatchedUnprocessed":1`) || !strings.Contains(logs.String(), "writing its items one by one") {
				t.Errorf("not logged and counted:\n%s", logs.String())
			}
		})
	}
}

// TestErrorItemAlwaysFits (issue 12, finding 2): a KPL user record with a 300 KB partition key and a 150 KB payload
// (neither data item nor naive error item fits 400 KB) reaches the error table: its partition key is kept as a
// prefix with its size and SHA-256, and every error item is within DynamoDB's limit by DynamoDB's own size rules.
func TestErrorItemAlwaysFits(t *testing.T) {
	hugePK := strings.Repeat("p", 300*1024)
	payload := `{"blob":"` + strings.Repeat("x", 150*1024) + `"}`
	for _, tc := range []struct {
		name string
		pk   string
	}{{"valid UTF-8", hugePK}, {"invalid UTF-8", hugePK[:1000] + "\xff" + hugePK[1001:]}} {
		t.Run(tc.name, func(t *testing.T) {
			ev := withAggregates{plain: []string{"", `{"after":1}`}, aggs: map[int][]kpl.UserRecord{0: {
				{PartitionKey: "small", Data: []byte(`{"before":1}`)},
				{PartitionKey: tc.pk, Data: []byte(payload)},
			}}}
			// The partition key as metadata makes the data item too large too.
			out := runBatch(t, Config{Metadata: []string{AttrPartitionKey}}, nil, ev)
			if out.failure != "" {
				t.Fatalf("reported %s, want no failure: the record must reach the error table", out.failure)
			}
			it := out.errorItem(id(0, 1))
			if it == nil {
				t.Fatalf("no error item; error table holds %d items", len(out.db.tables[testErrorTable]))
			}
			for _, e := range out.db.tables[testErrorTable] {
				if size := dynamoItemSize(e); size > 400*1024 {
					t.Errorf("error item %v is %d bytes by DynamoDB's rules, more than 400 KB", e[ErrorTablePartitionKey], size)
				}
			}
			sum := sha256.Sum256([]byte(tc.pk))
			if !avEqual(it[ErrorAttrPartitionKeySize], n(strconv.Itoa(len(tc.pk)))) || !avEqual(it[ErrorAttrPartitionKeySHA256], s(hex.EncodeToString(sum[:]))) {
				t.Errorf("partition key size %v, SHA-256 %v", it[ErrorAttrPartitionKeySize], it[ErrorAttrPartitionKeySHA256])
			}
			var kept []byte
			switch v := it[ErrorAttrPartitionKey].(type) {
			case *types.AttributeValueMemberS:
				kept = []byte(v.Value)
			case *types.AttributeValueMemberB:
				kept = v.Value
			}
			if len(kept) == 0 || len(kept) > MaxErrorPartitionKey || !strings.HasPrefix(tc.pk, string(kept)) {
				t.Errorf("partition key kept: %d bytes, not a prefix of at most %d", len(kept), MaxErrorPartitionKey)
			}
			if got := it[ErrorAttrPayload].(*types.AttributeValueMemberB).Value; string(got) != payload {
				t.Errorf("payload of %d bytes kept as %d", len(payload), len(got))
			}
			if len(out.dataItems(seq(0), 0)) != 1 || len(out.dataItems(seq(1), 0)) != 1 {
				t.Errorf("the other records are not stored")
			}
		})
	}
}

// TestErrorItemFieldsBounded: every field an error item takes from the record is bounded and valid, whatever the
// record holds (hand-made events can hold anything), and a long or invalid event id still gives a stable id.
func TestErrorItemFieldsBounded(t *testing.T) {
	long := strings.Repeat("e", 5000)
	p := newTestProcessor(t, newFakeDB(nil), func(o *Options) { o.Version = strings.Repeat("v", 3000) + "\xff" })
	tests := []struct {
		name   string
		rec    Record
		reason string
		wantID string
	}{
		{name: "long event id", rec: Record{EventID: long, ShardID: long, SequenceNumber: long}, reason: strings.Repeat("r\xff", 5000),
			wantID: "sha256:" + func() string { h := sha256.Sum256([]byte(long)); return hex.EncodeToString(h[:]) }()},
		{name: "invalid event id", rec: Record{EventID: "s:1\xff", ShardID: "s\xff", SequenceNumber: "1\xff"}, reason: "x",
			wantID: "sha256:" + func() string { h := sha256.Sum256([]byte("s:1\xff")); return hex.EncodeToString(h[:]) }()},
		{name: "no event id", rec: Record{Raw: []byte("r")}, reason: "x",
			wantID: "unknown:" + func() string { h := sha256.Sum256([]byte("\x00r")); return hex.EncodeToString(h[:]) }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := p.errorItems(context.Background(), &tt.rec, Permanent(errorString(tt.reason)))
			it := items[0]
			if got := it[ErrorTablePartitionKey].(*types.AttributeValueMemberS).Value; got != tt.wantID {
				t.Errorf("id %q, want %q", got, tt.wantID)
			}
			for name, v := range it {
				switch x := v.(type) {
				case *types.AttributeValueMemberS:
					if !utf8.ValidString(x.Value) || len(x.Value) > MaxErrorPartitionKey {
						t.Errorf("%s: %d bytes, valid UTF-8 %v", name, len(x.Value), utf8.ValidString(x.Value))
					}
				case *types.AttributeValueMemberB:
					if name != ErrorAttrPayload && len(x.Value) > 1024 {
						t.Errorf("%s: %d bytes", name, len(x.Value))
					}
				}
			}
			if size := dynamoItemSize(it); size > 20*1024 {
				t.Errorf("error item of a tiny payload is %d bytes", size)
			}
		})
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// avEqual compares two attribute values of the types these tests use.
func avEqual(a, b types.AttributeValue) bool {
	switch x := a.(type) {
	case *types.AttributeValueMemberS:
		y, ok := b.(*types.AttributeValueMemberS)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberN:
		y, ok := b.(*types.AttributeValueMemberN)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberB:
		y, ok := b.(*types.AttributeValueMemberB)
		return ok && bytes.Equal(x.Value, y.Value)
	}
	return false
}

// TestTypedNilValues (issue 12, finding 5): a transform returning typed nil attribute values (or a NULL that is not
// true) fails that record permanently with a clear reason; the rest of the batch is stored and nothing panics.
func TestTypedNilValues(t *testing.T) {
	tests := []struct {
		name  string
		items func(r *Record) []Item
		want  string
	}{
		{name: "S", items: func(r *Record) []Item { return []Item{keyed(r, Item{"v": (*types.AttributeValueMemberS)(nil)})} }, want: "attribute v: is a nil S (a typed nil pointer)"},
		{name: "key", items: func(r *Record) []Item { return []Item{{"id": (*types.AttributeValueMemberS)(nil)}} }, want: "partition key id: is a nil S"},
		{name: "in a list", items: func(r *Record) []Item {
			return []Item{keyed(r, Item{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{(*types.AttributeValueMemberN)(nil)}}})}
		}, want: "attribute l[0]: is a nil N"},
		{name: "nil in a list", items: func(r *Record) []Item {
			return []Item{keyed(r, Item{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{nil}}})}
		}, want: "attribute l[0]: has no value"},
		{name: "in a map", items: func(r *Record) []Item {
			return []Item{keyed(r, Item{"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": (*types.AttributeValueMemberM)(nil)}}})}
		}, want: "attribute m.k: is a nil M"},
		{name: "nil string set", items: func(r *Record) []Item { return []Item{keyed(r, Item{"ss": (*types.AttributeValueMemberSS)(nil)})} }, want: "attribute ss: is a nil SS"},
		{name: "nil item", items: func(r *Record) []Item { return []Item{keyed(r, nil), nil} }, want: "item 1: partition key id: is missing"},
		{name: "NULL false", items: func(r *Record) []Item { return []Item{keyed(r, Item{"z": &types.AttributeValueMemberNULL{}})} }, want: "attribute z: is NULL false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runBatch(t, Config{}, fixedTransform(map[string]func(*Record) []Item{`{"bad":true}`: tt.items}), payloads{`{"a":1}`, `{"bad":true}`, `{"c":3}`})
			if out.failure != "" {
				t.Fatalf("reported %s, want no failure", out.failure)
			}
			if got := out.reason(id(1)); !strings.Contains(got, tt.want) {
				t.Errorf("reason %q, want it to contain %q", got, tt.want)
			}
			if len(out.dataItems(seq(0), 0)) != 1 || len(out.dataItems(seq(2), 0)) != 1 {
				t.Errorf("the rest of the batch is not stored")
			}
		})
	}
}

// TestReservedPosition (issue 12, finding 3): what conditional writes rely on never comes from a payload or a
// transform, in every mode.
func TestReservedPosition(t *testing.T) {
	const reserved = "attribute name _kpos is reserved"
	tests := []struct {
		name      string
		cfg       Config
		transform Transform
		give      string
	}{
		{name: "default transform", give: `{"_kpos":"AAAA"}`},
		{name: "declarative, without metadata", cfg: Config{Transform: &TransformConfig{}, Metadata: []string{}}, give: `{"_kpos":"AAAA"}`},
		{name: "declarative, excluding the field", cfg: Config{Transform: &TransformConfig{Exclude: []string{"_kpos"}}}, give: `{"_kpos":"AAAA","a":1}`},
		{name: "declarative, including other fields", cfg: Config{Transform: &TransformConfig{Include: []string{"a"}}}, give: `{"_kpos":"AAAA","a":1}`},
		{name: "custom transform", give: `{"a":1}`, transform: fixedTransform(map[string]func(*Record) []Item{`{"a":1}`: func(r *Record) []Item {
			return []Item{keyed(r, Item{AttrPosition: &types.AttributeValueMemberB{Value: []byte{1}}})}
		}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runBatch(t, tt.cfg, tt.transform, payloads{`{"ok":0}`, tt.give})
			if out.failure != "" {
				t.Fatalf("reported %s", out.failure)
			}
			if got := out.reason(id(1)); !strings.Contains(got, reserved) {
				t.Errorf("reason %q, want %q", got, reserved)
			}
			if len(out.dataItems(seq(1), 0)) != 0 || len(out.db.tables[testTable]) != 1 {
				t.Errorf("data table holds %d items, want only record 0's", len(out.db.tables[testTable]))
			}
		})
	}
	for _, cfg := range []Config{
		{PartitionKey: KeyAttribute{Name: AttrPosition, Type: AttributeTypeString, Source: SourceEventID}},
		{Transform: &TransformConfig{Rename: map[string]string{"a": AttrPosition}}},
		{Transform: &TransformConfig{TTL: &TTLConfig{Attribute: AttrPosition, Seconds: 60}}},
	} {
		if err := cfg.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), AttrPosition) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", cfg, err, AttrPosition)
		}
	}
}

// TestRecordPosition: the position comes from the record's shard, sequence number and user record index; a record
// whose position cannot be recorded goes to the error table; a plain record whose event id names a user record
// (rebuilt from its error item) keeps that user record's position.
func TestRecordPosition(t *testing.T) {
	ev := event(`{"a":0}`, `{"a":1}`, `{"a":2}`, `{"a":3}`)
	ev.Records[1].EventID = testShard + ":" + seq(1) + "#7"
	ev.Records[2].Kinesis.SequenceNumber = "12x"
	ev.Records[2].EventID = testShard + ":12x"
	ev.Records[3].EventID = ""
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	p := newTestProcessor(t, db)
	resp, err := p.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle: %v, %v", resp.BatchItemFailures, err)
	}
	out := batchOutcome{db: db}
	if len(out.dataItems(seq(0), 0)) != 1 || len(out.dataItems(seq(1), 7)) != 1 {
		t.Errorf("positions: %v", db.tables[testTable])
	}
	for _, tc := range []struct{ id, want string }{
		{testShard + ":12x", "position in its shard cannot be recorded: position: the sequence number is not a decimal number"},
		{seq(3), "position in its shard cannot be recorded: position: the shard id is empty"},
	} {
		if got := out.reason(tc.id); !strings.Contains(got, tc.want) {
			t.Errorf("%s: reason %q, want %q", tc.id, got, tc.want)
		}
	}
}

// hostileCase is a record whose failure reason quotes a value: the marker must be in the error table's reason and
// never in the logs.
type hostileCase struct {
	name    string
	cfg     Config
	payload string
	marker  string
	// inReason: the full reason quotes the marker (false when the reason never had it: the test then only guards
	// the logs).
	inReason bool
}

// checkNoValuesLogged runs each case's payload (next to a valid record) and checks the logs and the error table.
func checkNoValuesLogged(t *testing.T, tests []hostileCase, transform Transform) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runBatch(t, tt.cfg, transform, payloads{`{"ok":1}`, tt.payload})
			if out.failure != "" {
				t.Fatalf("reported %s", out.failure)
			}
			reason := out.reason(id(1))
			if reason == "" {
				t.Fatalf("no error item for the record")
			}
			if tt.inReason && !strings.Contains(reason, tt.marker) {
				t.Errorf("reason %q does not quote %q", reason, tt.marker)
			}
			if strings.Contains(out.logs, tt.marker) {
				t.Errorf("logs quote %q:\n%s", tt.marker, out.logs)
			}
			if !strings.Contains(out.logs, "record sent to the error table") || !strings.Contains(out.logs, `"reason":`) {
				t.Errorf("no per-record log line with a reason:\n%s", out.logs)
			}
		})
	}
}

// TestLogsNeverQuoteValues (issue 12, finding 4): log lines name the attribute path and the rule broken, never a
// value; the error table keeps the full reason.
func TestLogsNeverQuoteValues(t *testing.T) {
	byName := Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: "name"}}
	checkNoValuesLogged(t, []hostileCase{
		{name: "number with too many digits", payload: `{"v": 31415926535897932384626433832795028841971}`, marker: "31415926535897932384626433832795028841971", inReason: true},
		{name: "number out of range", payload: `{"v": 27182818284e200}`, marker: "27182818284", inReason: true},
		{name: "number in a set", payload: `{"v": [1, 2, 16180339887e300]}`, marker: "16180339887", inReason: true},
		{name: "invalid JSON character", payload: `{"a": ☃}`, marker: "☃", inReason: true},
		{name: "payload quoted in a key error", cfg: byName, payload: `{"name": {"MARKER-KEY-1": 1}}`, marker: "MARKER-KEY-1"},
		{name: "unpaired surrogate", payload: `{"a": "\ud800MARKER-SURROGATE"}`, marker: "MARKER-SURROGATE"},
	}, nil)
	permanentQuoting := func(_ context.Context, r *Record) ([]Item, error) {
		if _, ok := r.Data["ok"]; ok {
			return []Item{{"id": s(r.EventID)}}, nil
		}
		return nil, Permanent(errorString("order MARKER-USER-ERR has no line"))
	}
	checkNoValuesLogged(t, []hostileCase{
		{name: "a transform's own permanent error", payload: `{"x":1}`, marker: "MARKER-USER-ERR", inReason: true},
	}, permanentQuoting)
}
