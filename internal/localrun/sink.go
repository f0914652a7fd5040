package localrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// timeLayout is how AWS writes times in on-failure records: UTC, RFC 3339 with milliseconds
// ("2019-11-14T00:38:06.021Z").
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// formatTime formats t as AWS does in on-failure records.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// Sink receives the on-failure records (redrive.FailureRecord, the invocation record AWS documents for a Kinesis
// event source: shard id and sequence range; Payload holds the event of the records given up on, which only an S3
// destination receives), standing in for the mapping's on-failure destination. The runner does not move past the
// records given up on until Send returns nil.
type Sink interface {
	Send(ctx context.Context, rec redrive.FailureRecord) error
}

// wireRecord is an on-failure record as AWS encodes it (recorded on AWS): responseContext absent when the records
// expired before an invocation answered, functionError null unless the function failed ("Unhandled"), and, for an
// S3 destination only, the event as a JSON string in payload.
type wireRecord struct {
	RequestContext   redrive.RequestContext   `json:"requestContext"`
	ResponseContext  *wireResponseContext     `json:"responseContext,omitempty"`
	Version          string                   `json:"version"`
	Timestamp        string                   `json:"timestamp"`
	KinesisBatchInfo redrive.KinesisBatchInfo `json:"KinesisBatchInfo"`
	Payload          *string                  `json:"payload,omitempty"`
}

type wireResponseContext struct {
	StatusCode      int     `json:"statusCode"`
	ExecutedVersion string  `json:"executedVersion"`
	FunctionError   *string `json:"functionError"`
}

// marshalFailureRecord encodes rec as AWS sends it to an SQS queue or SNS topic, or, withPayload, writes it to an
// S3 bucket. A zero ResponseContext (no invocation answered) is left out.
func marshalFailureRecord(rec redrive.FailureRecord, withPayload bool) ([]byte, error) {
	w := wireRecord{RequestContext: rec.RequestContext, Version: rec.Version, Timestamp: rec.Timestamp, KinesisBatchInfo: rec.KinesisBatchInfo}
	if rc := rec.ResponseContext; rc.StatusCode != 0 {
		w.ResponseContext = &wireResponseContext{StatusCode: rc.StatusCode, ExecutedVersion: rc.ExecutedVersion}
		if rc.FunctionError != "" {
			w.ResponseContext.FunctionError = &rc.FunctionError
		}
	}
	if withPayload && rec.Payload != nil {
		ev, err := json.Marshal(rec.Payload)
		if err != nil {
			return nil, fmt.Errorf("encode on-failure payload: %w", err)
		}
		p := string(ev)
		w.Payload = &p
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode on-failure record: %w", err)
	}
	return b, nil
}

// MemorySink keeps on-failure records in memory. It is safe for concurrent use; the zero value is ready.
type MemorySink struct {
	mu   sync.Mutex
	recs []redrive.FailureRecord
}

var _ Sink = (*MemorySink)(nil)

// Send appends rec.
func (s *MemorySink) Send(_ context.Context, rec redrive.FailureRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, rec)
	return nil
}

// Records returns a copy of the records sent so far, in order.
func (s *MemorySink) Records() []redrive.FailureRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]redrive.FailureRecord(nil), s.recs...)
}

// FileSink appends on-failure records to a file as JSON lines, one record per line, each as an SQS consumer
// would receive its body. It is safe for concurrent use.
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
func (s *FileSink) Send(_ context.Context, rec redrive.FailureRecord) error {
	b, err := marshalFailureRecord(rec, false)
	if err != nil {
		return err
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
func ReadFileSink(path string) ([]redrive.FailureRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read on-failure sink: %w", err)
	}
	defer f.Close()
	var recs []redrive.FailureRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r redrive.FailureRecord
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

// SQSAPI is the part of the SQS client SQSSink uses.
type SQSAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

var _ SQSAPI = (*sqs.Client)(nil)

// SQSSink sends each on-failure record to an SQS queue as one message whose body is the record's JSON (without
// the payload), as the event source mapping's SQS on-failure destination does; the redrive command
// (runtime/cmd/redrive dlq) reads them back.
type SQSSink struct {
	// Client sends the messages (for example an SQS client pointed at internal/sqsfake).
	Client SQSAPI
	// QueueURL is the queue's URL.
	QueueURL string
}

var _ Sink = SQSSink{}

// Send sends rec as one message.
func (s SQSSink) Send(ctx context.Context, rec redrive.FailureRecord) error {
	b, err := marshalFailureRecord(rec, false)
	if err != nil {
		return err
	}
	if _, err := s.Client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.QueueURL), MessageBody: aws.String(string(b))}); err != nil {
		return fmt.Errorf("send on-failure record: %w", err)
	}
	return nil
}

// S3API is the part of the S3 client S3Sink uses.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// S3Sink writes each on-failure record to an S3 bucket as one object, as the event source mapping's S3 on-failure
// destination does: the whole invocation record, with the event of the records given up on as a JSON string in
// "payload", under "aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>" (the time is
// the record's timestamp, UTC). The redrive command (runtime/cmd/redrive s3) reads them back.
type S3Sink struct {
	// Client writes the objects (for example an S3 client pointed at a local S3 server).
	Client S3API
	// Bucket is the destination bucket.
	Bucket string
	// MappingUUID is the event source mapping's UUID, the third element of every key.
	MappingUUID string
}

var _ Sink = S3Sink{}

// Send writes rec as one object.
func (s S3Sink) Send(ctx context.Context, rec redrive.FailureRecord) error {
	if s.Client == nil || s.Bucket == "" || s.MappingUUID == "" {
		return errors.New("s3 sink: client, bucket and mapping UUID are required")
	}
	b, err := marshalFailureRecord(rec, true)
	if err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339Nano, rec.Timestamp)
	if err != nil {
		return fmt.Errorf("s3 sink: record timestamp %q: %w", rec.Timestamp, err)
	}
	key := S3Key(s.MappingUUID, rec.KinesisBatchInfo.ShardID, at)
	if _, err := s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json")}); err != nil {
		return fmt.Errorf("put on-failure record s3://%s/%s: %w", s.Bucket, key, err)
	}
	return nil
}

// S3Key returns the key Lambda gives an invocation record of shardID written at t to an S3 on-failure destination:
// "aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>", t in UTC.
func S3Key(mappingUUID, shardID string, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("aws/lambda/%s/%s/%s/%s-%s", mappingUUID, shardID, t.Format("2006/01/02"), t.Format("2006-01-02T15.04.05"), newRequestID())
}
