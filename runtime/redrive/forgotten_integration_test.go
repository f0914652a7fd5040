//go:build integration

package redrive_test

import (
	"context"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// TestDLQForgottenRangeKept: the on-failure range lies before the end of a give-up range the aggregate ledger
// dropped (its shard state's forgot: more than aggregate.MaxLedgerGaps give-ups since). Nothing tells whether the
// pipeline counted those records, so the redrive stores them, counts none (with --count-unseen neither), reports
// them (RecordCounts.Forgotten, a reason naming the range's problem) and keeps the message.
func TestDLQForgottenRangeKept(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	aggTable := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, aggTable); err != nil {
		t.Fatal(err)
	}
	// The shard state as the pipeline leaves it after the give-ups: delivered and forgot past the range.
	last, _ := new(big.Int).SetString(seqs[2], 10)
	after := new(big.Int).Add(last, big.NewInt(1000)).String()
	bound, err := processor.EncodePosition(shard, after, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(aggTable), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: aggregate.ShardStatePartitionKey}, "sk": &types.AttributeValueMemberS{Value: shard},
		aggregate.AttrVersion:   &types.AttributeValueMemberN{Value: "7"},
		aggregate.AttrDelivered: &types.AttributeValueMemberB{Value: bound},
		aggregate.AttrForgot:    &types.AttributeValueMemberB{Value: bound},
	}}); err != nil {
		t.Fatal(err)
	}
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[2], 3))
	cfg := processor.DefaultConfig()
	cfg.Aggregates = []processor.AggregateConfig{{Name: "perMinute", WindowSeconds: 60,
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
	for _, countUnseen := range []bool{false, true} {
		var results []redrive.Result
		r := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
			o.Config, o.AggregateTableName, o.CountUnseen = cfg, aggTable, countUnseen
			o.Result = func(res redrive.Result) { results = append(results, res) }
		})
		sum, err := r.DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Records.Forgotten != 3 || sum.Records.Recounted != 0 || sum.Records.Written != 3 || sum.Unrecovered() != 1 || sum.Removed != 0 {
			t.Errorf("count-unseen %v: summary %+v, want 3 records written, 3 forgotten, none recounted, the source left", countUnseen, sum)
		}
		if len(results) != 1 || results[0].Outcome != redrive.OutcomeFailed || !strings.Contains(results[0].Reason, "give-up range") {
			t.Errorf("count-unseen %v: results %+v, want one failed, naming the dropped give-up range", countUnseen, results)
		}
		if msgs := e.sqs.Messages(e.queue); len(msgs) != 1 {
			t.Errorf("count-unseen %v: queue holds %d messages, want the one kept", countUnseen, len(msgs))
		}
		scan, err := e.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(aggTable), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range scan.Items {
			if !aggregate.IsLedgerItem(it) {
				t.Errorf("count-unseen %v: aggregate item %v written: a forgotten record was counted", countUnseen, it["pk"])
			}
		}
	}
}

// TestDLQCountUnseenRangeReachesBack: the pipeline's batch 0..3 reached the aggregate ledger, counted 0 and 1 and
// reported 2 (pending 2, delivered 3); the mapping then gave up on it, and its on-failure record names 0..3 (a
// range from the batch first read, not from the checkpoint: AWS does not document which). Records 0 and 1 look
// unseen (at or before delivered, not pending, not marked); --count-unseen must not count them on the range's
// word, since the ledger saw the range's last record delivered: only 2 and 3 (in flight) are recounted, 0 and 1 are
// reported uncounted and the message kept. A range of a batch the ledger never saw (4..5) is still counted.
func TestDLQCountUnseenRangeReachesBack(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`)
	aggTable := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, aggTable); err != nil {
		t.Fatal(err)
	}
	pos := func(i int) []byte {
		p, err := processor.EncodePosition(shard, seqs[i], 0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	setState := func(item map[string]types.AttributeValue) {
		item["pk"] = &types.AttributeValueMemberS{Value: aggregate.ShardStatePartitionKey}
		item["sk"] = &types.AttributeValueMemberS{Value: shard}
		if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(aggTable), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	setState(map[string]types.AttributeValue{aggregate.AttrVersion: &types.AttributeValueMemberN{Value: "3"},
		aggregate.AttrPending: &types.AttributeValueMemberB{Value: pos(2)}, aggregate.AttrDelivered: &types.AttributeValueMemberB{Value: pos(3)}})
	cfg := processor.DefaultConfig()
	cfg.Aggregates = []processor.AggregateConfig{{Name: "perMinute", WindowSeconds: 60,
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
	counted := func() int {
		scan, err := e.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(aggTable), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range scan.Items {
			if v, ok := it["n"].(*types.AttributeValueMemberN); ok && !aggregate.IsLedgerItem(it) {
				k, _ := strconv.Atoi(v.Value)
				n += k
			}
		}
		return n
	}
	run := func() (redrive.Summary, []redrive.Result) {
		var results []redrive.Result
		r := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
			o.Config, o.AggregateTableName, o.CountUnseen = cfg, aggTable, true
			o.Result = func(res redrive.Result) { results = append(results, res) }
		})
		sum, err := r.DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return sum, results
	}
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[3], 4))
	sum, results := run()
	if sum.Records.Recounted != 2 || sum.Records.Unseen != 2 || sum.Removed != 0 || counted() != 2 {
		t.Errorf("range 0..3: records %+v, %d removed, %d counted; want 2 and 3 recounted, 0 and 1 left unseen, the message kept",
			sum.Records, sum.Removed, counted())
	}
	if len(results) != 1 || results[0].Outcome != redrive.OutcomeFailed || !strings.Contains(results[0].Reason, "--count-unseen not applied to this range") {
		t.Errorf("range 0..3: results %+v, want one failed, saying why --count-unseen was not applied", results)
	}
	// The mapping moved on: batch 6.. reached the ledger and recorded the give-up range [2, 4); batch 4..5 was given
	// up while the aggregate table was unreachable for all its attempts (the ledger never saw it). Range 0..3 is
	// still distrusted (its last record lies in the range); range 4..5 is counted on its word.
	after, _ := new(big.Int).SetString(seqs[5], 10)
	next, err := processor.EncodePosition(shard, new(big.Int).Add(after, big.NewInt(1000)).String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	setState(map[string]types.AttributeValue{aggregate.AttrVersion: &types.AttributeValueMemberN{Value: "4"},
		aggregate.AttrDelivered: &types.AttributeValueMemberB{Value: next},
		aggregate.AttrGaps: &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"s": &types.AttributeValueMemberB{Value: pos(2)}, "e": &types.AttributeValueMemberB{Value: pos(4)}}}}}})
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 1 {
		t.Fatalf("queue holds %d messages, want the range 0..3 kept", len(msgs))
	}
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[4], seqs[5], 2))
	sum, results = run()
	if sum.Records.Recounted != 2 || sum.Records.Unseen != 2 || sum.Removed != 1 || counted() != 4 {
		t.Errorf("ranges 0..3 and 4..5: records %+v, %d removed, %d counted; want 4 and 5 recounted, 0 and 1 left unseen, "+
			"the message of 4..5 removed", sum.Records, sum.Removed, counted())
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 1 || len(results) != 2 {
		t.Errorf("queue holds %d messages, %d results; want the range 0..3 kept", len(msgs), len(results))
	}
}
