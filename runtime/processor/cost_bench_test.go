package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// This file holds the cost benchmark of issue 17 (reproduce with scripts/bench.sh): what an item weighs in DynamoDB
// for payloads of several sizes, and what a million records cost by component with the default settings.

// Prices: us-east-1 public list prices as of 2026, taken from the pages named below. They are assumptions to check
// against the current pages (and your own discounts and free tiers, which the table ignores).
const (
	// priceKinesisShardHour is Kinesis Data Streams provisioned mode, per shard-hour ("Amazon Kinesis Data Streams
	// pricing").
	priceKinesisShardHour = 0.015
	// priceKinesisPutUnitMillion is Kinesis Data Streams provisioned mode, per million PUT payload units of 25 KB
	// ("Amazon Kinesis Data Streams pricing").
	priceKinesisPutUnitMillion = 0.014
	// priceLambdaArmGBSecond is Lambda arm64 duration, per GB-second, first pricing tier ("AWS Lambda pricing").
	priceLambdaArmGBSecond = 0.0000133334
	// priceLambdaRequestMillion is Lambda, per million requests ("AWS Lambda pricing").
	priceLambdaRequestMillion = 0.20
	// priceDynamoWriteUnitMillion is DynamoDB on-demand, per million write request units ("Amazon DynamoDB pricing
	// for on-demand capacity").
	priceDynamoWriteUnitMillion = 0.625
	// priceDynamoStorageGBMonth is DynamoDB Standard table class storage, per GB-month beyond the free 25 GB
	// ("Amazon DynamoDB pricing for on-demand capacity").
	priceDynamoStorageGBMonth = 0.25
	// priceCloudWatchLogsIngestGB is CloudWatch Logs standard ingestion, per GB ("Amazon CloudWatch pricing").
	priceCloudWatchLogsIngestGB = 0.50
)

// Assumptions of the cost table besides the prices: the construct's defaults and a steady record rate.
const (
	costRecordsPerSecond = 1000     // the record rate the per-million table assumes
	costBatchSize        = 100      // the construct's default batch size (kinesispipeline.DefaultBatchSize)
	costLambdaMemoryGB   = 0.25     // the construct's default memory, 256 MB (kinesispipeline.DefaultMemorySizeMB)
	costLambdaBatchSecs  = 0.015    // assumed billed duration of one 100-record batch (see README "Performance")
	costStorageItemBytes = 100      // DynamoDB's storage overhead per item
	costKinesisPutUnit   = 25 << 10 // bytes in a Kinesis PUT payload unit
	costShardRecords     = 1000     // records/s one shard takes in
	costShardBytes       = 1 << 20  // bytes/s one shard takes in
	costGB               = 1 << 30  // AWS bills storage and ingestion by GB of 2^30 bytes
)

// costCase is one payload of the benchmark: the sample record padded to about target bytes.
type costCase struct {
	name    string
	payload []byte
}

// costRow is what the benchmark measured for one payload.
type costRow struct {
	name          string
	payloadBytes  int
	itemBytes     int // the data item's size by DynamoDB's rules
	payloadAttrs  int // the size of the payload's own attributes
	minimumBytes  int // payload attributes plus the key
	wcu           int // write request units per record
	minimumWCU    int
	logBytesBatch int // EMF and log bytes the processor writes per batch
}

// costCases returns the benchmark's payloads: the sample record as is, then padded with a "Padding" string attribute
// to 100, 500, 800, 1024 and 4096 bytes of JSON.
func costCases() []costCase {
	cases := []costCase{{"sample", []byte(sampleJSON)}}
	for _, size := range []int{100, 500, 800, 1024, 4096} {
		base := `{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C", "Padding": ""}`
		p := base[:len(base)-2] + strings.Repeat("x", size-len(base)) + `"}`
		cases = append(cases, costCase{fmt.Sprintf("%dB", size), []byte(p)})
	}
	return cases
}

// captureDB is a DB that succeeds and keeps every data item written to its table.
type captureDB struct {
	table string
	mu    sync.Mutex
	items []map[string]types.AttributeValue
}

func (c *captureDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range in.RequestItems[c.table] {
		if w.PutRequest != nil {
			c.items = append(c.items, w.PutRequest.Item)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func (c *captureDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in.TableName != nil && *in.TableName == c.table {
		c.items = append(c.items, in.Item)
	}
	return &dynamodb.PutItemOutput{}, nil
}

// countWriter counts the bytes written to it.
type countWriter struct {
	mu sync.Mutex
	n  int
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	return len(p), nil
}

// jsonAttrsSize is the size of a flat JSON object's attributes as DynamoDB would store them (strings as S, numbers
// as N, booleans as BOOL, null as NULL), computed from the payload alone. It returns the attribute names too.
func jsonAttrsSize(payload []byte) (int, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return 0, nil, fmt.Errorf("decode payload: %w", err)
	}
	n := 0
	var names []string
	for k, v := range obj {
		names = append(names, k)
		n += len(k)
		switch v := v.(type) {
		case string:
			if !utf8.ValidString(v) {
				return 0, nil, fmt.Errorf("attribute %s: not UTF-8", k)
			}
			n += len(v)
		case json.Number:
			n += processor.DynamoNumberSize(v.String())
		case bool, nil:
			n++
		default:
			return 0, nil, fmt.Errorf("attribute %s: %T is not flat", k, v)
		}
	}
	return n, names, nil
}

// wcuPerRecord is the write request units of an item of size bytes: one per started KB.
func wcuPerRecord(size int) int { return (size + 1023) / 1024 }

// BenchmarkCost runs each payload of costCases through the default processor in a batch of costBatchSize records,
// measures the data item it writes by DynamoDB's size rules and reports bytes/item, WCU/record and overhead-bytes
// (beyond the payload's own attributes). It logs the size table and the cost per million records (costReport).
func BenchmarkCost(b *testing.B) {
	var rows []costRow
	for _, tc := range costCases() {
		b.Run("payload="+tc.name, func(b *testing.B) {
			row := measureCost(b, tc)
			b.ReportMetric(float64(row.itemBytes), "bytes/item")
			b.ReportMetric(float64(row.wcu), "WCU/record")
			b.ReportMetric(float64(row.itemBytes-row.payloadAttrs), "overhead-bytes")
			rows = slices.DeleteFunc(rows, func(r costRow) bool { return r.name == row.name })
			rows = append(rows, row)
		})
	}
	b.Logf("\n%s", costReport(rows))
}

// measureCost processes a batch of tc's payload through the default processor and measures the items written.
func measureCost(b *testing.B, tc costCase) costRow {
	b.Helper()
	db := &captureDB{table: benchTable}
	logs := &countWriter{}
	p, err := processor.New(db, func(o *processor.Options) {
		o.TableName = benchTable
		o.ErrorTableName = benchErrorTable
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		o.MetricsWriter = logs
	})
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, costBatchSize)
	for i := range payloads {
		payloads[i] = tc.payload
	}
	ev := buildEvent(payloads...)
	ctx := context.Background()
	for b.Loop() {
		db.items, logs.n = nil, 0
		resp, err := p.Handle(ctx, ev)
		if err != nil || len(resp.BatchItemFailures) > 0 {
			b.Fatalf("handle: %v, failures %v", err, resp.BatchItemFailures)
		}
	}
	if len(db.items) != costBatchSize {
		b.Fatalf("%d data items written for %d records", len(db.items), costBatchSize)
	}
	attrs, names, err := jsonAttrsSize(tc.payload)
	if err != nil {
		b.Fatal(err)
	}
	item := db.items[0]
	for _, name := range names {
		if _, ok := item[name]; !ok {
			b.Fatalf("item lacks the payload's attribute %q", name)
		}
	}
	key, ok := item[processor.DefaultConfig().PartitionKey.Name]
	if !ok {
		b.Fatalf("item lacks the key %q", processor.DefaultConfig().PartitionKey.Name)
	}
	size := 0
	for _, it := range db.items {
		size = max(size, processor.DynamoItemSize(it))
	}
	minimum := attrs + len(processor.DefaultConfig().PartitionKey.Name) + processor.DynamoValueSize(key)
	return costRow{
		name: tc.name, payloadBytes: len(tc.payload), itemBytes: size, payloadAttrs: attrs, minimumBytes: minimum,
		wcu: wcuPerRecord(size), minimumWCU: wcuPerRecord(minimum), logBytesBatch: logs.n,
	}
}

// costPerMillion is the cost in USD of a million records of row's payload by component, at costRecordsPerSecond.
type costPerMillion struct {
	kinesisShards, kinesisPut, lambdaDuration, lambdaRequests, dynamoWrites, dynamoStorage, cloudWatch float64
}

func (c costPerMillion) total() float64 {
	return c.kinesisShards + c.kinesisPut + c.lambdaDuration + c.lambdaRequests + c.dynamoWrites + c.dynamoStorage + c.cloudWatch
}

func costOf(r costRow) costPerMillion {
	const records = 1e6
	hours := records / costRecordsPerSecond / 3600
	shards := math.Max(math.Ceil(float64(costRecordsPerSecond)/costShardRecords),
		math.Ceil(float64(costRecordsPerSecond*r.payloadBytes)/costShardBytes))
	batches := records / costBatchSize
	return costPerMillion{
		kinesisShards:  shards * hours * priceKinesisShardHour,
		kinesisPut:     math.Ceil(float64(r.payloadBytes)/costKinesisPutUnit) * priceKinesisPutUnitMillion,
		lambdaDuration: batches * costLambdaBatchSecs * costLambdaMemoryGB * priceLambdaArmGBSecond,
		lambdaRequests: batches / 1e6 * priceLambdaRequestMillion,
		dynamoWrites:   float64(r.wcu) * priceDynamoWriteUnitMillion,
		dynamoStorage:  records * float64(r.itemBytes+costStorageItemBytes) / costGB * priceDynamoStorageGBMonth,
		cloudWatch:     batches * float64(r.logBytesBatch) / costGB * priceCloudWatchLogsIngestGB,
	}
}

// costReport renders the benchmark's rows as two markdown tables: item sizes, and cost per million records.
func costReport(rows []costRow) string {
	var sb strings.Builder
	sb.WriteString("cost report begin\n")
	sb.WriteString("Item size by DynamoDB's rules, default processor settings (event-id key, default metadata: the arrival time):\n\n")
	sb.WriteString("| payload | JSON bytes | payload attributes | item bytes | overhead bytes | WCU/record | minimum (attributes + key) | minimum WCU |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s | %d | %d | %d | %d | %d | %d | %d |\n", r.name, r.payloadBytes, r.payloadAttrs,
			r.itemBytes, r.itemBytes-r.payloadAttrs, r.wcu, r.minimumBytes, r.minimumWCU)
	}
	fmt.Fprintf(&sb, "\nCost per million records in USD at %d records/s, batches of %d, Lambda arm64 %.0f MB at %.0f ms a batch:\n\n",
		costRecordsPerSecond, costBatchSize, costLambdaMemoryGB*1024, costLambdaBatchSecs*1000)
	sb.WriteString("| payload | Kinesis shard-hours | Kinesis PUT units | Lambda duration | Lambda requests | DynamoDB writes | DynamoDB storage (per month kept) | CloudWatch Logs (EMF + log bytes/batch) | total |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		c := costOf(r)
		fmt.Fprintf(&sb, "| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f (%d B) | %.4f |\n", r.name, c.kinesisShards,
			c.kinesisPut, c.lambdaDuration, c.lambdaRequests, c.dynamoWrites, c.dynamoStorage, c.cloudWatch,
			r.logBytesBatch, c.total())
	}
	fmt.Fprintf(&sb, "\nPrices (us-east-1 list prices as of 2026, assumptions to check): Kinesis Data Streams provisioned $%s/shard-hour and "+
		"$%s per million 25 KB PUT payload units (\"Amazon Kinesis Data Streams pricing\"); Lambda arm64 $%s/GB-s and $%s per "+
		"million requests (\"AWS Lambda pricing\"); DynamoDB on-demand $%s per million write request units and $%s/GB-month "+
		"storage (\"Amazon DynamoDB pricing for on-demand capacity\"); CloudWatch Logs ingestion $%s/GB (\"Amazon CloudWatch "+
		"pricing\"). Free tiers, Lambda platform log lines and EMF custom-metric charges (per metric-month, not per record) are left out.\n",
		usd(priceKinesisShardHour), usd(priceKinesisPutUnitMillion), usd(priceLambdaArmGBSecond), usd(priceLambdaRequestMillion),
		usd(priceDynamoWriteUnitMillion), usd(priceDynamoStorageGBMonth), usd(priceCloudWatchLogsIngestGB))
	sb.WriteString("cost report end")
	return sb.String()
}

// usd formats a price without an exponent.
func usd(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
