package localrun

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// Conditions of an on-failure record: why the event source mapping gave up on a batch.
const (
	// ConditionRetryAttemptsExhausted: the batch failed MaximumRetryAttempts + 1 times.
	ConditionRetryAttemptsExhausted = "RetryAttemptsExhausted"
	// ConditionRecordAgeExceeded: the batch's records were older than MaximumRecordAge before they could be
	// processed.
	ConditionRecordAgeExceeded = "RecordAgeExceeded"
)

// FailureRecord is what the event source mapping sends to its on-failure destination (SQS or SNS) when it gives up
// on a batch: metadata naming the shard and the sequence range, never the records' data. Its JSON encoding is the
// shape AWS documents for Kinesis ("Retain discarded batch records for a Kinesis Data Streams event source").
type FailureRecord struct {
	// RequestContext describes the last invocation.
	RequestContext RequestContext `json:"requestContext"`
	// ResponseContext describes the function's last response.
	ResponseContext ResponseContext `json:"responseContext"`
	// Version is the record format's version, "1.0".
	Version string `json:"version"`
	// Timestamp is when the mapping gave up.
	Timestamp Time `json:"timestamp"`
	// KinesisBatchInfo names the records given up on.
	KinesisBatchInfo KinesisBatchInfo `json:"KinesisBatchInfo"`
}

// RequestContext is the requestContext of a FailureRecord.
type RequestContext struct {
	// RequestID is the last invocation's request id.
	RequestID string `json:"requestId"`
	// FunctionARN is the function's ARN.
	FunctionARN string `json:"functionArn"`
	// Condition is ConditionRetryAttemptsExhausted or ConditionRecordAgeExceeded.
	Condition string `json:"condition"`
	// ApproximateInvokeCount is how many times these records were sent to the function.
	ApproximateInvokeCount int `json:"approximateInvokeCount"`
}

// ResponseContext is the responseContext of a FailureRecord.
type ResponseContext struct {
	// StatusCode is the last invocation's status code: 200 when the function answered (with an error or a partial
	// failure), 0 when it was not invoked.
	StatusCode int `json:"statusCode"`
	// ExecutedVersion is the function version invoked, "$LATEST".
	ExecutedVersion string `json:"executedVersion"`
	// FunctionError is "Unhandled" when the last invocation failed, empty after a partial batch failure.
	FunctionError string `json:"functionError,omitempty"`
}

// KinesisBatchInfo is the KinesisBatchInfo of a FailureRecord.
type KinesisBatchInfo struct {
	// ShardID is the shard the records came from.
	ShardID string `json:"shardId"`
	// StartSequenceNumber is the first record's sequence number.
	StartSequenceNumber string `json:"startSequenceNumber"`
	// EndSequenceNumber is the last record's sequence number.
	EndSequenceNumber string `json:"endSequenceNumber"`
	// ApproximateArrivalOfFirstRecord is the first record's approximate arrival time.
	ApproximateArrivalOfFirstRecord Time `json:"approximateArrivalOfFirstRecord"`
	// ApproximateArrivalOfLastRecord is the last record's approximate arrival time.
	ApproximateArrivalOfLastRecord Time `json:"approximateArrivalOfLastRecord"`
	// BatchSize is the number of records given up on.
	BatchSize int `json:"batchSize"`
	// StreamARN is the stream's ARN.
	StreamARN string `json:"streamArn"`
}

// Time is a time encoded in JSON as AWS encodes times in on-failure records: UTC, RFC 3339 with milliseconds
// ("2019-11-14T00:38:06.021Z").
type Time struct{ time.Time }

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON encodes t in UTC with milliseconds.
func (t Time) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(timeLayout))
}

// UnmarshalJSON decodes an RFC 3339 time.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode time: %w", err)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("decode time: %w", err)
	}
	t.Time = v
	return nil
}

// Sink receives the on-failure records, standing in for the mapping's SQS or SNS on-failure destination. The runner
// does not move past the records given up on until Send returns nil.
type Sink interface {
	Send(ctx context.Context, rec FailureRecord) error
}

// MemorySink keeps on-failure records in memory. It is safe for concurrent use; the zero value is ready.
type MemorySink struct {
	mu   sync.Mutex
	recs []FailureRecord
}

var _ Sink = (*MemorySink)(nil)

// Send appends rec.
func (s *MemorySink) Send(_ context.Context, rec FailureRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, rec)
	return nil
}

// Records returns a copy of the records sent so far, in order.
func (s *MemorySink) Records() []FailureRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FailureRecord(nil), s.recs...)
}

// FileSink appends on-failure records to a file as JSON lines, one record per line, as an SQS consumer would
// receive their bodies. It is safe for concurrent use.
type FileSink struct {
	mu sync.Mutex
	f  *os.File
}

var _ Sink = (*FileSink)(nil)

// NewFileSink opens (creating or appending to) the file at path. Call Close when done.
func NewFileSink(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open on-failure sink: %w", err)
	}
	return &FileSink{f: f}, nil
}

// Send writes rec as one JSON line and syncs the file, so a record is durable once Send returns.
func (s *FileSink) Send(_ context.Context, rec FailureRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode on-failure record: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write on-failure record: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync on-failure sink: %w", err)
	}
	return nil
}

// Close closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close on-failure sink: %w", err)
	}
	return nil
}

// ReadFileSink reads the records a FileSink wrote to path.
func ReadFileSink(path string) ([]FailureRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read on-failure sink: %w", err)
	}
	defer f.Close()
	var recs []FailureRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r FailureRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("read on-failure sink: line %d: %w", len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read on-failure sink: %w", err)
	}
	return recs, nil
}
