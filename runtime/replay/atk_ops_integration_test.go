//go:build integration

package replay_test

import (
	"context"
	"math/big"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// TestAtkReplayForgottenReported: the window's records lie before the end of a give-up range the aggregate ledger
// dropped (its shard state's forgot), with no marker: nothing tells whether the pipeline counted them. The replay
// stores them and counts none (read back from the aggregate table), and must say so (Counts.Forgotten; the command
// exits 1), not report a clean run as if every record the pipeline missed had been recounted.
func TestAtkReplayForgottenReported(t *testing.T) {
	ctx := context.Background()
	cfg := processor.DefaultConfig()
	cfg.Aggregates = []processor.AggregateConfig{{Name: "perMinute", WindowSeconds: 60,
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
	e := newEnv(t, 1, cfg)
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	since := mark()
	puts := e.putAll(t, "", byN, numbered("f", 0, 2)...)
	shard, last, _ := strings.Cut(puts[len(puts)-1].id, ":")
	n, _ := new(big.Int).SetString(last, 10)
	bound, err := processor.EncodePosition(shard, n.Add(n, big.NewInt(1000)).String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(agg), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: aggregate.ShardStatePartitionKey}, "sk": &types.AttributeValueMemberS{Value: shard},
		aggregate.AttrVersion:   &types.AttributeValueMemberN{Value: "7"},
		aggregate.AttrDelivered: &types.AttributeValueMemberB{Value: bound},
		aggregate.AttrForgot:    &types.AttributeValueMemberB{Value: bound},
	}}); err != nil {
		t.Fatal(err)
	}
	sum := e.run(t, ctx, func(o *replay.Options) {
		o.Config, o.AggregateTableName, o.Since = cfg, agg, since
	})
	out, err := e.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(agg), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range out.Items {
		if !aggregate.IsLedgerItem(it) {
			t.Errorf("aggregate item %v written: a forgotten record was counted", it["pk"])
		}
	}
	if sum.Records.Stored != 2 || sum.Records.Forgotten != 2 || sum.Records.Recounted != 0 {
		t.Errorf("summary %+v, want 2 stored, 2 forgotten, none recounted", sum.Records)
	}
}
