//go:build integration

package processor_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// attackMetaPos encodes a position as processor.EncodePosition's documentation describes it, without that code.
func attackMetaPos(shard, seq string, sub uint32) []byte {
	m, _ := new(big.Int).SetString(seq, 10)
	mag := m.Bytes()
	out := append([]byte{byte(len(shard))}, shard...)
	out = append(out, byte(len(mag)))
	out = append(out, mag...)
	return binary.BigEndian.AppendUint32(out, sub)
}

// TestAttackMetaFaultsWithDerivedPositions: the new item shape (no _kpos under the default event-id key; a marked
// one for insert-only) under every fault the stand-in injects at once: dropped connections whose write took effect,
// throttling, UnprocessedItems. The batch is redelivered from the reported record as Kinesis does until it is
// acknowledged. Oracle (the stand-in's own store): every record stored once under its event id, with its payload and
// the position attribute this mode must carry, nothing else in either table.
func TestAttackMetaFaultsWithDerivedPositions(t *testing.T) {
	const shard = "shardId-000000000000"
	modes := []string{"plain", "conditional", "insert-only"}
	for _, mode := range modes {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", mode, seed), func(t *testing.T) {
				s := dynamostandin.New(dynamostandin.Options{
					Seed: seed, DropRate: 0.2, DropAfterApply: seed%2 == 0, ThrottleRate: 0.2,
					UnprocessedRate: 0.5, UnprocessedFraction: 0.3,
				})
				defer s.Close()
				p, err := processor.New(newSDKClient(s.URL()), func(o *processor.Options) {
					o.TableName, o.ErrorTableName = "data", "errors"
					o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
					o.MetricsWriter = io.Discard
					o.ConditionalWrites = mode == "conditional"
					o.InsertOnly = mode == "insert-only"
				})
				if err != nil {
					t.Fatal(err)
				}
				var all []events.KinesisEventRecord
				for i := 0; i < 60; i++ {
					seq := fmt.Sprintf("4959%052d", 10*i+7)
					all = append(all, events.KinesisEventRecord{
						EventID: shard + ":" + seq, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
						Kinesis: events.KinesisRecord{SequenceNumber: seq, PartitionKey: "p",
							Data:                        []byte(fmt.Sprintf(`{"n":%d}`, i)),
							ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Unix(1_700_000_000, 0)}},
					})
				}
				pending := all
				for attempt := 0; len(pending) > 0; attempt++ {
					if attempt > 200 {
						t.Fatalf("still %d records unacknowledged after 200 deliveries", len(pending))
					}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					resp, err := p.Handle(ctx, events.KinesisEvent{Records: pending})
					cancel()
					if err != nil {
						continue // the whole batch comes again
					}
					if len(resp.BatchItemFailures) == 0 {
						pending = nil
						break
					}
					from := resp.BatchItemFailures[0].ItemIdentifier
					i := 0
					for i < len(pending) && pending[i].Kinesis.SequenceNumber != from {
						i++
					}
					if i == len(pending) {
						t.Fatalf("reported %q, which is not in the batch", from)
					}
					pending = pending[i:]
				}
				items := s.Items("data")
				if len(items) != len(all) {
					t.Errorf("%d items stored for %d records", len(items), len(all))
				}
				for i, r := range all {
					it, ok := items[r.EventID]
					if !ok {
						t.Errorf("record %d acknowledged, not stored", i)
						continue
					}
					if n, _ := it["n"].(*types.AttributeValueMemberN); n == nil || n.Value != fmt.Sprint(i) {
						t.Errorf("record %d: item %v", i, it)
					}
					pos, has := it[processor.AttrPosition].(*types.AttributeValueMemberB)
					switch mode {
					case "insert-only":
						want := append([]byte{0}, attackMetaPos(shard, r.Kinesis.SequenceNumber, 0)...)
						if !has || !bytes.Equal(pos.Value, want) {
							t.Errorf("record %d: position %v, want the marked %x", i, it[processor.AttrPosition], want)
						}
					default:
						if has {
							t.Errorf("record %d: an event-id item carries a position %x", i, pos.Value)
						}
					}
				}
				if e := s.Items("errors"); len(e) != 0 {
					t.Errorf("error table holds %d items", len(e))
				}
			})
		}
	}
}
