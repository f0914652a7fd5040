package redrive_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// docRecord is the example invocation record of the AWS Lambda Developer Guide.
const docRecord = `{
    "requestContext": {
        "requestId": "c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5",
        "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 1
    },
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "version": "1.0",
    "timestamp": "2019-11-14T00:38:06.021Z",
    "KinesisBatchInfo": {
        "shardId": "shardId-000000000001",
        "startSequenceNumber": "49601189658422359378836298521827638475320189012309704722",
        "endSequenceNumber": "49601189658422359378836298522902373528957594348623495186",
        "approximateArrivalOfFirstRecord": "2019-11-14T00:38:04.835Z",
        "approximateArrivalOfLastRecord": "2019-11-14T00:38:05.580Z",
        "batchSize": 500,
        "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/mystream"
    }
}`

const payloadEvent = `{"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"1","sequenceNumber":"49601189658422359378836298521827638475320189012309704722","data":"eyJhIjoxfQ==","approximateArrivalTimestamp":1573691884.835},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000001:49601189658422359378836298521827638475320189012309704722","eventName":"aws:kinesis:record","awsRegion":"us-east-2","eventSourceARN":"arn:aws:kinesis:us-east-2:123456789012:stream/mystream"}]}`

func withField(t *testing.T, doc, key string, v any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	m[key] = v
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func withBatchInfo(t *testing.T, key string, v any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(docRecord), &m); err != nil {
		t.Fatal(err)
	}
	m["KinesisBatchInfo"].(map[string]any)[key] = v
	b, _ := json.Marshal(m)
	return string(b)
}

func TestParseFailureRecord(t *testing.T) {
	var event any
	if err := json.Unmarshal([]byte(payloadEvent), &event); err != nil {
		t.Fatal(err)
	}
	sns, _ := json.Marshal(map[string]string{"Type": "Notification", "MessageId": "m", "Message": docRecord})
	tests := []struct {
		name        string
		give        string
		wantErr     string
		wantPayload int // records in the payload, -1 for none
	}{
		{name: "sqs body", give: docRecord, wantPayload: -1},
		{name: "sns notification", give: string(sns), wantPayload: -1},
		{name: "s3 payload as a string", give: withField(t, docRecord, "payload", payloadEvent), wantPayload: 1},
		{name: "s3 payload as an object", give: withField(t, docRecord, "payload", event), wantPayload: 1},
		{name: "null payload", give: withField(t, docRecord, "payload", nil), wantPayload: -1},
		{name: "bad payload", give: withField(t, docRecord, "payload", "{"), wantErr: "decode payload"},
		{name: "not JSON", give: "hello", wantErr: "not a Kinesis on-failure invocation record"},
		{name: "no batch info", give: `{"requestContext":{}}`, wantErr: "no KinesisBatchInfo"},
		{name: "dynamodb stream", give: `{"DDBStreamBatchInfo":{"shardId":"s"}}`, wantErr: "DynamoDB stream"},
		{name: "start after end", give: withBatchInfo(t, "startSequenceNumber", "49601189658422359378836298522902373528957594348623495187"), wantErr: "is after endSequenceNumber"},
		{name: "bad sequence number", give: withBatchInfo(t, "endSequenceNumber", "12a"), wantErr: `endSequenceNumber "12a" is not a sequence number`},
		{name: "no shard", give: withBatchInfo(t, "shardId", ""), wantErr: `shardId "" is not a Kinesis shard id`},
		{name: "not a stream ARN", give: withBatchInfo(t, "streamArn", "arn:aws:dynamodb:us-east-2:123456789012:table/t"), wantErr: "is not a Kinesis stream's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redrive.ParseFailureRecord([]byte(tt.give))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bi := got.KinesisBatchInfo
			if bi.ShardID != "shardId-000000000001" || bi.BatchSize != 500 || bi.EndSequenceNumber != "49601189658422359378836298522902373528957594348623495186" ||
				got.RequestContext.Condition != redrive.ConditionRetryAttemptsExhausted || got.Timestamp != "2019-11-14T00:38:06.021Z" {
				t.Errorf("record = %+v", got)
			}
			switch {
			case tt.wantPayload < 0 && got.Payload != nil:
				t.Errorf("payload = %+v, want none", got.Payload)
			case tt.wantPayload >= 0 && (got.Payload == nil || len(got.Payload.Records) != tt.wantPayload):
				t.Errorf("payload = %+v, want %d records", got.Payload, tt.wantPayload)
			case tt.wantPayload > 0:
				r := got.Payload.Records[0]
				if string(r.Kinesis.Data) != `{"a":1}` || r.EventID != "shardId-000000000001:49601189658422359378836298521827638475320189012309704722" ||
					r.Kinesis.ApproximateArrivalTimestamp.UnixMilli() != 1573691884835 {
					t.Errorf("payload record = %+v", r)
				}
			}
		})
	}
	_, err := redrive.ParseFailureRecord([]byte("hello"))
	if !errors.Is(err, redrive.ErrNotFailureRecord) {
		t.Errorf("error %v is not ErrNotFailureRecord", err)
	}
}

func TestCompareSequenceNumbers(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"0", "0", 0},
		{"1", "2", -1},
		{"9", "10", -1},
		{"10", "9", 1},
		{"49601189658422359378836298521827638475320189012309704722", "49601189658422359378836298522902373528957594348623495186", -1},
		{"49601189658422359378836298522902373528957594348623495186", "49601189658422359378836298522902373528957594348623495186", 0},
		{"100000000000000000000000000000000000000000000000000000000", "99999999999999999999999999999999999999999999999999999999", 1},
	}
	for _, tt := range tests {
		if got := redrive.CompareSequenceNumbers(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareSequenceNumbers(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := redrive.CompareSequenceNumbers(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareSequenceNumbers(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestValidSequenceNumber(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"0", true}, {"7", true}, {"49601189658422359378836298521827638475320189012309704722", true},
		{strings.Repeat("9", 129), true}, {strings.Repeat("9", 130), false},
		{"", false}, {"01", false}, {"-1", false}, {"1.5", false}, {"1e9", false},
	}
	for _, tt := range tests {
		if got := redrive.ValidSequenceNumber(tt.give); got != tt.want {
			t.Errorf("ValidSequenceNumber(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestParseStreamARN(t *testing.T) {
	tests := []struct {
		give    string
		want    redrive.StreamRef
		wantErr bool
	}{
		{give: "arn:aws:kinesis:us-east-2:123456789012:stream/mystream",
			want: redrive.StreamRef{ARN: "arn:aws:kinesis:us-east-2:123456789012:stream/mystream", Partition: "aws", Name: "mystream", Region: "us-east-2", AccountID: "123456789012"}},
		{give: "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b-c_d",
			want: redrive.StreamRef{ARN: "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b-c_d", Partition: "aws-cn", Name: "a.b-c_d", Region: "cn-north-1", AccountID: "123456789012"}},
		{give: "arn:aws:kinesis::123456789012:stream/s", wantErr: true},
		{give: "arn:aws:kinesis:us-east-2::stream/s", wantErr: true},
		{give: "arn:aws:kinesis:us-east-2:123456789012:stream/s/consumer/c:1", wantErr: true},
		{give: "arn:aws:sqs:us-east-2:123456789012:q", wantErr: true},
		{give: "mystream", wantErr: true},
		{give: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := redrive.ParseStreamARN(tt.give)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseStreamARN(%q) = %+v, %v; want %+v (error %v)", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestStreamRefSame: two ARNs name the same stream only when partition, region, account and name all match.
func TestStreamRefSame(t *testing.T) {
	const pinned = "arn:aws:kinesis:us-east-1:111111111111:stream/orders"
	tests := []struct {
		give string
		want bool
	}{
		{give: pinned, want: true},
		{give: "arn:aws-cn:kinesis:us-east-1:111111111111:stream/orders"},
		{give: "arn:aws:kinesis:us-east-2:111111111111:stream/orders"},
		{give: "arn:aws:kinesis:us-east-1:222222222222:stream/orders"},
		{give: "arn:aws:kinesis:us-east-1:111111111111:stream/orders2"},
		{give: "arn:aws:kinesis:us-east-1:111111111111:stream/Orders"},
	}
	pin, err := redrive.ParseStreamARN(pinned)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		ref, err := redrive.ParseStreamARN(tt.give)
		if err != nil {
			t.Fatal(err)
		}
		if got := pin.Same(ref); got != tt.want || ref.Same(pin) != tt.want {
			t.Errorf("Same(%s) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestErrorEntry(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"big":1}`))
	zw.Close()
	item := func(enc string, payload []byte) map[string]types.AttributeValue {
		it := map[string]types.AttributeValue{
			processor.ErrorTablePartitionKey:  &types.AttributeValueMemberS{Value: "shardId-000000000000:42#1"},
			processor.ErrorAttrShardID:        &types.AttributeValueMemberS{Value: "shardId-000000000000"},
			processor.ErrorAttrSequenceNumber: &types.AttributeValueMemberS{Value: "42"},
			processor.ErrorAttrPartitionKey:   &types.AttributeValueMemberS{Value: "pk"},
			processor.ErrorAttrArrivalTime:    &types.AttributeValueMemberS{Value: "2025-01-02T03:04:05.678Z"},
			processor.ErrorAttrReason:         &types.AttributeValueMemberS{Value: "transform.schema: missing amount"},
			processor.ErrorAttrFailedAt:       &types.AttributeValueMemberS{Value: "2025-01-02T03:04:06.5Z"},
			processor.ErrorAttrPayloadSize:    &types.AttributeValueMemberN{Value: "9"},
		}
		if payload != nil {
			it[processor.ErrorAttrPayload] = &types.AttributeValueMemberB{Value: payload}
		}
		if enc != "" {
			it[processor.ErrorAttrPayloadEncoding] = &types.AttributeValueMemberS{Value: enc}
		}
		return it
	}
	tests := []struct {
		name    string
		give    map[string]types.AttributeValue
		want    string
		wantErr string
	}{
		{name: "raw", give: item(processor.PayloadEncodingRaw, []byte(`{"a":1}`)), want: `{"a":1}`},
		{name: "no encoding is raw", give: item("", []byte(`{"a":1}`)), want: `{"a":1}`},
		{name: "gzip", give: item(processor.PayloadEncodingGzip, gz.Bytes()), want: `{"big":1}`},
		{name: "bad gzip", give: item(processor.PayloadEncodingGzip, []byte("nope")), wantErr: "decompress payload"},
		{name: "truncated", give: item(processor.PayloadEncodingTruncated, []byte(`{"b`)), wantErr: "3 of 9 bytes kept"},
		{name: "no payload", give: item(processor.PayloadEncodingRaw, nil), wantErr: "no payload"},
		{name: "unknown encoding", give: item("zstd", []byte("x")), wantErr: `unknown payload encoding "zstd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := redrive.ParseErrorEntry(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			er, err := e.EventRecord()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(er.Kinesis.Data) != tt.want || er.EventID != "shardId-000000000000:42#1" || er.Kinesis.SequenceNumber != "42" ||
				er.Kinesis.PartitionKey != "pk" || er.Kinesis.ApproximateArrivalTimestamp.UnixMilli() != 1735787045678 {
				t.Errorf("event record = %+v", er)
			}
		})
	}
	e, _ := redrive.ParseErrorEntry(item(processor.PayloadEncodingTruncated, []byte("x")))
	if _, err := e.Data(); !errors.Is(err, redrive.ErrTruncated) {
		t.Errorf("error %v is not ErrTruncated", err)
	}
	if _, err := redrive.ParseErrorEntry(map[string]types.AttributeValue{}); err == nil {
		t.Error("an item without an id parsed")
	}

	// Choosing entries by reason and failure time (2025-01-02T03:04:06.5Z).
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	choose := []struct {
		give redrive.ErrorsInput
		want bool
	}{
		{redrive.ErrorsInput{}, true},
		{redrive.ErrorsInput{Reason: "schema"}, true},
		{redrive.ErrorsInput{Reason: "Schema"}, false},
		{redrive.ErrorsInput{Since: at("2025-01-02T03:04:06Z")}, true},
		{redrive.ErrorsInput{Since: at("2025-01-02T03:04:07Z")}, false},
		{redrive.ErrorsInput{Until: at("2025-01-02T03:04:07Z")}, true},
		{redrive.ErrorsInput{Until: at("2025-01-02T03:04:06Z")}, false},
		{redrive.ErrorsInput{Reason: "schema", Since: at("2025-01-01T00:00:00Z"), Until: at("2025-01-03T00:00:00Z")}, true},
	}
	e, _ = redrive.ParseErrorEntry(item(processor.PayloadEncodingRaw, []byte("{}")))
	for _, c := range choose {
		if got := e.Matches(c.give); got != c.want {
			t.Errorf("Matches(%+v) = %v, want %v", c.give, got, c.want)
		}
	}
}

func TestNewChecksOptions(t *testing.T) {
	_, err := redrive.New(redrive.Clients{}, func(o *redrive.Options) { o.Rate = -1; o.BatchSize = -1 })
	if err == nil || !strings.Contains(err.Error(), "DB is nil") || !strings.Contains(err.Error(), "rate -1 is negative") ||
		!strings.Contains(err.Error(), "batch size -1 is negative") {
		t.Errorf("error = %v", err)
	}
	// A rate that is not a finite number would turn into a negative GetRecords Limit (found in kdp replay's copy).
	for _, rate := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := redrive.New(redrive.Clients{}, func(o *redrive.Options) { o.Rate = rate }); err == nil ||
			!strings.Contains(err.Error(), "not a finite number") {
			t.Errorf("rate %v: error = %v", rate, err)
		}
	}
}
