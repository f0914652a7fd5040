package processor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// exampleDB is a minimal in-memory processor.DB: it keeps every item written, per table. Like any DB, it must be
// safe for concurrent use: Handle has several requests in flight.
type exampleDB struct {
	mu     sync.Mutex
	tables map[string][]processor.Item
}

func (m *exampleDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for table, reqs := range in.RequestItems {
		for _, r := range reqs {
			m.tables[table] = append(m.tables[table], r.PutRequest.Item)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func (m *exampleDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tables[*in.TableName] = append(m.tables[*in.TableName], in.Item)
	return &dynamodb.PutItemOutput{}, nil
}

// showItem prints an item's attributes, sorted, one per line.
func showItem(item processor.Item) {
	names := make([]string, 0, len(item))
	for name := range item {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		switch v := item[name].(type) {
		case *types.AttributeValueMemberS:
			fmt.Printf("  %s: S %s\n", name, v.Value)
		case *types.AttributeValueMemberN:
			fmt.Printf("  %s: N %s\n", name, v.Value)
		case *types.AttributeValueMemberB:
			if shard, seq, sub, err := processor.DecodePosition(v.Value); name == processor.AttrPosition && err == nil {
				fmt.Printf("  %s: B position %s %s #%d\n", name, shard, seq, sub)
				continue
			}
			fmt.Printf("  %s: B (%d bytes)\n", name, len(v.Value))
		default:
			fmt.Printf("  %s: %T\n", name, v)
		}
	}
}

// exampleEvent builds a batch with one record per payload, as Lambda delivers it.
func exampleEvent(payloads ...string) events.KinesisEvent {
	var ev events.KinesisEvent
	for i, p := range payloads {
		seq := fmt.Sprintf("4959%052d", i+1)
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			EventID: "shardId-000000000000:" + seq,
			Kinesis: events.KinesisRecord{
				Data:                        []byte(p),
				PartitionKey:                "sensor-7",
				SequenceNumber:              seq,
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Date(2024, 9, 13, 23, 6, 56, 0, time.UTC)},
			},
		})
	}
	return ev
}

// exampleOptions sets the table names and silences logs and metrics, for reproducible examples.
func exampleOptions(table, errorTable string) func(*processor.Options) {
	return func(o *processor.Options) {
		o.TableName = table
		o.ErrorTableName = errorTable
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
		o.Now = func() time.Time { return time.Date(2024, 9, 14, 0, 0, 0, 0, time.UTC) }
	}
}

// The default processor stores each record's JSON object as one item keyed by the record's event id, with its
// arrival time; the key names the record's shard and sequence number (and so its position: no _kpos attribute).
func ExampleNew() {
	db := &exampleDB{tables: map[string][]processor.Item{}}
	p, err := processor.New(db, exampleOptions("readings", "reading-errors"))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := p.Handle(context.Background(), exampleEvent(
		`{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`,
	))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, item := range db.tables["readings"] {
		showItem(item)
	}
	fmt.Println("batch item failures:", len(resp.BatchItemFailures))
	// Output:
	//   Category: S C
	//   Timestamp: S 2024-09-13T23:06:55.934081Z
	//   Value: N 81
	//   _kinesisArrivalTime: S 2024-09-13T23:06:56Z
	//   id: S shardId-000000000000:49590000000000000000000000000000000000000000000000000001
	// batch item failures: 0
}

// A record that is not a JSON object goes to the error table with its payload and the reason. Without an error
// table it would be reported for retry instead, like a transient failure.
func ExampleProcessor_Handle() {
	db := &exampleDB{tables: map[string][]processor.Item{}}
	p, err := processor.New(db, exampleOptions("readings", "reading-errors"))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := p.Handle(context.Background(), exampleEvent(`{"Value": 81}`, `{"Value": 8`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stored:", len(db.tables["readings"]))
	for _, item := range db.tables["reading-errors"] {
		showItem(item)
	}
	fmt.Println("batch item failures:", len(resp.BatchItemFailures))

	// Without an error table, the same batch reports the bad record: Lambda retries from it.
	p, _ = processor.New(db, exampleOptions("readings", ""))
	resp, _ = p.Handle(context.Background(), exampleEvent(`{"Value": 81}`, `{"Value": 8`))
	fmt.Println("retry from:", resp.BatchItemFailures[0].ItemIdentifier)
	// Output:
	// stored: 1
	//   arrivalTime: S 2024-09-13T23:06:56Z
	//   failedAt: S 2024-09-14T00:00:00Z
	//   id: S shardId-000000000000:49590000000000000000000000000000000000000000000000000002
	//   partitionKey: S sensor-7
	//   payload: B (11 bytes)
	//   payloadEncoding: S raw
	//   payloadSize: N 11
	//   processorVersion: S 0.1.0
	//   reason: S payload is not valid JSON: unexpected end of input
	//   sequenceNumber: S 49590000000000000000000000000000000000000000000000000002
	//   shardId: S shardId-000000000000
	// batch item failures: 0
	// retry from: 49590000000000000000000000000000000000000000000000000002
}

// A custom transform can write several items per record, skip records and reject them permanently. Here an order
// becomes one item per line, keyed by order id and line number; heartbeats are skipped; an order without an id goes
// to the error table.
func ExampleTransform() {
	cfg := processor.Config{
		PartitionKey: processor.KeyAttribute{Name: "orderId", Type: processor.AttributeTypeString, Source: "orderId"},
		SortKey:      &processor.KeyAttribute{Name: "line", Type: processor.AttributeTypeNumber, Source: "line"},
	}
	orderLines := func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
		if r.Data["type"] == "heartbeat" {
			return nil, processor.ErrSkip
		}
		id, _ := r.Data["orderId"].(string)
		if id == "" {
			return nil, processor.Permanent(errors.New("order has no orderId"))
		}
		lines, _ := r.Data["lines"].([]any)
		items := make([]processor.Item, 0, len(lines))
		for i, line := range lines {
			sku, _ := line.(string)
			items = append(items, processor.Item{
				"orderId": &types.AttributeValueMemberS{Value: id},
				"line":    &types.AttributeValueMemberN{Value: fmt.Sprint(i + 1)},
				"sku":     &types.AttributeValueMemberS{Value: strings.ToUpper(sku)},
			})
		}
		return items, nil
	}

	db := &exampleDB{tables: map[string][]processor.Item{}}
	p, err := processor.New(db, exampleOptions("order-lines", "order-errors"), func(o *processor.Options) {
		o.Config = cfg
		o.Transform = orderLines
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := p.Handle(context.Background(), exampleEvent(
		`{"orderId": "o-1", "lines": ["apple", "pear"]}`,
		`{"type": "heartbeat"}`,
		`{"lines": ["plum"]}`,
	))
	if err != nil {
		fmt.Println(err)
		return
	}
	lines := db.tables["order-lines"]
	slices.SortFunc(lines, func(a, b processor.Item) int {
		return strings.Compare(a["line"].(*types.AttributeValueMemberN).Value, b["line"].(*types.AttributeValueMemberN).Value)
	})
	for _, item := range lines {
		fmt.Println("item:")
		showItem(item)
	}
	for _, item := range db.tables["order-errors"] {
		fmt.Println("error:", item[processor.ErrorAttrReason].(*types.AttributeValueMemberS).Value)
	}
	fmt.Println("batch item failures:", len(resp.BatchItemFailures))
	// Output:
	// item:
	//   _kpos: B position shardId-000000000000 49590000000000000000000000000000000000000000000000000001 #0
	//   line: N 1
	//   orderId: S o-1
	//   sku: S APPLE
	// item:
	//   _kpos: B position shardId-000000000000 49590000000000000000000000000000000000000000000000000001 #0
	//   line: N 2
	//   orderId: S o-1
	//   sku: S PEAR
	// error: order has no orderId
	// batch item failures: 0
}
