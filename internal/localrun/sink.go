package localrun

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// timeLayout is how AWS writes times in on-failure records: UTC, RFC 3339 with milliseconds
// ("2019-11-14T00:38:06.021Z").
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// formatTime formats t as AWS does in on-failure records.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// Sink receives the on-failure records (redrive.FailureRecord, the message AWS documents for a Kinesis event source:
// shard id and sequence range, never the records' data), standing in for the mapping's SQS or SNS on-failure
// destination. The runner does not move past the records given up on until Send returns nil.
type Sink interface {
	Send(ctx context.Context, rec redrive.FailureRecord) error
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
func (s *FileSink) Send(_ context.Context, rec redrive.FailureRecord) error {
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

// SQSSink sends each on-failure record to an SQS queue as one message whose body is the record's JSON, as the event
// source mapping's SQS on-failure destination does; the redrive command (runtime/cmd/redrive dlq) reads them back.
type SQSSink struct {
	// Client sends the messages (for example an SQS client pointed at internal/sqsfake).
	Client SQSAPI
	// QueueURL is the queue's URL.
	QueueURL string
}

var _ Sink = SQSSink{}

// Send sends rec as one message.
func (s SQSSink) Send(ctx context.Context, rec redrive.FailureRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode on-failure record: %w", err)
	}
	if _, err := s.Client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.QueueURL), MessageBody: aws.String(string(b))}); err != nil {
		return fmt.Errorf("send on-failure record: %w", err)
	}
	return nil
}
