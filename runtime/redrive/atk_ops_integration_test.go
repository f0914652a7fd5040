//go:build integration

package redrive_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// aggCountConfig is a configuration with one aggregate counting records per minute (measure n).
func aggCountConfig() processor.Config {
	cfg := processor.DefaultConfig()
	cfg.Aggregates = []processor.AggregateConfig{{Name: "perMinute", WindowSeconds: 60,
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
	return cfg
}

// setShardState writes the aggregate ledger's state of shard as the pipeline would have left it.
func setShardState(t *testing.T, e *env, table, shard string, attrs map[string]types.AttributeValue) {
	t.Helper()
	item := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: aggregate.ShardStatePartitionKey}, "sk": &types.AttributeValueMemberS{Value: shard},
	}
	for k, v := range attrs {
		item[k] = v
	}
	if _, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

// countedN sums measure n over the aggregate table's items (not the ledger's), exactly.
func countedN(t *testing.T, e *env, table string) *big.Int {
	t.Helper()
	out, err := e.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	n := new(big.Int)
	for _, it := range out.Items {
		if aggregate.IsLedgerItem(it) {
			continue
		}
		if v, ok := it["n"].(*types.AttributeValueMemberN); ok {
			k, ok := new(big.Int).SetString(v.Value, 10)
			if !ok {
				t.Fatalf("n = %q", v.Value)
			}
			n.Add(n, k)
		}
	}
	return n
}

// positionAfter is a position of shard far after sequence number seq.
func positionAfter(t *testing.T, shard, seq string) []byte {
	t.Helper()
	n, _ := new(big.Int).SetString(seq, 10)
	p, err := processor.EncodePosition(shard, n.Add(n, big.NewInt(1000)).String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAtkErrorsForgottenEntryKept: an error entry (the stream confirms it) for a record before the end of a give-up
// range the ledger dropped, without a marker: nothing tells whether the pipeline counted it, so the redrive stores
// it, counts nothing and must keep the entry (no source deleted while a record is left uncounted), as the DLQ and
// S3 modes do. The oracle is the error table and the aggregate table as read back from dynalite.
func TestAtkErrorsForgottenEntryKept(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":1}`)
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	bound := positionAfter(t, shard, seqs[0])
	setShardState(t, e, agg, shard, map[string]types.AttributeValue{
		aggregate.AttrVersion:   &types.AttributeValueMemberN{Value: "7"},
		aggregate.AttrDelivered: &types.AttributeValueMemberB{Value: bound},
		aggregate.AttrForgot:    &types.AttributeValueMemberB{Value: bound},
	})
	e.putEntryFailing(t, shard+":"+seqs[0], shard, seqs[0], `{"n":1}`)
	for run := 0; run < 2; run++ {
		var results []redrive.Result
		sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
			o.Config, o.AggregateTableName = aggCountConfig(), agg
			o.Result = func(res redrive.Result) { results = append(results, res) }
		}).Errors(ctx, redrive.ErrorsInput{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := items(t, e.db, e.errors)[shard+":"+seqs[0]]; !ok {
			t.Errorf("run %d: the entry was deleted, though its record was left uncounted (summary %+v)", run, sum)
		}
		if n := countedN(t, e, agg); n.Sign() != 0 {
			t.Errorf("run %d: %s records counted, want none (forgotten)", run, n)
		}
		if sum.Records.Forgotten != 1 || sum.Unrecovered() != 1 || sum.Removed != 0 {
			t.Errorf("run %d: summary %+v, want 1 forgotten record, its source left", run, sum)
		}
		if len(results) != 1 || results[0].Outcome != redrive.OutcomeFailed || !strings.Contains(results[0].Reason, "give-up range") {
			t.Errorf("run %d: results %+v, want one failed, naming the dropped give-up range", run, results)
		}
	}
}

// TestAtkCountUnseenRangeStartsInGiveUp: the pipeline read batch 0..5, failed on 0 (transiently) until the mapping
// gave up on 0..2 (bisection) and acknowledged 3..5, which it counted in fence order; the ledger records the give-up
// range [0, 3). The on-failure record names the batch first read, 0..5 (AWS does not document which range it
// names). Its last record (5) is one the pipeline counted and the ledger does not list as in flight, so checking
// only the last record trusts the range: --count-unseen then counts 3..5 a second time. Records 0..2 must be
// recounted (the give-up range's rule), 3..5 left uncounted and reported, the message kept. Totals are read back from
// the aggregate table and compared with the count of distinct records (6).
func TestAtkCountUnseenRangeStartsInGiveUp(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`)
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	cfg := aggCountConfig()
	pipeline, err := processor.New(e.db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName, o.Config = e.table, e.errors, agg, cfg
		o.Logger, o.MetricsWriter = slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard
		def := processor.DefaultTransform(cfg)
		o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
			if r.SequenceNumber == seqs[0] {
				return nil, errors.New("lookup timed out")
			}
			return def(ctx, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]events.KinesisEventRecord, len(seqs))
	for i, s := range seqs {
		recs[i] = e.records(shard, []string{s}, []string{`{"n":` + string(rune('0'+i)) + `}`})[0]
		recs[i].Kinesis.ApproximateArrivalTimestamp = events.SecondsEpochTime{Time: time.Now()}
	}
	if resp, err := pipeline.Handle(ctx, events.KinesisEvent{Records: recs}); err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != seqs[0] {
		t.Fatalf("batch 0..5: %+v %v", resp, err)
	}
	if resp, err := pipeline.Handle(ctx, events.KinesisEvent{Records: recs[3:]}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch 3..5 after the give-up: %+v %v", resp, err)
	}
	if n := countedN(t, e, agg); n.Cmp(big.NewInt(3)) != 0 {
		t.Fatalf("after the pipeline: %s counted, want 3 (records 3..5)", n)
	}
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[5], 6))
	for run := 0; run < 2; run++ {
		var results []redrive.Result
		sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
			o.Config, o.AggregateTableName, o.CountUnseen = cfg, agg, true
			o.Result = func(res redrive.Result) { results = append(results, res) }
		}).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if n := countedN(t, e, agg); n.Cmp(big.NewInt(int64(len(seqs)))) != 0 {
			t.Errorf("run %d: %s counted, want %d (every record once)", run, n, len(seqs))
		}
		if sum.Records.Unseen != 3 || sum.Removed != 0 || len(e.sqs.Messages(e.queue)) != 1 {
			t.Errorf("run %d: summary %+v, queue %d; want 3 unseen records reported, the message kept", run, sum, len(e.sqs.Messages(e.queue)))
		}
		if len(results) != 1 || !strings.Contains(results[0].Reason, "--count-unseen not applied to this range") {
			t.Errorf("run %d: results %+v, want the reason --count-unseen was not applied", run, results)
		}
	}
}

// TestAtkS3RefusedObjectNamesUncounted: an object past the stream's retention whose payload holds two records: one
// whose key holds another record's item (refused) and one stored insert-only and left uncounted (unverified). The
// result must name both: the refusal, and the record left uncounted (every uncounted record named), and the object
// must stay; the aggregate table must hold nothing counted.
func TestAtkS3RefusedObjectNamesUncounted(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const shard = "shardId-000000000000"
	byOrder, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"},` +
		`"aggregates":[{"name":"perMinute","windowSeconds":60,"measures":[{"name":"n","kind":"count"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	noAgg := byOrder
	noAgg.Aggregates = nil
	e.pipeline(t, noAgg, rec(shard, "5", `{"orderId":"K","v":"real"}`))
	b := newBucket(t)
	key := mappingPrefix(shard) + "2025-01-02T03.04.05-mixed"
	b.put(t, key, e.s3Object(t, shard, []string{"900", "901"}, []string{`{"orderId":"K","v":"forged"}`, `{"orderId":"N","v":"new"}`}, true))
	var results []redrive.Result
	sum, err := newRedriver(t, e.s3Clients(b), e, func(o *redrive.Options) {
		o.Config, o.AggregateTableName = byOrder, agg
		o.Result = func(res redrive.Result) { results = append(results, res) }
	}).S3(ctx, redrive.S3Input{Bucket: b.name, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.keys(t); len(got) != 1 {
		t.Errorf("bucket %v, want the object kept", got)
	}
	if n := countedN(t, e, agg); n.Sign() != 0 {
		t.Errorf("%s records counted, want none", n)
	}
	if sum.Records.Refused != 1 || sum.Records.Unverified != 1 || sum.Unrecovered() != 1 {
		t.Errorf("summary %+v, want 1 refused, 1 unverified, the object left behind", sum)
	}
	if len(results) != 1 || results[0].Outcome != redrive.OutcomeRefused ||
		!strings.Contains(results[0].Reason, "refused") || !strings.Contains(results[0].Reason, "not verified against the stream") {
		t.Errorf("results %+v, want one refused, naming the refusal and the record left uncounted", results)
	}
}
