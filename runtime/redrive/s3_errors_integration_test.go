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
	"math/big"
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

// mappingPrefix is where the event source mapping (UUID 9f1c2d3e-...) writes its objects for shard, on one day.
func mappingPrefix(shard string) string {
	return "aws/lambda/9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f/" + shard + "/2025/01/02/"
}

// records are the event records Lambda would have sent for payloads with these sequence numbers.
func (e *env) records(shard string, seqs []string, payloads []string) []events.KinesisEventRecord {
	var recs []events.KinesisEventRecord
	for i, s := range seqs {
		recs = append(recs, events.KinesisEventRecord{
			AwsRegion: "us-east-1", EventID: shard + ":" + s, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
			EventSourceArn: e.arn, EventVersion: "1.0",
			Kinesis: events.KinesisRecord{PartitionKey: "pk", SequenceNumber: s, Data: []byte(payloads[i]), KinesisSchemaVersion: "1.0",
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Unix(1736000000, 0)}},
		})
	}
	return recs
}

// object is an invocation record as Lambda writes it to an S3 on-failure destination, for the range the records
// span: the documented format holds the event as an escaped JSON string in "payload" (payloadAsString); LocalStack
// writes it as a JSON object.
func (e *env) object(t *testing.T, recs []events.KinesisEventRecord, payloadAsString bool) []byte {
	t.Helper()
	shard, _, _ := strings.Cut(recs[0].EventID, ":")
	var doc map[string]any
	body := e.failureBody(shard, recs[0].Kinesis.SequenceNumber, recs[len(recs)-1].Kinesis.SequenceNumber, len(recs))
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	ev := events.KinesisEvent{Records: recs}
	if payloadAsString {
		doc["payload"] = string(mustJSON(t, ev))
	} else {
		doc["payload"] = ev
	}
	return mustJSON(t, doc)
}

// s3Object is the invocation record of payloads with these sequence numbers.
func (e *env) s3Object(t *testing.T, shard string, seqs []string, payloads []string, payloadAsString bool) []byte {
	t.Helper()
	return e.object(t, e.records(shard, seqs, payloads), payloadAsString)
}

func (e *env) s3Clients(b *bucket) redrive.Clients {
	c := e.clients()
	c.S3 = b.client
	return c
}

func TestS3(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`)
	b := newBucket(t)
	prefix := mappingPrefix(shard)
	// The payload holds the records: they need not be in the stream any more (these ones are not).
	b.put(t, prefix+"2025-01-02T03.04.05-a", e.s3Object(t, shard, []string{"900", "901"}, []string{`{"n":900}`, `{"n":901}`}, true))
	b.put(t, prefix+"2025-01-02T03.04.06-b", e.s3Object(t, shard, []string{"902"}, []string{`{"n":902}`}, false))
	// Without a payload, the range is read back from the stream.
	b.put(t, prefix+"2025-01-02T03.04.07-c", []byte(e.failureBody(shard, seqs[1], seqs[3], 3)))
	b.put(t, prefix+"2025-01-02T03.04.08-d", []byte(`not an invocation record`))
	// With a payload the stream still holds: the stream's records are written.
	b.put(t, prefix+"2025-01-02T03.04.09-e", e.s3Object(t, shard, seqs[3:5], []string{`{"n":3}`, `{"n":4}`}, true))
	b.put(t, "elsewhere/x", []byte(`ignored: outside the prefix`))

	sum, err := newRedriver(t, e.s3Clients(b), e).S3(context.Background(), redrive.S3Input{Bucket: b.name})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 4 || sum.Sources[redrive.OutcomeInvalid] != 1 || sum.Removed != 0 || sum.Records.Written != 8 {
		t.Fatalf("summary = %+v", sum)
	}
	if got, want := keys(items(t, e.db, e.table)), ids(shard, "900", "901", "902", seqs[1], seqs[2], seqs[3], seqs[4]); !reflect.DeepEqual(got, want) {
		t.Errorf("data table = %v, want %v", got, want)
	}
	if n := len(b.keys(t)); n != 6 {
		t.Errorf("objects = %v, want all kept without Delete", b.keys(t))
	}

	// With Delete, recovered objects go; the invalid one stays. The payload records written insert-only in the
	// first run are found again (a rerun of the same records): stored.
	sum, err = newRedriver(t, e.s3Clients(b), e).S3(context.Background(), redrive.S3Input{Bucket: b.name, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Removed != 4 || sum.Unrecovered() != 1 || sum.Records.Refused != 0 {
		t.Fatalf("summary = %+v", sum)
	}
	if got, want := b.keys(t), []string{prefix + "2025-01-02T03.04.08-d", "elsewhere/x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("objects = %v, want %v", got, want)
	}
	if n := len(items(t, e.db, e.table)); n != 7 {
		t.Errorf("%d items after the second run, want the same 7", n)
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
	b := newBucket(t)
	prefix := mappingPrefix(shard)
	// The range is readable: its missing record comes from the stream.
	readable := prefix + "2025-01-02T03.04.05-a"
	b.put(t, readable, withRange(t, e.s3Object(t, shard, seqs[:2], []string{`{"n":0}`, `{"n":1}`}, false), seqs[0], seqs[2], 3))
	// The range is past retention (not in the stream): the object is the only trace of record 902, so it stays.
	gone := prefix + "2025-01-02T03.04.06-b"
	b.put(t, gone, withRange(t, e.s3Object(t, shard, []string{"900", "901"}, []string{`{"n":900}`, `{"n":901}`}, true), "900", "902", 3))
	// The payload holds the range's first and last records but the batch had three.
	short := prefix + "2025-01-02T03.04.07-c"
	b.put(t, short, withRange(t, e.s3Object(t, shard, []string{"910", "912"}, []string{`{"n":910}`, `{"n":912}`}, false), "910", "912", 3))

	sum, err := newRedriver(t, e.s3Clients(b), e).S3(context.Background(), redrive.S3Input{Bucket: b.name, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Sources[redrive.OutcomeExpired] != 2 || sum.Removed != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	if got, want := b.keys(t), []string{gone, short}; !reflect.DeepEqual(got, want) {
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

// TestS3ForgedObject: an object whose payload differs from what the stream holds for its range, or that names
// another stream, writes nothing, even with Delete, and is kept and reported. The stream's own records are not
// written either: the object is suspect as a whole.
func TestS3ForgedObject(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`)
	real := []string{`{"n":0}`, `{"n":1}`, `{"n":2}`}
	gap, _ := new(big.Int).SetString(seqs[0], 10)
	gap.Add(gap, big.NewInt(1)) // between two records of the stream: no record has it
	const other = "arn:aws:kinesis:us-east-1:999999999999:stream/elsewhere"
	tests := []struct {
		name       string
		object     func() []byte
		want       redrive.Outcome
		wantReason string
	}{
		{"data differs", func() []byte {
			return e.s3Object(t, shard, seqs, []string{real[0], `{"n":1,"forged":true}`, real[2]}, true)
		}, redrive.OutcomePayloadDiffers, "record 1 (sequence number " + seqs[1] + "): its data differs"},
		{"partition key differs", func() []byte {
			recs := e.records(shard, seqs, real)
			recs[2].Kinesis.PartitionKey = "forged"
			return e.object(t, recs, true)
		}, redrive.OutcomePayloadDiffers, "its partition key forged differs"},
		{"a record the stream does not have", func() []byte {
			recs := e.records(shard, []string{seqs[0], gap.String(), seqs[2]}, real)
			return withRange(t, e.object(t, recs, false), seqs[0], seqs[2], 3)
		}, redrive.OutcomePayloadDiffers, "the stream holds no such record"},
		{"a record of another shard", func() []byte {
			recs := e.records(shard, seqs, real)
			recs[1].EventID = "shardId-000000000001:" + seqs[1]
			return e.object(t, recs, true)
		}, redrive.OutcomePayloadDiffers, "is not of shard " + shard},
		{"the range names another stream", func() []byte {
			return []byte(strings.Replace(string(e.s3Object(t, shard, seqs, real, true)), `"streamArn":"`+e.arn+`"`, `"streamArn":"`+other+`"`, 1))
		}, redrive.OutcomeForeignStream, "names stream " + other},
		{"a payload record names another stream", func() []byte {
			recs := e.records(shard, seqs, real)
			recs[0].EventSourceArn = other
			return e.object(t, recs, true)
		}, redrive.OutcomeForeignStream, "payload record 0 names stream " + other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBucket(t)
			key := mappingPrefix(shard) + "2025-01-02T03.04.05-forged"
			b.put(t, key, tt.object())
			sum, err := newRedriver(t, e.s3Clients(b), e).S3(context.Background(), redrive.S3Input{Bucket: b.name, Delete: true})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Sources[tt.want] != 1 || sum.Total() != 1 || sum.Removed != 0 || sum.Records.Written != 0 {
				t.Fatalf("summary = %+v, want one %s source and nothing written", sum, tt.want)
			}
			if res := sum.Unrecoverable[0]; !strings.Contains(res.Reason, tt.wantReason) || !strings.Contains(res.Reason, "nothing") {
				t.Errorf("reason %q, want it to contain %q and say nothing was written", res.Reason, tt.wantReason)
			}
			if n := len(items(t, e.db, e.table)); n != 0 {
				t.Errorf("%d items written, want none", n)
			}
			if got := b.keys(t); !reflect.DeepEqual(got, []string{key}) {
				t.Errorf("objects = %v, want the object kept", got)
			}
		})
	}
}

// TestS3PastRetentionInsertOnly: a payload whose range the stream no longer holds is written insert-only. A record
// whose key holds another record's item is refused (the item stays, the object too); a record whose key is free is
// inserted (insert-only cannot tell a forged new key from a real one); a rerun finds its own items and counts them
// as stored. AllowOverwriteUnverified writes conditionally instead, and then a newer-looking record overwrites.
func TestS3PastRetentionInsertOnly(t *testing.T) {
	e := newEnv(t)
	const shard = "shardId-000000000000"
	byOrder, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"}}`))
	if err != nil {
		t.Fatal(err)
	}
	e.pipeline(t, byOrder, rec(shard, "5", `{"orderId":"K","v":"real"}`))
	b := newBucket(t)
	collide := mappingPrefix(shard) + "2025-01-02T03.04.05-collide"
	b.put(t, collide, e.s3Object(t, shard, []string{"900", "901"}, []string{`{"orderId":"K","v":"forged"}`, `{"orderId":"N","v":"new"}`}, true))
	clean := mappingPrefix(shard) + "2025-01-02T03.04.06-clean"
	b.put(t, clean, e.s3Object(t, shard, []string{"950"}, []string{`{"orderId":"M","v":"m"}`}, true))
	redriver := func(fns ...func(*redrive.Options)) *redrive.Redriver {
		return newRedriver(t, e.s3Clients(b), e, append([]func(*redrive.Options){func(o *redrive.Options) { o.Config = byOrder }}, fns...)...)
	}

	// A dry run predicts the refusal: it reads the items an insert would meet, and writes nothing.
	sum, err := redriver(func(o *redrive.Options) { o.DryRun = true }).S3(context.Background(), redrive.S3Input{Bucket: b.name, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRefused] != 1 || sum.Sources[redrive.OutcomeWouldRecover] != 1 || sum.Removed != 0 {
		t.Fatalf("dry run: summary = %+v", sum)
	}
	if data := items(t, e.db, e.table); len(data) != 1 || len(b.keys(t)) != 2 {
		t.Fatalf("dry run: items %v, objects %v; want nothing changed", data, b.keys(t))
	}

	for run := 1; run <= 2; run++ {
		sum, err := redriver().S3(context.Background(), redrive.S3Input{Bucket: b.name, Delete: run == 2})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Sources[redrive.OutcomeRefused] != 1 || sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Records.Refused != 1 {
			t.Fatalf("run %d: summary = %+v, want the colliding object refused and the clean one recovered", run, sum)
		}
		if res := sum.Unrecoverable[0]; res.Source != "s3://"+b.name+"/"+collide || !strings.Contains(res.Reason, "refused: the key holds another record's item") {
			t.Errorf("run %d: unrecoverable = %+v", run, res)
		}
		data := items(t, e.db, e.table)
		if str(data["K"], "v") != "real" || str(data["N"], "v") != "new" || str(data["M"], "v") != "m" || len(data) != 3 {
			t.Errorf("run %d: items = %v, want K untouched, N and M inserted", run, data)
		}
	}
	if got := b.keys(t); !reflect.DeepEqual(got, []string{collide}) {
		t.Errorf("objects = %v, want the refused object kept and the clean one deleted", got)
	}

	// The operator's explicit choice: conditional writes, where a record later in the shard than the item's wins.
	sum, err = redriver(func(o *redrive.Options) { o.AllowOverwriteUnverified = true }).S3(context.Background(), redrive.S3Input{Bucket: b.name, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Removed != 1 {
		t.Fatalf("allow overwrite: summary = %+v", sum)
	}
	if it := items(t, e.db, e.table)["K"]; str(it, "v") != "forged" {
		t.Errorf("allow overwrite: item K = %v, want the payload's", it)
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

	// The schema fix: the pipeline's config without the schema, writing every metadata attribute (the default
	// writes only the arrival time) to check what the rebuilt record carries. Only the schema failures are chosen.
	allMeta := func(o *redrive.Options) { o.Config.Metadata = processor.AllMetadata() }
	sum, err = newRedriver(t, e.clients(), e, allMeta).Errors(ctx, redrive.ErrorsInput{Reason: "schema", Since: time.Now().Add(-time.Hour)})
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
// was stored after it. The stream no longer holds X, so its entry is unverified: by default it is written
// insert-only and refused (Y's item stays, the entry too). With AllowOverwriteUnverified it is written
// conditionally: Y's item stays as well (X is older), X counts as superseded, stored, and its entry goes.
func TestErrorsReplayNeverOverwritesNewer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const shard = "shardId-000000000000"
	byOrder, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"},"metadata":["_kinesisSequenceNumber"]}`))
	if err != nil {
		t.Fatal(err)
	}
	strict, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"},"metadata":["_kinesisSequenceNumber"],
"transform":{"schema":{"type":"object","required":["amount"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	e.pipeline(t, strict, rec(shard, "5", `{"orderId":"K","v":"old"}`))
	e.pipeline(t, byOrder, rec(shard, "9", `{"orderId":"K","v":"new"}`))
	checkY := func(when string) {
		t.Helper()
		it := items(t, e.db, e.table)["K"]
		if str(it, "v") != "new" || str(it, processor.AttrSequenceNumber) != "9" {
			t.Errorf("%s: item K = %v, want Y's (sequence number 9)", when, it)
		}
	}

	sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.Config = byOrder }).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRefused] != 1 || sum.Removed != 0 || sum.Records.Refused != 1 || !strings.Contains(sum.Unrecoverable[0].Reason, "entry is kept") {
		t.Fatalf("insert only: summary = %+v", sum)
	}
	checkY("insert only")
	if n := len(items(t, e.db, e.errors)); n != 1 {
		t.Errorf("insert only: error table holds %d items, want X's entry kept", n)
	}

	sum, err = newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.Config, o.AllowOverwriteUnverified = byOrder, true
	}).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Removed != 1 || sum.Unrecovered() != 0 {
		t.Fatalf("allow overwrite: summary = %+v", sum)
	}
	checkY("allow overwrite")
	if n := len(items(t, e.db, e.errors)); n != 0 {
		t.Errorf("allow overwrite: error table holds %d items, want X's entry removed", n)
	}
}

// TestErrorsVerifiedAgainstStream: with the stream pinned, an entry whose record the stream still holds is checked
// against it: a tampered payload writes nothing and keeps the entry; an intact one is written conditionally (so it
// may replace the item of an earlier record of its shard, which insert-only would refuse), from the stream's copy.
// Without the pin, the same entry is unverified: insert-only, refused.
func TestErrorsVerifiedAgainstStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	byOrder, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"}}`))
	if err != nil {
		t.Fatal(err)
	}
	strict, err := processor.ParseConfig([]byte(`{"partitionKey":{"name":"id","type":"S","source":"orderId"},
"transform":{"schema":{"type":"object","required":["amount"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	payloads := []string{`{"orderId":"A","v":"a0"}`, `{"orderId":"A","v":"a1"}`, `{"orderId":"B","v":"b1"}`}
	seqs, shard := e.put(t, payloads...)
	// The pipeline stored record 0; records 1 and 2 failed the schema then in force.
	e.pipeline(t, byOrder, e.records(shard, seqs[:1], payloads[:1])...)
	e.pipeline(t, strict, e.records(shard, seqs[1:], payloads[1:])...)
	// Someone who can write the error table changes B's payload.
	tampered := shard + ":" + seqs[2]
	if _, err := e.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(e.errors),
		Key:                       map[string]types.AttributeValue{processor.ErrorTablePartitionKey: &types.AttributeValueMemberS{Value: tampered}},
		UpdateExpression:          aws.String("SET #p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": processor.ErrorAttrPayload},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberB{Value: []byte(`{"orderId":"A","v":"forged"}`)}},
	}); err != nil {
		t.Fatal(err)
	}

	// Without the pin: A's entry is refused (A holds record 0's item), B's forged payload is refused too.
	sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.Config, o.StreamARN = byOrder, "" }).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRefused] != 2 {
		t.Fatalf("unpinned: summary = %+v", sum)
	}

	sum, err = newRedriver(t, e.clients(), e, func(o *redrive.Options) { o.Config = byOrder }).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Sources[redrive.OutcomePayloadDiffers] != 1 || sum.Removed != 1 {
		t.Fatalf("pinned: summary = %+v", sum)
	}
	if res := sum.Unrecoverable[0]; res.Source != "error:"+tampered || !strings.Contains(res.Reason, "payload differs from the stream") {
		t.Errorf("unrecoverable = %+v", res)
	}
	data := items(t, e.db, e.table)
	if str(data["A"], "v") != "a1" || len(data) != 1 {
		t.Errorf("data table = %v, want A from record 1 only", data)
	}
	if got, want := keys(items(t, e.db, e.errors)), []string{tampered}; !reflect.DeepEqual(got, want) {
		t.Errorf("error table = %v, want %v", got, want)
	}
}

// TestErrorsPartitionKeyForms: an entry whose partition key is not valid UTF-8 (stored as binary) is redriven with
// that key byte for byte; an entry holding only the first bytes of a longer partition key (a KPL user record's) is
// not rebuilt from them when the stream does not hold the record: it is reported and kept.
func TestErrorsPartitionKeyForms(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	put := func(id string, pk types.AttributeValue, extra map[string]types.AttributeValue) {
		item := map[string]types.AttributeValue{
			processor.ErrorTablePartitionKey:   &types.AttributeValueMemberS{Value: id},
			processor.ErrorAttrSequenceNumber:  &types.AttributeValueMemberS{Value: strings.Split(strings.Split(id, ":")[1], "#")[0]},
			processor.ErrorAttrShardID:         &types.AttributeValueMemberS{Value: "shardId-000000000000"},
			processor.ErrorAttrPartitionKey:    pk,
			processor.ErrorAttrPayload:         &types.AttributeValueMemberB{Value: []byte(`{"a":1}`)},
			processor.ErrorAttrPayloadEncoding: &types.AttributeValueMemberS{Value: processor.PayloadEncodingRaw},
			processor.ErrorAttrPayloadSize:     &types.AttributeValueMemberN{Value: "7"},
			processor.ErrorAttrReason:          &types.AttributeValueMemberS{Value: "write failed"},
			processor.ErrorAttrFailedAt:        &types.AttributeValueMemberS{Value: "2025-01-02T03:04:05.123Z"},
		}
		for k, v := range extra {
			item[k] = v
		}
		if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.errors), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	invalid := []byte{0xff, 'k', 0xfe}
	put("shardId-000000000000:301", &types.AttributeValueMemberB{Value: invalid}, nil)
	prefix := strings.Repeat("p", processor.MaxErrorPartitionKey)
	put("shardId-000000000000:302#4", &types.AttributeValueMemberS{Value: prefix}, map[string]types.AttributeValue{
		processor.ErrorAttrPartitionKeySize:   &types.AttributeValueMemberN{Value: "300000"},
		processor.ErrorAttrPartitionKeySHA256: &types.AttributeValueMemberS{Value: strings.Repeat("ab", 32)},
	})

	// The partition key is written as metadata only when asked for.
	pkMeta := func(o *redrive.Options) { o.Config.Metadata = []string{processor.AttrPartitionKey} }
	sum, err := newRedriver(t, e.clients(), e, pkMeta).Errors(ctx, redrive.ErrorsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources[redrive.OutcomeRecovered] != 1 || sum.Sources[redrive.OutcomeInvalid] != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	if res := sum.Unrecoverable[0]; res.Source != "error:shardId-000000000000:302#4" || !strings.Contains(res.Reason, "300000") {
		t.Errorf("unrecoverable = %+v", res)
	}
	data := items(t, e.db, e.table)
	if got, want := keys(data), []string{"shardId-000000000000:301"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("data table = %v, want %v", got, want)
	}
	if pk, ok := data["shardId-000000000000:301"][processor.AttrPartitionKey].(*types.AttributeValueMemberB); !ok || !bytes.Equal(pk.Value, invalid) {
		t.Errorf("%s = %#v, want the binary %x", processor.AttrPartitionKey, data["shardId-000000000000:301"][processor.AttrPartitionKey], invalid)
	}
	if got, want := keys(items(t, e.db, e.errors)), []string{"shardId-000000000000:302#4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("error table = %v, want %v", got, want)
	}
}
