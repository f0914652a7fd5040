package selftest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

func TestConfigValidate(t *testing.T) {
	str := func(name, source string) processor.KeyAttribute {
		return processor.KeyAttribute{Name: name, Type: processor.AttributeTypeString, Source: source}
	}
	withSchema := processor.Config{Transform: &processor.TransformConfig{Schema: json.RawMessage(`{"type":"object"}`)}}
	withFilter := processor.Config{Transform: &processor.TransformConfig{Filter: "true"}}
	business := processor.Config{PartitionKey: str("orderId", "order.id")}
	tests := []struct {
		name    string
		give    Config
		wantIs  error
		wantErr string // substring; "" for valid
	}{
		{name: "default pipeline, derived canary", give: Config{}},
		{name: "partition key from the record's partition key", give: Config{Pipeline: processor.Config{PartitionKey: str("pk", processor.SourcePartitionKey)}}},
		{name: "sort key from the payload is derived", give: Config{Pipeline: processor.Config{SortKey: &processor.KeyAttribute{Name: "at", Type: processor.AttributeTypeNumber}}}},
		{name: "schema needs the user's record", give: Config{Pipeline: withSchema}, wantIs: ErrRecordRequired, wantErr: "schema"},
		{name: "filter needs the user's record", give: Config{Pipeline: withFilter}, wantIs: ErrRecordRequired, wantErr: "filter"},
		{name: "business key needs the user's record", give: Config{Pipeline: business}, wantIs: ErrRecordRequired, wantErr: "business key"},
		{name: "business key from the user's record", give: Config{Pipeline: business, Record: `{"order":{"id":"canary-1"}}`}},
		{name: "business key missing from the user's record", give: Config{Pipeline: business, Record: `{"order":{}}`}, wantErr: "payload field order.id is missing"},
		{name: "shard id key needs the user's key", give: Config{Pipeline: processor.Config{PartitionKey: str("shard", processor.SourceShardID)}},
			wantIs: ErrKeyRequired, wantErr: "$shardId"},
		{name: "shard id key given", give: Config{Pipeline: processor.Config{PartitionKey: str("shard", processor.SourceShardID)}, Key: map[string]any{"shard": "$eventId"}}},
		{name: "record not an object", give: Config{Record: `[1]`}, wantErr: "record: not a JSON object"},
		{name: "key names another attribute", give: Config{Key: map[string]any{"other": "x"}}, wantErr: `"other" is not a key attribute`},
		{name: "key of the wrong type", give: Config{Key: map[string]any{"id": json.Number("3")}}, wantErr: "not a non-empty string"},
		{name: "unknown placeholder", give: Config{Key: map[string]any{"id": "$shardId"}}, wantErr: "is not $eventId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Validate = %v, want it to wrap %v", err, tt.wantIs)
			}
		})
	}
}

func TestConfigFileRoundTrip(t *testing.T) {
	c := Config{Pipeline: processor.DefaultConfig().WithDefaults(), Record: `{"a":1}`, Key: map[string]any{"id": "$eventId"}, Malformed: true}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip = %+v, want %+v", got, c)
	}
	if _, err := ParseConfig([]byte(`{"unknown": 1}`)); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestCanaryPayloadAndKey(t *testing.T) {
	put := Put{PartitionKey: "kdp-selftest-n", ShardID: "shardId-000000000001", SequenceNumber: "4959", EventID: "shardId-000000000001:4959"}
	tests := []struct {
		name    string
		give    Config
		wantKey map[string]string
	}{
		{"event id", Config{}, map[string]string{"id": `"shardId-000000000001:4959"`}},
		{"partition key and a nested payload sort key", Config{Pipeline: processor.Config{
			PartitionKey: processor.KeyAttribute{Name: "pk", Type: processor.AttributeTypeString, Source: processor.SourcePartitionKey},
			SortKey:      &processor.KeyAttribute{Name: "sk", Type: processor.AttributeTypeString, Source: "a.b"}}},
			map[string]string{"pk": `"kdp-selftest-n"`, "sk": `"kdp-selftest-n"`}},
		{"numeric sort key", Config{Pipeline: processor.Config{SortKey: &processor.KeyAttribute{Name: "n", Type: processor.AttributeTypeNumber}}},
			map[string]string{"id": `"shardId-000000000001:4959"`, "n": "0"}},
		{"user's record and key", Config{Pipeline: processor.Config{
			PartitionKey: processor.KeyAttribute{Name: "orderId", Type: processor.AttributeTypeString, Source: "orderId"},
			SortKey:      &processor.KeyAttribute{Name: "seq", Type: processor.AttributeTypeString, Source: processor.SourceShardID}},
			Record: `{"orderId": "canary-1"}`, Key: map[string]any{"seq": "$sequenceNumber"}},
			map[string]string{"orderId": `"canary-1"`, "seq": `"4959"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.give.Validate(); err != nil {
				t.Fatal(err)
			}
			payload, err := tt.give.payload("n")
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := json.Unmarshal(payload, &obj); err != nil {
				t.Fatalf("payload %s: %v", payload, err)
			}
			if tt.give.Record == "" && obj[MarkerField] != "n" {
				t.Errorf("payload %s has no marker", payload)
			}
			key, err := tt.give.itemKey(put, payload)
			if err != nil {
				t.Fatal(err)
			}
			if got := printableKey(key); !reflect.DeepEqual(got, tt.wantKey) {
				t.Errorf("key = %v, want %v", got, tt.wantKey)
			}
		})
	}
}

// fakeKinesis stores records and calls onPut (the pipeline) for each.
type fakeKinesis struct {
	mu    sync.Mutex
	n     int
	onPut func(p Put, data []byte)
}

func (f *fakeKinesis) PutRecord(_ context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	f.mu.Lock()
	f.n++
	p := Put{PartitionKey: aws.ToString(in.PartitionKey), ShardID: "shardId-000000000000", SequenceNumber: fmt.Sprintf("4959%052d", f.n)}
	f.mu.Unlock()
	p.EventID = p.ShardID + ":" + p.SequenceNumber
	if f.onPut != nil {
		f.onPut(p, in.Data)
	}
	return &kinesis.PutRecordOutput{ShardId: aws.String(p.ShardID), SequenceNumber: aws.String(p.SequenceNumber)}, nil
}

// fakeDB is a DynamoDB with items keyed by "id" or by the fake's key names. DeleteItem evaluates conditions of the
// form "#a = :a [AND #b = :b]" as DynamoDB does (a missing attribute fails the condition) and refuses a delete
// without a condition, which the self-test must never send.
type fakeDB struct {
	mu     sync.Mutex
	keys   []string
	tables map[string]map[string]processor.Item
}

func newFakeDB(keys ...string) *fakeDB {
	if len(keys) == 0 {
		keys = []string{"id"}
	}
	return &fakeDB{keys: keys, tables: map[string]map[string]processor.Item{}}
}

func (f *fakeDB) keyOf(table string, item processor.Item) string {
	keys := f.keys
	if table == "errors" {
		keys = []string{processor.ErrorTablePartitionKey}
	}
	var parts []string
	for _, k := range keys {
		switch v := item[k].(type) {
		case *types.AttributeValueMemberS:
			parts = append(parts, v.Value)
		case *types.AttributeValueMemberN:
			parts = append(parts, v.Value)
		default:
			parts = append(parts, fmt.Sprint(v))
		}
	}
	return strings.Join(parts, "|")
}

func (f *fakeDB) put(table string, item processor.Item) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tables[table] == nil {
		f.tables[table] = map[string]processor.Item{}
	}
	f.tables[table][f.keyOf(table, item)] = item
}

func (f *fakeDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &dynamodb.GetItemOutput{Item: f.tables[aws.ToString(in.TableName)][f.keyOf(aws.ToString(in.TableName), in.Key)]}, nil
}

func (f *fakeDB) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if aws.ToString(in.ConditionExpression) == "" {
		return nil, errors.New("fake: DeleteItem without a condition")
	}
	item := f.tables[aws.ToString(in.TableName)][f.keyOf(aws.ToString(in.TableName), in.Key)]
	// DynamoDB's grammar, for what the self-test sends: disjunctions of conjunctions of "#n = :v" and
	// "attribute_not_exists(#n)". Like DynamoDB, a condition on a missing item sees no attributes.
	met := false
	for _, disjunct := range strings.Split(aws.ToString(in.ConditionExpression), " OR ") {
		all := true
		for _, clause := range strings.Split(disjunct, " AND ") {
			if n, ok := strings.CutPrefix(clause, "attribute_not_exists("); ok {
				_, exists := item[in.ExpressionAttributeNames[strings.TrimSuffix(n, ")")]]
				all = all && !exists
				continue
			}
			name, value, ok := strings.Cut(clause, " = ")
			if !ok {
				return nil, fmt.Errorf("fake: condition %q not understood", clause)
			}
			got, want := item[in.ExpressionAttributeNames[name]], in.ExpressionAttributeValues[value]
			all = all && got != nil && reflect.DeepEqual(got, want)
		}
		met = met || all
	}
	switch {
	case !met:
		return nil, &types.ConditionalCheckFailedException{Message: aws.String("fake: condition failed")}
	case item == nil: // DynamoDB: a delete of a missing item whose condition holds succeeds and deletes nothing
		return &dynamodb.DeleteItemOutput{}, nil
	}
	delete(f.tables[aws.ToString(in.TableName)], f.keyOf(aws.ToString(in.TableName), in.Key))
	return &dynamodb.DeleteItemOutput{Attributes: item}, nil
}

func quiet(o *Options) {
	o.StreamName, o.TableName, o.ErrorTableName = "s", "data", "errors"
	o.PollInterval = 5 * time.Millisecond
	o.Timeout = 200 * time.Millisecond
	o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// TestNeverDeletesAnotherRecordsItem: the user's canary key names an item another record wrote (a real item); the
// pipeline does not process the canary. The self-test waits for its own item, fails, and leaves the real item alone.
func TestNeverDeletesAnotherRecordsItem(t *testing.T) {
	realPos, _ := processor.EncodePosition("shardId-000000000000", "1", 0)
	for _, tt := range []struct {
		name string
		real processor.Item
	}{
		{"with its position", processor.Item{"orderId": &types.AttributeValueMemberS{Value: "order-1"},
			processor.AttrPosition: &types.AttributeValueMemberB{Value: realPos}}},
		// An item of an earlier version, or of a custom processor: no position attribute. Under a business key
		// that does not make it the canary's.
		{"without a position", processor.Item{"orderId": &types.AttributeValueMemberS{Value: "order-1"},
			"v": &types.AttributeValueMemberS{Value: "real"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := newFakeDB("orderId")
			db.put("data", tt.real)
			cfg := Config{Pipeline: processor.Config{PartitionKey: processor.KeyAttribute{Name: "orderId", Type: processor.AttributeTypeString, Source: "orderId"}},
				Record: `{"orderId": "order-1"}`}
			report, err := Run(context.Background(), &fakeKinesis{}, db, quiet, func(o *Options) { o.Config = cfg })
			var f *Failure
			if !errors.As(err, &f) || f.Cause != CauseItemNotWritten {
				t.Fatalf("Run = %v, want %s", err, CauseItemNotWritten)
			}
			if got := db.tables["data"]["order-1"]; !reflect.DeepEqual(got, tt.real) {
				t.Errorf("real item = %v, want it untouched", got)
			}
			if len(report.Deleted) != 0 || len(report.Left) != 0 {
				t.Errorf("deleted %q, left %q", report.Deleted, report.Left)
			}
		})
	}
}

// TestFindsItemKeyedByEventIDWithoutPosition: under the default event-id key the processor writes no position
// attribute (the key names the position); the self-test still recognizes and deletes the canary's item.
func TestFindsItemKeyedByEventIDWithoutPosition(t *testing.T) {
	db := newFakeDB()
	kc := &fakeKinesis{onPut: func(p Put, data []byte) {
		if strings.HasSuffix(p.PartitionKey, "-malformed") {
			return
		}
		// As the processor writes it: the payload's fields (the marker among them) under the event id, no _kpos.
		var fields map[string]string
		_ = json.Unmarshal(data, &fields)
		db.put("data", processor.Item{"id": &types.AttributeValueMemberS{Value: p.EventID}, MarkerField: &types.AttributeValueMemberS{Value: fields[MarkerField]}})
	}}
	report, err := Run(context.Background(), kc, db, quiet, func(o *Options) {
		o.Config = Config{Pipeline: processor.DefaultConfig()}
		o.ErrorTableName = ""
	})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(db.tables["data"]) != 0 || len(report.Deleted) != 1 {
		t.Errorf("after the run the table holds %v; deleted %q", db.tables["data"], report.Deleted)
	}
}

// TestPassesAndCleansUp drives Run against a fake pipeline that writes the canary's item and the malformed
// canary's error entry as the processor does.
func TestPassesAndCleansUp(t *testing.T) {
	db := newFakeDB()
	kc := &fakeKinesis{}
	kc.onPut = func(p Put, data []byte) {
		if json.Valid(data) {
			pos, _ := processor.EncodePosition(p.ShardID, p.SequenceNumber, 0)
			db.put("data", processor.Item{"id": &types.AttributeValueMemberS{Value: p.EventID}, processor.AttrPosition: &types.AttributeValueMemberB{Value: pos}})
			return
		}
		db.put("errors", processor.Item{"id": &types.AttributeValueMemberS{Value: p.EventID},
			processor.ErrorAttrShardID:        &types.AttributeValueMemberS{Value: p.ShardID},
			processor.ErrorAttrSequenceNumber: &types.AttributeValueMemberS{Value: p.SequenceNumber}})
	}
	// A producer's items, which must survive.
	db.put("data", processor.Item{"id": &types.AttributeValueMemberS{Value: "producer"}})
	db.put("errors", processor.Item{"id": &types.AttributeValueMemberS{Value: "producer-error"}})
	report, err := Run(context.Background(), kc, db, quiet, func(o *Options) { o.Config.Malformed = true })
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Deleted) != 2 || report.Malformed == nil || !strings.HasSuffix(report.Malformed.PartitionKey, "-malformed") {
		t.Errorf("report %+v", report)
	}
	if len(db.tables["data"]) != 1 || len(db.tables["errors"]) != 1 {
		t.Errorf("tables after cleanup: %v", db.tables)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	_, err := Run(context.Background(), nil, nil, func(o *Options) { o.Config.Malformed = true })
	var f *Failure
	if !errors.As(err, &f) || f.Cause != CauseInvalidConfiguration {
		t.Fatalf("Run = %v", err)
	}
	for _, w := range []string{"kinesis client is nil", "db is nil", "stream name and ARN are empty", "table name is empty", "no error table"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q does not mention %q", err, w)
		}
	}
}
