//go:build integration && !kdp_noexpr

package processor_test

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestIntegrationAggregateSumBeyond38Digits: against dynalite, a sum whose exact value needs 40 significant digits
// (which DynamoDB refuses as a number) is stored as a string (S) holding the exact decimal, the shard goes on, a
// measure computed by an expression is exact too, and aggregate.Totals combines the S item with another shard's N
// item exactly.
func TestIntegrationAggregateSumBeyond38Digits(t *testing.T) {
	endpoint := emulators.Dynalite(t)
	direct := emulators.DynamoDBClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data, errs, aggs := emulators.UniqueName("exactdata"), emulators.UniqueName("exacterr"), emulators.UniqueName("exactagg")
	for _, name := range []string{data, errs} {
		if err := emulators.CreateTable(ctx, direct, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := emulators.CreateAggregateTable(ctx, direct, aggs); err != nil {
		t.Fatal(err)
	}
	// DynamoDB itself (here dynalite) refuses the 40-digit number: the reason the sum cannot be an N.
	if _, err := direct.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(aggs), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "probe"}, "sk": &types.AttributeValueMemberS{Value: "probe"},
		"s": &types.AttributeValueMemberN{Value: "12345678901234567890.1234567890123456789"}}}); err == nil {
		t.Fatal("dynalite stored a 39-digit number: the premise of this test does not hold")
	}

	agg := processor.AggregateConfig{Name: "exact", WindowSeconds: 60,
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Path: "v"},
			{Name: "tenth", Kind: "sum", Expression: "v / 10 + 0.1"}}}
	p, err := processor.New(emulators.DynamoDBClient(endpoint), func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName = data, errs, aggs
		o.Config = processor.DefaultConfig()
		o.Config.Aggregates = []processor.AggregateConfig{agg}
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 3, 1, 12, 0, 30, 0, time.UTC)
	event := func(shard string, seq string, payload string) events.KinesisEvent {
		return events.KinesisEvent{Records: []events.KinesisEventRecord{{EventID: shard + ":" + seq, EventSource: "aws:kinesis",
			Kinesis: events.KinesisRecord{SequenceNumber: seq, PartitionKey: "p", Data: []byte(payload),
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: at}}}}}
	}
	const shardA, shardB = "shardId-000000000001", "shardId-000000000002"
	for _, ev := range []events.KinesisEvent{
		event(shardA, "100", `{"v":12345678901234567890}`),
		event(shardA, "101", `{"v":0.12345678901234567890}`),
		event(shardB, "200", `{"v":0.87654321098765432110}`),
	} {
		resp, err := p.Handle(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("record %s reported for retry: %v", ev.Records[0].EventID, resp.BatchItemFailures)
		}
	}

	key, err := aggregate.KeyText("exact", aggregate.WindowStart(at, time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := direct.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(aggs), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: key}, "sk": &types.AttributeValueMemberS{Value: shardA}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"s": "12345678901234567890.1234567890123456789", "tenth": "1234567890123456789.21234567890123456789"} {
		sv, ok := out.Item[name].(*types.AttributeValueMemberS)
		if !ok {
			t.Errorf("shard A's %s is a %T, want a string holding the exact sum", name, out.Item[name])
			continue
		}
		if r, ok := new(big.Rat).SetString(sv.Value); !ok || r.Cmp(ratOrFail(t, want)) != 0 {
			t.Errorf("shard A's %s = %q, want %s", name, sv.Value, want)
		}
	}
	if _, ok := out.Item["n"].(*types.AttributeValueMemberN); !ok {
		t.Errorf("shard A's n is a %T, want a number", out.Item["n"])
	}

	tot, err := aggregate.Totals(ctx, direct, aggs, aggregate.Query{Name: "exact", Measures: agg.MeasureList(), Window: time.Minute, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"n": "3", "s": "12345678901234567891.0000000000000000000",
		"tenth": "1234567890123456789.4", // (v1 + v2 + v3) / 10 + 3 × 0.1
	}
	if tot.Shards != 2 {
		t.Errorf("Totals combined %d items, want 2", tot.Shards)
	}
	for name, w := range want {
		g := tot.Values[name]
		if g == nil {
			t.Errorf("Totals %s missing, want %s", name, w)
			continue
		}
		if r, ok := new(big.Rat).SetString(g.String()); !ok || r.Cmp(ratOrFail(t, w)) != 0 {
			t.Errorf("Totals %s = %s, want %s", name, g, w)
		}
	}
}

func ratOrFail(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad decimal %q", s)
	}
	return r
}
