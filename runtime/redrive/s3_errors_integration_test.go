//go:build integration

package redrive_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// s3Object is an invocation record as Lambda writes it to an S3 on-failure destination.
func (e *env) s3Object(t *testing.T, shard string, seqs []string, payloads []string, payloadAsString bool) []byte {
	t.Helper()
	var ev events.KinesisEvent
	for i, s := range seqs {
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			AwsRegion: "us-east-1", EventID: shard + ":" + s, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
			EventSourceArn: e.arn, EventVersion: "1.0",
			Kinesis: events.KinesisRecord{PartitionKey: "pk", SequenceNumber: s, Data: []byte(payloads[i]), KinesisSchemaVersion: "1.0",
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Unix(1736000000, 0)}},
		})
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(e.failureBody(shard, seqs[0], seqs[len(seqs)-1], len(seqs))), &doc); err != nil {
		t.Fatal(err)
	}
	if payloadAsString {
		doc["payload"] = string(mustJSON(t, ev))
	} else {
		doc["payload"] = ev
	}
	return mustJSON(t, doc)
}

func TestS3(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`)
	bucket := &memS3{}
	prefix := "aws/lambda/9f1c2d3e-esm/" + shard + "/2025/01/02/"
	// The payload holds the records: they need not be in the stream any more (these ones are not).
	bucket.put(prefix+"2025-01-02T03.04.05-a", e.s3Object(t, shard, []string{"900", "901"}, []string{`{"n":900}`, `{"n":901}`}, true))
	bucket.put(prefix+"2025-01-02T03.04.06-b", e.s3Object(t, shard, []string{"902"}, []string{`{"n":902}`}, false))
	// Without a payload, the range is read back from the stream.
	bucket.put(prefix+"2025-01-02T03.04.07-c", []byte(e.failureBody(shard, seqs[1], seqs[3], 3)))
	bucket.put(prefix+"2025-01-02T03.04.08-d", []byte(`not an invocation record`))
	bucket.put("elsewhere/x", []byte(`ignored: outside the prefix`))

	c := e.clients()
	c.S3 = bucket
	sum, err := newRedriver(t, c, e).S3(context.Background(), redrive.S3Input{Bucket: "failures"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 3 || sum.Sources[redrive.OutcomeInvalid] != 1 || sum.Removed != 0 || sum.Records.Written != 6 {
		t.Fatalf("summary = %+v", sum)
	}
	if got, want := keys(items(t, e.db, e.table)), ids(shard, "900", "901", "902", seqs[1], seqs[2], seqs[3]); !reflect.DeepEqual(got, want) {
		t.Errorf("data table = %v, want %v", got, want)
	}
	if len(bucket.keys()) != 5 {
		t.Errorf("objects = %v, want all kept without Delete", bucket.keys())
	}

	// With Delete, recovered objects go; the invalid one stays.
	sum, err = newRedriver(t, c, e).S3(context.Background(), redrive.S3Input{Bucket: "failures", Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Removed != 3 || sum.Unrecovered() != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	if got, want := bucket.keys(), []string{prefix + "2025-01-02T03.04.08-d", "elsewhere/x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("objects = %v, want %v", got, want)
	}
	if n := len(items(t, e.db, e.table)); n != 6 {
		t.Errorf("%d items after the second run, want the same 6", n)
	}
}

// withRange rewrites the range an invocation record names.
func withRange(t *testing.T, obj []byte, start, end string, batchSize int) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(obj, &doc); err != nil {
		t.Fatal(err)
	}
	bi := doc["KinesisBatchInfo"].(map[string]any)
	bi["startSequenceNumber"], bi["endSequenceNumber"], bi["batchSize"] = start, end, batchSize
	return mustJSON(t, doc)
}

// TestS3PayloadShorterThanRange: an object whose payload holds fewer records than its range is deleted only when the
// range, read back from the stream, is stored in full.
func TestS3PayloadShorterThanRange(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`)
	bucket := &memS3{}
	prefix := "aws/lambda/9f1c2d3e-esm/" + shard + "/2025/01/02/"
	// The range is readable: its missing record comes from the stream.
	readable := prefix + "2025-01-02T03.04.05-a"
	bucket.put(readable, withRange(t, e.s3Object(t, shard, seqs[:2], []string{`{"n":0}`, `{"n":1}`}, false), seqs[0], seqs[2], 3))
	// The range is past retention (not in the stream): the object is the only trace of record 902, so it stays.
	gone := prefix + "2025-01-02T03.04.06-b"
	bucket.put(gone, withRange(t, e.s3Object(t, shard, []string{"900", "901"}, []string{`{"n":900}`, `{"n":901}`}, true), "900", "902", 3))
	// The payload holds the range's first and last records but the batch had three.
	short := prefix + "2025-01-02T03.04.07-c"
	bucket.put(short, withRange(t, e.s3Object(t, shard, []string{"910", "912"}, []string{`{"n":910}`, `{"n":912}`}, false), "910", "912", 3))

	c := e.clients()
	c.S3 = bucket
	sum, err := newRedriver(t, c, e).S3(context.Background(), redrive.S3Input{Bucket: "failures", Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Sources[redrive.OutcomeExpired] != 2 || sum.Removed != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	if got, want := bucket.keys(), []string{gone, short}; !reflect.DeepEqual(got, want) {
		t.Errorf("objects = %v, want %v kept", got, want)
	}
	for _, res := range sum.Unrecoverable {
		if !strings.Contains(res.Reason, "payload does not cover") {
			t.Errorf("reason %q does not say the payload is short", res.Reason)
		}
	}
	// Every record at hand is stored all the same.
	if got, want := keys(items(t, e.db, e.table)), ids(shard, "900", "901", "910", "912", seqs[0], seqs[1], seqs[2]); !reflect.DeepEqual(got, want) {
		t.Errorf("data table = %v, want %v", got, want)
	}
}

// schemaConfig requires an "amount" number, the schema the records below fail.
func schemaConfig(t *testing.T) processor.Config {
	t.Helper()
	c, err := processor.ParseConfig([]byte(`{"transform":{"schema":{"type":"object","required":["amount"],"properties":{"amount":{"type":"number"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pipeline handles the records as the deployed pipeline would, with cfg.
func (e *env) pipeline(t *testing.T, cfg processor.Config, recs ...events.KinesisEventRecord) {
	t.Helper()
	p, err := processor.New(e.db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.Config = e.table, e.errors, cfg
		o.MetricsWriter = &bytes.Buffer{}
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Handle(context.Background(), events.KinesisEvent{Records: recs})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("pipeline: %v %+v", err, resp)
	}
}

func rec(shard, seq, data string) events.KinesisEventRecord {
	return events.KinesisEventRecord{EventID: shard + ":" + seq, EventSource: "aws:kinesis",
		Kinesis: events.KinesisRecord{SequenceNumber: seq, PartitionKey: "pk", Data: []byte(data),
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.UnixMilli(1736000000123)}}}
}

func TestErrorsAfterSchemaFix(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const shard = "shardId-000000000000"
	e.pipeline(t, schemaConfig(t),
		rec(shard, "100", `{"amount":1}`),
		rec(shard, "101", `{"amount":"2"}`), // wrong type
		rec(shard, "102", `{"total":3}`),    // missing
		rec(shard, "103", `not json`),       // fails with any schema
	)
	if got, want := keys(items(t, e.db, e.errors)), ids(shard, "101", "102", "103"); !reflect.DeepEqual(got, want) {
		t.Fatalf("error table = %v, want %v", got, want)
	}
	before := items(t, e.db, e.errors)

	// A dry run with the old schema says both would fail again and changes nothing.
	r := newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.Config = schemaConfig(t); o.DryRun = true })
	sum, err := r.Errors(ctx, redrive.ErrorsInput{Reason: "schema"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeFailedAgain] != 2 || sum.Total() != 2 {
		t.Fatalf("dry run: summary = %+v", sum)
	}
	for _, res := range sum.Unrecoverable {
		if !strings.HasPrefix(res.Reason, "would fail again: ") || !strings.Contains(res.Reason, "amount") {
			t.Errorf("dry run reason = %q", res.Reason)
		}
	}
	if after := items(t, e.db, e.errors); !reflect.DeepEqual(after, before) {
		t.Errorf("dry run changed the error table")
	}

	// The schema fix: the pipeline's config without the schema. Only the schema failures are chosen.
	sum, err = newRedriver(t, e.clients(), e).Errors(ctx, redrive.ErrorsInput{Reason: "schema", Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 2 || sum.Removed != 2 || sum.Unrecovered() != 0 {
		t.Fatalf("summary = %+v", sum)
	}
	data := items(t, e.db, e.table)
	if got, want := keys(data), ids(shard, "100", "101", "102"); !reflect.DeepEqual(got, want) {
		t.Errorf("data table = %v, want %v", got, want)
	}
	if it := data[shard+":102"]; str(it, "_kinesisArrivalTime") != "2025-01-04T14:13:20.123Z" || str(it, "_kinesisPartitionKey") != "pk" {
		t.Errorf("rebuilt record lost its metadata: %v", it)
	}
	if got, want := keys(items(t, e.db, e.errors)), ids(shard, "103"); !reflect.DeepEqual(got, want) {
		t.Errorf("error table = %v, want %v", got, want)
	}

	// The one left fails again: its entry stays, rewritten.
	sum, err = newRedriver(t, e.clients(), e).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeFailedAgain] != 1 || sum.Unrecovered() != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	left := items(t, e.db, e.errors)[shard+":103"]
	if left == nil || str(left, processor.ErrorAttrFailedAt) == str(before[shard+":103"], processor.ErrorAttrFailedAt) {
		t.Errorf("entry not rewritten: %v", left)
	}
}

func TestErrorsPayloadEncodings(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprint(zw, `{"big":true}`)
	zw.Close()
	put := func(id, enc string, payload []byte) {
		_, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.errors), Item: map[string]types.AttributeValue{
			processor.ErrorTablePartitionKey:   &types.AttributeValueMemberS{Value: id},
			processor.ErrorAttrSequenceNumber:  &types.AttributeValueMemberS{Value: strings.Split(strings.Split(id, ":")[1], "#")[0]},
			processor.ErrorAttrShardID:         &types.AttributeValueMemberS{Value: "shardId-000000000000"},
			processor.ErrorAttrPayload:         &types.AttributeValueMemberB{Value: payload},
			processor.ErrorAttrPayloadEncoding: &types.AttributeValueMemberS{Value: enc},
			processor.ErrorAttrPayloadSize:     &types.AttributeValueMemberN{Value: "999999"},
			processor.ErrorAttrReason:          &types.AttributeValueMemberS{Value: "too big"},
			processor.ErrorAttrFailedAt:        &types.AttributeValueMemberS{Value: "2025-01-02T03:04:05.123Z"},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("shardId-000000000000:200", processor.PayloadEncodingGzip, gz.Bytes())
	put("shardId-000000000000:201", processor.PayloadEncodingTruncated, []byte(`{"big":`))
	// A user record of a KPL aggregate keeps its "#<n>" id, and so its default key.
	put("shardId-000000000000:202#3", processor.PayloadEncodingRaw, []byte(`{"user":3}`))

	sum, err := newRedriver(t, e.clients(), e).Errors(ctx, redrive.ErrorsInput{
		Since: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 1, 3, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 2 || sum.Sources[redrive.OutcomeInvalid] != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	if res := sum.Unrecoverable[0]; res.Source != "error:shardId-000000000000:201" || !strings.Contains(res.Reason, "truncated") {
		t.Errorf("unrecoverable = %+v", res)
	}
	if got, want := keys(items(t, e.db, e.table)), []string{"shardId-000000000000:200", "shardId-000000000000:202#3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("data table = %v, want %v", got, want)
	}
	if got, want := keys(items(t, e.db, e.errors)), []string{"shardId-000000000000:201"}; !reflect.DeepEqual(got, want) {
		t.Errorf("error table = %v, want %v", got, want)
	}

	// Outside the time range: nothing chosen.
	sum, err = newRedriver(t, e.clients(), e).Errors(ctx, redrive.ErrorsInput{Since: time.Date(2025, 1, 3, 0, 0, 0, 0, time.UTC)})
	if err != nil || sum.Total() != 0 {
		t.Fatalf("summary = %+v, %v", sum, err)
	}
}

// racingDB rewrites an error entry (a newer failure of the same record) just before the Redriver deletes it.
type racingDB struct {
	*dynamodb.Client
	table string
}

func (d racingDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	_, err := d.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(d.table), Key: in.Key,
		UpdateExpression:          aws.String("SET #f = :f"),
		ExpressionAttributeNames:  map[string]string{"#f": processor.ErrorAttrFailedAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":f": &types.AttributeValueMemberS{Value: "2999-01-01T00:00:00Z"}}})
	if err != nil {
		return nil, err
	}
	return d.Client.DeleteItem(ctx, in, optFns...)
}

func TestErrorsNewerFailureKept(t *testing.T) {
	e := newEnv(t)
	const shard = "shardId-000000000000"
	e.pipeline(t, schemaConfig(t), rec(shard, "300", `{"total":1}`))
	c := e.clients()
	c.DB = racingDB{Client: e.db, table: e.errors}
	sum, err := newRedriver(t, c, e).Errors(context.Background(), redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeFailed] != 1 || sum.Removed != 0 || !strings.Contains(sum.Unrecoverable[0].Reason, "changed meanwhile") {
		t.Fatalf("summary = %+v", sum)
	}
	if left := items(t, e.db, e.errors)[shard+":300"]; str(left, processor.ErrorAttrFailedAt) != "2999-01-01T00:00:00Z" {
		t.Errorf("the newer failure was lost: %v", left)
	}
}

// TestErrorsPayloadInParts: a 1 MiB record the pipeline failed on is stored in the error table in parts; a redrive
// after the fix reassembles it whole, stores it, and deletes the entry with all its parts. An entry whose parts do
// not add up to its SHA-256 is kept, parts and all.
func TestErrorsPayloadInParts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const shard = "shardId-000000000000"
	payload := func() []byte {
		b := make([]byte, 512<<10)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return []byte(`{"total":1,"blob":"` + hex.EncodeToString(b) + `"}`) // 1 MiB that gzip cannot bring under 350 KiB
	}
	whole, corrupt := payload(), payload()
	e.pipeline(t, schemaConfig(t), rec(shard, "400", string(whole)), rec(shard, "401", string(corrupt)))
	entries := items(t, e.db, e.errors)
	wantParts := (len(whole) + processor.MaxErrorPayload - 1) / processor.MaxErrorPayload
	if len(entries) != 2*(1+wantParts) || str(entries[shard+":400"], processor.ErrorAttrPayloadEncoding) != processor.PayloadEncodingParts {
		t.Fatalf("error table = %v, want two entries of %d parts each", keys(entries), wantParts)
	}
	// Part 2 of 401 loses a byte.
	part := entries[processor.ErrorPartID(shard+":401", 2)]
	b := part[processor.ErrorAttrPayload].(*types.AttributeValueMemberB)
	b.Value = b.Value[1:]
	if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.errors), Item: part}); err != nil {
		t.Fatal(err)
	}

	// The fix: a transform that takes the record as it is, noting the size and SHA-256 of what it got.
	r := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.ProcessorOptions = append(o.ProcessorOptions, func(po *processor.Options) {
			po.Transform = func(_ context.Context, r *processor.Record) ([]processor.Item, error) {
				sum := sha256.Sum256(r.Raw)
				return []processor.Item{{
					"id":   &types.AttributeValueMemberS{Value: r.EventID},
					"size": &types.AttributeValueMemberN{Value: strconv.Itoa(len(r.Raw))},
					"sha":  &types.AttributeValueMemberS{Value: hex.EncodeToString(sum[:])},
				}}, nil
			}
		})
	})
	sum, err := r.Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total() != 2 || sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Sources[redrive.OutcomeInvalid] != 1 || sum.Removed != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	if res := sum.Unrecoverable[0]; res.Source != "error:"+shard+":401" || !strings.Contains(res.Reason, "parts hold") {
		t.Errorf("unrecoverable = %+v", res)
	}
	data := items(t, e.db, e.table)
	wantSum := sha256.Sum256(whole)
	if got := data[shard+":400"]; len(data) != 1 || str(got, "sha") != hex.EncodeToString(wantSum[:]) ||
		got["size"].(*types.AttributeValueMemberN).Value != strconv.Itoa(len(whole)) {
		t.Errorf("data table = %v, want record 400 whole", data)
	}
	left := keys(items(t, e.db, e.errors))
	want := []string{shard + ":401"}
	for k := 1; k <= wantParts; k++ {
		want = append(want, processor.ErrorPartID(shard+":401", k))
	}
	sort.Strings(want)
	if !reflect.DeepEqual(left, want) {
		t.Errorf("error table = %v, want %v: 400 and its parts gone, 401 and its parts kept", left, want)
	}
}

// TestErrorsReplayNeverOverwritesNewer: record X (sequence number 5) failed; record Y (9), of the same business key,
// was stored after it. Redriving X leaves Y's item, and X's entry goes: superseded counts as stored.
func TestErrorsReplayNeverOverwritesNewer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const shard = "shardId-000000000000"
	byOrder, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"}}`))
	if err != nil {
		t.Fatal(err)
	}
	strict, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"},
"transform":{"schema":{"type":"object","required":["amount"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	e.pipeline(t, strict, rec(shard, "5", `{"orderId":"K","v":"old"}`))
	e.pipeline(t, byOrder, rec(shard, "9", `{"orderId":"K","v":"new"}`))

	sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.Config = byOrder }).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Removed != 1 || sum.Unrecovered() != 0 {
		t.Fatalf("summary = %+v", sum)
	}
	it := items(t, e.db, e.table)["K"]
	if str(it, "v") != "new" || str(it, processor.AttrSequenceNumber) != "9" {
		t.Errorf("item K = %v, want Y's (sequence number 9)", it)
	}
	if n := len(items(t, e.db, e.errors)); n != 0 {
		t.Errorf("error table holds %d items, want X's entry removed", n)
	}
}
