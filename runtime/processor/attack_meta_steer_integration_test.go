//go:build integration && !kdp_noexpr

package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackMetaPayloadKeyLooksLikeEventID: under a business key taken from the payload (plain or declarative, with
// a rename and a computed attribute), a payload can make its item's key look exactly like another record's event
// id ("shardId-000000000000:<that record's sequence number>", also "#0" and leading-zero forms). Whether an item
// leaves its position to its key must be decided by the configuration, not by how the key looks: the item keeps
// _kpos, so a later conditional replay of the older record the key "names" is superseded (the newer item stays),
// and an insert-only redrive of it is refused, not counted as a rerun. The oracle reads dynalite and the Lambda
// response only.
func TestAttackMetaPayloadKeyLooksLikeEventID(t *testing.T) {
	endpoint := emulators.Dynalite(t)
	db := emulators.DynamoDBClient(endpoint)
	const shard = "shardId-000000000000"
	older := fmt.Sprintf("4959%052d", 100) // the record the key pretends to be
	newer := fmt.Sprintf("4959%052d", 200) // the record that wrote the item
	keys := []string{shard + ":" + older, shard + ":" + older + "#0", shard + ":0" + older}
	transforms := map[string]*processor.TransformConfig{
		"plain": nil,
		"declarative": {Rename: map[string]string{"v": "value"},
			Computed: []processor.ComputedAttribute{{Name: "twice", Expression: "payload.v * 2"}}},
	}
	for tname, tc := range transforms {
		for _, key := range keys {
			for _, mode := range []string{"conditional", "insert-only"} {
				t.Run(tname+"/"+key+"/"+mode, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					table, errorTable := emulators.UniqueName("data"), emulators.UniqueName("errors")
					for _, name := range []string{table, errorTable} {
						if err := emulators.CreateTable(ctx, db, name); err != nil {
							t.Fatal(err)
						}
					}
					cfg := processor.Config{
						PartitionKey: processor.KeyAttribute{Name: "id", Type: processor.AttributeTypeString, Source: "ref"},
						Transform:    tc,
					}.WithDefaults()
					rec := func(seq string, v int) events.KinesisEvent {
						return events.KinesisEvent{Records: []events.KinesisEventRecord{{
							EventID: shard + ":" + seq, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
							Kinesis: events.KinesisRecord{SequenceNumber: seq, PartitionKey: "p",
								Data:                        []byte(fmt.Sprintf(`{"ref":%q,"v":%d}`, key, v)),
								ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Unix(1_700_000_000, 0)}},
						}}}
					}
					live := newProcessor(t, endpoint, table, errorTable, time.Unix(1_700_000_100, 0), func(o *processor.Options) { o.Config = cfg })
					if resp := handle(t, live, rec(newer, 2)); len(resp.BatchItemFailures) != 0 {
						t.Fatalf("live write: %v", resp.BatchItemFailures)
					}
					replayer := newProcessor(t, endpoint, table, errorTable, time.Unix(1_700_000_200, 0), func(o *processor.Options) {
						o.Config = cfg
						o.ConditionalWrites = mode == "conditional"
						o.InsertOnly = mode == "insert-only"
					})
					resp := handle(t, replayer, rec(older, 1))
					out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
						Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: key}}})
					if err != nil {
						t.Fatal(err)
					}
					v := out.Item["v"]
					if tc != nil {
						v = out.Item["value"]
					}
					if n, _ := v.(*types.AttributeValueMemberN); n == nil || n.Value != "2" {
						t.Errorf("the older record's replay overwrote the newer item: %v", out.Item)
					}
					if _, ok := out.Item[processor.AttrPosition]; !ok {
						t.Errorf("a business-key item lost its position: %v", out.Item)
					}
					wantFailures := 0
					if mode == "insert-only" {
						wantFailures = 1 // refused: reported, its source kept
					}
					if len(resp.BatchItemFailures) != wantFailures {
						t.Errorf("%s replay: failures %v, want %d", mode, resp.BatchItemFailures, wantFailures)
					}
				})
			}
		}
	}
}
