//go:build integration

package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackSelfTestPrefixOnlyMovesTheMetric: a producer's records whose partition key starts with the self-test's
// reserved prefix are processed exactly like any other (a well-formed one is written, a malformed one lands in the
// error table with its payload and partition key); the only difference is the metric a malformed one is counted
// under. A user record of a KPL aggregate is never counted as the self-test's, whatever its partition key.
// Outcomes are read from dynalite; the metrics from the EMF lines the processor prints.
func TestAttackSelfTestPrefixOnlyMovesTheMetric(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := emulators.Dynalite(t)
	db := emulators.DynamoDBClient(endpoint)
	table, errorTable := emulators.UniqueName("data"), emulators.UniqueName("errors")
	for _, name := range []string{table, errorTable} {
		if err := emulators.CreateTable(ctx, db, name); err != nil {
			t.Fatal(err)
		}
	}
	var metrics bytes.Buffer
	p, err := processor.New(db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName = table, errorTable
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = &metrics
	})
	if err != nil {
		t.Fatal(err)
	}
	const shard = "shardId-000000000000"
	rec := func(seq, pk string, data []byte) events.KinesisEventRecord {
		return events.KinesisEventRecord{EventID: shard + ":" + seq, EventSource: "aws:kinesis", EventName: "aws:kinesis:record",
			Kinesis: events.KinesisRecord{PartitionKey: pk, SequenceNumber: seq, Data: data,
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Unix(1700000000, 0)}}}
	}
	aggregate := kpl.Aggregate([]kpl.UserRecord{{PartitionKey: "kdp-selftest-inside-kpl", Data: []byte("not json either")}})
	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{
		rec("101", "kdp-selftest-looks-like-a-canary", []byte(`{"v": 1}`)),    // well-formed, prefixed
		rec("102", "ordinary", []byte(`{"v": 1}`)),                            // well-formed
		rec("103", "kdp-selftest-hidden", []byte("secret malformed payload")), // malformed, prefixed
		rec("104", "ordinary", []byte("plain malformed payload")),             // malformed
		rec("105", "kdp-selftest-outer", aggregate),                           // a KPL user record, malformed
	}}
	resp, err := p.Handle(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}

	get := func(table, id string) map[string]types.AttributeValue {
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	// Both well-formed records are items, of the same shape.
	a, b := get(table, shard+":101"), get(table, shard+":102")
	if a == nil || b == nil {
		t.Fatalf("items %v and %v: want both written", a, b)
	}
	if len(a) != len(b) {
		t.Errorf("the prefixed record's item has attributes %v, the ordinary one's %v", attackAttrNames(a), attackAttrNames(b))
	}
	// Both malformed plain records are in the error table with their payload and partition key.
	for _, tc := range []struct{ id, pk, payload string }{
		{shard + ":103", "kdp-selftest-hidden", "secret malformed payload"},
		{shard + ":104", "ordinary", "plain malformed payload"},
	} {
		e := get(errorTable, tc.id)
		if e == nil {
			t.Errorf("error table has no entry %s", tc.id)
			continue
		}
		if s, _ := e[processor.ErrorAttrPartitionKey].(*types.AttributeValueMemberS); s == nil || s.Value != tc.pk {
			t.Errorf("entry %s: partition key %v, want %q", tc.id, e[processor.ErrorAttrPartitionKey], tc.pk)
		}
		enc, _ := e[processor.ErrorAttrPayloadEncoding].(*types.AttributeValueMemberS)
		pl, _ := e[processor.ErrorAttrPayload].(*types.AttributeValueMemberB)
		if enc == nil || enc.Value != processor.PayloadEncodingRaw || pl == nil || string(pl.Value) != tc.payload {
			t.Errorf("entry %s: payload %v (%v), want %q raw", tc.id, pl, enc, tc.payload)
		}
	}
	if get(errorTable, shard+":105#0") == nil {
		t.Errorf("the KPL user record is not in the error table")
	}

	// Metrics: the prefixed plain record alone moves to the self-test's metric.
	var sum = map[string]float64{}
	dec := json.NewDecoder(&metrics)
	for dec.More() {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("metrics: %v", err)
		}
		for _, name := range []string{processor.MetricRecordsWritten, processor.MetricRecordsToErrorTable, processor.MetricSelfTestRecordsToErrorTable} {
			v, _ := line[name].(float64)
			sum[name] += v
		}
	}
	want := map[string]float64{processor.MetricRecordsWritten: 2, processor.MetricRecordsToErrorTable: 2, processor.MetricSelfTestRecordsToErrorTable: 1}
	for name, w := range want {
		if sum[name] != w {
			t.Errorf("%s = %v, want %v (all: %v)", name, sum[name], w, sum)
		}
	}
}

func attackAttrNames(m map[string]types.AttributeValue) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
