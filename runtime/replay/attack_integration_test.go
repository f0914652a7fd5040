//go:build integration

package replay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// The attack tests read every outcome from dynalite and kinesalite with the SDK's clients, never from the
// replay's summary (except Complete, whose honesty they check against the tables).

type atkBed struct {
	db *dynamodb.Client
	kc *kinesis.Client
}

func atkStart(t *testing.T) *atkBed {
	t.Helper()
	root, err := emulators.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	kin, err := emulators.StartKinesalite(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kin.Stop()
		if t.Failed() {
			t.Logf("kinesalite's standard error:\n%s", kin.Stderr())
		}
	})
	return &atkBed{db: emulators.DynamoDBClient(emulators.Dynalite(t)), kc: emulators.KinesisClient(kin.Endpoint)}
}

// tables creates a data table keyed by key (S) and an error table keyed by "id".
func (b *atkBed) tables(t *testing.T, key string) (data, errs string) {
	t.Helper()
	ctx := context.Background()
	data, errs = emulators.UniqueName("atkdata"), emulators.UniqueName("atkerr")
	if err := emulators.CreateKeyedTable(ctx, b.db, data, key, types.ScalarAttributeTypeS); err != nil {
		t.Fatal(err)
	}
	if err := emulators.CreateTable(ctx, b.db, errs); err != nil {
		t.Fatal(err)
	}
	return data, errs
}

func (b *atkBed) stream(t *testing.T, shards int32) (name, arn string) {
	t.Helper()
	ctx := context.Background()
	name = emulators.UniqueName("atkstream")
	if err := emulators.CreateStream(ctx, b.kc, name, shards); err != nil {
		t.Fatal(err)
	}
	out, err := b.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return name, aws.ToString(out.StreamDescriptionSummary.StreamARN)
}

type atkRec struct {
	data []byte
	pk   string
	hash string // explicit hash key, "" for none
}

// putBatch puts recs with one PutRecords call (kinesalite gives them one arrival time) and returns their event ids.
func (b *atkBed) putBatch(t *testing.T, stream string, recs ...atkRec) []string {
	t.Helper()
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for _, r := range recs {
		e := ktypes.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.pk)}
		if r.hash != "" {
			e.ExplicitHashKey = aws.String(r.hash)
		}
		in.Records = append(in.Records, e)
	}
	out, err := b.kc.PutRecords(context.Background(), in)
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("put records: %v %+v", err, out)
	}
	ids := make([]string, len(out.Records))
	for i, r := range out.Records {
		ids[i] = aws.ToString(r.ShardId) + ":" + aws.ToString(r.SequenceNumber)
	}
	return ids
}

// arrivals reads every shard from TRIM_HORIZON to its tip and returns each record's arrival time by event id.
func (b *atkBed) arrivals(t *testing.T, stream string) map[string]time.Time {
	t.Helper()
	ctx := context.Background()
	ls, err := b.kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, s := range ls.Shards {
		it, err := b.kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			page, err := b.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				out[aws.ToString(s.ShardId)+":"+aws.ToString(r.SequenceNumber)] = aws.ToTime(r.ApproximateArrivalTimestamp)
			}
			if len(page.Records) == 0 && aws.ToInt64(page.MillisBehindLatest) == 0 {
				break
			}
			iter = page.NextShardIterator
		}
	}
	return out
}

// scanAll returns table's items by the string value of key.
func (b *atkBed) scanAll(t *testing.T, table, key string) map[string]map[string]types.AttributeValue {
	t.Helper()
	out := map[string]map[string]types.AttributeValue{}
	p := dynamodb.NewScanPaginator(b.db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			s, ok := it[key].(*types.AttributeValueMemberS)
			if !ok {
				t.Fatalf("item without string %s: %v", key, it)
			}
			if _, dup := out[s.Value]; dup {
				t.Fatalf("key %q scanned twice", s.Value)
			}
			out[s.Value] = it
		}
	}
	return out
}

func atkKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// atkHangingAtTimestamp makes every AT_TIMESTAMP GetShardIterator hang until its context ends, as kinesalite does
// on a shard without a record at or after the time: the replay then reads from TRIM_HORIZON and skips to the window.
type atkHangingAtTimestamp struct{ replay.Kinesis }

func (k atkHangingAtTimestamp) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if in.ShardIteratorType == ktypes.ShardIteratorTypeAtTimestamp {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return k.Kinesis.GetShardIterator(ctx, in, optFns...)
}

// TestAttackWindowEdges: records that arrived exactly at --since and exactly at --until, several with the same
// arrival time, are replayed; the ones a millisecond outside are not; a shard whose records all precede the window
// is read to nothing. Both ways of starting a shard (AT_TIMESTAMP, and the TRIM_HORIZON fallback) give the same set.
func TestAttackWindowEdges(t *testing.T) {
	b := atkStart(t)
	stream, arn := b.stream(t, 2)
	const low, high = "0", "340282366920938463463374607431768211455"
	batch := func(label string, n int, hashes ...string) []string {
		var recs []atkRec
		for i := 0; i < n; i++ {
			for _, h := range hashes {
				recs = append(recs, atkRec{data: []byte(fmt.Sprintf(`{"label":%q,"i":%d}`, label, i)), pk: label, hash: h})
			}
		}
		ids := b.putBatch(t, stream, recs...)
		time.Sleep(15 * time.Millisecond)
		return ids
	}
	batch("A", 3, low, high) // before the window, in both shards: the high shard has nothing later
	inB := batch("B", 3, low)
	batch("between", 1, low)
	inC := batch("C", 3, low)
	batch("D", 3, low) // after the window
	arr := b.arrivals(t, stream)
	// The window runs from B's earliest arrival to C's latest: records of one PutRecords call usually share their
	// arrival time, but on a loaded machine kinesalite can stamp them a millisecond apart.
	since, until := arr[inB[0]], arr[inC[0]]
	for _, id := range inB {
		if arr[id].Before(since) {
			since = arr[id]
		}
	}
	for _, id := range inC {
		if arr[id].After(until) {
			until = arr[id]
		}
	}
	var want []string
	for id, at := range arr {
		if !at.Before(since) && !at.After(until) {
			want = append(want, id)
		}
	}
	sort.Strings(want)
	if len(want) != 7 {
		t.Fatalf("precondition: %d records in the window, want 3+1+3 (B, between, C): %v", len(want), arr)
	}
	for _, mode := range []string{"as the stream answers", "TRIM_HORIZON fallback"} {
		t.Run(mode, func(t *testing.T) {
			data, errs := b.tables(t, "id")
			var k replay.Kinesis = b.kc
			if mode != "as the stream answers" {
				k = atkHangingAtTimestamp{b.kc}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r, err := replay.New(replay.Clients{DB: b.db, Kinesis: k}, func(o *replay.Options) {
				o.StreamARN, o.TableName, o.ErrorTableName, o.Since, o.Until = arn, data, errs, since, until
				o.IteratorTimeout, o.ReadInterval, o.BatchSize = 500*time.Millisecond, 10*time.Millisecond, 2
			})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := r.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := atkKeys(b.scanAll(t, data, "id")); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("table holds %v\nwant        %v", got, want)
			}
			if n := len(b.scanAll(t, errs, "id")); n != 0 {
				t.Errorf("error table holds %d items", n)
			}
			if !sum.Complete() {
				t.Errorf("not complete: %+v", sum.Shards)
			}
		})
	}
}

// kplAggregate builds a KPL aggregated record by hand from the public format: magic, protobuf AggregatedRecord,
// MD5 of the protobuf.
func kplAggregate(pks []string, datas [][]byte) []byte {
	var pb []byte
	field := func(num int, b []byte) {
		pb = binary.AppendUvarint(pb, uint64(num<<3|2))
		pb = binary.AppendUvarint(pb, uint64(len(b)))
		pb = append(pb, b...)
	}
	for _, pk := range pks {
		field(1, []byte(pk))
	}
	for i, d := range datas {
		var rec []byte
		rec = binary.AppendUvarint(rec, 1<<3|0)
		rec = binary.AppendUvarint(rec, uint64(i))
		rec = binary.AppendUvarint(rec, 3<<3|2)
		rec = binary.AppendUvarint(rec, uint64(len(d)))
		rec = append(rec, d...)
		field(3, rec)
	}
	sum := md5.Sum(pb)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, pb...)
	return append(out, sum[:]...)
}

// errorPayload returns the payload an error item keeps, decoded ("raw" or "gzip").
func errorPayload(t *testing.T, it map[string]types.AttributeValue) []byte {
	t.Helper()
	p, ok := it["payload"].(*types.AttributeValueMemberB)
	if !ok {
		t.Fatalf("error item without a binary payload: %v", it["id"])
	}
	enc, _ := it["payloadEncoding"].(*types.AttributeValueMemberS)
	switch {
	case enc == nil || enc.Value == "raw":
		return p.Value
	case enc.Value == "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(p.Value))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	default:
		t.Fatalf("payload encoding %q not handled by this test", enc.Value)
		return nil
	}
}

// TestAttackHostilePayloads: a dry run over hostile payloads writes nothing to either table; the real run stores
// each record somewhere (KPL user records as items, the rest as error items keeping the exact payload and a
// reason); a rerun leaves both tables as they were (no duplicate error items).
func TestAttackHostilePayloads(t *testing.T) {
	b := atkStart(t)
	stream, arn := b.stream(t, 1)
	data, errs := b.tables(t, "id")
	since := time.Now().Add(-time.Second)
	big := []byte(`{"big":"` + strings.Repeat("ab", 450*1024) + `"}`)
	bad := map[string][]byte{
		"not json":      []byte("not json \x1b[2J"),
		"invalid utf-8": []byte("{\"s\":\"\xff\xfe\"}"),
		"oversized":     big,
		"reserved":      []byte(`{"_kpos":"forged","x":1}`),
		"array":         []byte(`[1,2]`),
		"bad aggregate": append(kplAggregate([]string{"p"}, [][]byte{[]byte(`{"u":0}`)})[:20], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
	}
	badIDs := map[string]string{} // event id -> label
	for label, d := range bad {
		id := b.putBatch(t, stream, atkRec{data: d, pk: "k"})[0]
		badIDs[id] = label
	}
	goodIDs := b.putBatch(t, stream, atkRec{data: []byte(`{"ok":1}`), pk: "k"})
	aggID := b.putBatch(t, stream, atkRec{data: kplAggregate([]string{"p1", "p2\x1b]0;x\x07"}, [][]byte{[]byte(`{"u":1}`), []byte(`{"u":2}`)}), pk: "k"})[0]
	wantData := []string{goodIDs[0], aggID + "#0", aggID + "#1"}
	sort.Strings(wantData)
	time.Sleep(20 * time.Millisecond)
	b.putBatch(t, stream, atkRec{data: []byte(`{"after":1}`), pk: "k"})
	until := time.Now().Add(-5 * time.Millisecond)

	run := func(dry bool) replay.Summary {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		r, err := replay.New(replay.Clients{DB: b.db, Kinesis: b.kc}, func(o *replay.Options) {
			o.StreamARN, o.TableName, o.ErrorTableName, o.Since, o.Until, o.DryRun = arn, data, errs, since, until, dry
			o.ReadInterval, o.BatchSize = 10*time.Millisecond, 3
		})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := r.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	run(true)
	if d, e := b.scanAll(t, data, "id"), b.scanAll(t, errs, "id"); len(d)+len(e) != 0 {
		t.Fatalf("dry run wrote %d items and %d error items", len(d), len(e))
	}
	var first map[string]map[string]types.AttributeValue
	for round := 1; round <= 2; round++ {
		sum := run(false)
		items, errItems := b.scanAll(t, data, "id"), b.scanAll(t, errs, "id")
		if got := atkKeys(items); strings.Join(got, " ") != strings.Join(wantData, " ") {
			t.Errorf("round %d: data table %v, want %v", round, got, wantData)
		}
		for id, label := range badIDs {
			it, ok := errItems[id]
			if !ok {
				t.Errorf("round %d: %s record %s is in no table", round, label, id)
				continue
			}
			if got := errorPayload(t, it); !bytes.Equal(got, bad[label]) {
				t.Errorf("round %d: %s: error item keeps %d bytes, not the %d-byte payload", round, label, len(got), len(bad[label]))
			}
			if r, _ := it["reason"].(*types.AttributeValueMemberS); r == nil || r.Value == "" {
				t.Errorf("round %d: %s: no reason", round, label)
			}
		}
		if len(errItems) != len(badIDs) {
			t.Errorf("round %d: error table holds %d items %v, want %d", round, len(errItems), atkKeys(errItems), len(badIDs))
		}
		if !sum.Complete() {
			t.Errorf("round %d: not complete although every record is stored: %+v", round, sum.Shards)
		}
		if first == nil {
			first = errItems
		}
	}
}

// atkFailingDB fails every write to table after the first ok writes to it, as a DynamoDB outage mid-run would.
type atkFailingDB struct {
	replay.DB
	table string
	ok    int

	mu sync.Mutex
	n  int
}

func (d *atkFailingDB) fail(table *string) bool {
	if aws.ToString(table) != d.table {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	return d.n > d.ok
}

func (d *atkFailingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if d.fail(in.TableName) {
		return nil, &types.InternalServerError{Message: aws.String("outage")}
	}
	return d.DB.PutItem(ctx, in, optFns...)
}

func (d *atkFailingDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	for name := range in.RequestItems {
		if d.fail(&name) {
			return nil, &types.InternalServerError{Message: aws.String("outage")}
		}
	}
	return d.DB.BatchWriteItem(ctx, in, optFns...)
}

// TestAttackOutageIsNeverComplete: whenever a record of the window is in neither table afterwards (read from
// dynalite), the run is not complete; here the data table or the error table stops answering mid-run.
func TestAttackOutageIsNeverComplete(t *testing.T) {
	b := atkStart(t)
	stream, arn := b.stream(t, 1)
	since := time.Now().Add(-time.Second)
	var all []string
	for i := 0; i < 9; i++ {
		d := []byte(fmt.Sprintf(`{"i":%d}`, i))
		if i%3 == 0 {
			d = []byte(fmt.Sprintf(`bad %d`, i))
		}
		all = append(all, b.putBatch(t, stream, atkRec{data: d, pk: fmt.Sprint(i)})...)
	}
	time.Sleep(20 * time.Millisecond)
	until := time.Now().Add(-5 * time.Millisecond)
	for _, tt := range []struct {
		name   string
		failOn string // "data" or "errors"
		ok     int
	}{{"data table after 5 writes", "data", 5}, {"error table at once", "errors", 0}} {
		t.Run(tt.name, func(t *testing.T) {
			data, errs := b.tables(t, "id")
			target := data
			if tt.failOn == "errors" {
				target = errs
			}
			db := &atkFailingDB{DB: b.db, table: target, ok: tt.ok}
			// No deadline, as under kdp replay: with one, the processor retries a failing write until it.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			watchdog := time.AfterFunc(4*time.Minute, cancel)
			defer watchdog.Stop()
			began := time.Now()
			defer func() { t.Logf("the run took %v", time.Since(began)) }()
			r, err := replay.New(replay.Clients{DB: db, Kinesis: b.kc}, func(o *replay.Options) {
				o.StreamARN, o.TableName, o.ErrorTableName, o.Since, o.Until = arn, data, errs, since, until
				o.ReadInterval, o.BatchSize = 10*time.Millisecond, 9
			})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := r.Run(ctx)
			if err != nil || ctx.Err() != nil {
				t.Fatalf("run ended by %v, context %v: the outage must end the run by itself", err, ctx.Err())
			}
			items, errItems := b.scanAll(t, data, "id"), b.scanAll(t, errs, "id")
			var missing []string
			for _, id := range all {
				if items[id] == nil && errItems[id] == nil {
					missing = append(missing, id)
				}
			}
			if len(missing) == 0 {
				t.Fatalf("precondition: the outage left nothing out")
			}
			if sum.Complete() {
				t.Errorf("complete, yet %d records are in neither table: %v", len(missing), missing)
			}
		})
	}
}

// TestAttackInterruptedRunsEqualOneCleanRun: runs cancelled at random points, then one run to the end, leave both
// tables as one clean run does (keys mapped from the payload, later versions of a key in the same shard, a split
// during the window, bad records), and never an item older than the key's last record.
func TestAttackInterruptedRunsEqualOneCleanRun(t *testing.T) {
	b := atkStart(t)
	stream, arn := b.stream(t, 1)
	cfg := processor.Config{PartitionKey: processor.KeyAttribute{Name: "key", Type: processor.AttributeTypeString, Source: "key"}}
	const low, high = "0", "340282366920938463463374607431768211455"
	since := time.Now().Add(-time.Second)
	last := map[string]int{} // key -> the value of its last record in the stream
	put := func(v int, hash string, keys ...string) {
		var recs []atkRec
		for _, k := range keys {
			d := []byte(fmt.Sprintf(`{"key":%q,"v":%d}`, k, v))
			if v%7 == 3 {
				d = []byte(fmt.Sprintf(`{"key":%q,"v":"\xff%d"}`, k, v)) // invalid UTF-8: error table
			} else {
				last[k] = v
			}
			recs = append(recs, atkRec{data: d, pk: k, hash: hash})
		}
		b.putBatch(t, stream, recs...)
	}
	lowKeys, highKeys := []string{"a", "b", "c"}, []string{"x", "y", "z"}
	for v := 0; v < 12; v++ {
		put(v, low, lowKeys...)
		put(v, high, highKeys...)
	}
	ctx := context.Background()
	ls, err := b.kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: ls.Shards[0].ShardId,
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		s, err := b.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err != nil {
			t.Fatal(err)
		}
		if s.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stream not active after split")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond) // kinesalite dates the children a second ahead
	for v := 12; v < 24; v++ {
		put(v, low, lowKeys...)
		put(v, high, highKeys...)
	}
	time.Sleep(20 * time.Millisecond)
	until := time.Now().Add(-5 * time.Millisecond)

	replayInto := func(ctx context.Context, data, errs string) replay.Summary {
		r, err := replay.New(replay.Clients{DB: atkNoAbortDB{b.db}, Kinesis: atkNoAbort{b.kc}}, func(o *replay.Options) {
			o.StreamARN, o.TableName, o.ErrorTableName, o.Since, o.Until, o.Config = arn, data, errs, since, until, cfg
			o.ReadInterval, o.BatchSize, o.IteratorTimeout = 5*time.Millisecond, 5, time.Second
		})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := r.Run(ctx)
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
		return sum
	}
	strip := func(m map[string]map[string]types.AttributeValue) map[string]map[string]types.AttributeValue {
		for _, it := range m {
			for _, a := range []string{"_processedAt", "failedAt"} {
				delete(it, a)
			}
		}
		return m
	}
	cleanData, cleanErrs := b.tables(t, "key")
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if sum := replayInto(ctx2, cleanData, cleanErrs); !sum.Complete() {
		t.Fatalf("clean run not complete: %+v", sum.Shards)
	}
	wantData, wantErrs := strip(b.scanAll(t, cleanData, "key")), strip(b.scanAll(t, cleanErrs, "id"))
	for k, v := range last {
		n, _ := wantData[k]["v"].(*types.AttributeValueMemberN)
		if n == nil || n.Value != fmt.Sprint(v) {
			t.Errorf("clean run: key %s holds %v, want its last record's v=%d", k, wantData[k]["v"], v)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	data, errs := b.tables(t, "key")
	var delays []time.Duration
	for i := 0; i < 6; i++ {
		d := time.Duration(rng.IntN(600)) * time.Millisecond
		delays = append(delays, d)
		cctx, ccancel := context.WithCancel(ctx2)
		stop := time.AfterFunc(d, ccancel)
		replayInto(cctx, data, errs)
		stop.Stop()
		ccancel()
	}
	if sum := replayInto(ctx2, data, errs); !sum.Complete() {
		t.Fatalf("final run not complete: %+v", sum.Shards)
	}
	gotData, gotErrs := strip(b.scanAll(t, data, "key")), strip(b.scanAll(t, errs, "id"))
	if !reflect.DeepEqual(gotData, wantData) {
		t.Errorf("after interruptions at %v: data table\n%s\nwant\n%s", delays, atkShow(gotData), atkShow(wantData))
	}
	if fmt.Sprint(atkKeys(gotErrs)) != fmt.Sprint(atkKeys(wantErrs)) || len(gotErrs) != len(wantErrs) {
		t.Errorf("after interruptions at %v: error table %v, want %v", delays, atkKeys(gotErrs), atkKeys(wantErrs))
	}
}

// TestAttackRebuildAfterMerge: two shards merged during the window, keys mapped from the payload, replayed into an
// empty table (a rebuild): every key ends at its last record's version, which is in the merged child, although
// the parents' items were written first. A dry run on the table the first run left predicts no write that would
// go back to an older version.
func TestAttackRebuildAfterMerge(t *testing.T) {
	b := atkStart(t)
	stream, arn := b.stream(t, 2)
	cfg := processor.Config{PartitionKey: processor.KeyAttribute{Name: "key", Type: processor.AttributeTypeString, Source: "key"}}
	const low, high = "0", "340282366920938463463374607431768211455"
	since := time.Now().Add(-time.Second)
	last := map[string]int{}
	put := func(v int, hash string, keys ...string) {
		var recs []atkRec
		for _, k := range keys {
			recs = append(recs, atkRec{data: []byte(fmt.Sprintf(`{"key":%q,"v":%d}`, k, v)), pk: k, hash: hash})
			last[k] = v
		}
		b.putBatch(t, stream, recs...)
	}
	for v := 0; v < 3; v++ {
		put(v, low, "a", "b")
		put(v, high, "b", "c") // "b" is in both parents: the child still holds its last version
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ls, err := b.kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil || len(ls.Shards) != 2 {
		t.Fatalf("list shards: %v %v", err, ls)
	}
	if _, err := b.kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: ls.Shards[0].ShardId,
		AdjacentShardToMerge: ls.Shards[1].ShardId}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		s, err := b.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err != nil {
			t.Fatal(err)
		}
		if s.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stream not active after the merge")
		}
	}
	time.Sleep(1100 * time.Millisecond) // kinesalite dates the child a second ahead
	for v := 3; v < 5; v++ {
		put(v, low, "a", "b", "c")
	}
	time.Sleep(20 * time.Millisecond)
	until := time.Now().Add(-5 * time.Millisecond)
	data, errs := b.tables(t, "key")
	run := func(dry bool) replay.Summary {
		r, err := replay.New(replay.Clients{DB: b.db, Kinesis: b.kc}, func(o *replay.Options) {
			o.StreamARN, o.TableName, o.ErrorTableName, o.Since, o.Until, o.Config, o.DryRun = arn, data, errs, since, until, cfg, dry
			o.ReadInterval, o.IteratorTimeout = 5*time.Millisecond, time.Second
		})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := r.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	check := func(when string) {
		items := b.scanAll(t, data, "key")
		for k, v := range last {
			n, _ := items[k]["v"].(*types.AttributeValueMemberN)
			if n == nil || n.Value != fmt.Sprint(v) {
				t.Errorf("%s: key %s holds v=%v, want its last record's v=%d", when, k, items[k]["v"], v)
			}
		}
	}
	if sum := run(false); !sum.Complete() {
		t.Fatalf("not complete: %+v", sum.Shards)
	}
	check("after the replay")
	before := b.scanAll(t, data, "key")
	run(true)
	if after := b.scanAll(t, data, "key"); !reflect.DeepEqual(after, before) {
		t.Errorf("the dry run changed the table:\n%s\nwas\n%s", atkShow(after), atkShow(before))
	}
	if sum := run(false); !sum.Complete() {
		t.Fatalf("rerun not complete: %+v", sum.Shards)
	}
	check("after a rerun")
}

// atkShow prints items with their values (not the pointers fmt prints for attribute values).
func atkShow(m map[string]map[string]types.AttributeValue) string {
	var b strings.Builder
	for _, k := range atkKeys(m) {
		fmt.Fprintf(&b, "%s:", k)
		it := m[k]
		for _, a := range atkKeys(it) {
			switch v := it[a].(type) {
			case *types.AttributeValueMemberS:
				fmt.Fprintf(&b, " %s=%q", a, v.Value)
			case *types.AttributeValueMemberN:
				fmt.Fprintf(&b, " %s=%s", a, v.Value)
			case *types.AttributeValueMemberB:
				fmt.Fprintf(&b, " %s=%x", a, v.Value)
			default:
				fmt.Fprintf(&b, " %s=%T", a, v)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// atkNoAbort lets a Kinesis request the replay started finish when the replay's context is cancelled (deadlines
// still apply): kinesalite exits when a client aborts a request it is still reading ("Error: aborted", thrown from
// its request error handler), which is the emulator's problem, not the replay's. The replay still sees the
// cancellation at its next step.
type atkNoAbort struct{ k replay.Kinesis }

func atkDetach(ctx context.Context) (context.Context, context.CancelFunc) {
	c := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(c, dl)
	}
	return c, func() {}
}

func (a atkNoAbort) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	c, cancel := atkDetach(ctx)
	defer cancel()
	return a.k.DescribeStreamSummary(c, in, optFns...)
}

func (a atkNoAbort) ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	c, cancel := atkDetach(ctx)
	defer cancel()
	return a.k.ListShards(c, in, optFns...)
}

func (a atkNoAbort) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	c, cancel := atkDetach(ctx)
	defer cancel()
	return a.k.GetShardIterator(c, in, optFns...)
}

func (a atkNoAbort) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	c, cancel := atkDetach(ctx)
	defer cancel()
	return a.k.GetRecords(c, in, optFns...)
}

// atkNoAbortDB is atkNoAbort for dynalite, which exits on an aborted request the same way.
type atkNoAbortDB struct{ db replay.DB }

func (a atkNoAbortDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	c, cancel := atkDetach(ctx)
	defer cancel()
	return a.db.BatchWriteItem(c, in, optFns...)
}

func (a atkNoAbortDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c, cancel := atkDetach(ctx)
	defer cancel()
	return a.db.PutItem(c, in, optFns...)
}

func (a atkNoAbortDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c, cancel := atkDetach(ctx)
	defer cancel()
	return a.db.GetItem(c, in, optFns...)
}
