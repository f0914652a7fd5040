package redrive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// Conditions of an invocation record: why the event source mapping gave up on a batch.
const (
	// ConditionRetryAttemptsExhausted: the batch failed MaximumRetryAttempts + 1 times.
	ConditionRetryAttemptsExhausted = "RetryAttemptsExhausted"
	// ConditionRecordAgeExceeded: the batch's records were older than MaximumRecordAge.
	ConditionRecordAgeExceeded = "RecordAgeExceeded"
)

// FailureRecord is the invocation record a Lambda event source mapping sends to its on-failure destination when it
// gives up on a batch of a Kinesis stream (AWS Lambda Developer Guide, "Retain discarded batch records for a Kinesis
// Data Streams event source"). SQS and SNS destinations get the metadata only; an S3 destination also gets the whole
// event as Payload. Encoded with encoding/json it is the SQS message body; decode one with ParseFailureRecord. This
// is the one definition of the shape in the module: the local event source mapping (internal/localrun) produces it
// too, formatting times as AWS does (UTC, RFC 3339 with milliseconds).
type FailureRecord struct {
	// RequestContext describes the last invocation.
	RequestContext RequestContext `json:"requestContext"`
	// ResponseContext describes the function's last response.
	ResponseContext ResponseContext `json:"responseContext"`
	// Version is the record format's version, "1.0".
	Version string `json:"version"`
	// Timestamp is when the mapping gave up (RFC 3339).
	Timestamp string `json:"timestamp"`
	// KinesisBatchInfo names the records given up on.
	KinesisBatchInfo KinesisBatchInfo `json:"KinesisBatchInfo"`
	// Payload is the event the function was invoked with, when the destination is S3; nil otherwise.
	Payload *events.KinesisEvent `json:"-"`
}

// RequestContext is the requestContext of a FailureRecord.
type RequestContext struct {
	// RequestID is the last invocation's request id.
	RequestID string `json:"requestId"`
	// FunctionARN is the function's ARN.
	FunctionARN string `json:"functionArn"`
	// Condition is ConditionRetryAttemptsExhausted or ConditionRecordAgeExceeded.
	Condition string `json:"condition"`
	// ApproximateInvokeCount is how many times the batch was sent to the function.
	ApproximateInvokeCount int `json:"approximateInvokeCount"`
}

// ResponseContext is the responseContext of a FailureRecord.
type ResponseContext struct {
	// StatusCode is the last invocation's status code (0 when the function was not invoked).
	StatusCode int `json:"statusCode"`
	// ExecutedVersion is the function version invoked.
	ExecutedVersion string `json:"executedVersion"`
	// FunctionError is "Unhandled" when the last invocation failed; empty after a partial batch failure.
	FunctionError string `json:"functionError,omitempty"`
}

// KinesisBatchInfo is the KinesisBatchInfo of a FailureRecord: the shard and the inclusive range of sequence numbers
// of the records given up on.
type KinesisBatchInfo struct {
	// ShardID is the shard the records came from.
	ShardID string `json:"shardId"`
	// StartSequenceNumber is the first record's sequence number.
	StartSequenceNumber string `json:"startSequenceNumber"`
	// EndSequenceNumber is the last record's sequence number.
	EndSequenceNumber string `json:"endSequenceNumber"`
	// ApproximateArrivalOfFirstRecord is the first record's approximate arrival time (RFC 3339).
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	// ApproximateArrivalOfLastRecord is the last record's approximate arrival time (RFC 3339).
	ApproximateArrivalOfLastRecord string `json:"approximateArrivalOfLastRecord"`
	// BatchSize is the number of records in the batch.
	BatchSize int `json:"batchSize"`
	// StreamARN is the stream's ARN, "arn:aws:kinesis:<region>:<account>:stream/<name>".
	StreamARN string `json:"streamArn"`
}

// failureRecordJSON is FailureRecord as encoded, with the payload and the fields of other sources kept raw.
type failureRecordJSON struct {
	FailureRecord
	KinesisBatchInfo   *KinesisBatchInfo `json:"KinesisBatchInfo"`
	DDBStreamBatchInfo json.RawMessage   `json:"DDBStreamBatchInfo"`
	Payload            json.RawMessage   `json:"payload"`
}

// snsNotification is the part of an SNS notification delivered to SQS that matters here.
type snsNotification struct {
	Type    string `json:"Type"`
	Message string `json:"Message"`
}

// ErrNotFailureRecord is returned (wrapped) by ParseFailureRecord for a document that is not a Kinesis invocation
// record.
var ErrNotFailureRecord = errors.New("not a Kinesis on-failure invocation record")

// ParseFailureRecord decodes an invocation record: an SQS message body, an SNS notification wrapping one, or an S3
// object (which also holds the event as "payload": a JSON object, or a string holding one). It checks that the
// record names a shard, a stream ARN and a range of valid sequence numbers, first not after last.
func ParseFailureRecord(b []byte) (FailureRecord, error) {
	b = bytes.TrimSpace(b)
	var n snsNotification
	if json.Unmarshal(b, &n) == nil && n.Type == "Notification" && n.Message != "" {
		b = []byte(n.Message)
	}
	var raw failureRecordJSON
	if err := json.Unmarshal(b, &raw); err != nil {
		return FailureRecord{}, fmt.Errorf("%w: %w", ErrNotFailureRecord, err)
	}
	if raw.KinesisBatchInfo == nil {
		if len(raw.DDBStreamBatchInfo) > 0 {
			return FailureRecord{}, fmt.Errorf("%w: it is a DynamoDB stream's (DDBStreamBatchInfo)", ErrNotFailureRecord)
		}
		return FailureRecord{}, fmt.Errorf("%w: no KinesisBatchInfo", ErrNotFailureRecord)
	}
	rec := raw.FailureRecord
	rec.KinesisBatchInfo = *raw.KinesisBatchInfo
	if err := rec.KinesisBatchInfo.validate(); err != nil {
		return FailureRecord{}, fmt.Errorf("%w: %w", ErrNotFailureRecord, err)
	}
	if p := bytes.TrimSpace(raw.Payload); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		if p[0] == '"' {
			var s string
			if err := json.Unmarshal(p, &s); err != nil {
				return FailureRecord{}, fmt.Errorf("decode payload: %w", err)
			}
			p = []byte(s)
		}
		var ev events.KinesisEvent
		if err := json.Unmarshal(p, &ev); err != nil {
			return FailureRecord{}, fmt.Errorf("decode payload: %w", err)
		}
		rec.Payload = &ev
	}
	return rec, nil
}

func (bi KinesisBatchInfo) validate() error {
	var errs []error
	if !ValidShardID(bi.ShardID) {
		errs = append(errs, fmt.Errorf("shardId %q is not a Kinesis shard id (shardId- and 12 digits)", bi.ShardID))
	}
	if !ValidSequenceNumber(bi.StartSequenceNumber) {
		errs = append(errs, fmt.Errorf("startSequenceNumber %q is not a sequence number", bi.StartSequenceNumber))
	}
	if !ValidSequenceNumber(bi.EndSequenceNumber) {
		errs = append(errs, fmt.Errorf("endSequenceNumber %q is not a sequence number", bi.EndSequenceNumber))
	}
	if len(errs) == 0 && CompareSequenceNumbers(bi.StartSequenceNumber, bi.EndSequenceNumber) > 0 {
		errs = append(errs, fmt.Errorf("startSequenceNumber %s is after endSequenceNumber %s", bi.StartSequenceNumber, bi.EndSequenceNumber))
	}
	if _, err := ParseStreamARN(bi.StreamARN); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ValidShardID reports whether s is a shard id as Kinesis names shards: "shardId-" and 12 decimal digits. Kinesis
// also resolves short forms ("shardId-0", "0") to a shard: a source naming one would have the stream's records
// written under event ids no record has, so only the canonical form is accepted.
func ValidShardID(s string) bool {
	const prefix = "shardId-"
	if len(s) != len(prefix)+12 || s[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidSequenceNumber reports whether s is a Kinesis sequence number: "0" or a decimal number of at most 129 digits
// without leading zeros.
func ValidSequenceNumber(s string) bool {
	if s == "" || len(s) > 129 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CompareSequenceNumbers compares two Kinesis sequence numbers (decimal strings without leading zeros) by value: by
// length, then lexically. It returns -1, 0 or +1.
func CompareSequenceNumbers(a, b string) int {
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return strings.Compare(a, b)
}

// StreamRef names a Kinesis stream, as parsed from its ARN.
type StreamRef struct {
	// ARN is the stream's ARN.
	ARN string
	// Partition is the stream's partition ("aws", "aws-cn", "aws-us-gov", ...).
	Partition string
	// Name is the stream's name.
	Name string
	// Region is the stream's region.
	Region string
	// AccountID is the stream's account.
	AccountID string
}

// Same reports whether s and o name the same stream: the same partition, region, account and name. The ARN's text
// plays no other part.
func (s StreamRef) Same(o StreamRef) bool {
	return s.Partition == o.Partition && s.Region == o.Region && s.AccountID == o.AccountID && s.Name == o.Name
}

// ParseStreamARN parses a Kinesis stream ARN, "arn:<partition>:kinesis:<region>:<account>:stream/<name>". Partition,
// region, account and name must all be present.
func ParseStreamARN(s string) (StreamRef, error) {
	a, err := arn.Parse(s)
	if err != nil {
		return StreamRef{}, fmt.Errorf("stream ARN %q: %w", s, err)
	}
	name, ok := strings.CutPrefix(a.Resource, "stream/")
	if a.Service != "kinesis" || !ok || name == "" || strings.Contains(name, "/") || a.Partition == "" || a.Region == "" || a.AccountID == "" {
		return StreamRef{}, fmt.Errorf("stream ARN %q is not a Kinesis stream's", s)
	}
	return StreamRef{ARN: s, Partition: a.Partition, Name: name, Region: a.Region, AccountID: a.AccountID}, nil
}
