package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// recordingDB keeps every item written, by table.
type recordingDB struct {
	mu    sync.Mutex
	items map[string][]processor.Item
}

func (d *recordingDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for table, reqs := range in.RequestItems {
		for _, r := range reqs {
			d.items[table] = append(d.items[table], r.PutRequest.Item)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func (d *recordingDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.items[*in.TableName] = append(d.items[*in.TableName], in.Item)
	return &dynamodb.PutItemOutput{}, nil
}

// TestSampleRecord runs the seed's sample record through the processor configured exactly as this app's construct
// configures it (the configuration the bundler writes next to bootstrap).
func TestSampleRecord(t *testing.T) {
	var pipeline *kinesispipeline.KinesisDynamoPipeline
	testutil.Must(t, func() { _, pipeline = NewCustomTransformStack(testutil.NewApp(), "Sample", nil) })
	raw, err := pipeline.ProcessorConfig().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := processor.ParseConfig(raw)
	if err != nil {
		t.Fatalf("the processor rejects the construct's configuration: %v", err)
	}

	db := &recordingDB{items: map[string][]processor.Item{}}
	processedAt := time.Date(2024, 9, 14, 0, 0, 0, 0, time.UTC)
	p, err := processor.New(db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.Config = "readings", "errors", cfg
		o.Now = func() time.Time { return processedAt }
		o.MetricsWriter = nopWriter{}
	})
	if err != nil {
		t.Fatal(err)
	}
	arrival := time.Date(2024, 9, 13, 23, 6, 56, 0, time.UTC)
	record := func(seq, data string) events.KinesisEventRecord {
		return events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq, Kinesis: events.KinesisRecord{
			Data: []byte(data), PartitionKey: "p", SequenceNumber: seq,
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: arrival},
		}}
	}
	resp, err := p.Handle(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{
		record("1", `{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`),
		record("2", `{"Timestamp": "2024-09-13T23:07:00Z", "Value": 1, "Category": "TEST"}`),
		record("3", `{"Timestamp": "not a time", "Value": 1, "Category": "C"}`),
	}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("want every record acknowledged, got %+v, %v", resp, err)
	}
	if n := len(db.items["readings"]); n != 1 {
		t.Fatalf("want 1 item (TEST filtered, bad timestamp to the error table), got %d", n)
	}
	item := db.items["readings"][0]
	want := map[string]string{
		"Category":           "C",
		"Timestamp":          "2024-09-13T23:06:55.934081Z",
		"Value":              "81",
		"ProcessedValue":     "162",
		"ProcessedTimestamp": "2024-09-14T00:00:00Z",
		"expiresAt":          "1728860816", // arrival + 30 days
	}
	for attr, v := range want {
		var got string
		switch a := item[attr].(type) {
		case *types.AttributeValueMemberS:
			got = a.Value
		case *types.AttributeValueMemberN:
			got = a.Value
		}
		if got != v {
			t.Errorf("%s = %q, want %q", attr, got, v)
		}
	}
	if n := len(db.items["errors"]); n != 1 {
		t.Errorf("want the record with a bad timestamp in the error table, got %d error items", n)
	}
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// TestFeatureFlags: the app's cdk.json sets the feature flags a new `cdk init` app sets, which its tests run under.
func TestFeatureFlags(t *testing.T) {
	testutil.CheckFeatureFlags(t, "cdk.json")
}
