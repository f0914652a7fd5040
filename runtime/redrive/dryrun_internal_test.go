package redrive

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// sentDB is a DB that answers reads with an empty item and fails every write: nothing a dry run does may reach it.
type sentDB struct {
	DB
	reads []string
}

func (d *sentDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	d.reads = append(d.reads, aws.ToString(in.TableName))
	return &dynamodb.GetItemOutput{}, nil
}

func (d *sentDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, errors.New("sentDB: a dry run sent a write")
}

func (d *sentDB) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return nil, errors.New("sentDB: a dry run sent a write")
}

// TestDryRunAggregateTable: in a dry run, reads of the aggregate table go through to the real table (the recount
// decides from them), and writes to it are accepted, counted and never sent.
func TestDryRunAggregateTable(t *testing.T) {
	real := &sentDB{}
	d := &dryRunDB{real: real, table: "data", aggregateTable: "agg", keys: []string{"id"}}
	ctx := context.Background()
	key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}, "sk": &types.AttributeValueMemberS{Value: "s"}}
	if _, err := d.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("agg"), Key: key}); err != nil {
		t.Fatal(err)
	}
	if len(real.reads) != 1 || real.reads[0] != "agg" {
		t.Errorf("reads reaching the table: %v, want [agg]", real.reads)
	}
	if _, err := d.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("agg"), Item: key,
		ConditionExpression: aws.String("attribute_not_exists(pk)")}); err != nil {
		t.Errorf("PutItem to the aggregate table: %v", err)
	}
	if _, err := d.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{
		"agg": {{PutRequest: &types.PutRequest{Item: key}}}, "errors": {{PutRequest: &types.PutRequest{Item: key}}}}}); err != nil {
		t.Errorf("BatchWriteItem: %v", err)
	}
	if d.aggregateWrites != 2 {
		t.Errorf("%d writes to the aggregate table recorded, want 2", d.aggregateWrites)
	}
}
