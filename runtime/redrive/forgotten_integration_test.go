//go:build integration

package redrive_test

import (
	"context"
	"math/big"
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
