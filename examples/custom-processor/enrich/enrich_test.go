package enrich_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/examples/custom-processor/enrich"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// memoryDB stores what the processor writes, by table and partition key "id".
type memoryDB struct {
	mu     sync.Mutex
	tables map[string]map[string]processor.Item
}

func (m *memoryDB) put(table string, item processor.Item) {
	if m.tables[table] == nil {
		m.tables[table] = map[string]processor.Item{}
	}
	m.tables[table][item["id"].(*types.AttributeValueMemberS).Value] = item
}

func (m *memoryDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for table, reqs := range in.RequestItems {
		for _, r := range reqs {
			m.put(table, r.PutRequest.Item)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func (m *memoryDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(*in.TableName, in.Item)
	return &dynamodb.PutItemOutput{}, nil
}

// event builds a Kinesis event of JSON payloads on shard-1 with sequence numbers 1, 2, ...
func event(payloads ...string) []byte {
	var ev events.KinesisEvent
	for i, p := range payloads {
		seq := fmt.Sprint(i + 1)
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			EventID:        "shardId-000000000000:" + seq,
			EventSourceArn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s",
			Kinesis: events.KinesisRecord{
				Data: []byte(p), PartitionKey: "pk", SequenceNumber: seq,
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Unix(1726268815, 0)},
			},
		})
	}
	b, _ := json.Marshal(ev)
	return b
}

func s(item processor.Item, attr string) string {
	switch v := item[attr].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	}
	return fmt.Sprintf("<%T>", item[attr])
}

// TestTransformThroughHandler runs records through the handler path production uses (lambda.NewHandler) and checks
// every item written.
func TestTransformThroughHandler(t *testing.T) {
	db := &memoryDB{tables: map[string]map[string]processor.Item{}}
	p, err := processor.New(db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName = "readings", "errors"
		o.Transform = enrich.New(processor.DefaultConfig())
		o.MetricsWriter = &nopWriter{}
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := lambda.NewHandler(p.Handle).Invoke(context.Background(), event(
		`{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`,
		`{"Timestamp": "2024-09-13T23:07:00Z", "Value": 12, "Category": "C"}`,
		`{"Timestamp": "2024-09-13T23:07:01Z", "Value": 7, "Category": "TEST"}`,
		`{"Timestamp": "2024-09-13T23:07:02Z", "Value": 5, "Category": "Z"}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	var resp events.KinesisEventResponse
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("want every record acknowledged, got %s (%v)", out, err)
	}

	readings := db.tables["readings"]
	var ids []string
	for id := range readings {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	want := []string{"latest#C", "shardId-000000000000:1", "shardId-000000000000:2"}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("items %v, want %v (the TEST reading skipped, Z to the error table)", ids, want)
	}
	first := readings["shardId-000000000000:1"]
	for attr, v := range map[string]string{"Value": "81", "Category": "C", "CategoryName": "Pressure", "ValueBand": "high", "Timestamp": "2024-09-13T23:06:55.934081Z"} {
		if got := s(first, attr); got != v {
			t.Errorf("reading %s = %q, want %q", attr, got, v)
		}
	}
	if got := s(readings["shardId-000000000000:2"], "ValueBand"); got != "low" {
		t.Errorf("second reading band %q, want low", got)
	}
	latest := readings["latest#C"]
	if s(latest, "Value") != "12" || s(latest, "SourceEventId") != "shardId-000000000000:2" {
		t.Errorf("latest#C must hold the later reading, got Value=%s from %s", s(latest, "Value"), s(latest, "SourceEventId"))
	}
	errItem := db.tables["errors"]["shardId-000000000000:4"]
	if errItem == nil || s(errItem, "reason") != `unknown Category "Z"` {
		t.Errorf("error table: want the Z reading with its reason, got %v", db.tables["errors"])
	}
}

type nopWriter struct{}

func (*nopWriter) Write(b []byte) (int, error) { return len(b), nil }
