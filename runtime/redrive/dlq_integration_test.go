//go:build integration

package redrive_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

func newRedriver(t *testing.T, c redrive.Clients, e *env, fns ...func(*redrive.Options)) *redrive.Redriver {
	t.Helper()
	all := append([]func(*redrive.Options){func(o *redrive.Options) {
		o.TableName, o.ErrorTableName, o.StreamARN = e.table, e.errors, e.arn
	}}, fns...)
	r, err := redrive.New(c, all...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDLQReadableRange(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `not json`, `{"n":6}`)
	// The mapping gave up on records 1..6: one of them (5) is not JSON and belongs in the error table.
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[1], seqs[6], 6))

	var results []redrive.Result
	r := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.BatchSize = 4 // two processor calls
		o.Result = func(res redrive.Result) { results = append(results, res) }
	})
	sum, err := r.DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Unrecovered() != 0 || sum.Removed != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	want := redrive.RecordCounts{Read: 6, Written: 5, ToErrorTable: 1}
	if sum.Records != want {
		t.Errorf("records = %+v, want %+v", sum.Records, want)
	}
	if got, want := keys(items(t, e.db, e.table)), ids(shard, seqs[1], seqs[2], seqs[3], seqs[4], seqs[6]); !reflect.DeepEqual(got, want) {
		t.Errorf("data table = %v, want %v", got, want)
	}
	if got, want := keys(items(t, e.db, e.errors)), ids(shard, seqs[5]); !reflect.DeepEqual(got, want) {
		t.Errorf("error table = %v, want %v", got, want)
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 0 {
		t.Errorf("queue still holds %v", msgs)
	}
	if len(results) != 1 || results[0].ShardID != shard || results[0].StartSequenceNumber != seqs[1] || results[0].EndSequenceNumber != seqs[6] {
		t.Errorf("results = %+v", results)
	}
}

func TestDLQDryRun(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`)
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[1], 2))
	r := newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.DryRun = true })
	sum, err := r.DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeWouldRecover] != 1 || sum.Removed != 0 || sum.Records.Written != 2 || !sum.DryRun {
		t.Fatalf("summary = %+v", sum)
	}
	if n := len(items(t, e.db, e.table)); n != 0 {
		t.Errorf("dry run wrote %d items", n)
	}
	msgs := e.sqs.Messages(e.queue)
	if len(msgs) != 1 || !msgs[0].Visible {
		t.Errorf("queue = %+v, want the message kept and visible again", msgs)
	}
}

func TestDLQPastRetention(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`)

	// A range that starts before the shard's first record (kinesalite rejects it as not from this stream, as Kinesis
	// rejects a sequence number past its retention).
	first, _ := new(big.Int).SetString(seqs[0], 10)
	before := first.Sub(first, big.NewInt(1)).String()
	foreign := e.sqs.Send(e.queue, e.failureBody(shard, before, seqs[1], 2))
	// A range on a shard that does not exist.
	noShard := e.sqs.Send(e.queue, e.failureBody("shardId-000000000007", seqs[0], seqs[1], 2))

	r := newRedriver(t, e.clients(), e)
	sum, err := r.DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeExpired] != 2 || sum.Unrecovered() != 2 || sum.Removed != 0 {
		t.Fatalf("summary = %+v", sum)
	}
	for _, res := range sum.Unrecoverable {
		if res.StartSequenceNumber == "" || res.ShardID == "" || !strings.Contains(res.Reason, res.StartSequenceNumber) {
			t.Errorf("result %+v does not name the range", res)
		}
	}
	msgs := e.sqs.Messages(e.queue)
	if len(msgs) != 2 || msgs[0].ID != foreign || msgs[1].ID != noShard || !msgs[0].Visible || !msgs[1].Visible {
		t.Errorf("queue = %+v, want both messages kept and visible", msgs)
	}
	if n := len(items(t, e.db, e.table)); n != 0 {
		t.Errorf("%d items written", n)
	}
}

// trimmingKinesis hides the records before a trim horizon, as Kinesis does once they pass the retention period.
type trimmingKinesis struct {
	redrive.Kinesis
	horizon string
}

func (k trimmingKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := k.Kinesis.GetRecords(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	kept := out.Records[:0]
	for _, r := range out.Records {
		if redrive.CompareSequenceNumbers(aws.ToString(r.SequenceNumber), k.horizon) >= 0 {
			kept = append(kept, r)
		}
	}
	out.Records = kept
	return out, nil
}

func TestDLQTrimmedRange(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	id := e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[3], 4))
	c := e.clients()
	c.Kinesis = trimmingKinesis{Kinesis: e.kc, horizon: seqs[2]}
	sum, err := newRedriver(t, c, e).DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeExpired] != 1 || sum.Removed != 0 {
		t.Fatalf("summary = %+v", sum)
	}
	res := sum.Unrecoverable[0]
	if !strings.Contains(res.Reason, seqs[0]) || !strings.Contains(res.Reason, seqs[2]) || res.ShardID != shard {
		t.Errorf("reason %q does not name the lost range %s..%s", res.Reason, seqs[0], seqs[2])
	}
	// What is still readable is stored all the same.
	if got, want := keys(items(t, e.db, e.table)), ids(shard, seqs[2], seqs[3]); !reflect.DeepEqual(got, want) {
		t.Errorf("data table = %v, want %v", got, want)
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 1 || msgs[0].ID != id {
		t.Errorf("queue = %+v, want the message kept", msgs)
	}
}

// failingPutDB fails every PutItem of the data item written from the record with sequence number seq (its event-id
// key ends in ":<seq>").
type failingPutDB struct {
	*dynamodb.Client
	table, seq string
}

func (d failingPutDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if v, ok := in.Item["id"].(*types.AttributeValueMemberS); ok && aws.ToString(in.TableName) == d.table && strings.HasSuffix(v.Value, ":"+d.seq) {
		return nil, errors.New("injected failure")
	}
	return d.Client.PutItem(ctx, in, optFns...)
}

func TestDLQPartialFailureThenRerun(t *testing.T) {
	e := newEnv(t)
	payloads := make([]string, 10)
	for i := range payloads {
		payloads[i] = fmt.Sprintf(`{"n":%d}`, i)
	}
	seqs, shard := e.put(t, payloads...)
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[9], 10))

	// The write of the last record's item fails (a redrive writes each item with its own conditional PutItem): the
	// others are stored.
	c := e.clients()
	c.DB = failingPutDB{Client: e.db, table: e.table, seq: seqs[9]}
	sum, err := newRedriver(t, c, e).DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeFailed] != 1 || sum.Records.Failed == 0 || sum.Records.Written == 0 || sum.Removed != 0 {
		t.Fatalf("first run: summary = %+v", sum)
	}
	if n := len(items(t, e.db, e.table)); n == 0 || n == 10 {
		t.Fatalf("first run stored %d of 10 items, want some", n)
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 1 || !msgs[0].Visible {
		t.Fatalf("queue after the first run = %+v, want the message kept and visible", msgs)
	}

	sum, err = newRedriver(t, e.clients(), e).DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Removed != 1 || sum.Records.Written != 10 {
		t.Fatalf("rerun: summary = %+v", sum)
	}
	got := items(t, e.db, e.table)
	if want := ids(shard, seqs...); !reflect.DeepEqual(keys(got), want) {
		t.Errorf("data table = %v, want %v", keys(got), want)
	}
	for i, s := range seqs {
		// The key names the record; the payload must be that record's.
		if it := got[shard+":"+s]; !reflect.DeepEqual(it["n"], &types.AttributeValueMemberN{Value: strconv.Itoa(i)}) {
			t.Errorf("item %d = %v", i, it)
		}
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 0 {
		t.Errorf("queue still holds %v", msgs)
	}
}

// TestDLQForeignStream: a message naming another stream than the pinned one, even a readable stream of the same
// account and region, is left in the queue and reported; that stream is not read and nothing is written.
func TestDLQForeignStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other := emulators.UniqueName("other")
	if err := emulators.CreateStream(ctx, e.kc, other, 1); err != nil {
		t.Fatal(err)
	}
	sum, err := e.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(other)})
	if err != nil {
		t.Fatal(err)
	}
	otherARN := aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	var seqs []string
	var shard string
	for _, p := range []string{`{"n":0}`, `{"n":1}`} {
		out, err := e.kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(other), PartitionKey: aws.String("pk"), Data: []byte(p)})
		if err != nil {
			t.Fatal(err)
		}
		seqs, shard = append(seqs, aws.ToString(out.SequenceNumber)), aws.ToString(out.ShardId)
	}
	id := e.sqs.Send(e.queue, failureBodyOf(otherARN, shard, seqs[0], seqs[1], 2))

	s, err := newRedriver(t, e.clients(), e).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sources[redrive.OutcomeForeignStream] != 1 || s.Removed != 0 || s.Records.Read != 0 {
		t.Fatalf("summary = %+v", s)
	}
	if res := s.Unrecoverable[0]; !strings.Contains(res.Reason, "names stream "+otherARN) || !strings.Contains(res.Reason, e.arn) {
		t.Errorf("reason %q does not name both streams", res.Reason)
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 1 || msgs[0].ID != id || !msgs[0].Visible {
		t.Errorf("queue = %+v, want the message kept and visible", msgs)
	}
	if n := len(items(t, e.db, e.table)); n != 0 {
		t.Errorf("%d items written", n)
	}
}

func TestDLQInvalidMessage(t *testing.T) {
	e := newEnv(t)
	e.sqs.Send(e.queue, `{"hello":"world"}`)
	sum, err := newRedriver(t, e.clients(), e).DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeInvalid] != 1 || len(e.sqs.Messages(e.queue)) != 1 {
		t.Fatalf("summary = %+v", sum)
	}
}
