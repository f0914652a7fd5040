package processor

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// fakeDB is an in-memory DynamoDB holding one map per table. Hooks inject failures; without them every write
// succeeds. Like DynamoDB, it rejects a whole BatchWriteItem request holding duplicate keys or an invalid item (one
// without its table's key, or with an attribute named "poison").
type fakeDB struct {
	mu     sync.Mutex
	keys   map[string][]KeyAttribute // key schema per table
	tables map[string]map[string]Item
	calls  map[string]int // "batch", "put" per table: "batch:<table>"

	// batchHook, if set, runs before a BatchWriteItem request is applied (n counts calls per table from 1). It
	// returns the requests to leave unprocessed and/or an error for the whole request.
	batchHook func(ctx context.Context, n int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error)
	// putHook, if set, runs before a PutItem is applied.
	putHook func(ctx context.Context, n int, table string, item Item) error
	// getHook, if set, runs before a GetItem is answered.
	getHook func(n int, table string) error
}

func newFakeDB(tables map[string][]KeyAttribute) *fakeDB {
	f := &fakeDB{keys: tables, tables: map[string]map[string]Item{}, calls: map[string]int{}}
	for t := range tables {
		f.tables[t] = map[string]Item{}
	}
	return f
}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " (fake)", Fault: smithy.FaultClient}
}

func (f *fakeDB) check(table string, item Item) error {
	keys, ok := f.keys[table]
	if !ok {
		return apiError("ResourceNotFoundException")
	}
	if _, bad := item["poison"]; bad {
		return apiError("ValidationException")
	}
	for _, k := range keys {
		if checkKey(item[k.Name], k, 2048) != nil {
			return apiError("ValidationException")
		}
	}
	return nil
}

func (f *fakeDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{}}
	for table, reqs := range in.RequestItems {
		if len(reqs) > 25 {
			return nil, apiError("ValidationException")
		}
		f.mu.Lock()
		f.calls["batch:"+table]++
		n := f.calls["batch:"+table]
		f.mu.Unlock()
		seen := map[string]bool{}
		for _, r := range reqs {
			if err := f.check(table, r.PutRequest.Item); err != nil {
				return nil, err
			}
			k := itemKey(r.PutRequest.Item, f.keys[table])
			if seen[k] {
				return nil, apiError("ValidationException")
			}
			seen[k] = true
		}
		var unprocessed []types.WriteRequest
		if f.batchHook != nil {
			var err error
			if unprocessed, err = f.batchHook(ctx, n, table, reqs); err != nil {
				return nil, err
			}
		}
		skip := map[string]bool{}
		for _, u := range unprocessed {
			skip[itemKey(u.PutRequest.Item, f.keys[table])] = true
		}
		f.mu.Lock()
		for _, r := range reqs {
			k := itemKey(r.PutRequest.Item, f.keys[table])
			if !skip[k] {
				f.tables[table][k] = r.PutRequest.Item
			}
		}
		f.mu.Unlock()
		if len(unprocessed) > 0 {
			out.UnprocessedItems[table] = unprocessed
		}
	}
	return out, nil
}

func (f *fakeDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	table := *in.TableName
	f.mu.Lock()
	f.calls["put:"+table]++
	n := f.calls["put:"+table]
	f.mu.Unlock()
	if err := f.check(table, in.Item); err != nil {
		return nil, err
	}
	if f.putHook != nil {
		if err := f.putHook(ctx, n, table, in.Item); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := itemKey(in.Item, f.keys[table])
	if in.ConditionExpression != nil {
		ok, err := evalCondition(in, f.tables[table][k])
		if err != nil {
			return nil, err
		}
		if !ok {
			f.calls["conditionFailed:"+table]++
			return nil, apiError("ConditionalCheckFailedException")
		}
	}
	f.tables[table][k] = in.Item
	return &dynamodb.PutItemOutput{}, nil
}

// evalCondition evaluates the conditions the processor writes with (conditionLaterWins and conditionInsert, spelled
// out here) against old, the item the table holds (nil for none), as DynamoDB would: begins_with and <= compare
// binary values byte by byte.
func evalCondition(in *dynamodb.PutItemInput, old Item) (bool, error) {
	switch *in.ConditionExpression {
	case "attribute_not_exists(#p) OR begins_with(#p, :u) OR (begins_with(#p, :s) AND #p <= :p)":
		name := in.ExpressionAttributeNames["#p"]
		unverified, okU := in.ExpressionAttributeValues[":u"].(*types.AttributeValueMemberB)
		prefix, okS := in.ExpressionAttributeValues[":s"].(*types.AttributeValueMemberB)
		pos, okP := in.ExpressionAttributeValues[":p"].(*types.AttributeValueMemberB)
		if name == "" || !okU || !okS || !okP || len(in.ExpressionAttributeNames) != 1 || len(in.ExpressionAttributeValues) != 3 {
			return false, apiError("ValidationException")
		}
		cur, exists := old[name]
		if !exists {
			return true, nil
		}
		c, isB := cur.(*types.AttributeValueMemberB)
		if !isB {
			return false, nil // begins_with and <= of another type than B are false
		}
		return bytes.HasPrefix(c.Value, unverified.Value) || bytes.HasPrefix(c.Value, prefix.Value) && bytes.Compare(c.Value, pos.Value) <= 0, nil
	case "attribute_not_exists(#k)":
		name := in.ExpressionAttributeNames["#k"]
		if name == "" || len(in.ExpressionAttributeNames) != 1 || len(in.ExpressionAttributeValues) != 0 {
			return false, apiError("ValidationException")
		}
		_, exists := old[name]
		return !exists, nil
	}
	return false, apiError("ValidationException")
}

// GetItem returns the item with the key, projected on the one attribute the processor asks for.
func (f *fakeDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	table := *in.TableName
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["get:"+table]++
	if in.ConsistentRead == nil || !*in.ConsistentRead {
		return nil, fmt.Errorf("fake: GetItem must read consistently")
	}
	if f.getHook != nil {
		if err := f.getHook(f.calls["get:"+table], table); err != nil {
			return nil, err
		}
	}
	if len(in.Key) != len(f.keys[table]) {
		return nil, apiError("ValidationException")
	}
	old := f.tables[table][itemKey(in.Key, f.keys[table])]
	if old == nil {
		return &dynamodb.GetItemOutput{}, nil
	}
	out := Item{}
	if in.ProjectionExpression != nil {
		for _, ph := range strings.Split(*in.ProjectionExpression, ",") {
			name, ok := in.ExpressionAttributeNames[strings.TrimSpace(ph)]
			if !ok {
				return nil, apiError("ValidationException")
			}
			if v, ok := old[name]; ok {
				out[name] = v
			}
		}
	} else {
		out = old
	}
	return &dynamodb.GetItemOutput{Item: out}, nil
}

// keySeqs returns the sequence numbers the data table's event-id keys ("id": "shardId:seq", "shardId:seq#n") name,
// sorted.
func (f *fakeDB) keySeqs(table string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, it := range f.tables[table] {
		out = append(out, keySeq(it))
	}
	sort.Slice(out, func(i, j int) bool { return compareSequence(out[i], out[j]) < 0 })
	return out
}

// keySeq returns the sequence number item's event-id key ("id") names, "?" if it names none.
func keySeq(item Item) string {
	id, _ := item["id"].(*types.AttributeValueMemberS)
	if id == nil {
		return "?"
	}
	_, rest, ok := strings.Cut(id.Value, ":")
	sq, _, _ := strings.Cut(rest, "#")
	if !ok || sq == "" {
		return "?"
	}
	return sq
}

// seqs returns the sequence numbers of a table's items, sorted: from attribute AttrSequenceNumber for the data
// table, ErrorAttrSequenceNumber for the error table.
func (f *fakeDB) seqs(table, attr string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, it := range f.tables[table] {
		if s, ok := it[attr].(*types.AttributeValueMemberS); ok {
			out = append(out, s.Value)
		} else {
			out = append(out, "?")
		}
	}
	sort.Slice(out, func(i, j int) bool { return compareSequence(out[i], out[j]) < 0 })
	return out
}

const (
	testTable      = "data"
	testErrorTable = "errors"
	testShard      = "shardId-000000000000"
)

var testArrival = time.Date(2024, 9, 13, 23, 6, 56, 123000000, time.UTC)

// seq returns the i-th test sequence number (56 digits, increasing with i).
func seq(i int) string { return fmt.Sprintf("4959%052d", i+1) }

// event builds a Kinesis event with one record per payload, sequence numbers seq(0), seq(1), ...
func event(payloads ...string) events.KinesisEvent {
	var ev events.KinesisEvent
	for i, p := range payloads {
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			EventID:     testShard + ":" + seq(i),
			EventSource: "aws:kinesis",
			EventName:   "aws:kinesis:record",
			Kinesis: events.KinesisRecord{
				Data:                        []byte(p),
				PartitionKey:                fmt.Sprintf("pk-%d", i),
				SequenceNumber:              seq(i),
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: testArrival},
			},
		})
	}
	return ev
}

// seqList maps record indexes to their sequence numbers.
func seqList(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, seq(i))
	}
	return out
}

// rangeList returns seqList(from, ..., to-1).
func rangeList(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, seq(i))
	}
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func itoa(i int) string { return fmt.Sprint(i) }
