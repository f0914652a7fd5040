//go:build integration

package redrive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/sqsfake"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// env is one test's emulators, tables, stream and queue.
type env struct {
	dynamoEndpoint string
	db             *dynamodb.Client
	kc             *kinesis.Client
	sqs            *sqsfake.Server
	sqsClient      *sqs.Client
	table, errors  string
	stream, arn    string
	queue, url     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := &env{
		dynamoEndpoint: emulators.Dynalite(t),
		table:          emulators.UniqueName("data"),
		errors:         emulators.UniqueName("errors"),
		stream:         emulators.UniqueName("stream"),
		queue:          "dlq",
	}
	e.db = emulators.DynamoDBClient(e.dynamoEndpoint)
	e.kc = emulators.KinesisClient(emulators.Kinesalite(t))
	for _, name := range []string{e.table, e.errors} {
		if err := emulators.CreateTable(ctx, e.db, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := emulators.CreateStream(ctx, e.kc, e.stream, 1); err != nil {
		t.Fatal(err)
	}
	sum, err := e.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(e.stream)})
	if err != nil {
		t.Fatal(err)
	}
	e.arn = aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	srv, err := sqsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	e.sqs = srv
	e.url = srv.CreateQueue(e.queue)
	e.sqsClient = sqs.NewFromConfig(emulators.AWSConfig(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(srv.URL()) })
	return e
}

// put writes payloads to the stream (one shard) and returns their sequence numbers and the shard id.
func (e *env) put(t *testing.T, payloads ...string) ([]string, string) {
	t.Helper()
	var seqs []string
	var shard string
	for _, p := range payloads {
		out, err := e.kc.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(e.stream), PartitionKey: aws.String("pk"), Data: []byte(p)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
		shard = aws.ToString(out.ShardId)
	}
	return seqs, shard
}

// failureBody is the invocation record the event source mapping would send for the range.
func (e *env) failureBody(shard, start, end string, n int) string {
	return fmt.Sprintf(`{"requestContext":{"requestId":"c9b8fa9f-5a7f-4b1a-af9c-0c604cde93a5","functionArn":"arn:aws:lambda:us-east-1:000000000000:function:processor","condition":"RetryAttemptsExhausted","approximateInvokeCount":3},
"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2025-01-02T03:04:05.678Z",
"KinesisBatchInfo":{"shardId":%q,"startSequenceNumber":%q,"endSequenceNumber":%q,"approximateArrivalOfFirstRecord":"2025-01-02T03:04:00.000Z","approximateArrivalOfLastRecord":"2025-01-02T03:04:01.000Z","batchSize":%d,"streamArn":%q}}`,
		shard, start, end, n, e.arn)
}

func (e *env) clients() redrive.Clients {
	return redrive.Clients{DB: e.db, Kinesis: e.kc, SQS: e.sqsClient}
}

// items returns the table's items by id.
func items(t *testing.T, db *dynamodb.Client, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	out := map[string]map[string]types.AttributeValue{}
	var start map[string]types.AttributeValue
	for {
		res, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range res.Items {
			out[it["id"].(*types.AttributeValueMemberS).Value] = it
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out
		}
		start = res.LastEvaluatedKey
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func ids(shard string, seqs ...string) []string {
	out := make([]string, len(seqs))
	for i, s := range seqs {
		out[i] = shard + ":" + s
	}
	sort.Strings(out)
	return out
}

func str(it map[string]types.AttributeValue, k string) string {
	if v, ok := it[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// memS3 is an in-memory bucket behind the redrive.S3 interface.
type memS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	deleted []string
}

func (m *memS3) put(key string, body []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objects == nil {
		m.objects = map[string][]byte{}
	}
	m.objects[key] = body
}

func (m *memS3) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return keys(m.objects)
}

// ListObjectsV2 lists keys under the prefix, two per page so pagination is exercised.
func (m *memS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var all []string
	for k := range m.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) && k > aws.ToString(in.ContinuationToken) {
			all = append(all, k)
		}
	}
	sort.Strings(all)
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for i, k := range all {
		if i == 2 {
			out.IsTruncated, out.NextContinuationToken = aws.Bool(true), aws.String(all[1])
			break
		}
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k)})
	}
	return out, nil
}

// GetObject returns the object's body.
func (m *memS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &s3types.NoSuchKey{Message: aws.String("no such key")}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

// DeleteObject removes the object.
func (m *memS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, aws.ToString(in.Key))
	m.deleted = append(m.deleted, aws.ToString(in.Key))
	return &s3.DeleteObjectOutput{}, nil
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
