//go:build integration

package emulators_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
)

func TestDynalite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	endpoint := emulators.Dynalite(t)
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %s is not on loopback", endpoint)
	}
	db := emulators.DynamoDBClient(endpoint)
	name := emulators.UniqueName(t.Name())
	if err := emulators.CreateTable(ctx, db, name); err != nil {
		t.Fatal(err)
	}
	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Table.TableStatus != types.TableStatusActive || desc.Table.BillingModeSummary == nil ||
		desc.Table.BillingModeSummary.BillingMode != types.BillingModePayPerRequest || *desc.Table.KeySchema[0].AttributeName != "id" {
		t.Errorf("table = %+v", desc.Table)
	}

	// The stand-in in front of dynalite: what it withholds comes back as UnprocessedItems, the rest lands.
	standin := dynamostandin.New(dynamostandin.Options{Upstream: endpoint, UnprocessedRate: 1, UnprocessedFraction: 0.5})
	t.Cleanup(standin.Close)
	via := emulators.DynamoDBClient(standin.URL())
	var reqs []types.WriteRequest
	for _, id := range []string{"a", "b", "c", "d"} {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			"id": &types.AttributeValueMemberS{Value: id}, "v": &types.AttributeValueMemberN{Value: "1"}}}})
	}
	out, err := via.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{name: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, r := range out.UnprocessedItems[name] {
		held[r.PutRequest.Item["id"].(*types.AttributeValueMemberS).Value] = true
	}
	if len(held) != 2 {
		t.Fatalf("unprocessed = %v, want 2 items", held)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		got, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(name), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}})
		if err != nil {
			t.Fatal(err)
		}
		if stored := got.Item != nil; stored == held[id] {
			t.Errorf("item %s: stored %v, unprocessed %v; want exactly one", id, stored, held[id])
		}
		if got.Item != nil && !reflect.DeepEqual(got.Item["v"], &types.AttributeValueMemberN{Value: "1"}) {
			t.Errorf("item %s: v = %#v", id, got.Item["v"])
		}
	}
}

func TestKinesalite(t *testing.T) {
	endpoint := emulators.Kinesalite(t)
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %s is not on loopback", endpoint)
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=x")
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(body), `"StreamNames":[]`) {
		t.Errorf("ListStreams: %d %s", res.StatusCode, body)
	}
}

func TestKinesaliteWithSDK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc := emulators.KinesisClient(emulators.Kinesalite(t))
	name := emulators.UniqueName(t.Name())
	if err := emulators.CreateStream(ctx, kc, name, 2); err != nil {
		t.Fatal(err)
	}
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards.Shards) != 2 {
		t.Fatalf("shards = %d, want 2", len(shards.Shards))
	}
	put, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("pk"), Data: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: put.ShardId,
		ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs.Records) != 1 || string(recs.Records[0].Data) != `{"a":1}` || *recs.Records[0].SequenceNumber != *put.SequenceNumber {
		t.Errorf("records = %+v", recs.Records)
	}
}

func TestCreateKeyedTable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := emulators.DynamoDBClient(emulators.Dynalite(t))
	name := emulators.UniqueName(t.Name())
	if err := emulators.CreateKeyedTable(ctx, db, name, "businessId", types.ScalarAttributeTypeS); err != nil {
		t.Fatal(err)
	}
	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if got := *desc.Table.KeySchema[0].AttributeName; got != "businessId" {
		t.Errorf("partition key = %s, want businessId", got)
	}
}

// TestEmulatorsSurviveAbortedRequests sends each emulator requests that end early (a client interrupted with
// Ctrl-C mid-body, or its connection reset) and checks that the emulator still answers afterwards: kdp local's
// emulators must outlive an interrupted kdp redrive or kdp replay.
func TestEmulatorsSurviveAbortedRequests(t *testing.T) {
	for _, tt := range []struct {
		name     string
		endpoint func(testing.TB) string
		target   string
	}{
		{"dynalite", emulators.Dynalite, "DynamoDB_20120810.ListTables"},
		{"kinesalite", emulators.Kinesalite, "Kinesis_20131202.ListStreams"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			endpoint := tt.endpoint(t)
			addr := strings.TrimPrefix(endpoint, "http://")
			aborts := []struct {
				name string
				send func(c net.Conn) error
			}{
				{"body cut short", func(c net.Conn) error {
					_, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: %s\r\nContent-Length: 1000\r\n\r\n{\"Lim", addr, tt.target)
					return err
				}},
				{"headers cut short", func(c net.Conn) error {
					_, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Ty", addr)
					return err
				}},
				{"reset mid-body", func(c net.Conn) error {
					if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: %s\r\nContent-Length: 1000\r\n\r\n{", addr, tt.target); err != nil {
						return err
					}
					return c.(*net.TCPConn).SetLinger(0) // Close then sends RST
				}},
			}
			for round := 0; round < 3; round++ {
				for _, a := range aborts {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatalf("%s: %v", a.name, err)
					}
					if err := a.send(c); err != nil {
						t.Fatalf("%s: %v", a.name, err)
					}
					time.Sleep(20 * time.Millisecond)
					c.Close()
				}
			}
			// The emulator must still answer a whole request.
			time.Sleep(200 * time.Millisecond)
			req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-amz-json-1.0")
			req.Header.Set("X-Amz-Target", tt.target)
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/x/aws4_request, SignedHeaders=host, Signature=0")
			req.Header.Set("X-Amz-Date", "20240101T000000Z")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("after the aborted requests, %s does not answer: %v", tt.name, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode >= 500 {
				t.Fatalf("after the aborted requests, %s answers %d: %s", tt.name, resp.StatusCode, body)
			}
		})
	}
}
