//go:build integration

package redrive_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

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

// cancellingDB cancels its run's context when a write to the aggregate table begins after `after` such writes
// (an operator's Ctrl-C in the middle of a batch's recount): that write, and everything after it, fails.
type cancellingDB struct {
	*dynamodb.Client
	table  string
	after  int
	cancel context.CancelFunc

	mu     sync.Mutex
	writes int
}

func (d *cancellingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if aws.ToString(in.TableName) == d.table {
		d.mu.Lock()
		d.writes++
		if d.writes > d.after {
			d.cancel()
		}
		d.mu.Unlock()
	}
	return d.Client.PutItem(ctx, in, optFns...)
}

// giveUpEnv puts records of three categories, runs the pipeline so that the mapping gives up on the first
// `given` records (0 fails transiently, then the batch after them is counted: the ledger records the give-up range)
// and returns the env, the aggregate table, the configuration, the sequence numbers and the shard. want is the
// per-category count and sum every record counted once gives, computed here from the inputs.
func giveUpEnv(t *testing.T, given, total int) (e *env, agg string, cfg processor.Config, seqs []string, shard string, want string) {
	t.Helper()
	ctx := context.Background()
	e = newEnv(t)
	var payloads []string
	wantN := map[string]*big.Int{}
	wantSum := map[string]*big.Int{}
	for i := 0; i < total; i++ {
		cat := string(rune('a' + i%3))
		v := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(20+i)), nil) // exact past float64
		payloads = append(payloads, fmt.Sprintf(`{"cat":%q,"v":%s}`, cat, v))
		if wantN[cat] == nil {
			wantN[cat], wantSum[cat] = new(big.Int), new(big.Int)
		}
		wantN[cat].Add(wantN[cat], big.NewInt(1))
		wantSum[cat].Add(wantSum[cat], v)
	}
	seqs, shard = e.put(t, payloads...)
	agg = emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	cfg, err := processor.ParseConfig([]byte(`{"aggregates":[{"name":"perCategory","windowSeconds":3600,"groupBy":[{"path":"cat"}],` +
		`"measures":[{"name":"n","kind":"count"},{"name":"total","kind":"sum","path":"v"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
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
	// The stream's own records (its arrival times), as the mapping delivers them.
	out, err := e.kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(e.stream), ShardId: aws.String(shard),
		ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := e.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.ShardIterator})
	if err != nil || len(recs.Records) != total {
		t.Fatalf("read %d records (%v), want %d", len(recs.Records), err, total)
	}
	evs := make([]events.KinesisEventRecord, total)
	for i, r := range recs.Records {
		evs[i] = events.KinesisEventRecord{EventID: shard + ":" + aws.ToString(r.SequenceNumber), EventSource: "aws:kinesis", EventSourceArn: e.arn,
			Kinesis: events.KinesisRecord{SequenceNumber: aws.ToString(r.SequenceNumber), PartitionKey: aws.ToString(r.PartitionKey), Data: r.Data,
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: aws.ToTime(r.ApproximateArrivalTimestamp)}}}
	}
	if resp, err := pipeline.Handle(ctx, events.KinesisEvent{Records: evs[:given]}); err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("batch given up: %+v %v", resp, err)
	}
	if resp, err := pipeline.Handle(ctx, events.KinesisEvent{Records: evs[given:]}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch after the give-up: %+v %v", resp, err)
	}
	var parts []string
	for _, c := range keys(wantN) {
		parts = append(parts, fmt.Sprintf("%s n=%s total=%s", c, wantN[c], wantSum[c]))
	}
	return e, agg, cfg, seqs, shard, strings.Join(parts, "; ")
}

// totalsByCategory adds up n and total per category over every aggregate item (all windows and shards), exactly.
func totalsByCategory(t *testing.T, e *env, table string) string {
	t.Helper()
	out, err := e.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	n, sum := map[string]*big.Int{}, map[string]*big.Int{}
	for _, it := range out.Items {
		if aggregate.IsLedgerItem(it) {
			continue
		}
		g, ok := it["group"].(*types.AttributeValueMemberL)
		if !ok || len(g.Value) != 1 {
			t.Fatalf("item %v: group %v", it["pk"], it["group"])
		}
		cat := g.Value[0].(*types.AttributeValueMemberS).Value
		if n[cat] == nil {
			n[cat], sum[cat] = new(big.Int), new(big.Int)
		}
		for m, acc := range map[string]map[string]*big.Int{"n": n, "total": sum} {
			var text string
			switch v := it[m].(type) {
			case *types.AttributeValueMemberN:
				text = v.Value
			case *types.AttributeValueMemberS:
				text = v.Value
			default:
				t.Fatalf("item %v: %s is %T", it["pk"], m, it[m])
			}
			x, ok := new(big.Int).SetString(text, 10)
			if !ok {
				t.Fatalf("item %v: %s = %q", it["pk"], m, text)
			}
			acc[cat].Add(acc[cat], x)
		}
	}
	var parts []string
	for _, c := range keys(n) {
		parts = append(parts, fmt.Sprintf("%s n=%s total=%s", c, n[c], sum[c]))
	}
	return strings.Join(parts, "; ")
}

// TestAtkDLQInterruptedThenRerun: a redrive of a give-up range is cancelled after k of its aggregate writes (in the
// middle of a batch's recount), for every k up to the point where it finishes; the message must stay while anything
// is uncounted, and a rerun must bring every total to exactly what the inputs give: nothing lost, nothing twice.
func TestAtkDLQInterruptedThenRerun(t *testing.T) {
	for _, after := range []int{0, 1, 2, 3} {
		t.Run(fmt.Sprintf("cancel after %d writes", after), func(t *testing.T) {
			e, agg, cfg, seqs, shard, want := giveUpEnv(t, 6, 8)
			e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[5], 6))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := e.clients()
			c.DB = &cancellingDB{Client: e.db, table: agg, after: after, cancel: cancel}
			sum, _ := newRedriver(t, c, e, func(o *redrive.Options) {
				o.Config, o.AggregateTableName, o.BatchSize = cfg, agg, 4
			}).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
			t.Logf("interrupted: removed %d, records %+v, totals %s", sum.Removed, sum.Records, totalsByCategory(t, e, agg))
			// The range's recount takes 5 writes (items a, b, c for the first batch of 4, then b and c): every
			// cancellation here comes before its end, so the message must stay.
			if sum.Removed != 0 || len(e.sqs.Messages(e.queue)) != 1 {
				t.Errorf("interrupted run removed the message (summary %+v)", sum)
			}
			for run := 0; run < 2; run++ {
				if _, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
					o.Config, o.AggregateTableName, o.BatchSize = cfg, agg, 4
				}).DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second}); err != nil {
					t.Fatal(err)
				}
				if got := totalsByCategory(t, e, agg); got != want {
					t.Errorf("rerun %d: totals %s, want %s", run, got, want)
				}
				if msgs := e.sqs.Messages(e.queue); len(msgs) != 0 {
					t.Errorf("rerun %d: %d messages left, want none", run, len(msgs))
				}
			}
		})
	}
}

// TestAtkDLQTwoRunsAtOnce: two redrives run at the same time over overlapping on-failure ranges of one give-up
// range (two messages, one each, and a duplicate of each): every total must end exactly as the inputs give.
func TestAtkDLQTwoRunsAtOnce(t *testing.T) {
	e, agg, cfg, seqs, shard, want := giveUpEnv(t, 6, 8)
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[5], 6))
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[2], seqs[5], 4))
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[5], 6))
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[2], seqs[5], 4))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.Config, o.AggregateTableName, o.BatchSize = cfg, agg, 2 })
			_, errs[i] = r.DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second, MaxMessages: 2})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := totalsByCategory(t, e, agg); got != want {
		t.Errorf("totals %s, want %s", got, want)
	}
}

// TestAtkUnseenReasonOffersNoUselessRerun: records the aggregate ledger never saw that no option of the mode can
// count (an error entry: --count-unseen is for dlq and s3 only; an S3 payload record past the stream's retention,
// which --count-unseen never counts, even with --count-unverified) must be reported as uncounted and their sources
// kept, without telling the operator to rerun with --count-unseen (a run that changes nothing, or that the mode
// rejects). The aggregate table must hold nothing counted.
func TestAtkUnseenReasonOffersNoUselessRerun(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":1}`)
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	// The pipeline went past the record (delivered), and the ledger holds no mark, range or pending for it.
	setShardState(t, e, agg, shard, map[string]types.AttributeValue{
		aggregate.AttrVersion:   &types.AttributeValueMemberN{Value: "3"},
		aggregate.AttrDelivered: &types.AttributeValueMemberB{Value: positionAfter(t, shard, seqs[0])},
	})
	e.putEntryFailing(t, shard+":"+seqs[0], shard, seqs[0], `{"n":1}`)
	var results []redrive.Result
	sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.Config, o.AggregateTableName = aggCountConfig(), agg
		o.Result = func(res redrive.Result) { results = append(results, res) }
	}).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records.Unseen != 1 || sum.Removed != 0 || len(results) != 1 || results[0].Outcome != redrive.OutcomeFailed {
		t.Errorf("errors: summary %+v, results %+v; want the record unseen, the entry kept", sum, results)
	} else if strings.Contains(results[0].Reason, "a run with CountUnseen") {
		t.Errorf("errors: reason %q offers --count-unseen, which the errors mode does not take", results[0].Reason)
	}

	// An S3 object past retention, both flags.
	b := newBucket(t)
	key := mappingPrefix(shard) + "2025-01-02T03.04.05-old"
	b.put(t, key, e.s3Object(t, shard, []string{"900"}, []string{`{"n":7}`}, true))
	results = nil
	sum, err = newRedriver(t, e.s3Clients(b), e, func(o *redrive.Options) {
		o.Config, o.AggregateTableName, o.CountUnseen, o.CountUnverified = aggCountConfig(), agg, true, true
		o.Result = func(res redrive.Result) { results = append(results, res) }
	}).S3(ctx, redrive.S3Input{Bucket: b.name, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records.Unseen != 1 || len(b.keys(t)) != 1 || len(results) != 1 || results[0].Outcome != redrive.OutcomeFailed {
		t.Errorf("s3: summary %+v, results %+v, bucket %v; want the record unseen, the object kept", sum, results, b.keys(t))
	} else if strings.Contains(results[0].Reason, "a run with CountUnseen") {
		t.Errorf("s3: reason %q offers --count-unseen, which this run had", results[0].Reason)
	}
	if n := countedN(t, e, agg); n.Sign() != 0 {
		t.Errorf("%s records counted, want none", n)
	}
}

// TestAtkDryRunAndForgedEntriesAgainstGiveUp: over a give-up range the ledger records (records 0..5, uncounted):
//   - a dry run of its on-failure range with --count-unseen writes nothing: the aggregate table (ledger included),
//     the data table and the queue are as before;
//   - a forged error entry at a position of the range, its payload not the stream's, with the stream pinned and
//     --count-unverified: the stream wins, nothing is written or counted, the entry is kept (OutcomePayloadDiffers);
//   - the real redrive then counts every record once, the forged entry never: totals computed from the inputs.
func TestAtkDryRunAndForgedEntriesAgainstGiveUp(t *testing.T) {
	ctx := context.Background()
	e, agg, cfg, seqs, shard, want := giveUpEnv(t, 6, 8)
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[5], 6))
	beforeAgg, beforeData := aggSnapshot(t, e, agg), snapshot(t, e, e.table)
	sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.Config, o.AggregateTableName, o.CountUnseen, o.DryRun = cfg, agg, true, true
	}).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !sameItemsBut(beforeAgg, aggSnapshot(t, e, agg), func(string) bool { return false }) || !sameItems(beforeData, snapshot(t, e, e.table)) || len(e.sqs.Messages(e.queue)) != 1 {
		t.Errorf("dry run wrote something (summary %+v)", sum)
	}
	if sum.Records.Recounted != 6 {
		t.Errorf("dry run: %d records would be recounted, want 6", sum.Records.Recounted)
	}

	forgedID := shard + ":" + seqs[1]
	e.putEntryFailing(t, forgedID, shard, seqs[1], `{"cat":"b","v":999999999999999999999999999999}`)
	var results []redrive.Result
	if _, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.Config, o.AggregateTableName, o.CountUnverified = cfg, agg, true
		o.Result = func(res redrive.Result) { results = append(results, res) }
	}).Errors(ctx, redrive.ErrorsInput{}); err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Outcome != redrive.OutcomePayloadDiffers {
		t.Errorf("forged entry: results %+v, want payload differs", results)
	}
	if _, ok := items(t, e.db, e.errors)[forgedID]; !ok {
		t.Error("forged entry deleted")
	}
	if !sameItemsBut(beforeAgg, aggSnapshot(t, e, agg), func(string) bool { return false }) {
		t.Error("forged entry: the aggregate table changed")
	}

	if _, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.Config, o.AggregateTableName, o.CountUnseen = cfg, agg, true
	}).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := totalsByCategory(t, e, agg); got != want {
		t.Errorf("after the redrive: totals %s, want %s", got, want)
	}
}

// aggSnapshot is every item of the aggregate table (ledger included) by "pk|sk", as stored.
func aggSnapshot(t *testing.T, e *env, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	out, err := e.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.LastEvaluatedKey) > 0 {
		t.Fatal("the aggregate table holds more than one page")
	}
	m := map[string]map[string]types.AttributeValue{}
	for _, it := range out.Items {
		m[it["pk"].(*types.AttributeValueMemberS).Value+"|"+it["sk"].(*types.AttributeValueMemberS).Value] = it
	}
	return m
}

// TestAtkDLQNoLedgerStateKept: the mapping gave up on a shard's first batch while the aggregate table was
// unreachable for every attempt, so the ledger holds no state for the shard at all. The recount counts nothing
// there (nothing tells counted from uncounted), with or without --count-unseen; the records are then stored and
// left uncounted, so the message must stay and the result say why (no source deleted while a record is left
// uncounted). The oracle is the aggregate table and the queue.
func TestAtkDLQNoLedgerStateKept(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":1}`, `{"n":2}`)
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[1], 2))
	for _, countUnseen := range []bool{false, true} {
		var results []redrive.Result
		sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
			o.Config, o.AggregateTableName, o.CountUnseen = aggCountConfig(), agg, countUnseen
			o.Result = func(res redrive.Result) { results = append(results, res) }
		}).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		n := countedN(t, e, agg)
		if n.Sign() == 0 && (sum.Removed != 0 || len(e.sqs.Messages(e.queue)) != 1) {
			t.Errorf("count-unseen %v: the message was removed with its 2 records left uncounted (summary %+v)", countUnseen, sum)
		}
		if n.Sign() == 0 && (len(results) != 1 || results[0].Outcome != redrive.OutcomeFailed || !strings.Contains(results[0].Reason, "no state")) {
			t.Errorf("count-unseen %v: results %+v, want one failed, saying the ledger holds no state for the shard", countUnseen, results)
		}
		if n.Cmp(big.NewInt(2)) > 0 {
			t.Errorf("count-unseen %v: %s counted, more than the 2 records", countUnseen, n)
		}
		if n.Sign() == 0 && sum.Records.NoLedger != 2 {
			t.Errorf("count-unseen %v: summary %+v, want 2 records named uncounted for want of the shard's ledger state", countUnseen, sum)
		}
	}
	// An error entry of the shard (the stream confirms it): kept too.
	e.putEntryFailing(t, shard+":"+seqs[0], shard, seqs[0], `{"n":1}`)
	sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.Config, o.AggregateTableName = aggCountConfig(), agg
	}).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := items(t, e.db, e.errors)[shard+":"+seqs[0]]; !ok || sum.Records.NoLedger != 1 || sum.Unrecovered() != 1 {
		t.Errorf("errors: entry kept %v, summary %+v; want the entry kept and its record named uncounted", ok, sum)
	}
}

// TestAtkCountUnverifiedNeedsThePin: --count-unverified on error entries without the stream pinned counts every
// entry on its word, even one the stream still holds and would refute: a forged entry at a position of a give-up
// range (the real record still in the stream) would count the forger's values, and the real record's later
// redrive would find its position counted and add nothing (or, the forged arrival time naming another window,
// count it a second time there). The redrive must refuse CountUnverified without StreamARN, before anything is
// written; the real redrive then brings the totals to exactly what the
// inputs give.
func TestAtkCountUnverifiedNeedsThePin(t *testing.T) {
	ctx := context.Background()
	e, agg, cfg, seqs, shard, want := giveUpEnv(t, 6, 8)
	before := aggSnapshot(t, e, agg)
	forgedID := shard + ":" + seqs[1]
	e.putEntryFailing(t, forgedID, shard, seqs[1], `{"cat":"b","v":999999999999999999999999999999}`)
	r, err := redrive.New(e.clients(), func(o *redrive.Options) {
		o.TableName, o.ErrorTableName, o.Config, o.AggregateTableName, o.CountUnverified = e.table, e.errors, cfg, agg, true
	})
	if err == nil {
		if _, err := r.Errors(ctx, redrive.ErrorsInput{}); err == nil {
			t.Error("Errors with CountUnverified and no StreamARN ran")
		}
	}
	if !sameItemsBut(before, aggSnapshot(t, e, agg), func(string) bool { return false }) {
		t.Error("the aggregate table changed: the forged entry was counted")
	}
	if _, ok := items(t, e.db, e.errors)[forgedID]; !ok {
		t.Error("the forged entry was deleted")
	}
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[5], 6))
	if _, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.Config, o.AggregateTableName = cfg, agg
	}).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := totalsByCategory(t, e, agg); got != want {
		t.Errorf("after the redrive: totals %s, want %s", got, want)
	}
}
