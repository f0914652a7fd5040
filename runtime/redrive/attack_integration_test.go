//go:build integration

package redrive_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"math/big"
	"reflect"
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

// The tests below attack the redrive as someone who can write the on-failure queue, the failure bucket and the error
// table. Their oracle is the emulators' state (dynalite, the SQS fake, the S3 fake), not the redrive's summary.

// writeEntry writes an error-table item as someone holding the processor's role could.
func (e *env) writeEntry(t *testing.T, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.errors), Item: item}); err != nil {
		t.Fatal(err)
	}
}

// entryItem is a raw error-table entry; extra attributes are set over the defaults.
func entryItem(id, shard, seq, payload string, extra map[string]types.AttributeValue) map[string]types.AttributeValue {
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
	for k, v := range extra {
		if v == nil {
			delete(item, k)
			continue
		}
		item[k] = v
	}
	return item
}

// succ returns the sequence number after seq: a number between two records the stream holds, which it does not.
func succ(seq string) string {
	n, _ := new(big.Int).SetString(seq, 10)
	return n.Add(n, big.NewInt(1)).String()
}

// snapshot is every item of a table, as stored.
func snapshot(t *testing.T, e *env, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	return items(t, e.db, table)
}

// sameItems reports whether two snapshots hold the same items, attribute by attribute, but for the time they were
// last processed (a replay of the same record rewrites its item as it was).
func sameItems(a, b map[string]map[string]types.AttributeValue) bool {
	return sameItemsBut(a, b, func(k string) bool { return k == processor.AttrProcessedAt })
}

// sameData reports whether two snapshots hold the same items with the same data, whatever the record metadata the
// processor adds ("_" attributes: a replay from the stream records the stream's arrival time).
func sameData(a, b map[string]map[string]types.AttributeValue) bool {
	return sameItemsBut(a, b, func(k string) bool { return strings.HasPrefix(k, "_") })
}

func sameItemsBut(a, b map[string]map[string]types.AttributeValue, ignore func(string) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for id, ia := range a {
		ib, ok := b[id]
		if !ok || len(ia) != len(ib) {
			return false
		}
		for k, va := range ia {
			if !ignore(k) && !reflect.DeepEqual(va, ib[k]) {
				return false
			}
		}
	}
	return true
}

// TestAttackForeignStreamARNs: messages naming the pinned stream's range under ARNs that are not the pinned stream's
// (another case, a prefix or an extension of its name, another partition, account or region, a consumer, a trailing
// slash) are kept; nothing of the real range they name is read or written.
func TestAttackForeignStreamARNs(t *testing.T) {
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":0}`, `{"n":1}`)
	base, name, _ := strings.Cut(e.arn, ":stream/")
	tests := []struct {
		name, arn string
		want      redrive.Outcome
	}{
		{"name in upper case", base + ":stream/" + strings.ToUpper(name), redrive.OutcomeForeignStream},
		{"prefix of the name", base + ":stream/" + name[:len(name)-1], redrive.OutcomeForeignStream},
		{"name extended", base + ":stream/" + name + "x", redrive.OutcomeForeignStream},
		{"aws-cn", strings.Replace(e.arn, "arn:aws:", "arn:aws-cn:", 1), redrive.OutcomeForeignStream},
		{"aws-us-gov", strings.Replace(e.arn, "arn:aws:", "arn:aws-us-gov:", 1), redrive.OutcomeForeignStream},
		{"partition in upper case", strings.Replace(e.arn, "arn:aws:", "arn:AWS:", 1), redrive.OutcomeForeignStream},
		{"other region", strings.Replace(e.arn, ":us-east-1:", ":us-east-2:", 1), redrive.OutcomeForeignStream},
		{"other account", strings.Replace(e.arn, ":000000000000:", ":000000000001:", 1), redrive.OutcomeForeignStream},
		{"account padded", strings.Replace(e.arn, ":000000000000:", ": 000000000000:", 1), redrive.OutcomeForeignStream},
		{"trailing slash", e.arn + "/", redrive.OutcomeInvalid},
		{"consumer", e.arn + "/consumer/c:1736000000", redrive.OutcomeInvalid},
		{"service in upper case", strings.Replace(e.arn, ":kinesis:", ":Kinesis:", 1), redrive.OutcomeInvalid},
		{"arn prefix in upper case", "ARN" + strings.TrimPrefix(e.arn, "arn"), redrive.OutcomeInvalid},
		{"leading space", " " + e.arn, redrive.OutcomeInvalid},
		{"firehose", strings.Replace(e.arn, ":kinesis:", ":firehose:", 1), redrive.OutcomeInvalid},
	}
	want := map[string]redrive.Outcome{}
	names := map[string]string{}
	for _, tt := range tests {
		id := e.sqs.Send(e.queue, failureBodyOf(tt.arn, shard, seqs[0], seqs[1], 2))
		want["sqs:"+id], names["sqs:"+id] = tt.want, tt.name
	}
	got := map[string]redrive.Outcome{}
	_, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
		o.Result = func(r redrive.Result) { got[r.Source] = r.Outcome }
	}).DLQ(context.Background(), redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for src, w := range want {
		if got[src] != w {
			t.Errorf("%s: outcome %q, want %q", names[src], got[src], w)
		}
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != len(tests) {
		t.Errorf("queue holds %d messages, want all %d kept", len(msgs), len(tests))
	}
	if data := items(t, e.db, e.table); len(data) != 0 {
		t.Errorf("data table = %v, want nothing written", keys(data))
	}
}

// TestAttackS3ForgedPayloads: objects whose KinesisBatchInfo names the pinned stream and a range it holds, with
// payloads that disagree with the stream in every way a forger could try. None writes anything; with Delete, none is
// deleted.
func TestAttackS3ForgedPayloads(t *testing.T) {
	e := newEnv(t)
	payloads := []string{`{"n":0}`, `{"n":1}`, `{"n":2}`}
	seqs, shard := e.put(t, payloads...)
	b := newBucket(t)
	genuine := func() []events.KinesisEventRecord { return e.records(shard, seqs, payloads) }
	obj := func(mod func([]events.KinesisEventRecord) []events.KinesisEventRecord, asString bool) []byte {
		recs := mod(genuine())
		doc := e.object(t, genuine(), asString) // the range of the genuine records
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		if asString {
			m["payload"] = string(mustJSON(t, events.KinesisEvent{Records: recs}))
		} else {
			m["payload"] = events.KinesisEvent{Records: recs}
		}
		return mustJSON(t, m)
	}
	otherShard := "shardId-000000000001"
	tests := []struct {
		name string
		body []byte
		want []redrive.Outcome
	}{
		{"record of another stream (name case)", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[1].EventSourceArn = strings.ToUpper(e.arn)
			return r
		}, true), []redrive.Outcome{redrive.OutcomeForeignStream}},
		{"record of another account", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[2].EventSourceArn = strings.Replace(e.arn, ":000000000000:", ":111111111111:", 1)
			return r
		}, false), []redrive.Outcome{redrive.OutcomeForeignStream}},
		{"record of another shard", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[1].EventID = otherShard + ":" + r[1].Kinesis.SequenceNumber
			return r
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"forged data, escaped-string form", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[1].Kinesis.Data = []byte(`{"n":"forged"}`)
			return r
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"forged data, object form", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[0].Kinesis.Data = []byte(`{"n":"forged"}`)
			return r
		}, false), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"forged partition key", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[2].Kinesis.PartitionKey = "other"
			return r
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"duplicated record", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			return append(r[:2], r[1], r[2])
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"record the stream lacks inside its range", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			extra := r[0]
			extra.Kinesis.SequenceNumber = succ(r[0].Kinesis.SequenceNumber)
			extra.EventID = shard + ":" + extra.Kinesis.SequenceNumber
			extra.Kinesis.Data = []byte(`{"n":"inserted"}`)
			return append([]events.KinesisEventRecord{r[0], extra}, r[1:]...)
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"sequence number with a leading zero", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[1].Kinesis.SequenceNumber = "0" + r[1].Kinesis.SequenceNumber
			r[1].EventID = shard + ":" + r[1].Kinesis.SequenceNumber
			return r
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"130-digit sequence number", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[2].Kinesis.SequenceNumber = "1" + strings.Repeat("0", 129)
			r[2].EventID = shard + ":" + r[2].Kinesis.SequenceNumber
			return r
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"event id disagrees with sequence number", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[1].EventID = shard + ":" + r[0].Kinesis.SequenceNumber
			return r
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"records out of order", obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord {
			r[0], r[1] = r[1], r[0]
			return r
		}, true), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		// Two "payload" fields, the genuine one first: the one decoded is checked, whichever it is.
		{"two payload fields", func() []byte {
			good := obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord { return r }, true)
			forged := mustJSON(t, events.KinesisEvent{Records: func() []events.KinesisEventRecord {
				r := genuine()
				r[1].Kinesis.Data = []byte(`{"n":"forged"}`)
				return r
			}()})
			return append(good[:len(good)-1], []byte(`,"payload":`+string(forged)+`}`)...)
		}(), []redrive.Outcome{redrive.OutcomePayloadDiffers}},
		{"SNS notification wrapping an SNS notification", mustJSON(t, map[string]string{"Type": "Notification",
			"Message": string(mustJSON(t, map[string]string{"Type": "Notification", "Message": e.failureBody(shard, seqs[0], seqs[2], 3)}))}),
			[]redrive.Outcome{redrive.OutcomeInvalid}},
		{"deeply nested JSON", []byte(strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)), []redrive.Outcome{redrive.OutcomeInvalid}},
		{"range past the batch size", withRange(t, obj(func(r []events.KinesisEventRecord) []events.KinesisEventRecord { return r }, true), seqs[0], seqs[2], 2),
			[]redrive.Outcome{redrive.OutcomeFailed}},
	}
	want := map[string]redrive.Outcome{}
	for i, tt := range tests {
		key := mappingPrefix(shard) + "2025-01-02T03.04.05-" + string(rune('a'+i))
		b.put(t, key, tt.body)
		want["s3://"+b.name+"/"+key] = tt.want[0]
	}
	got := map[string]redrive.Result{}
	_, err := newRedriver(t, e.s3Clients(b), e, func(o *redrive.Options) {
		o.Result = func(r redrive.Result) { got[r.Source] = r }
	}).S3(context.Background(), redrive.S3Input{Bucket: b.name, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		src := "s3://" + b.name + "/" + mappingPrefix(shard) + "2025-01-02T03.04.05-" + string(rune('a'+i))
		if r := got[src]; r.Outcome != want[src] || r.Removed {
			t.Errorf("%s: outcome %q (removed %v, %s), want %q", tt.name, r.Outcome, r.Removed, r.Reason, want[src])
		}
	}
	if n := len(b.keys(t)); n != len(tests) {
		t.Errorf("%d objects left, want all %d kept", n, len(tests))
	}
	if data := items(t, e.db, e.table); len(data) != 0 {
		t.Errorf("data table = %v, want nothing written", keys(data))
	}
}

// TestAttackS3PastRetentionNeverOverwrites: a payload for a range the stream no longer holds, colliding with items
// already in the table, never changes them, even with Delete. Under the default event-id key an item's key names
// its record: an item without a position (this version's, or one written before positions existed) is that
// record's own, so the forged payload counts as a rerun of a stored record (its data never replaces the item) and
// the object is recovered; an item whose stored position names another record refuses the payload and keeps the
// object.
func TestAttackS3PastRetentionNeverOverwrites(t *testing.T) {
	const shard = "shardId-000000000000"
	tests := []struct {
		name     string
		existing map[string]types.AttributeValue // the item at shard:901, besides the pipeline's own at shard:900
		wantKept bool                            // the object stays (some record refused)
	}{
		{name: "an item written before positions existed", existing: map[string]types.AttributeValue{
			"id": &types.AttributeValueMemberS{Value: shard + ":901"}, "v": &types.AttributeValueMemberS{Value: "legacy"},
			processor.AttrSequenceNumber: &types.AttributeValueMemberS{Value: "901"}}},
		{name: "an item whose position names another record", existing: map[string]types.AttributeValue{
			"id": &types.AttributeValueMemberS{Value: shard + ":901"}, "v": &types.AttributeValueMemberS{Value: "other"},
			processor.AttrPosition: &types.AttributeValueMemberB{Value: mustPosition(t, shard, "777", 0)}}, wantKept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.pipeline(t, processor.DefaultConfig(), rec(shard, "900", `{"v":"real"}`))
			if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: tt.existing}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, e, e.table)
			b := newBucket(t)
			key := mappingPrefix(shard) + "2025-01-02T03.04.05-x"
			// The forger repeats the real record's arrival time too: only its data differs.
			recs := []events.KinesisEventRecord{rec(shard, "900", `{"v":"forged"}`), rec(shard, "901", `{"v":"forged"}`)}
			for i := range recs {
				recs[i].EventSourceArn = e.arn
			}
			for _, asString := range []bool{true, false} {
				b.put(t, key, e.object(t, recs, asString))
				sum, err := newRedriver(t, e.s3Clients(b), e).S3(ctx, redrive.S3Input{Bucket: b.name, Delete: true})
				if err != nil {
					t.Fatal(err)
				}
				if got := snapshot(t, e, e.table); !sameItems(got, before) {
					t.Errorf("payload as string %v: data table changed: %v (summary %+v)", asString, got, sum)
				}
				want := []string(nil)
				if tt.wantKept {
					want = []string{key}
				}
				if got := b.keys(t); !reflect.DeepEqual(got, want) {
					t.Errorf("payload as string %v: objects = %v, want %v (summary %+v)", asString, got, want, sum)
				}
			}
		})
	}
}

// mustPosition encodes a position for an item the test writes itself.
func mustPosition(t *testing.T, shard, seq string, sub int) []byte {
	t.Helper()
	p, err := processor.EncodePosition(shard, seq, sub)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAttackErrorEntries: forged and malformed error-table entries, with the stream pinned, never change the items
// the pipeline wrote, never remove an entry of a record that was not stored, and do not hang or crash the run.
func TestAttackErrorEntries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	payloads := []string{`{"n":0}`, `{"n":1}`}
	seqs, shard := e.put(t, payloads...)
	e.pipeline(t, processor.DefaultConfig(), e.records(shard, seqs, payloads)...)
	before := snapshot(t, e, e.table)
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	if _, err := zw.Write(make([]byte, 64<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	id0, id1 := shard+":"+seqs[0], shard+":"+seqs[1]
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	tests := []struct {
		name string
		item map[string]types.AttributeValue
		kept bool // the entry must stay
	}{
		{"forged payload of a record the stream holds", entryItem(id0, shard, seqs[0], `{"n":"forged"}`, nil), true},
		{"id names another shard than shardId", entryItem(id1, "shardId-000000000001", seqs[1], `{"n":"forged"}`, nil), false},
		{"id names another sequence number than sequenceNumber", entryItem(id1, shard, seqs[0], `{"n":"forged"}`, nil), false},
		{"#0 for a record that is not an aggregate", entryItem(id0+"#0", shard, seqs[0], payloads[0], nil), true},
		{"partition key size larger than the key, record not in the stream", entryItem(shard+":900", shard, "900", `{"n":900}`,
			map[string]types.AttributeValue{processor.ErrorAttrPartitionKeySize: n("5000"), processor.ErrorAttrPartitionKeySHA256: s("00")}), true},
		{"partition key size lies about a record the stream holds", entryItem(id0, shard, seqs[0], payloads[0],
			map[string]types.AttributeValue{processor.ErrorAttrPartitionKeySize: n("2"), processor.ErrorAttrPartitionKeySHA256: s("00")}), true},
		{"gzip bomb", entryItem(shard+":901", shard, "901", "", map[string]types.AttributeValue{
			processor.ErrorAttrPayload: &types.AttributeValueMemberB{Value: bomb.Bytes()}, processor.ErrorAttrPayloadEncoding: s(processor.PayloadEncodingGzip)}), true},
		{"a billion parts", entryItem(shard+":902", shard, "902", "", map[string]types.AttributeValue{
			processor.ErrorAttrPayload: nil, processor.ErrorAttrPayloadEncoding: s(processor.PayloadEncodingParts),
			processor.ErrorAttrPayloadParts: n("1000000000"), processor.ErrorAttrPayloadSize: n("1")}), true},
		{"parts of another entry", entryItem(shard+":903", shard, "903", "", map[string]types.AttributeValue{
			processor.ErrorAttrPayload: nil, processor.ErrorAttrPayloadEncoding: s(processor.PayloadEncodingParts),
			processor.ErrorAttrPayloadParts: n("1"), processor.ErrorAttrPayloadSize: n("8"), processor.ErrorAttrPayloadSHA256: s("00")}), true},
		{"truncated", entryItem(shard+":904", shard, "904", `{"n":`, map[string]types.AttributeValue{
			processor.ErrorAttrPayloadEncoding: s(processor.PayloadEncodingTruncated), processor.ErrorAttrPayloadSize: n("99")}), true},
	}
	// The part item "parts of another entry" finds says it belongs to entry 904.
	partID := processor.ErrorPartID(shard+":903", 1)
	e.writeEntry(t, map[string]types.AttributeValue{processor.ErrorTablePartitionKey: s(partID), processor.ErrorAttrPartOf: s(shard + ":904"),
		processor.ErrorAttrPart: n("1"), processor.ErrorAttrPayload: &types.AttributeValueMemberB{Value: []byte(`{"n":903}`)}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.writeEntry(t, tt.item)
			id := tt.item[processor.ErrorTablePartitionKey].(*types.AttributeValueMemberS).Value
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			var res redrive.Result
			_, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
				o.Result = func(r redrive.Result) {
					if r.Source == "error:"+id {
						res = r
					}
				}
			}).Errors(ctx, redrive.ErrorsInput{Reason: "forged"})
			if err != nil {
				t.Fatal(err)
			}
			if got := snapshot(t, e, e.table); !sameItems(got, before) {
				t.Errorf("data table changed: %v (result %+v)", keys(got), res)
			}
			t.Logf("result: %s %s removed=%v: %s", res.Source, res.Outcome, res.Removed, res.Reason)
			_, present := items(t, e.db, e.errors)[id]
			if tt.kept && (!present || res.Removed || res.Outcome == redrive.OutcomeRecovered) {
				t.Errorf("entry present %v, result %+v: want it kept", present, res)
			}
			if _, ok := items(t, e.db, e.errors)[partID]; !ok {
				t.Errorf("part item %s of another entry deleted", partID)
			}
			// Clean up for the next case.
			if _, err := e.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(e.errors),
				Key: map[string]types.AttributeValue{processor.ErrorTablePartitionKey: s(id)}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAttackDryRunWritesNothing: a dry run over forged and genuine sources in every mode changes no table, no queue
// and no bucket.
func TestAttackDryRunWritesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	payloads := []string{`{"n":0}`, `not json`, `{"n":2}`}
	seqs, shard := e.put(t, payloads...)
	e.pipeline(t, processor.DefaultConfig(), e.records(shard, seqs[:1], payloads[:1])...)
	e.sqs.Send(e.queue, e.failureBody(shard, seqs[0], seqs[2], 3))
	e.sqs.Send(e.queue, e.failureBody(aliasShard(shard), seqs[0], seqs[2], 3))
	e.writeEntry(t, entryItem(shard+":"+seqs[2], shard, seqs[2], payloads[2], nil))
	e.writeEntry(t, entryItem(shard+":950", shard, "950", `{"n":950}`, nil))
	b := newBucket(t)
	b.put(t, mappingPrefix(shard)+"a", e.s3Object(t, shard, seqs, payloads, true))
	b.put(t, mappingPrefix(shard)+"b", e.s3Object(t, shard, []string{"960", "961"}, []string{`{"n":960}`, `{"n":961}`}, false))
	data, errs, objects := snapshot(t, e, e.table), snapshot(t, e, e.errors), b.keys(t)
	dry := func(o *redrive.Options) { o.DryRun = true }
	if _, err := newRedriver(t, e.s3Clients(b), e, dry).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := newRedriver(t, e.s3Clients(b), e, dry).S3(ctx, redrive.S3Input{Bucket: b.name, Delete: true}); err != nil {
		t.Fatal(err)
	}
	for _, pin := range []string{e.arn, ""} {
		if _, err := newRedriver(t, e.s3Clients(b), e, dry, func(o *redrive.Options) { o.StreamARN = pin }).Errors(ctx, redrive.ErrorsInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := snapshot(t, e, e.table); !sameItems(got, data) {
		t.Errorf("data table changed: %v, was %v", keys(got), keys(data))
	}
	if got := snapshot(t, e, e.errors); !sameItems(got, errs) {
		t.Errorf("error table changed: %v, was %v", keys(got), keys(errs))
	}
	if got := b.keys(t); !reflect.DeepEqual(got, objects) {
		t.Errorf("objects = %v, was %v", got, objects)
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != 2 || !msgs[0].Visible || !msgs[1].Visible {
		t.Errorf("queue = %+v, want both messages kept and visible", msgs)
	}
}

// aliasShard is a spelling of shard that no shard has: kinesalite (like Kinesis, for shardId-<n>) resolves it to the
// same shard.
func aliasShard(shard string) string {
	_, n, _ := strings.Cut(shard, "-")
	return "shardId-" + strings.TrimLeft(n, "0") + "0"
}

// TestAttackAbsurdRanges: messages whose ranges are absurd (to the largest sequence number, a batch size of billions,
// none, a negative one) end, keep their messages, and the records they replay are only the pinned stream's, written
// conditionally (the items the pipeline wrote keep their values).
func TestAttackAbsurdRanges(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	payloads := []string{`{"n":0}`, `{"n":1}`}
	seqs, shard := e.put(t, payloads...)
	e.pipeline(t, processor.DefaultConfig(), e.records(shard, seqs, payloads)...)
	before := snapshot(t, e, e.table)
	top := strings.Repeat("9", 129)
	bodies := []string{
		e.failureBody(shard, seqs[0], top, 1<<40),
		e.failureBody(shard, seqs[0], seqs[1], 0),
		e.failureBody(shard, seqs[0], seqs[1], -5),
		e.failureBody(shard, "0", top, 2),
		e.failureBody(shard, top, top, 1),
		e.failureBody("shardId-999999999999", seqs[0], seqs[1], 2),
	}
	for _, body := range bodies {
		e.sqs.Send(e.queue, body)
	}
	sum, err := newRedriver(t, e.clients(), e).DLQ(ctx, redrive.DLQInput{QueueURL: e.url, WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if msgs := e.sqs.Messages(e.queue); len(msgs) != len(bodies) {
		t.Errorf("queue holds %d messages, want all %d kept (summary %+v)", len(msgs), len(bodies), sum)
	}
	if got := snapshot(t, e, e.table); !sameData(got, before) {
		t.Errorf("data table changed: %v, was %v", keys(got), keys(before))
	}
}
