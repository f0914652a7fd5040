package aggregate

import (
	"context"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// fakeDB is an in-memory table keyed by pk and sk that answers as DynamoDB does on the wire (fakewire_test.go):
// it evaluates condition expressions (AND, OR, NOT, comparisons, attribute_exists, attribute_not_exists) with
// expression attribute names and values, rejects unused or undefined placeholders, empty or duplicated sets, false
// NULLs and items over 400 KB with a ValidationException, and returns copies, sets in an order of its own. Hooks
// inject faults: before (the request fails, nothing done) or after (the write is done, then the request fails, as
// a timeout after DynamoDB applied it looks to the caller).
type fakeDB struct {
	mu    sync.Mutex
	items map[[2]string]map[string]types.AttributeValue
	// fault, if set, decides a request's fate: "" (normal), "before" or "after".
	fault func(op string) string
	puts  int
}

func newFakeDB() *fakeDB { return &fakeDB{items: map[[2]string]map[string]types.AttributeValue{}} }

func throttled() error {
	return &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Message: "fake", Fault: smithy.FaultClient}
}

func keyOf(m map[string]types.AttributeValue) [2]string {
	return [2]string{m["pk"].(*types.AttributeValueMemberS).Value, m["sk"].(*types.AttributeValueMemberS).Value}
}

func (f *fakeDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fault != nil && f.fault("get") != "" {
		return nil, throttled()
	}
	it := f.items[keyOf(in.Key)]
	if it == nil {
		return &dynamodb.GetItemOutput{}, nil
	}
	return &dynamodb.GetItemOutput{Item: deepCopy(it)}, nil
}

func (f *fakeDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fate := ""
	if f.fault != nil {
		fate = f.fault("put")
	}
	if fate == "before" {
		return nil, throttled()
	}
	if err := validateItem(in.Item); err != nil {
		return nil, err
	}
	if n := dynamoItemSize(in.Item); n > 400*1024 {
		return nil, validation("Item size has exceeded the maximum allowed size (%d bytes)", n)
	}
	k := keyOf(in.Item)
	old := f.items[k]
	if in.ConditionExpression != nil {
		ok, err := evalCondition(*in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues, old)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &smithy.GenericAPIError{Code: "ConditionalCheckFailedException", Message: "fake", Fault: smithy.FaultClient}
		}
	}
	f.items[k] = deepCopy(in.Item)
	f.puts++
	if fate == "after" {
		return nil, throttled()
	}
	return &dynamodb.PutItemOutput{}, nil
}

func (f *fakeDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pk := in.ExpressionAttributeValues[":pk"].(*types.AttributeValueMemberS).Value
	var keys [][2]string
	for k := range f.items {
		if k[0] == pk {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][1] < keys[j][1] })
	// One item a page, to exercise pagination.
	start := 0
	if in.ExclusiveStartKey != nil {
		after := keyOf(in.ExclusiveStartKey)
		for start < len(keys) && keys[start][1] <= after[1] {
			start++
		}
	}
	out := &dynamodb.QueryOutput{}
	if start < len(keys) {
		out.Items = []map[string]types.AttributeValue{f.items[keys[start]]}
		if start+1 < len(keys) {
			out.LastEvaluatedKey = map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: keys[start][0]}, "sk": &types.AttributeValueMemberS{Value: keys[start][1]}}
		}
	}
	return out, nil
}

type (
	dynamodbGetItemInput  = dynamodb.GetItemInput
	dynamodbGetItemOutput = dynamodb.GetItemOutput
	dynamodbPutItemInput  = dynamodb.PutItemInput
	dynamodbPutItemOutput = dynamodb.PutItemOutput
	dynamodbOpt           = func(*dynamodb.Options)
)
