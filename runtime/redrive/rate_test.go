package redrive_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// memDB is an error table for Scan and DeleteItem and a data table that accepts every write.
type memDB struct {
	mu      sync.Mutex
	entries []map[string]types.AttributeValue
	written int
	deleted int
}

func (d *memDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, reqs := range in.RequestItems {
		d.written += len(reqs)
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func (d *memDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.written++
	return &dynamodb.PutItemOutput{}, nil
}

func (d *memDB) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &dynamodb.ScanOutput{Items: d.entries}, nil
}

func (d *memDB) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{}, nil
}

func (d *memDB) BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return &dynamodb.BatchGetItemOutput{}, nil
}

func (d *memDB) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deleted++
	return &dynamodb.DeleteItemOutput{}, nil
}

func TestRateAndProgress(t *testing.T) {
	db := &memDB{}
	for i := range 5 {
		db.entries = append(db.entries, map[string]types.AttributeValue{
			processor.ErrorTablePartitionKey:  &types.AttributeValueMemberS{Value: fmt.Sprintf("shardId-000000000000:%d", 10+i)},
			processor.ErrorAttrShardID:        &types.AttributeValueMemberS{Value: "shardId-000000000000"},
			processor.ErrorAttrSequenceNumber: &types.AttributeValueMemberS{Value: fmt.Sprint(10 + i)},
			processor.ErrorAttrPayload:        &types.AttributeValueMemberB{Value: []byte(`{}`)},
			processor.ErrorAttrFailedAt:       &types.AttributeValueMemberS{Value: "2025-01-02T03:04:05Z"},
		})
	}
	var progress []redrive.Summary
	r, err := redrive.New(redrive.Clients{DB: db}, func(o *redrive.Options) {
		o.TableName, o.ErrorTableName, o.Rate = "data", "errors", 20 // 50 ms per record
		o.Progress = func(s redrive.Summary) { progress = append(progress, s) }
	})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	sum, err := r.Errors(context.Background(), redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(began); elapsed < 190*time.Millisecond {
		t.Errorf("5 records at 20/s took %v, want at least 200ms", elapsed)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 5 || db.deleted != 5 || db.written != 5 || sum.RecordsPerSecond() > 30 {
		t.Errorf("summary = %+v (%.1f records/s), deleted %d, written %d", sum, sum.RecordsPerSecond(), db.deleted, db.written)
	}
	if len(progress) != 5 || progress[0].Total() != 1 || progress[4].Records.Read != 5 {
		t.Errorf("progress = %+v", progress)
	}
}
