//go:build integration

package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
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

// Hash keys that put a record in the first shard, the last shard, and the middle one of three (2^127).
const (
	firstShardHash = "0"
	middleHash     = "170141183460469231731687303715884105728"
	lastShardHash  = "340282366920938463463374607431768211455"
)

// env is one test's emulators, tables and stream.
type env struct {
	db            *dynamodb.Client
	kc            *kinesis.Client
	table, errors string
	stream, arn   string
}

// newEnv creates a stream of shards shards and the data table keyed as cfg says, and the error table.
func newEnv(t *testing.T, shards int32, cfg processor.Config) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg = cfg.WithDefaults()
	e := &env{
		db:     emulators.DynamoDBClient(emulators.Dynalite(t)),
		kc:     emulators.KinesisClient(emulators.Kinesalite(t)),
		table:  emulators.UniqueName("data"),
		errors: emulators.UniqueName("errors"),
		stream: emulators.UniqueName("stream"),
	}
	if err := emulators.CreateKeyedTable(ctx, e.db, e.table, cfg.PartitionKey.Name, types.ScalarAttributeType(cfg.PartitionKey.Type)); err != nil {
		t.Fatal(err)
	}
	if err := emulators.CreateTable(ctx, e.db, e.errors); err != nil {
		t.Fatal(err)
	}
	if err := emulators.CreateStream(ctx, e.kc, e.stream, shards); err != nil {
		t.Fatal(err)
	}
	sum, err := e.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(e.stream)})
	if err != nil {
		t.Fatal(err)
	}
	e.arn = aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	return e
}

// createTable creates a table keyed by "id" (S).
func createTable(ctx context.Context, e *env, name string) error {
	return emulators.CreateTable(ctx, e.db, name)
}

// put is one record put: its event id ("shardId:sequenceNumber") and payload.
type put struct {
	id      string
	shard   string
	payload map[string]any
}

// putAll puts payloads in order, each with the partition key pk(payload) and, when hash is not "", that explicit
// hash key.
func (e *env) putAll(t *testing.T, hash string, pk func(map[string]any) string, payloads ...map[string]any) []put {
	t.Helper()
	var out []put
	for _, p := range payloads {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		in := &kinesis.PutRecordInput{StreamName: aws.String(e.stream), PartitionKey: aws.String(pk(p)), Data: b}
		if hash != "" {
			in.ExplicitHashKey = aws.String(hash)
		}
		res, err := e.kc.PutRecord(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, put{id: aws.ToString(res.ShardId) + ":" + aws.ToString(res.SequenceNumber), shard: aws.ToString(res.ShardId), payload: p})
	}
	return out
}

// putRaw puts data as it is.
func (e *env) putRaw(t *testing.T, pk string, data []byte) {
	t.Helper()
	if _, err := e.kc.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(e.stream), PartitionKey: aws.String(pk), Data: data}); err != nil {
		t.Fatal(err)
	}
}

// numbered returns payloads {"n": from}, ..., {"n": to-1}, each with the label.
func numbered(label string, from, to int) []map[string]any {
	var out []map[string]any
	for n := from; n < to; n++ {
		out = append(out, map[string]any{"n": n, "label": label})
	}
	return out
}

func byN(p map[string]any) string { return fmt.Sprint(p["n"]) }

// mark returns the time now, between puts, with a gap on both sides wider than kinesalite's millisecond arrival
// times.
func mark() time.Time {
	time.Sleep(30 * time.Millisecond)
	t := time.Now()
	time.Sleep(30 * time.Millisecond)
	return t
}

// scan returns every item of table by the string value of key, and the number of items scanned.
func scan(t *testing.T, db *dynamodb.Client, table, key string) (map[string]map[string]types.AttributeValue, int) {
	t.Helper()
	out := map[string]map[string]types.AttributeValue{}
	total := 0
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			out[attr(it, key)] = it
			total++
		}
	}
	return out, total
}

// attr returns an attribute's value as text ("" if absent).
func attr(it map[string]types.AttributeValue, name string) string {
	switch v := it[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	}
	return ""
}

func ids(puts []put) []string {
	out := make([]string, len(puts))
	for i, p := range puts {
		out[i] = p.id
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// run replays with the env's stream and tables, then optFns.
func (e *env) run(t *testing.T, ctx context.Context, optFns ...func(*replay.Options)) replay.Summary {
	t.Helper()
	r, err := replay.New(replay.Clients{DB: e.db, Kinesis: e.kc}, append([]func(*replay.Options){func(o *replay.Options) {
		o.StreamARN, o.TableName, o.ErrorTableName = e.arn, e.table, e.errors
		o.IteratorTimeout = 2 * time.Second
	}}, optFns...)...)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v (summary %+v)", err, sum)
	}
	return sum
}

// recordingDB records the event ids (the id attribute) of the data items put, in order, on the wire's side of the
// replay: what it wrote when.
type recordingDB struct {
	replay.DB
	table string
	mu    sync.Mutex
	ids   []string
}

func (d *recordingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := d.DB.PutItem(ctx, in, optFns...)
	if err == nil && aws.ToString(in.TableName) == d.table {
		d.mu.Lock()
		d.ids = append(d.ids, attr(in.Item, "id"))
		d.mu.Unlock()
	}
	return out, err
}

// throttlingKinesis answers every other GetShardIterator and GetRecords with ProvisionedThroughputExceededException, as Kinesis does when
// the live pipeline and the replay read a shard more than 5 times a second.
type throttlingKinesis struct {
	replay.Kinesis
	mu        sync.Mutex
	calls     int
	throttled int
}

func (k *throttlingKinesis) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if k.throttle() {
		return nil, &ktypes.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded for shard")}
	}
	return k.Kinesis.GetShardIterator(ctx, in, optFns...)
}

func (k *throttlingKinesis) throttle() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.calls%2 == 1 {
		k.throttled++
		return true
	}
	return false
}

func (k *throttlingKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if k.throttle() {
		return nil, &ktypes.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded for shard")}
	}
	return k.Kinesis.GetRecords(ctx, in, optFns...)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
