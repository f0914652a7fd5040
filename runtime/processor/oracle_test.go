package processor

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
)

// The independent oracle of FuzzHandle, FuzzHandleAggregate and the integration tier's corpus replay: the processor
// writes through the real aws-sdk-go-v2 client to a DynamoDB that behaves as the service on the wire (the stand-in
// answering itself, or dynalite), and the outcome is read back from that database, keyed by the database's own code,
// and checked against the input decoded with encoding/json: every record acknowledged (not at or after the reported
// sequence number) is stored exactly once, value for value, in the data table or in the error table.

// handleCase is one input: the batch is built from a payload and a partition key, shaped and configured by two
// bytes.
type handleCase struct {
	payload []byte
	pk      string
	shape   byte
	mode    byte
}

// Bits of handleCase.shape.
const (
	shapeAggregate = 1 << 0 // record 1 is a KPL aggregate of three user records, record 4 a truncated one
	shapeHugeKey   = 1 << 1 // the first user record's partition key is the partition key repeated past 300 KB
	shapeTwoShards = 1 << 2 // record 3 comes from another shard, with sequence number 1
)

// Bits of handleCase.mode.
const (
	modeFaults      = 3 << 0 // 0 none; 1 throttling and unprocessed items; 2 dropped connections and spurious validation errors; 3 the error table refuses writes
	modeConditional = 1 << 2 // Options.ConditionalWrites
	modeInsertOnly  = 1 << 3 // Options.InsertOnly
	modeConfig      = 3 << 4 // 0 default; 1 no metadata; 2 key from the partition key; 3 Exclude, Rename and TTL, all metadata
	modeNoErrTable  = 1 << 6 // no error table
)

const otherShardID = "shardId-000000000001"

// caseRecord is one record (a plain record or a user record of an aggregate) as the oracle sees it.
type caseRecord struct {
	eventID string
	shard   string
	seq     string
	sub     int
	pk      string // the partition key the record carries
	data    []byte
	whole   bool // an unreadable aggregate: one error item for the whole Kinesis record
}

// config returns the processor configuration of the case.
func (c handleCase) config() Config {
	switch c.mode & modeConfig >> 4 {
	case 1:
		return Config{Metadata: []string{}}
	case 2:
		return Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: SourcePartitionKey}}
	case 3:
		return Config{Transform: &TransformConfig{Exclude: []string{"x"}, Rename: map[string]string{"r": "renamed"}, TTL: &TTLConfig{Attribute: "ttl", Seconds: 3600}},
			Metadata: []string{AttrProcessedAt, AttrArrivalTime, AttrPartitionKey, AttrSequenceNumber}}
	}
	return Config{}
}

// userPK is the partition key of the aggregate's first user record.
func (c handleCase) userPK() string {
	if c.shape&shapeHugeKey == 0 {
		return c.pk
	}
	unit := c.pk
	if unit == "" {
		unit = "h"
	}
	return strings.Repeat(unit, 300*1024/len(unit)+1)
}

// event builds the batch and lists its records as the oracle sees them.
func (c handleCase) event() (events.KinesisEvent, []caseRecord) {
	plainPK := c.pk // Kinesis' own partition keys are 1 to 256 Unicode characters
	if plainPK == "" || !utf8.ValidString(plainPK) || len(plainPK) > 256 {
		plainPK = "pk"
	}
	datas := [][]byte{c.payload, []byte(`{"ok": true}`), append(bytes.Clone(c.payload), ' '), fmt.Appendf(nil, `{"k": %s}`, c.payload), []byte(`{"n": 1}`)}
	var users []kpl.UserRecord
	if c.shape&shapeAggregate != 0 {
		users = []kpl.UserRecord{
			{PartitionKey: c.userPK(), Data: c.payload},
			{PartitionKey: "u1", Data: []byte(`{"ok": 1}`)},
			{PartitionKey: c.pk[:len(c.pk)/2], Data: bytes.ToUpper(c.payload)},
		}
		datas[1] = kpl.Aggregate(users)
		agg := kpl.Aggregate(users)
		datas[4] = agg[:len(agg)-1-int(c.mode)%(len(agg)-1)]
	}
	var ev events.KinesisEvent
	var recs []caseRecord
	for i, d := range datas {
		shard, sq := testShard, seq(i)
		if i == 3 && c.shape&shapeTwoShards != 0 {
			shard, sq = otherShardID, "1"
		}
		r := events.KinesisEventRecord{
			EventID: shard + ":" + sq, EventSource: "aws:kinesis", EventName: "aws:kinesis:record",
			Kinesis: events.KinesisRecord{Data: d, PartitionKey: plainPK, SequenceNumber: sq,
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: testArrival}},
		}
		ev.Records = append(ev.Records, r)
		base := caseRecord{eventID: r.EventID, shard: shard, seq: sq, pk: plainPK, data: d}
		if !kpl.IsAggregated(d) { // any record can be an aggregate: the fuzzed payload too
			recs = append(recs, base)
			continue
		}
		urs, err := kpl.Deaggregate(d)
		if err != nil {
			base.whole = true
			recs = append(recs, base)
			continue
		}
		for j, u := range urs { // none: an empty aggregate is acknowledged with nothing to store
			ur := base
			ur.eventID, ur.sub, ur.pk, ur.data = base.eventID+"#"+strconv.Itoa(j), j, u.PartitionKey, u.Data
			recs = append(recs, ur)
		}
	}
	return ev, recs
}

// backend is the database a case runs against: the processor writes to endpoint; read returns a table's items
// keyed by their "id" (the database's own keying).
type backend struct {
	endpoint string
	tables   func(t testing.TB) (data, errs string)
	read     func(t testing.TB, table string) map[string]Item
}

// standins are the stand-ins of the fuzz targets, one per fault setting, started once per process.
var standins struct {
	mu  sync.Mutex
	byF map[byte]*dynamostandin.Server
	n   atomic.Int64
}

// faultOptions are the stand-in's faults for mode's fault setting.
func faultOptions(mode byte) dynamostandin.Options {
	switch mode & modeFaults {
	case 1:
		return dynamostandin.Options{Seed: 1, ThrottleRate: 0.2, UnprocessedRate: 0.3,
			FaultOperations: []string{dynamostandin.OpBatchWriteItem, dynamostandin.OpPutItem, dynamostandin.OpGetItem}}
	case 2:
		return dynamostandin.Options{Seed: 2, DropRate: 0.1, DropAfterApply: true, ValidationRate: 0.2,
			FaultOperations: []string{dynamostandin.OpBatchWriteItem}}
	}
	return dynamostandin.Options{}
}

// standinBackend returns the fuzz targets' backend: a stand-in answering itself, with fresh tables per case.
func standinBackend(mode byte) backend {
	standins.mu.Lock()
	defer standins.mu.Unlock()
	f := mode & modeFaults
	if standins.byF == nil {
		standins.byF = map[byte]*dynamostandin.Server{}
	}
	s := standins.byF[f]
	if s == nil {
		s = dynamostandin.New(faultOptions(mode)) // lives as long as the fuzzing process
		standins.byF[f] = s
	}
	return backend{
		endpoint: s.URL(),
		tables: func(testing.TB) (string, string) {
			n := standins.n.Add(1)
			return fmt.Sprintf("data-%d", n), fmt.Sprintf("errors-%d", n)
		},
		read: func(_ testing.TB, table string) map[string]Item {
			out := map[string]Item{}
			for k, it := range s.Items(table) {
				out[k] = Item(it)
			}
			return out
		},
	}
}

// refusingDB makes every write to one table fail, as a missing permission would.
type refusingDB struct {
	*dynamodb.Client
	table string
}

var errRefusedWrite = &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "refused (test)", Fault: smithy.FaultClient}

func (d refusingDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if _, ok := in.RequestItems[d.table]; ok {
		return nil, errRefusedWrite
	}
	return d.Client.BatchWriteItem(ctx, in, optFns...)
}

func (d refusingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if aws.ToString(in.TableName) == d.table {
		return nil, errRefusedWrite
	}
	return d.Client.PutItem(ctx, in, optFns...)
}

// runCase processes c's batch against be and checks the outcome.
func runCase(t testing.TB, c handleCase, be backend) {
	t.Helper()
	dataTable, errTable := be.tables(t)
	client := NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(be.endpoint)
		o.RetryMaxAttempts = 1 // the processor retries itself; the stand-in's faults reach it
	})
	var db DB = client
	if c.mode&modeFaults == 3 {
		db = refusingDB{Client: client, table: errTable}
	}
	cfg := c.config()
	p, err := New(db, func(o *Options) {
		o.TableName, o.ErrorTableName = dataTable, errTable
		if c.mode&modeNoErrTable != 0 {
			o.ErrorTableName = ""
		}
		o.Config = cfg
		o.ConditionalWrites = c.mode&modeConditional != 0
		o.InsertOnly = c.mode&modeInsertOnly != 0
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
		o.Now = func() time.Time { return testNow }
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p.backoffBase = time.Millisecond
	ev, recs := c.event()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.Handle(ctx, ev)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if len(resp.BatchItemFailures) > 1 {
		t.Fatalf("%d batch item failures, want at most one", len(resp.BatchItemFailures))
	}
	reported := ""
	if len(resp.BatchItemFailures) == 1 {
		reported = resp.BatchItemFailures[0].ItemIdentifier
		known := false
		for _, r := range ev.Records {
			known = known || r.Kinesis.SequenceNumber == reported
		}
		if !known {
			t.Fatalf("reported unknown sequence number %q", reported)
		}
	}
	o := oracle{c: c, cfg: cfg.WithDefaults(), recs: recs, data: be.read(t, dataTable)}
	if c.mode&modeNoErrTable == 0 {
		o.errs = be.read(t, errTable)
	}
	o.check(t, reported)
}

// oracle checks what a batch left in the tables.
type oracle struct {
	c          handleCase
	cfg        Config
	recs       []caseRecord
	data, errs map[string]Item
}

// position returns the position r's items carry: insert-only items carry it unverified (a 0 byte first).
func (o oracle) position(r caseRecord) []byte {
	if o.c.mode&modeInsertOnly != 0 {
		return append([]byte{0}, r.position()...)
	}
	return r.position()
}

// derived reports whether the case's data items carry no AttrPosition, their event-id key naming it: the
// processor's own transform under an event-id key, except insert-only (unverified) items.
func (o oracle) derived() bool {
	return o.cfg.PartitionKey.Source == SourceEventID && o.c.mode&modeInsertOnly == 0
}

// key returns the data table key of r's items, "" when r can have none (its key is not a valid key).
func (o oracle) key(r caseRecord) string {
	if o.cfg.PartitionKey.Source != SourcePartitionKey {
		return r.eventID
	}
	if r.pk == "" || !utf8.ValidString(r.pk) || len(r.pk) > 2048 {
		return ""
	}
	return r.pk
}

// position is r's position, built by the test's own encoder.
func (r caseRecord) position() []byte {
	return wantPosition(r.shard, r.seq, uint32(r.sub))
}

// later reports whether a comes after b in the batch's write order (sequence number, then sub-sequence number).
func later(a, b caseRecord) bool {
	if c := compareSequence(a.seq, b.seq); c != 0 {
		return c > 0
	}
	return a.sub > b.sub
}

func (o oracle) check(t testing.TB, reported string) {
	t.Helper()
	owner := map[string]int{} // data item key -> index of the record whose position it holds
	for k, it := range o.data {
		pos, hasPos := testPositionOf(o.cfg, it)
		if _, stored := it[AttrPosition]; stored == o.derived() {
			t.Fatalf("data item %q: has %s %v, want it %v (event-id key, not insert-only: derived from the key)", k, AttrPosition, stored, !o.derived())
		}
		found := -1
		for i, r := range o.recs {
			if hasPos && bytes.Equal(pos, o.position(r)) && o.key(r) == k {
				found = i
			}
		}
		if found < 0 {
			t.Fatalf("data item %q belongs to no record of the batch (position %v)", k, it[AttrPosition])
		}
		owner[k] = found
	}
	for k, it := range o.errs {
		if _, isPart := it[ErrorAttrPartOf]; isPart {
			continue
		}
		known := false
		for _, r := range o.recs {
			known = known || r.eventID == k
		}
		if !known {
			t.Fatalf("error item %q belongs to no record of the batch", k)
		}
	}
	for i, r := range o.recs {
		acked := reported == "" || compareSequence(r.seq, reported) < 0
		errItem, inErrors := o.errs[r.eventID]
		k := o.key(r)
		j, hasData := owner[k]
		mine := hasData && k != "" && j == i
		if inErrors && mine {
			t.Fatalf("record %s is both in the data table and in the error table", r.eventID)
		}
		if r.whole && mine {
			t.Fatalf("unreadable aggregate %s is in the data table", r.eventID)
		}
		if inErrors {
			o.checkErrorItem(t, r, errItem)
		}
		if mine {
			o.checkDataItem(t, r, o.data[k])
		}
		if !acked || inErrors || mine {
			continue
		}
		if hasData && k != "" && later(o.recs[j], r) {
			continue // superseded by a later record of the batch with the same key
		}
		t.Fatalf("record %s (payload %.60q, partition key %.40q) is acknowledged (reported %q) but stored nowhere", r.eventID, r.data, r.pk, reported)
	}
}

// checkErrorItem checks that r's error item holds its sequence number, partition key and payload, byte for byte.
func (o oracle) checkErrorItem(t testing.TB, r caseRecord, it Item) {
	t.Helper()
	if got := it[ErrorAttrSequenceNumber]; !avEqual(got, s(r.seq)) {
		t.Fatalf("error item %s: sequence number %v", r.eventID, got)
	}
	var pk []byte
	switch v := it[ErrorAttrPartitionKey].(type) {
	case *types.AttributeValueMemberS:
		pk = []byte(v.Value)
	case *types.AttributeValueMemberB:
		pk = v.Value
	}
	if len(r.pk) <= MaxErrorPartitionKey && string(pk) != r.pk || len(r.pk) > MaxErrorPartitionKey && !strings.HasPrefix(r.pk, string(pk)) {
		t.Fatalf("error item %s: partition key %.40q, want %.40q", r.eventID, pk, r.pk)
	}
	if len(r.pk) > MaxErrorPartitionKey {
		sum := sha256.Sum256([]byte(r.pk))
		if !avEqual(it[ErrorAttrPartitionKeySHA256], s(hex.EncodeToString(sum[:]))) {
			t.Fatalf("error item %s: partition key SHA-256 %v", r.eventID, it[ErrorAttrPartitionKeySHA256])
		}
	}
	var payload []byte
	enc, _ := it[ErrorAttrPayloadEncoding].(*types.AttributeValueMemberS)
	if enc == nil {
		t.Fatalf("error item %s has no payload encoding", r.eventID)
	}
	switch enc.Value {
	case PayloadEncodingRaw, PayloadEncodingGzip:
		b, _ := it[ErrorAttrPayload].(*types.AttributeValueMemberB)
		if b == nil {
			t.Fatalf("error item %s has no payload", r.eventID)
		}
		payload = b.Value
		if enc.Value == PayloadEncodingGzip {
			zr, err := gzip.NewReader(bytes.NewReader(payload))
			if err != nil {
				t.Fatalf("error item %s: %v", r.eventID, err)
			}
			if payload, err = io.ReadAll(zr); err != nil {
				t.Fatalf("error item %s: %v", r.eventID, err)
			}
		}
	case PayloadEncodingParts:
		n, _ := strconv.Atoi(it[ErrorAttrPayloadParts].(*types.AttributeValueMemberN).Value)
		for k := 1; k <= n; k++ {
			part := o.errs[r.eventID+"#part-"+strconv.Itoa(k)]
			b, _ := part[ErrorAttrPayload].(*types.AttributeValueMemberB)
			if b == nil {
				t.Fatalf("error item %s: part %d missing", r.eventID, k)
			}
			payload = append(payload, b.Value...)
		}
	default:
		t.Fatalf("error item %s: encoding %q", r.eventID, enc.Value)
	}
	if !bytes.Equal(payload, r.data) {
		t.Fatalf("error item %s: payload %.60q, want %.60q", r.eventID, payload, r.data)
	}
}

// checkDataItem checks, value for value, that it is the item the configuration makes of r's payload.
func (o oracle) checkDataItem(t testing.TB, r caseRecord, it Item) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.data))
	dec.UseNumber()
	var want map[string]any
	if err := dec.Decode(&want); err != nil || want == nil {
		t.Fatalf("record %s is in the data table, but its payload %.60q is not a JSON object: %v", r.eventID, r.data, err)
	}
	tc := o.cfg.Transform
	if tc != nil && len(tc.Rename) > 0 {
		if v, ok := want["r"]; ok {
			delete(want, "r")
			want["renamed"] = v
		}
	}
	if tc != nil {
		for _, x := range tc.Exclude {
			delete(want, x)
		}
	}
	fixed := map[string]types.AttributeValue{"id": s(o.key(r))}
	if !o.derived() {
		fixed[AttrPosition] = &types.AttributeValueMemberB{Value: o.position(r)}
	}
	pk := s(r.pk)
	if !utf8.ValidString(r.pk) {
		pk = &types.AttributeValueMemberB{Value: []byte(r.pk)}
	}
	meta := o.c.config().Metadata
	if meta == nil {
		meta = []string{"_kinesisArrivalTime"} // the documented default, spelled out here rather than read from the code
	}
	for _, m := range meta {
		switch m {
		case AttrSequenceNumber:
			fixed[m] = s(r.seq)
		case AttrPartitionKey:
			fixed[m] = pk
		case AttrArrivalTime:
			fixed[m] = s("2024-09-13T23:06:56.123Z")
		case AttrProcessedAt:
			fixed[m] = s("2024-09-14T00:00:00Z")
		default:
			t.Fatalf("unknown metadata attribute %q in the case's configuration", m)
		}
	}
	if tc != nil && tc.TTL != nil {
		fixed["ttl"] = n(strconv.FormatInt(testArrival.Unix()+3600, 10))
	}
	for k := range fixed {
		delete(want, k)
	}
	for k, v := range fixed {
		if !sameValue(it[k], v) {
			t.Fatalf("record %s: attribute %q is %#v, want %#v", r.eventID, k, it[k], v)
		}
	}
	for k, v := range want {
		if err := matchJSON(it[k], v); err != nil {
			t.Fatalf("record %s: attribute %q: %v", r.eventID, k, err)
		}
	}
	if len(it) != len(want)+len(fixed) {
		t.Fatalf("record %s: item has %d attributes, want %d", r.eventID, len(it), len(want)+len(fixed))
	}
}

// sameValue compares two attribute values as DynamoDB stores them (numbers by value, sets unordered).
func sameValue(a, b types.AttributeValue) bool {
	switch x := b.(type) {
	case *types.AttributeValueMemberN:
		y, ok := a.(*types.AttributeValueMemberN)
		return ok && sameNumber(y.Value, x.Value)
	default:
		return avEqual(a, b)
	}
}

// sameNumber compares two decimal number strings by value, as DynamoDB normalizes them: sign, significant digits and
// the exponent of the first one.
func sameNumber(a, b string) bool {
	ca, okA := numberValue(a)
	cb, okB := numberValue(b)
	return okA && okB && ca == cb
}

func numberValue(s string) (string, bool) {
	neg := strings.HasPrefix(s, "-")
	mant, exp, _ := strings.Cut(strings.ToLower(strings.TrimPrefix(s, "-")), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	all := intPart + frac
	if all == "" || strings.Trim(all, "0123456789") != "" {
		return "", false
	}
	lead := len(all) - len(strings.TrimLeft(all, "0"))
	digits := strings.TrimRight(all[lead:], "0")
	if digits == "" {
		return "0", true
	}
	x := 0
	if exp != "" {
		var err error
		if x, err = strconv.Atoi(exp); err != nil {
			return "", false
		}
	}
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + digits + "e" + strconv.Itoa(len(intPart)-lead-1+x), true
}

// matchJSON checks that av is what DynamoDB stores for JSON value v.
func matchJSON(av types.AttributeValue, v any) error {
	switch x := v.(type) {
	case string:
		if y, ok := av.(*types.AttributeValueMemberS); ok && y.Value == x {
			return nil
		}
	case json.Number:
		if y, ok := av.(*types.AttributeValueMemberN); ok && sameNumber(y.Value, string(x)) {
			return nil
		}
	case bool:
		if y, ok := av.(*types.AttributeValueMemberBOOL); ok && y.Value == x {
			return nil
		}
	case nil:
		if y, ok := av.(*types.AttributeValueMemberNULL); ok && y.Value {
			return nil
		}
	case []any:
		y, ok := av.(*types.AttributeValueMemberL)
		if !ok || len(y.Value) != len(x) {
			break
		}
		for i := range x {
			if err := matchJSON(y.Value[i], x[i]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case map[string]any:
		y, ok := av.(*types.AttributeValueMemberM)
		if !ok || len(y.Value) != len(x) {
			break
		}
		for k, e := range x {
			if err := matchJSON(y.Value[k], e); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
		}
		return nil
	}
	return fmt.Errorf("stored %#v, payload has %#v", av, v)
}
