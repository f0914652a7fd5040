//go:build integration

// Adversarial tests of bugs an independent review found in the redrive (each failed before its fix): shard-id
// aliases, and a forged far-future position outranking a key's real records.

package redrive_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// putEntry writes an error-table entry as someone holding the processor's role could.
func (e *env) putEntryFailing(t *testing.T, id, shard, seq, payload string) {
	t.Helper()
	item := map[string]types.AttributeValue{
		processor.ErrorTablePartitionKey:   &types.AttributeValueMemberS{Value: id},
		processor.ErrorAttrShardID:         &types.AttributeValueMemberS{Value: shard},
		processor.ErrorAttrSequenceNumber:  &types.AttributeValueMemberS{Value: seq},
		processor.ErrorAttrPartitionKey:    &types.AttributeValueMemberS{Value: "pk"},
		processor.ErrorAttrPayload:         &types.AttributeValueMemberB{Value: []byte(payload)},
		processor.ErrorAttrPayloadEncoding: &types.AttributeValueMemberS{Value: processor.PayloadEncodingRaw},
		processor.ErrorAttrReason:          &types.AttributeValueMemberS{Value: "forged"},
		processor.ErrorAttrFailedAt:        &types.AttributeValueMemberS{Value: "2025-01-02T03:04:05Z"},
		processor.ErrorAttrArrivalTime:     &types.AttributeValueMemberS{Value: "2025-01-02T03:04:00Z"},
	}
	if _, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.errors), Item: item}); err != nil {
		t.Fatal(err)
	}
}

// aliasOf is another spelling of a kinesalite/Kinesis shard id that GetShardIterator resolves to the same shard.
func aliasOf(shard string) string {
	_, n, _ := strings.Cut(shard, "-")
	return "shardId-" + strings.TrimLeft(n, "0")
}

// TestAttackShardAliasDLQ: a forged message names a real range of the pinned stream with another spelling of its
// shard id. The stream serves the real records, but they are written under keys (and positions) of a shard that does
// not exist.
func TestAttackShardAliasDLQ(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`)
	alias := aliasOf(shard) + "0" // shardId-00
	e.sqs.Send(e.queue, e.failureBody(alias, seqs[0], seqs[1], 2))
	sum, err := newRedriver(t, e.clients(), e).DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	data := items(t, e.db, e.table)
	for id := range data {
		if !strings.HasPrefix(id, shard+":") {
			t.Errorf("item %q written under a shard id the stream does not have (summary %+v)", id, sum)
		}
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 1 {
		t.Errorf("forged message deleted: queue = %+v", msgs)
	}
}

// TestAttackFuturePositionPoisonsKey: with business keys, a forged error entry names the real shard and a sequence
// number far past anything the shard will ever hold. The stream cannot find it, so it counts as "past retention":
// unverified, inserted where its key is free. Its item then carries a position later than every real record of the
// shard, so the genuine failed record for that key, redriven from the queue afterwards, is "superseded": counted as
// stored, its message deleted, its data never written.
func TestAttackFuturePositionPoisonsKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	byOrder, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"}}`))
	if err != nil {
		t.Fatal(err)
	}
	// The pipeline failed on this genuine record (its message is in the queue); key A holds nothing yet.
	seqs, shard := e.put(t, `{"orderId":"A","v":"genuine"}`)
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[0], 1))
	// The forger's entry: the real shard, a 129-digit sequence number.
	future := strings.Repeat("9", 129)
	e.putEntryFailing(t, shard+":"+future, shard, future, `{"orderId":"A","v":"forged"}`)

	if _, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.Config = byOrder }).Errors(ctx, redrive.ErrorsInput{}); err != nil {
		t.Fatal(err)
	}
	sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.Config = byOrder }).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := str(items(t, e.db, e.table)["A"], "v")
	msgs := e.sqs.Messages(e.queue)
	if got != "genuine" && len(msgs) == 0 {
		t.Errorf("item A = %q and the genuine record's message was deleted (summary %+v): its record is lost", got, sum)
	}
}

// TestAttackShardAliasS3AndErrors: the same shard-id alias through an S3 object (payload equal to the stream's
// records) and an error entry (payload equal to the stream's record): both are "verified" and written under the alias.
func TestAttackShardAliasS3AndErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	payloads := []string{`{"n":0}`, `{"n":1}`}
	seqs, shard := e.put(t, payloads...)
	alias := aliasOf(shard) + "0"
	b := newBucket(t)
	b.put(t, mappingPrefix(alias)+"x", e.s3Object(t, alias, seqs, payloads, true))
	if _, err := newRedriver(t, e.s3Clients(b), e).S3(ctx, redrive.S3Input{Bucket: b.name, Delete: true}); err != nil {
		t.Fatal(err)
	}
	e.putEntryFailing(t, "shardId-000"+":"+seqs[0], "shardId-000", seqs[0], payloads[0])
	if _, err := newRedriver(t, e.clients(), e).Errors(ctx, redrive.ErrorsInput{}); err != nil {
		t.Fatal(err)
	}
	for id := range items(t, e.db, e.table) {
		if !strings.HasPrefix(id, shard+":") {
			t.Errorf("item %q written under a shard id the stream does not have", id)
		}
	}
}
