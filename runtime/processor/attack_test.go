package processor_test

// Adversarial tests: hostile payloads, hostile transforms, hostile KPL aggregates and a hostile database, run through
// the real SDK client against the DynamoDB stand-in answering itself, with outcomes read back from the stand-in's
// storage and compared with what the payload says, decoded by encoding/json (not by the processor's parser). None of
// the package's internal helpers is used as an oracle.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// atkMarker is put in payload values; no log line may hold it.
const atkMarker = "Zq7MARKERx9"

// atkRec is one Kinesis record of a test batch.
type atkRec struct {
	shard string
	seq   string
	pk    string
	data  []byte
}

func (r atkRec) eventID() string { return r.shard + ":" + r.seq }

// atkEvent builds a Kinesis event from recs.
func atkEvent(recs []atkRec) events.KinesisEvent {
	var ev events.KinesisEvent
	for _, r := range recs {
		pk := r.pk
		if pk == "" {
			pk = "pk"
		}
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			EventID:     r.eventID(),
			EventSource: "aws:kinesis",
			Kinesis: events.KinesisRecord{
				Data:                        r.data,
				PartitionKey:                pk,
				SequenceNumber:              r.seq,
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Unix(1700000000, 0)},
			},
		})
	}
	return ev
}

// atkSeq returns the i-th sequence number of a shard: 56-digit decimal strings, increasing with i.
func atkSeq(i int) string { return fmt.Sprintf("4959%052d", 1000+i) }

// atkLogs is a concurrency-safe log sink.
type atkLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *atkLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *atkLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// atkEnv is a stand-in, a client for it and fresh table names.
type atkEnv struct {
	s                *dynamostandin.Server
	client           *dynamodb.Client
	table, errTable  string
	logs             *atkLogs
	metrics          *atkLogs
	defaultProcessor func(t *testing.T, db processor.DB, fns ...func(*processor.Options)) *processor.Processor
}

var atkTableN struct {
	mu sync.Mutex
	n  int
}

func atkTables() (string, string) {
	atkTableN.mu.Lock()
	defer atkTableN.mu.Unlock()
	atkTableN.n++
	return fmt.Sprintf("atk-data-%d", atkTableN.n), fmt.Sprintf("atk-errors-%d", atkTableN.n)
}

// newAtkEnv starts a stand-in with opts (KeyAttributes for the data table may be set through keyAttrs).
func newAtkEnv(t *testing.T, opts dynamostandin.Options, keyAttrs ...string) *atkEnv {
	t.Helper()
	table, errTable := atkTables()
	if len(keyAttrs) > 0 {
		opts.KeyAttributes = map[string][]string{table: keyAttrs}
	}
	s := dynamostandin.New(opts)
	t.Cleanup(s.Close)
	client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(s.URL())
	})
	e := &atkEnv{s: s, client: client, table: table, errTable: errTable, logs: &atkLogs{}, metrics: &atkLogs{}}
	return e
}

// processor builds a processor writing through db (the env's client when nil) to the env's tables.
func (e *atkEnv) processor(t *testing.T, db processor.DB, fns ...func(*processor.Options)) *processor.Processor {
	t.Helper()
	if db == nil {
		db = e.client
	}
	p, err := processor.New(db, append([]func(*processor.Options){func(o *processor.Options) {
		o.TableName, o.ErrorTableName = e.table, e.errTable
		o.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.MetricsWriter = e.metrics
		o.Now = func() time.Time { return time.Unix(1700000100, 0) }
	}}, fns...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// atkAcked reports whether the record with sequence number seq is acknowledged by resp: no failure is reported, or
// the reported one is above seq.
func atkAcked(resp events.KinesisEventResponse, seq string) bool {
	if len(resp.BatchItemFailures) == 0 {
		return true
	}
	a, _ := new(big.Int).SetString(seq, 10)
	f, ok := new(big.Int).SetString(resp.BatchItemFailures[0].ItemIdentifier, 10)
	if !ok {
		return false
	}
	return a.Cmp(f) < 0
}

// atkFindS returns the items of table whose attribute name is the string value.
func (e *atkEnv) atkFindS(table, name, value string) []dynamostandin.Item {
	var out []dynamostandin.Item
	for _, it := range e.s.Items(table) {
		if v, ok := it[name].(*types.AttributeValueMemberS); ok && v.Value == value {
			out = append(out, it)
		}
	}
	return out
}

// errorPayload returns the raw payload the error table holds for id, or an error when there is none or it does not
// reassemble.
func (e *atkEnv) errorPayload(id string) ([]byte, dynamostandin.Item, error) {
	items := e.atkFindS(e.errTable, "id", id)
	if len(items) != 1 {
		return nil, nil, fmt.Errorf("%d error items with id %q", len(items), id)
	}
	it := items[0]
	enc, _ := it["payloadEncoding"].(*types.AttributeValueMemberS)
	if enc == nil {
		return nil, it, fmt.Errorf("error item %q has no payloadEncoding", id)
	}
	switch enc.Value {
	case "raw":
		b, _ := it["payload"].(*types.AttributeValueMemberB)
		if b == nil {
			return nil, it, fmt.Errorf("error item %q: raw without payload", id)
		}
		return b.Value, it, nil
	case "gzip":
		b, _ := it["payload"].(*types.AttributeValueMemberB)
		if b == nil {
			return nil, it, fmt.Errorf("error item %q: gzip without payload", id)
		}
		zr, err := gzip.NewReader(bytes.NewReader(b.Value))
		if err != nil {
			return nil, it, err
		}
		out, err := io.ReadAll(zr)
		return out, it, err
	case "parts":
		n, _ := it["payloadParts"].(*types.AttributeValueMemberN)
		if n == nil {
			return nil, it, fmt.Errorf("error item %q: parts without payloadParts", id)
		}
		k, err := strconv.Atoi(n.Value)
		if err != nil {
			return nil, it, err
		}
		var out []byte
		for i := 1; i <= k; i++ {
			parts := e.atkFindS(e.errTable, "id", id+"#part-"+strconv.Itoa(i))
			if len(parts) != 1 {
				return nil, it, fmt.Errorf("error item %q: part %d missing", id, i)
			}
			b, _ := parts[0]["payload"].(*types.AttributeValueMemberB)
			if b == nil {
				return nil, it, fmt.Errorf("error item %q: part %d without payload", id, i)
			}
			out = append(out, b.Value...)
		}
		sum := sha256.Sum256(out)
		if h, _ := it["payloadSha256"].(*types.AttributeValueMemberS); h == nil || h.Value != hex.EncodeToString(sum[:]) {
			return nil, it, fmt.Errorf("error item %q: parts do not match payloadSha256", id)
		}
		return out, it, nil
	}
	return nil, it, fmt.Errorf("error item %q: unknown encoding %q", id, enc.Value)
}

// atkMetaNames are attributes the default transform adds.
var atkMetaNames = map[string]bool{
	"_kpos": true, "_kinesisSequenceNumber": true, "_kinesisPartitionKey": true, "_kinesisArrivalTime": true,
	"_processedAt": true,
}

// atkEqual compares a stored attribute value with a value encoding/json decoded (UseNumber): numbers by value.
func atkEqual(av types.AttributeValue, v any) error {
	switch x := v.(type) {
	case nil:
		if n, ok := av.(*types.AttributeValueMemberNULL); !ok || !n.Value {
			return fmt.Errorf("want NULL, stored %T", av)
		}
	case bool:
		if b, ok := av.(*types.AttributeValueMemberBOOL); !ok || b.Value != x {
			return fmt.Errorf("want BOOL %v, stored %#v", x, av)
		}
	case string:
		if s, ok := av.(*types.AttributeValueMemberS); !ok || s.Value != x {
			return fmt.Errorf("want S %q, stored %#v", x, av)
		}
	case json.Number:
		n, ok := av.(*types.AttributeValueMemberN)
		if !ok {
			return fmt.Errorf("want N %s, stored %T", x, av)
		}
		a, ok1 := new(big.Rat).SetString(string(x))
		b, ok2 := new(big.Rat).SetString(n.Value)
		if !ok1 || !ok2 || a.Cmp(b) != 0 {
			return fmt.Errorf("want N %s, stored N %s", x, n.Value)
		}
	case []any:
		l, ok := av.(*types.AttributeValueMemberL)
		if !ok || len(l.Value) != len(x) {
			return fmt.Errorf("want L of %d, stored %T", len(x), av)
		}
		for i := range x {
			if err := atkEqual(l.Value[i], x[i]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	case map[string]any:
		m, ok := av.(*types.AttributeValueMemberM)
		if !ok {
			return fmt.Errorf("want M, stored %T", av)
		}
		if len(m.Value) != len(x) {
			return fmt.Errorf("want M of %d, stored M of %d", len(x), len(m.Value))
		}
		for k, e := range x {
			got, ok := m.Value[k]
			if !ok {
				return fmt.Errorf("key %q missing", k)
			}
			if err := atkEqual(got, e); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
		}
	default:
		return fmt.Errorf("unexpected decoded %T", v)
	}
	return nil
}

// atkCheckDefault checks a record processed by the default transform: acknowledged implies its item (id = event id)
// holds exactly the payload's attributes, or the error table holds its raw payload. It returns where it is:
// "data", "error" or "reported".
func (e *atkEnv) atkCheckDefault(t *testing.T, resp events.KinesisEventResponse, r atkRec) string {
	t.Helper()
	items := e.atkFindS(e.table, "id", r.eventID())
	raw, errItem, perr := e.errorPayload(r.eventID())
	if !atkAcked(resp, r.seq) {
		return "reported"
	}
	switch {
	case len(items) == 1 && errItem == nil:
		var want map[string]any
		dec := json.NewDecoder(bytes.NewReader(r.data))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Errorf("record %s: stored in the data table, but encoding/json rejects its payload: %v", r.seq, err)
			return "data"
		}
		got := items[0]
		for k := range got {
			if _, inPayload := want[k]; !inPayload && !atkMetaNames[k] && k != "id" {
				t.Errorf("record %s: stored attribute %q is not in the payload", r.seq, abbrev(k))
			}
		}
		for k, v := range want {
			if atkMetaNames[k] || k == "id" {
				continue
			}
			av, ok := got[k]
			if !ok {
				t.Errorf("record %s: payload attribute %q not stored", r.seq, abbrev(k))
				continue
			}
			if err := atkEqual(av, v); err != nil {
				t.Errorf("record %s: attribute %q: %v", r.seq, abbrev(k), err)
			}
		}
		return "data"
	case len(items) == 0 && errItem != nil:
		if perr != nil {
			t.Errorf("record %s: error item: %v", r.seq, perr)
		} else if !bytes.Equal(raw, r.data) {
			t.Errorf("record %s: the error table's payload differs from the record's (%d vs %d bytes)", r.seq, len(raw), len(r.data))
		}
		return "error"
	}
	t.Errorf("record %s acknowledged: %d data items and error item %v (%v)", r.seq, len(items), errItem != nil, perr)
	return "lost"
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:40] + "..." + strconv.Itoa(len(s))
	}
	return s
}

// atkNoMarker fails when a log line holds the marker.
func atkNoMarker(t *testing.T, logs string) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if i := strings.Index(line, atkMarker); i >= 0 {
			msg := line
			if j := strings.Index(line, `"msg":`); j >= 0 {
				msg = line[j:min(len(line), j+60)]
			}
			t.Errorf("a log line quotes a payload value: %s ... %s", msg, line[max(0, i-80):min(len(line), i+40)])
		}
	}
}

func nest(depth int, leaf string) string {
	return strings.Repeat(`{"a":`, depth) + leaf + strings.Repeat("}", depth)
}

func nestList(depth int, leaf string) string {
	return strings.Repeat(`[`, depth) + leaf + strings.Repeat("]", depth)
}

// TestAttackHostilePayloads sends hostile payloads, each next to a plain neighbour, and checks from the stand-in's
// storage that every record is acknowledged and stored exactly (encoding/json's reading, numbers by value) or in the
// error table with its raw payload, and that no log line quotes a value.
func TestAttackHostilePayloads(t *testing.T) {
	m := `"` + atkMarker + `"`
	bigName := strings.Repeat("n", 65535)
	tooBigName := strings.Repeat("n", 65536)
	// ~400 KB items: a string of 2-byte characters (its JavaScript length is half its UTF-8 size).
	multi := func(bytes int) string { return `{"s":"` + strings.Repeat("é", bytes/2) + `","v":` + m + `}` }
	tests := []struct {
		name    string
		payload string
		want    string // "data", "error" or "" (either)
	}{
		{"nesting 31 maps", nest(31, m), "data"},
		{"nesting 32 maps", nest(32, m), ""},
		{"nesting 33 maps", nest(33, m), "error"},
		{"nesting 40 lists", `{"l":` + nestList(40, m) + `}`, "error"},
		{"nesting 31 lists", `{"l":` + nestList(31, m) + `}`, "data"},
		{"1E+126", `{"n":1E+126,"v":` + m + `}`, "error"},
		{"max number", `{"n":9.9999999999999999999999999999999999999E+125,"v":` + m + `}`, "data"},
		{"min positive", `{"n":1E-130,"v":` + m + `}`, "data"},
		{"below min", `{"n":1E-131,"v":` + m + `}`, "error"},
		{"-1E-130", `{"n":-1E-130,"v":` + m + `}`, "data"},
		{"negative zero", `{"n":-0,"z":-0.0e-5,"v":` + m + `}`, "data"},
		{"39 digits", `{"n":123456789012345678901234567890123456789,"v":` + m + `}`, "error"},
		{"38 digits and zeros", `{"n":12345678901234567890123456789012345678000000,"v":` + m + `}`, "data"},
		{"38 digits fraction", `{"n":0.00012345678901234567890123456789012345678,"v":` + m + `}`, "data"},
		{"huge exponent", `{"n":1e999999999999999999999,"v":` + m + `}`, "error"},
		{"duplicate keys", `{"a":` + m + `,"a":"second"}`, ""},
		{"NFC and NFD keys", `{"\u00e9":` + m + `,"e\u0301":"nfd"}`, "data"},
		{"NUL bytes", `{"a":"x\u0000` + atkMarker + `","\u0000":` + m + `}`, "data"},
		{"lone high surrogate", `{"a":"\ud800` + atkMarker + `"}`, "error"},
		{"lone low surrogate", `{"a":"\udc00","v":` + m + `}`, "error"},
		{"surrogate then letter", `{"a":"\ud800\u0041","v":` + m + `}`, "error"},
		{"surrogate key", `{"\ud83d":` + m + `}`, "error"},
		{"valid pair", `{"a":"\ud83d\ude00","v":` + m + `}`, "data"},
		{"BOM", "\ufeff{\"v\":" + m + "}", "error"},
		{"invalid UTF-8 raw", "{\"v\":\"\xff" + atkMarker + "\"}", "error"},
		{"name of 65535 bytes", `{"` + bigName + `":` + m + `}`, "data"},
		{"name of 65536 bytes", `{"` + tooBigName + `":` + m + `}`, "error"},
		{"nested name of 65536 bytes", `{"m":{"` + tooBigName + `":` + m + `}}`, "error"},
		{"empty name", `{"":` + m + `}`, "error"},
		{"empty nested name", `{"m":{"":` + m + `}}`, ""},
		{"empty object", `{}`, "data"},
		{"empty string and list and map", `{"s":"","l":[],"m":{},"v":` + m + `}`, "data"},
		{"reserved _kpos", `{"_kpos":` + m + `}`, "error"},
		{"nested _kpos", `{"m":{"_kpos":` + m + `}}`, "data"},
		{"metadata names", `{"_kinesisSequenceNumber":` + m + `,"_processedAt":` + m + `}`, ""},
		{"item 399 KB multibyte", multi(399 * 1024), "data"},
		{"item 400 KB multibyte", multi(400*1024 - 60), ""},
		{"item 400 KB + 2 multibyte", multi(400*1024 + 2), "error"},
		{"1 MB incompressible invalid", `{"v":"\ud800","r":"` + base64.StdEncoding.EncodeToString(atkNoise(700*1024)) + `"}`, "error"},
		{"not an object", `[` + m + `]`, "error"},
		{"trailing data", `{"v":` + m + `} {"w":1}`, "error"},
		{"invalid token with marker", `{"v":` + atkMarker + `}`, "error"},
		{"number error with marker key", `{"v":1e999,"w":` + m + `}`, "error"},
	}
	env := newAtkEnv(t, dynamostandin.Options{})
	p := env.processor(t, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := []atkRec{
				{shard: "shardId-000000000001", seq: atkSeq(2 * i), data: []byte(tt.payload)},
				{shard: "shardId-000000000001", seq: atkSeq(2*i + 1), data: []byte(`{"neighbour":` + m + `}`)},
			}
			resp, err := p.Handle(context.Background(), atkEvent(recs))
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if len(resp.BatchItemFailures) != 0 {
				t.Errorf("reported %v: every record can be stored somewhere", resp.BatchItemFailures)
			}
			where := env.atkCheckDefault(t, resp, recs[0])
			t.Logf("stored in %s", where)
			if tt.want != "" && where != tt.want {
				t.Errorf("stored in %q, want %q", where, tt.want)
			}
			if got := env.atkCheckDefault(t, resp, recs[1]); got != "data" {
				t.Errorf("neighbour in %q, want data", got)
			}
		})
	}
	atkNoMarker(t, env.logs.String())
}

// atkNoise returns n pseudo-random bytes (incompressible), deterministic.
func atkNoise(n int) []byte {
	out := make([]byte, 0, n+32)
	seed := sha256.Sum256([]byte("atk"))
	for len(out) < n {
		seed = sha256.Sum256(seed[:])
		out = append(out, seed[:]...)
	}
	return out[:n]
}

// atkAggregate hand-builds a KPL aggregate: the partition key table, then each record's raw protobuf bytes.
func atkAggregate(pkTable []string, recs [][]byte) []byte {
	var msg []byte
	for _, pk := range pkTable {
		msg = protowire.AppendTag(msg, 1, protowire.BytesType)
		msg = protowire.AppendString(msg, pk)
	}
	for _, r := range recs {
		msg = protowire.AppendTag(msg, 3, protowire.BytesType)
		msg = protowire.AppendBytes(msg, r)
	}
	return atkSeal(msg)
}

// atkSeal adds the magic prefix and the MD5 trailer to a protobuf message.
func atkSeal(msg []byte) []byte {
	out := append([]byte(kpl.Magic), msg...)
	sum := atkMD5(msg)
	return append(out, sum...)
}

// atkUserRecord encodes one Record message field by field: fields are (number, value) pairs, a uint64 value as a
// varint and a []byte value as length-delimited.
func atkUserRecord(fields ...any) []byte {
	var b []byte
	for i := 0; i < len(fields); i += 2 {
		num := protowire.Number(fields[i].(int))
		switch v := fields[i+1].(type) {
		case uint64:
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, v)
		case []byte:
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendBytes(b, v)
		}
	}
	return b
}

// TestAttackKPL sends hostile aggregates: thousands of user records with keys repeated across them, partition keys
// that are huge or not valid UTF-8, and protobuf that is valid but odd (repeated scalar fields, unknown fields).
func TestAttackKPL(t *testing.T) {
	const shard = "shardId-000000000007"
	t.Run("thousands of user records, keys repeated", func(t *testing.T) {
		env := newAtkEnv(t, dynamostandin.Options{}, "k")
		p := env.processor(t, nil, func(o *processor.Options) {
			o.Config = processor.Config{PartitionKey: processor.KeyAttribute{Name: "k", Type: processor.AttributeTypeNumber, Source: "k"}}
		})
		const n = 3000
		var urs []kpl.UserRecord
		last := map[int]int{} // key -> index of the last user record with it
		forms := []string{"%d", "%d.0", "%d.00e0", "%de0"}
		for i := range n {
			k := i % 97
			data := fmt.Sprintf(`{"k":`+forms[i%len(forms)]+`,"i":%d}`, k, i)
			urs = append(urs, kpl.UserRecord{PartitionKey: "pk-" + strconv.Itoa(i%5), Data: []byte(data)})
			last[k] = i
		}
		rec := atkRec{shard: shard, seq: atkSeq(1), data: kpl.Aggregate(urs)}
		resp, err := p.Handle(context.Background(), atkEvent([]atkRec{rec}))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle: %v %v", resp, err)
		}
		items := env.s.Items(env.table)
		if len(items) != len(last) {
			t.Fatalf("%d items stored, want %d", len(items), len(last))
		}
		for _, it := range items {
			kv, _ := it["k"].(*types.AttributeValueMemberN)
			iv, _ := it["i"].(*types.AttributeValueMemberN)
			if kv == nil || iv == nil {
				t.Fatalf("item without k or i: %v", it)
			}
			kr, _ := new(big.Rat).SetString(kv.Value)
			if !kr.IsInt() {
				t.Fatalf("key %s is not an integer", kv.Value)
			}
			k := int(kr.Num().Int64())
			if iv.Value != strconv.Itoa(last[k]) {
				t.Errorf("key %d holds user record %s, want the last one, %d", k, iv.Value, last[k])
			}
		}
	})

	t.Run("huge and invalid partition keys", func(t *testing.T) {
		env := newAtkEnv(t, dynamostandin.Options{})
		p := env.processor(t, nil, func(o *processor.Options) { o.Config.Metadata = []string{processor.AttrPartitionKey} })
		hugePK := strings.Repeat("p", 300*1024)
		invalidPK := "pk\xff\xfe" + atkMarker
		urs := []kpl.UserRecord{
			{PartitionKey: hugePK, Data: []byte(`{"v":"` + strings.Repeat("x", 150*1024) + `"}`)},
			{PartitionKey: invalidPK, Data: []byte(`{"v":"` + atkMarker + `"}`)},
			{PartitionKey: invalidPK[:3], Data: []byte(`{"v":"` + atkMarker + `"}`)},
			{PartitionKey: hugePK + "\xff", Data: []byte(`not json ` + atkMarker)},
		}
		rec := atkRec{shard: shard, seq: atkSeq(1), data: kpl.Aggregate(urs)}
		resp, err := p.Handle(context.Background(), atkEvent([]atkRec{rec}))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle: %v %v (every user record can be stored somewhere)", resp, err)
		}
		// 0: data item > 400 KB because of its partition key: error table, partition key bounded and hashed.
		raw, it, perr := env.errorPayload(rec.eventID() + "#0")
		if perr != nil || !bytes.Equal(raw, urs[0].Data) {
			t.Fatalf("user record 0: %v", perr)
		}
		sum := sha256.Sum256([]byte(hugePK))
		if h, _ := it["partitionKeySha256"].(*types.AttributeValueMemberS); h == nil || h.Value != hex.EncodeToString(sum[:]) {
			t.Errorf("user record 0: partitionKeySha256 %v", it["partitionKeySha256"])
		}
		if s, _ := it["partitionKeySize"].(*types.AttributeValueMemberN); s == nil || s.Value != strconv.Itoa(len(hugePK)) {
			t.Errorf("user record 0: partitionKeySize %v", it["partitionKeySize"])
		}
		if pk, _ := it["partitionKey"].(*types.AttributeValueMemberS); pk == nil || !strings.HasPrefix(hugePK, pk.Value) || len(pk.Value) == 0 {
			t.Errorf("user record 0: partitionKey is not a prefix of the key")
		}
		// 1 and 2: stored, the partition key as binary, byte for byte.
		for j, pk := range []string{invalidPK, invalidPK[:3]} {
			items := env.atkFindS(env.table, "id", rec.eventID()+"#"+strconv.Itoa(j+1))
			if len(items) != 1 {
				t.Fatalf("user record %d: %d items", j+1, len(items))
			}
			b, _ := items[0]["_kinesisPartitionKey"].(*types.AttributeValueMemberB)
			if b == nil || string(b.Value) != pk {
				t.Errorf("user record %d: _kinesisPartitionKey %#v, want the raw bytes", j+1, items[0]["_kinesisPartitionKey"])
			}
		}
		// 3: not JSON, partition key huge and invalid: error table, partitionKey binary, bounded.
		raw, it, perr = env.errorPayload(rec.eventID() + "#3")
		if perr != nil || !bytes.Equal(raw, urs[3].Data) {
			t.Fatalf("user record 3: %v", perr)
		}
		if _, ok := it["partitionKey"]; !ok {
			t.Errorf("user record 3: no partitionKey")
		}
		sum = sha256.Sum256([]byte(hugePK + "\xff"))
		if h, _ := it["partitionKeySha256"].(*types.AttributeValueMemberS); h == nil || h.Value != hex.EncodeToString(sum[:]) {
			t.Errorf("user record 3: partitionKeySha256 %v", it["partitionKeySha256"])
		}
		atkNoMarker(t, env.logs.String())
	})

	t.Run("partition key as the table key, not valid UTF-8", func(t *testing.T) {
		env := newAtkEnv(t, dynamostandin.Options{}, "pk")
		p := env.processor(t, nil, func(o *processor.Options) {
			o.Config = processor.Config{PartitionKey: processor.KeyAttribute{Name: "pk", Type: processor.AttributeTypeString, Source: processor.SourcePartitionKey}}
		})
		// Two keys differing only in invalid bytes would become one item if sent as strings.
		urs := []kpl.UserRecord{
			{PartitionKey: "k\xff", Data: []byte(`{"v":1}`)},
			{PartitionKey: "k\xfe", Data: []byte(`{"v":2}`)},
			{PartitionKey: "k\ufffd", Data: []byte(`{"v":3}`)},
		}
		rec := atkRec{shard: shard, seq: atkSeq(1), data: kpl.Aggregate(urs)}
		resp, err := p.Handle(context.Background(), atkEvent([]atkRec{rec}))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle: %v %v", resp, err)
		}
		for j := range 2 {
			raw, it, perr := env.errorPayload(rec.eventID() + "#" + strconv.Itoa(j))
			if perr != nil || !bytes.Equal(raw, urs[j].Data) {
				t.Fatalf("user record %d: %v", j, perr)
			}
			if b, _ := it["partitionKey"].(*types.AttributeValueMemberB); b == nil || string(b.Value) != urs[j].PartitionKey {
				t.Errorf("user record %d: partitionKey %#v, want its bytes", j, it["partitionKey"])
			}
		}
		items := env.atkFindS(env.table, "pk", "k\ufffd")
		if len(items) != 1 {
			t.Fatalf("%d items under k\\ufffd, want 1", len(items))
		}
		if v, _ := items[0]["v"].(*types.AttributeValueMemberN); v == nil || v.Value != "3" {
			t.Errorf("k\\ufffd holds %v, want user record 2's", items[0]["v"])
		}
	})

	t.Run("odd protobuf", func(t *testing.T) {
		env := newAtkEnv(t, dynamostandin.Options{})
		p := env.processor(t, nil, func(o *processor.Options) { o.Config.Metadata = []string{processor.AttrPartitionKey} })
		recs := [][]byte{
			// data twice and the partition key index twice: protobuf keeps the last of each.
			atkUserRecord(1, uint64(0), 3, []byte(`{"v":"first"}`), 3, []byte(`{"v":"last"}`), 1, uint64(1)),
			// unknown fields (varint, bytes, a tag message) around the required ones.
			atkUserRecord(9, uint64(7), 1, uint64(0), 15, []byte("junk"), 3, []byte(`{"v":"ok"}`), 4, []byte{0x0a, 0x01, 'k'}),
		}
		agg := atkAggregate([]string{"pk-a", "pk-b"}, recs)
		bad := atkAggregate([]string{"pk-a"}, [][]byte{atkUserRecord(1, uint64(5), 3, []byte(`{}`))}) // index out of range
		in := []atkRec{{shard: shard, seq: atkSeq(1), data: agg}, {shard: shard, seq: atkSeq(2), data: bad}}
		resp, err := p.Handle(context.Background(), atkEvent(in))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle: %v %v", resp, err)
		}
		want := map[string][2]string{"#0": {"last", "pk-b"}, "#1": {"ok", "pk-a"}}
		for suffix, w := range want {
			items := env.atkFindS(env.table, "id", in[0].eventID()+suffix)
			if len(items) != 1 {
				t.Fatalf("user record %s: %d items", suffix, len(items))
			}
			if v, _ := items[0]["v"].(*types.AttributeValueMemberS); v == nil || v.Value != w[0] {
				t.Errorf("user record %s: v = %v, want %q", suffix, items[0]["v"], w[0])
			}
			if v, _ := items[0]["_kinesisPartitionKey"].(*types.AttributeValueMemberS); v == nil || v.Value != w[1] {
				t.Errorf("user record %s: partition key %v, want %q", suffix, items[0]["_kinesisPartitionKey"], w[1])
			}
		}
		raw, _, perr := env.errorPayload(in[1].eventID())
		if perr != nil || !bytes.Equal(raw, bad) {
			t.Errorf("unreadable aggregate: %v", perr)
		}
	})
}

func atkMD5(b []byte) []byte {
	s := md5.Sum(b)
	return s[:]
}

// atkKeyed returns a transform that builds each record's item from hostile(i) for record i (its index in the
// event, read from the payload's "i"), keyed by the event id under "id".
func atkKeyed(hostile func(i int, r *processor.Record) ([]processor.Item, error)) processor.Transform {
	return func(_ context.Context, r *processor.Record) ([]processor.Item, error) {
		n, _ := r.Data["i"].(json.Number)
		i, _ := strconv.Atoi(string(n))
		return hostile(i, r)
	}
}

// TestAttackTransformItems has a Go transform return hostile items: the reserved position attribute, typed nils nested
// in lists and maps, nil items and maps, invalid UTF-8 in set members and map keys, NULL false. Each bad record must
// land in the error table with its raw payload, the good ones in the data table, and Handle must not panic.
func TestAttackTransformItems(t *testing.T) {
	id := func(r *processor.Record) types.AttributeValue { return &types.AttributeValueMemberS{Value: r.EventID} }
	tests := []struct {
		name string
		item func(r *processor.Record) []processor.Item
		want string // "data", "error" or "skipped"
	}{
		{"plain", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "v": &types.AttributeValueMemberS{Value: atkMarker}}}
		}, "data"},
		{"_kpos binary", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "_kpos": &types.AttributeValueMemberB{Value: []byte{0xff}}}}
		}, "error"},
		{"_kpos in the second item", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r)}, {"id": &types.AttributeValueMemberS{Value: r.EventID + "b"}, "_kpos": &types.AttributeValueMemberS{Value: atkMarker}}}
		}, "error"},
		{"_kpos nested", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"_kpos": &types.AttributeValueMemberS{Value: atkMarker}}}}}
		}, "data"},
		{"typed nil in L", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "l": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: atkMarker}, (*types.AttributeValueMemberN)(nil)}}}}
		}, "error"},
		{"typed nil in M in L", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "l": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"x": (*types.AttributeValueMemberM)(nil)}}}}}}
		}, "error"},
		{"nil interface in M", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"x": nil}}}}
		}, "error"},
		{"typed nil key", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": (*types.AttributeValueMemberS)(nil)}}
		}, "error"},
		{"nil item", func(r *processor.Record) []processor.Item { return []processor.Item{nil} }, "error"},
		{"nil item after a good one", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r)}, nil}
		}, "error"},
		{"no items", func(r *processor.Record) []processor.Item { return nil }, "skipped"},
		{"nil map in M", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "m": &types.AttributeValueMemberM{}, "l": &types.AttributeValueMemberL{}}}
		}, "data"},
		{"NULL false", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "n": &types.AttributeValueMemberNULL{Value: false}}}
		}, "error"},
		{"SS invalid UTF-8", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "ss": &types.AttributeValueMemberSS{Value: []string{"a\xff", "a\xfe"}}}}
		}, "error"},
		{"SS empty", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "ss": &types.AttributeValueMemberSS{}}}
		}, "error"},
		{"NS duplicates by value", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "ns": &types.AttributeValueMemberNS{Value: []string{"1", "1.0"}}}}
		}, "error"},
		{"BS and SS same bytes", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "bs": &types.AttributeValueMemberBS{Value: [][]byte{[]byte("a"), []byte("b")}}, "ss": &types.AttributeValueMemberSS{Value: []string{"a", "b"}}}}
		}, "data"},
		{"map key invalid UTF-8", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k\xff": &types.AttributeValueMemberS{Value: atkMarker}}}}}
		}, "error"},
		{"name invalid UTF-8", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "n\xff": &types.AttributeValueMemberS{Value: atkMarker}}}
		}, "error"},
		{"key invalid UTF-8", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": &types.AttributeValueMemberS{Value: r.EventID + "\xff"}}}
		}, "error"},
		{"unknown union member", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "u": &types.UnknownUnionMember{Tag: "X", Value: []byte(atkMarker)}}}
		}, "error"},
		{"number with marker", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "n": &types.AttributeValueMemberN{Value: atkMarker}}}
		}, "error"},
		{"number 1E+126 in NS", func(r *processor.Record) []processor.Item {
			return []processor.Item{{"id": id(r), "ns": &types.AttributeValueMemberNS{Value: []string{"1E+126"}}}}
		}, "error"},
	}
	env := newAtkEnv(t, dynamostandin.Options{})
	p := env.processor(t, nil, func(o *processor.Options) {
		o.Transform = atkKeyed(func(i int, r *processor.Record) ([]processor.Item, error) { return tests[i].item(r), nil })
	})
	var recs []atkRec
	for i := range tests {
		recs = append(recs, atkRec{shard: "shardId-000000000003", seq: atkSeq(i), data: []byte(fmt.Sprintf(`{"i":%d,"v":"%s"}`, i, atkMarker))})
	}
	resp, err := p.Handle(context.Background(), atkEvent(recs))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("reported %v: every record can be stored somewhere", resp.BatchItemFailures)
	}
	for i, tt := range tests {
		items := env.atkFindS(env.table, "id", recs[i].eventID())
		raw, errItem, perr := env.errorPayload(recs[i].eventID())
		got := "skipped"
		switch {
		case len(items) == 1 && errItem == nil:
			got = "data"
			if pos, ok := items[0]["_kpos"].(*types.AttributeValueMemberB); !ok || len(pos.Value) < 2 || string(pos.Value[1:1+int(pos.Value[0])]) != "shardId-000000000003" {
				t.Errorf("%s: stored without the processor's position: %#v", tt.name, items[0]["_kpos"])
			}
		case len(items) == 0 && errItem != nil:
			got = "error"
			if perr != nil || !bytes.Equal(raw, recs[i].data) {
				t.Errorf("%s: error item: %v", tt.name, perr)
			}
		case len(items) != 0 || errItem != nil:
			got = fmt.Sprintf("%d data items and an error item", len(items))
		}
		if got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	atkNoMarker(t, env.logs.String())
}

// atkLyingDB forwards writes to the stand-in but answers BatchWriteItem as a hostile or unusual DynamoDB might:
// it withholds the request's first item (never sends it) and reports it unprocessed in a form chosen by answer.
type atkLyingDB struct {
	*dynamodb.Client
	answer func(table string, withheld types.WriteRequest) map[string][]types.WriteRequest
	mu     sync.Mutex
	calls  int
}

func (d *atkLyingDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	d.mu.Lock()
	d.calls++
	first := d.calls == 1
	d.mu.Unlock()
	if !first {
		return d.Client.BatchWriteItem(ctx, in, optFns...)
	}
	var table string
	var reqs []types.WriteRequest
	for name, r := range in.RequestItems {
		table, reqs = name, r
	}
	withheld := reqs[0]
	rest := &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs[1:]}}
	if len(reqs) > 1 {
		if _, err := d.Client.BatchWriteItem(ctx, rest, optFns...); err != nil {
			return nil, err
		}
	}
	return &dynamodb.BatchWriteItemOutput{UnprocessedItems: d.answer(table, withheld)}, nil
}

// atkRekey returns a copy of w whose item's key attribute name holds v.
func atkRekey(w types.WriteRequest, name string, v types.AttributeValue) types.WriteRequest {
	it := processor.Item{}
	for k, x := range w.PutRequest.Item {
		it[k] = x
	}
	it[name] = v
	return types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
}

// TestAttackUnprocessedItems has the database withhold an item and report it unprocessed under a rewritten key, with
// extra entries, under another table, as a delete, or under an equal number written differently: every record must
// end stored (the processor writes what it cannot match one by one), none acknowledged and missing.
func TestAttackUnprocessedItems(t *testing.T) {
	tests := []struct {
		name   string
		numKey bool
		answer func(table string, w types.WriteRequest) map[string][]types.WriteRequest
	}{
		{"rewritten key", false, func(table string, w types.WriteRequest) map[string][]types.WriteRequest {
			id := w.PutRequest.Item["id"].(*types.AttributeValueMemberS).Value
			return map[string][]types.WriteRequest{table: {atkRekey(w, "id", &types.AttributeValueMemberS{Value: id + "\ufffd"})}}
		}},
		{"unknown key", false, func(table string, w types.WriteRequest) map[string][]types.WriteRequest {
			// claims nothing of the withheld item, but an unknown key: must not count the withheld item stored.
			return map[string][]types.WriteRequest{table: {atkRekey(w, "id", &types.AttributeValueMemberS{Value: "not-sent"})}}
		}},
		{"extra entries", false, func(table string, w types.WriteRequest) map[string][]types.WriteRequest {
			return map[string][]types.WriteRequest{table: {w, w}}
		}},
		{"another table", false, func(table string, w types.WriteRequest) map[string][]types.WriteRequest {
			return map[string][]types.WriteRequest{table + "-other": {w}}
		}},
		{"as a delete", false, func(table string, w types.WriteRequest) map[string][]types.WriteRequest {
			return map[string][]types.WriteRequest{table: {{DeleteRequest: &types.DeleteRequest{Key: processor.Item{"id": w.PutRequest.Item["id"]}}}}}
		}},
		{"key without its attribute", false, func(table string, w types.WriteRequest) map[string][]types.WriteRequest {
			it := processor.Item{"x": &types.AttributeValueMemberS{Value: "y"}}
			return map[string][]types.WriteRequest{table: {{PutRequest: &types.PutRequest{Item: it}}}}
		}},
		{"equal number written differently", true, func(table string, w types.WriteRequest) map[string][]types.WriteRequest {
			n := w.PutRequest.Item["k"].(*types.AttributeValueMemberN).Value
			return map[string][]types.WriteRequest{table: {atkRekey(w, "k", &types.AttributeValueMemberN{Value: n + ".000e0"})}}
		}},
		{"empty list for the table", false, func(table string, w types.WriteRequest) map[string][]types.WriteRequest {
			// claims everything processed while the first item was withheld: indistinguishable from success, so
			// only the processor's later check could find it. Expected outcome: the withheld record is lost; this
			// case documents that the processor trusts an empty answer (as it must) and is checked below.
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env *atkEnv
			var fns []func(*processor.Options)
			if tt.numKey {
				env = newAtkEnv(t, dynamostandin.Options{}, "k")
				fns = append(fns, func(o *processor.Options) {
					o.Config = processor.Config{PartitionKey: processor.KeyAttribute{Name: "k", Type: processor.AttributeTypeNumber, Source: "k"}}
				})
			} else {
				env = newAtkEnv(t, dynamostandin.Options{})
			}
			db := &atkLyingDB{Client: env.client, answer: tt.answer}
			p := env.processor(t, db, fns...)
			var recs []atkRec
			for i := range 30 {
				recs = append(recs, atkRec{shard: "shardId-000000000004", seq: atkSeq(i), data: []byte(fmt.Sprintf(`{"k":%d,"v":"%s"}`, i+1, atkMarker))})
			}
			resp, err := p.Handle(context.Background(), atkEvent(recs))
			if err != nil {
				t.Fatal(err)
			}
			stored := env.s.Items(env.table)
			acked := 0
			for _, r := range recs {
				if atkAcked(resp, r.seq) {
					acked++
				}
			}
			if tt.name == "empty list for the table" {
				// The lie cannot be detected: the first record is acknowledged and missing. Assert exactly that, so
				// a change in this behaviour is noticed.
				if acked != len(recs) || len(stored) != len(recs)-1 {
					t.Errorf("acked %d, stored %d", acked, len(stored))
				}
				return
			}
			if len(stored) < acked {
				t.Errorf("%d records acknowledged, %d items stored", acked, len(stored))
			}
			if len(resp.BatchItemFailures) != 0 || len(stored) != len(recs) {
				t.Errorf("failures %v, %d of %d stored", resp.BatchItemFailures, len(stored), len(recs))
			}
			atkNoMarker(t, env.logs.String())
		})
	}
}

// TestAttackFaultsAndDeadlines replays a batch as Lambda does (from the reported record on) against a stand-in that
// throttles, drops connections after applying, answers partially and slowly, under short invocation deadlines, in
// each write mode. After every invocation, each acknowledged record must be stored (its key's item from it or from a
// later record, or its error item), and in the end every record must be acknowledged.
func TestAttackFaultsAndDeadlines(t *testing.T) {
	modes := []struct {
		name      string
		fn        func(*processor.Options)
		dupKeys   bool
		deadline  time.Duration
		latency   time.Duration
		dropRate  float64
		throttled float64
	}{
		{"plain", func(*processor.Options) {}, true, 400 * time.Millisecond, 10 * time.Millisecond, 0.1, 0.2},
		{"plain, tight deadline", func(*processor.Options) {}, true, 120 * time.Millisecond, 30 * time.Millisecond, 0.05, 0.1},
		{"conditional", func(o *processor.Options) { o.ConditionalWrites = true }, true, 400 * time.Millisecond, 2 * time.Millisecond, 0.1, 0.2},
		// A deadline that fits the whole batch: with a shorter one, the error item of an early record is starved
		// (see TestAttackErrorItemStarved in the review's failing tests).
		{"insert only", func(o *processor.Options) { o.InsertOnly = true }, false, 5 * time.Second, 2 * time.Millisecond, 0.1, 0.2},
	}
	var faults atomic.Int64
	defer func() {
		if faults.Load() == 0 {
			t.Errorf("no faults injected: the test checks nothing")
		}
	}()
	for mi, m := range modes {
		for seed := range 4 {
			t.Run(fmt.Sprintf("%s/seed=%d", m.name, seed), func(t *testing.T) {
				env := newAtkEnv(t, dynamostandin.Options{
					Seed: uint64(mi*100 + seed), Latency: m.latency, LatencyJitter: m.latency, DropRate: m.dropRate, DropAfterApply: true,
					ThrottleRate: m.throttled, UnprocessedRate: 0.3,
				}, "k")
				client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) {
					o.BaseEndpoint = aws.String(env.s.URL())
					o.RetryMaxAttempts = 1
				})
				p := env.processor(t, client, m.fn, func(o *processor.Options) {
					o.Config = processor.Config{PartitionKey: processor.KeyAttribute{Name: "k", Type: processor.AttributeTypeString, Source: "k"}}
				})
				const n = 400
				var recs []atkRec
				keyOf := make([]string, n)
				for i := range n {
					k := fmt.Sprintf("key-%d", i)
					if m.dupKeys {
						k = fmt.Sprintf("key-%d", i%101)
					}
					keyOf[i] = k
					data := fmt.Sprintf(`{"k":"%s","i":%d,"v":"%s"}`, k, i, atkMarker)
					if i%23 == 5 {
						data = `{"k":"` + k + `","bad":1e999}` // permanent: error table
					}
					recs = append(recs, atkRec{shard: "shardId-000000000005", seq: atkSeq(i), data: []byte(data)})
				}
				from := 0
				for round := 0; from < n; round++ {
					if round == 60 {
						t.Fatalf("no progress after %d invocations: stuck at record %d; last log lines:\n%s", round, from, atkTail(env.logs.String(), 6))
					}
					ctx, cancel := context.WithTimeout(context.Background(), m.deadline)
					resp, err := p.Handle(ctx, atkEvent(recs[from:]))
					cancel()
					if err != nil {
						t.Fatalf("Handle: %v", err)
					}
					next := n
					if len(resp.BatchItemFailures) > 0 {
						next = -1
						for i := from; i < n; i++ {
							if recs[i].seq == resp.BatchItemFailures[0].ItemIdentifier {
								next = i
							}
						}
						if next < 0 {
							t.Fatalf("reported %v, not a record of the batch", resp.BatchItemFailures)
						}
					}
					// Every record before next is acknowledged: check it is stored.
					items := env.s.Items(env.table)
					byKey := map[string]dynamostandin.Item{}
					for _, it := range items {
						byKey[it["k"].(*types.AttributeValueMemberS).Value] = it
					}
					for i := 0; i < next; i++ {
						if i%23 == 5 {
							if raw, _, perr := env.errorPayload(recs[i].eventID()); perr != nil || !bytes.Equal(raw, recs[i].data) {
								t.Fatalf("round %d: record %d acknowledged, error item: %v", round, i, perr)
							}
							continue
						}
						it := byKey[keyOf[i]]
						if it == nil {
							t.Fatalf("round %d: record %d acknowledged, key %s not stored", round, i, keyOf[i])
						}
						got, _ := strconv.Atoi(it["i"].(*types.AttributeValueMemberN).Value)
						if got < i {
							t.Fatalf("round %d: record %d acknowledged, key %s holds the earlier record %d", round, i, keyOf[i], got)
						}
					}
					from = next
					t.Logf("round %d: acknowledged up to record %d", round, next)
				}
				st := env.s.Stats()
				t.Logf("%d requests: %d throttled, %d dropped, %d partial", st.Requests, st.Throttled, st.Dropped, st.PartialBatches)
				faults.Add(st.Throttled + st.Dropped + st.PartialBatches)
				// Final state: each key holds its last valid record.
				last := map[string]int{}
				for i := range n {
					if i%23 != 5 {
						last[keyOf[i]] = i
					}
				}
				items := env.s.Items(env.table)
				if len(items) != len(last) {
					t.Errorf("%d items, want %d", len(items), len(last))
				}
				for _, it := range items {
					k := it["k"].(*types.AttributeValueMemberS).Value
					if got := it["i"].(*types.AttributeValueMemberN).Value; got != strconv.Itoa(last[k]) {
						t.Errorf("key %s holds record %s, want %d", k, got, last[k])
					}
				}
				atkNoMarker(t, env.logs.String())
			})
		}
	}
}

// atkTail returns the last n lines of s.
func atkTail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestAttackConditionalAndInsertOnly replays records against items already in the table: ConditionalWrites keeps a
// later record's item of the same shard and any item from another shard (the documented rule), counting the replay
// superseded; InsertOnly counts a rerun of the same record stored and refuses another record's key. Keys are numbers
// written differently for the same value, so only DynamoDB's notion of key equality makes them collide.
func TestAttackConditionalAndInsertOnly(t *testing.T) {
	cfg := processor.Config{PartitionKey: processor.KeyAttribute{Name: "k", Type: processor.AttributeTypeNumber, Source: "k"}}
	rec := func(shard string, i int, k string) atkRec {
		return atkRec{shard: shard, seq: atkSeq(i), data: []byte(fmt.Sprintf(`{"k":%s,"i":%d}`, k, i))}
	}
	const a, b = "shardId-000000000010", "shardId-000000000011"
	stored := func(env *atkEnv) map[string]string { // key (as stored) -> "shard/i"
		out := map[string]string{}
		for _, it := range env.s.Items(env.table) {
			pos := it["_kpos"].(*types.AttributeValueMemberB).Value
			if pos[0] == 0 { // an unverified position (insert-only): the mark, then the position
				pos = pos[1:]
			}
			out[it["k"].(*types.AttributeValueMemberN).Value] = string(pos[1:1+int(pos[0])]) + "/" + it["i"].(*types.AttributeValueMemberN).Value
		}
		return out
	}
	t.Run("conditional", func(t *testing.T) {
		env := newAtkEnv(t, dynamostandin.Options{}, "k")
		p := env.processor(t, nil, func(o *processor.Options) { o.Config, o.ConditionalWrites = cfg, true })
		steps := []struct {
			recs []atkRec
			want string // the item under key 1 afterwards
		}{
			{[]atkRec{rec(a, 5, "1")}, a + "/5"},
			{[]atkRec{rec(a, 3, "1.0")}, a + "/5"},                     // an earlier record of the shard: superseded
			{[]atkRec{rec(a, 7, "10e-1"), rec(a, 8, "1e0")}, a + "/8"}, // later ones: the last wins
			{[]atkRec{rec(b, 900, "1")}, a + "/8"},                     // another shard: superseded, whatever its number
			{[]atkRec{rec(a, 8, "1.00")}, a + "/8"},                    // a rerun of the same record
		}
		for si, st := range steps {
			resp, err := p.Handle(context.Background(), atkEvent(st.recs))
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("step %d: %v %v", si, resp, err)
			}
			got := stored(env)
			if len(got) != 1 {
				t.Fatalf("step %d: %d items, want 1 (keys equal by value): %v", si, len(got), got)
			}
			for _, v := range got {
				if v != st.want {
					t.Errorf("step %d: key 1 holds %s, want %s", si, v, st.want)
				}
			}
		}
		if !strings.Contains(env.logs.String(), "item superseded") {
			t.Errorf("superseded writes not logged")
		}
	})
	t.Run("insert only", func(t *testing.T) {
		env := newAtkEnv(t, dynamostandin.Options{}, "k")
		p := env.processor(t, nil, func(o *processor.Options) { o.Config, o.InsertOnly = cfg, true })
		first := []atkRec{rec(a, 5, "1"), rec(a, 6, "2")}
		for run := range 2 { // the second run is a rerun: stored before, counts as stored
			resp, err := p.Handle(context.Background(), atkEvent(first))
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("run %d: %v %v", run, resp, err)
			}
		}
		// Another record for key 1 (written 1.0), and for key 2 from another shard: refused, reported.
		for _, r := range []atkRec{rec(a, 9, "1.0"), rec(b, 1, "2e0")} {
			resp, err := p.Handle(context.Background(), atkEvent([]atkRec{r}))
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != r.seq {
				t.Errorf("record %s/%s: failures %v, want it refused", r.shard, r.seq, resp.BatchItemFailures)
			}
		}
		got := stored(env)
		if len(got) != 2 || got["1"] != a+"/5" || got["2"] != a+"/6" {
			t.Errorf("items %v, want the first run's", got)
		}
		if !strings.Contains(env.metrics.String(), "RecordsRefused") {
			t.Errorf("no RecordsRefused metric")
		}
	})
}
