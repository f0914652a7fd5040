//go:build integration

package processor_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// attackMetaEvent returns n plain records of shard-0 that all arrived in the same millisecond and share one producer
// partition key, with payloads {"n": i}; and their event ids, which the oracle computes itself.
func attackMetaEvent(n int, arrival time.Time) (events.KinesisEvent, []string) {
	var ev events.KinesisEvent
	var ids []string
	for i := 0; i < n; i++ {
		seq := fmt.Sprintf("4959%052d", 1000+i)
		id := "shardId-000000000000:" + seq
		ids = append(ids, id)
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			EventID: id, EventName: "aws:kinesis:record", EventSource: "aws:kinesis", EventVersion: "1.0",
			Kinesis: events.KinesisRecord{
				SequenceNumber: seq, PartitionKey: "same-producer-key",
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: arrival},
				Data:                        []byte(fmt.Sprintf(`{"n":%d}`, i)), KinesisSchemaVersion: "1.0",
			},
		})
	}
	return ev, ids
}

// TestAttackMetaKeyNamedLikeMetadata: a partition key whose name is one of the metadata attributes Config.Metadata
// lists (a name Validate accepts) must keep the key's value. When the metadata attribute replaced the key after the
// key was set, every record of one millisecond (or of one producer key) was written under one key: acknowledged N,
// stored 1. The oracle reads the table back from dynalite and expects one item per event id, holding its payload.
func TestAttackMetaKeyNamedLikeMetadata(t *testing.T) {
	endpoint := emulators.Dynalite(t)
	db := emulators.DynamoDBClient(endpoint)
	arrival := time.Date(2026, 12, 4, 15, 0, 0, 123_000_000, time.UTC)
	cases := []struct {
		name     string
		key      string
		metadata []string // nil: the default
		declare  bool     // use the declarative transform (a non-nil Transform)
	}{
		{name: "arrival time, default metadata, plain transform", key: processor.AttrArrivalTime},
		{name: "arrival time, default metadata, declarative", key: processor.AttrArrivalTime, declare: true},
		{name: "partition key listed", key: processor.AttrPartitionKey, metadata: []string{processor.AttrPartitionKey}},
		{name: "sequence number listed, declarative", key: processor.AttrSequenceNumber,
			metadata: processor.AllMetadata(), declare: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			table, errorTable := emulators.UniqueName("data"), emulators.UniqueName("errors")
			if err := emulators.CreateKeyedTable(ctx, db, table, c.key, types.ScalarAttributeTypeS); err != nil {
				t.Fatal(err)
			}
			if err := emulators.CreateTable(ctx, db, errorTable); err != nil {
				t.Fatal(err)
			}
			cfg := processor.Config{
				PartitionKey: processor.KeyAttribute{Name: c.key, Type: processor.AttributeTypeString, Source: processor.SourceEventID},
				Metadata:     c.metadata,
			}
			if c.declare {
				cfg.Transform = &processor.TransformConfig{Exclude: []string{"unused"}}
			}
			cfg = cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			p := newProcessor(t, endpoint, table, errorTable, arrival.Add(time.Second), func(o *processor.Options) { o.Config = cfg })
			ev, ids := attackMetaEvent(3, arrival)
			if resp := handle(t, p, ev); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("batch item failures: %v", resp.BatchItemFailures)
			}
			got := map[string]string{}
			out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range out.Items {
				k, _ := it[c.key].(*types.AttributeValueMemberS)
				n, _ := it["n"].(*types.AttributeValueMemberN)
				if k == nil || n == nil {
					t.Fatalf("item without a string key or n: %v", it)
				}
				got[k.Value] = n.Value
			}
			errs, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(errorTable), ConsistentRead: aws.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			if len(errs.Items) != 0 {
				t.Fatalf("error table holds %d items, want 0", len(errs.Items))
			}
			var keys []string
			for k := range got {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if len(got) != len(ids) {
				t.Fatalf("3 records acknowledged, the table holds %d items under keys %q", len(got), keys)
			}
			for i, id := range ids {
				if got[id] != fmt.Sprint(i) {
					t.Errorf("item %s: n = %q, want %d (keys %q)", id, got[id], i, keys)
				}
			}
		})
	}
}
