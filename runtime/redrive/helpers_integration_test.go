//go:build integration

package redrive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

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
	return e.putKeyed(t, "pk", payloads...)
}

// putKeyed writes payloads to the stream with the partition key pk.
func (e *env) putKeyed(t *testing.T, pk string, payloads ...string) ([]string, string) {
	t.Helper()
	var seqs []string
	var shard string
	for _, p := range payloads {
		out, err := e.kc.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(e.stream), PartitionKey: aws.String(pk), Data: []byte(p)})
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
	return failureBodyOf(e.arn, shard, start, end, n)
}

// failureBodyOf is the invocation record for a range of the stream streamARN.
func failureBodyOf(streamARN, shard, start, end string, n int) string {
	return fmt.Sprintf(`{"requestContext":{"requestId":"c9b8fa9f-5a7f-4b1a-af9c-0c604cde93a5","functionArn":"arn:aws:lambda:us-east-1:000000000000:function:processor","condition":"RetryAttemptsExhausted","approximateInvokeCount":3},
"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2025-01-02T03:04:05.678Z",
"KinesisBatchInfo":{"shardId":%q,"startSequenceNumber":%q,"endSequenceNumber":%q,"approximateArrivalOfFirstRecord":"2025-01-02T03:04:00.000Z","approximateArrivalOfLastRecord":"2025-01-02T03:04:01.000Z","batchSize":%d,"streamArn":%q}}`,
		shard, start, end, n, streamARN)
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

// bucket is an S3 bucket on an in-process S3 server (gofakes3, path-style on 127.0.0.1): the redrive reads it
// through the real S3 client, on the wire.
type bucket struct {
	name   string
	client *s3.Client
}

// newBucket starts an S3 server holding one empty bucket.
func newBucket(t *testing.T) *bucket {
	t.Helper()
	backend := s3mem.New()
	const name = "failures"
	if err := backend.CreateBucket(name); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return &bucket{name: name, client: s3.NewFromConfig(emulators.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle = aws.String(srv.URL), true
		o.DisableLogOutputChecksumValidationSkipped = true
	})}
}

func (b *bucket) put(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := b.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// keys lists the bucket's keys, sorted.
func (b *bucket) keys(t *testing.T) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: aws.String(b.name)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	sort.Strings(out)
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
