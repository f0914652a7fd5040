package redrive

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// maxPayload bounds a decompressed error-table payload (Kinesis records reach 10 MiB on streams that allow it).
const maxPayload = 16 << 20

// ErrorsInput chooses the error-table entries to redrive. The zero value chooses every entry.
type ErrorsInput struct {
	// Reason keeps only entries whose reason contains it (case-sensitive). Default: "", any reason.
	Reason string
	// Since keeps only entries that failed at or after it. Default: the zero time, no lower bound.
	Since time.Time
	// Until keeps only entries that failed before it. Default: the zero time, no upper bound.
	Until time.Time
	// MaxEntries stops the run after this many chosen entries. Default: 0, every chosen entry.
	MaxEntries int
}

// ErrorEntry is an error-table entry as Redriver.Errors reads it.
type ErrorEntry struct {
	// ID is the failed record's event id (processor.ErrorTablePartitionKey).
	ID string
	// ShardID, SequenceNumber and PartitionKey are the record's.
	ShardID, SequenceNumber, PartitionKey string
	// ArrivalTime is the record's approximate arrival time.
	ArrivalTime time.Time
	// Payload is the payload as stored; PayloadEncoding says how (processor.PayloadEncoding*).
	Payload         []byte
	PayloadEncoding string
	// PayloadSize is the original payload's size in bytes.
	PayloadSize int
	// Reason is why the record failed.
	Reason string
	// FailedAt is the failedAt attribute as stored (RFC 3339); FailedAtTime is it parsed (zero if it does not parse).
	FailedAt     string
	FailedAtTime time.Time
}

// ParseErrorEntry reads an error-table item.
func ParseErrorEntry(item map[string]types.AttributeValue) (ErrorEntry, error) {
	str := func(name string) string {
		if v, ok := item[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	e := ErrorEntry{
		ID: str(processor.ErrorTablePartitionKey), ShardID: str(processor.ErrorAttrShardID),
		SequenceNumber: str(processor.ErrorAttrSequenceNumber), PartitionKey: str(processor.ErrorAttrPartitionKey),
		PayloadEncoding: str(processor.ErrorAttrPayloadEncoding), Reason: str(processor.ErrorAttrReason),
		FailedAt: str(processor.ErrorAttrFailedAt),
	}
	if e.ID == "" {
		return ErrorEntry{}, fmt.Errorf("error entry has no %s", processor.ErrorTablePartitionKey)
	}
	if b, ok := item[processor.ErrorAttrPayload].(*types.AttributeValueMemberB); ok {
		e.Payload = b.Value
	}
	if n, ok := item[processor.ErrorAttrPayloadSize].(*types.AttributeValueMemberN); ok {
		e.PayloadSize, _ = strconv.Atoi(n.Value)
	}
	if t, err := time.Parse(time.RFC3339Nano, str(processor.ErrorAttrArrivalTime)); err == nil {
		e.ArrivalTime = t
	}
	if t, err := time.Parse(time.RFC3339Nano, e.FailedAt); err == nil {
		e.FailedAtTime = t
	}
	return e, nil
}

// Matches reports whether the entry is chosen by in.
func (e ErrorEntry) Matches(in ErrorsInput) bool {
	if in.Reason != "" && !strings.Contains(e.Reason, in.Reason) {
		return false
	}
	if !in.Since.IsZero() && (e.FailedAtTime.IsZero() || e.FailedAtTime.Before(in.Since)) {
		return false
	}
	if !in.Until.IsZero() && (e.FailedAtTime.IsZero() || !e.FailedAtTime.Before(in.Until)) {
		return false
	}
	return true
}

// ErrTruncated is returned (wrapped) by ErrorEntry.Data for a payload the error table holds only in part.
var ErrTruncated = errors.New("payload truncated in the error table")

// Data returns the original payload: as stored, or decompressed.
func (e ErrorEntry) Data() ([]byte, error) {
	switch e.PayloadEncoding {
	case processor.PayloadEncodingRaw, "":
		if e.Payload == nil {
			return nil, errors.New("error entry has no payload")
		}
		return e.Payload, nil
	case processor.PayloadEncodingGzip:
		zr, err := gzip.NewReader(bytes.NewReader(e.Payload))
		if err != nil {
			return nil, fmt.Errorf("decompress payload: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, maxPayload+1))
		if err != nil {
			return nil, fmt.Errorf("decompress payload: %w", err)
		}
		if len(b) > maxPayload {
			return nil, fmt.Errorf("decompress payload: larger than %d bytes", maxPayload)
		}
		return b, nil
	case processor.PayloadEncodingTruncated:
		return nil, fmt.Errorf("%w: %d of %d bytes kept; the whole record is only in the failure bucket, if the pipeline has one",
			ErrTruncated, len(e.Payload), e.PayloadSize)
	default:
		return nil, fmt.Errorf("unknown payload encoding %q", e.PayloadEncoding)
	}
}

// EventRecord rebuilds the event record the entry's record came in: same event id (so the same default key, also
// for a user record of a KPL aggregate, whose id ends in "#<n>"), sequence number, partition key, arrival time and
// payload. A user record comes back as a plain record: Record.Aggregated and Record.SubSequenceNumber are not set.
func (e ErrorEntry) EventRecord() (events.KinesisEventRecord, error) {
	data, err := e.Data()
	if err != nil {
		return events.KinesisEventRecord{}, err
	}
	return events.KinesisEventRecord{
		EventID:      e.ID,
		EventName:    "aws:kinesis:record",
		EventSource:  "aws:kinesis",
		EventVersion: "1.0",
		Kinesis: events.KinesisRecord{
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: e.ArrivalTime},
			Data:                        data,
			PartitionKey:                e.PartitionKey,
			SequenceNumber:              e.SequenceNumber,
			KinesisSchemaVersion:        "1.0",
		},
	}, nil
}

// Errors redrives error-table entries: each chosen entry's record is rebuilt from its stored payload and handled
// alone; once it is stored (or skipped by the transform), the entry is deleted, on condition that its failedAt is
// still the one read. A record that fails again keeps its entry, which the processor rewrites with the new reason.
func (r *Redriver) Errors(ctx context.Context, in ErrorsInput) (Summary, error) {
	r.start()
	if r.opts.ErrorTableName == "" {
		return r.finish(), errors.New("errors: error table name is empty")
	}
	seen := map[string]bool{}
	count := 0
	var start map[string]types.AttributeValue
	for {
		out, err := r.c.DB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(r.opts.ErrorTableName), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return r.finish(), fmt.Errorf("errors: scan %s: %w", r.opts.ErrorTableName, err)
		}
		for _, item := range out.Items {
			e, err := ParseErrorEntry(item)
			if err != nil {
				r.record(Result{Source: "error:?", Outcome: OutcomeInvalid, Reason: err.Error()})
				continue
			}
			if seen[e.ID] || !e.Matches(in) {
				continue
			}
			if in.MaxEntries > 0 && count >= in.MaxEntries {
				return r.finish(), nil
			}
			if err := ctx.Err(); err != nil {
				return r.finish(), fmt.Errorf("errors: %w", err)
			}
			seen[e.ID] = true
			count++
			r.record(r.redriveEntry(ctx, e))
		}
		if len(out.LastEvaluatedKey) == 0 {
			return r.finish(), nil
		}
		start = out.LastEvaluatedKey
	}
}

func (r *Redriver) redriveEntry(ctx context.Context, e ErrorEntry) Result {
	res := Result{Source: "error:" + e.ID, ShardID: e.ShardID, StartSequenceNumber: e.SequenceNumber, EndSequenceNumber: e.SequenceNumber}
	er, err := e.EventRecord()
	if err != nil {
		res.Outcome, res.Reason = OutcomeInvalid, err.Error()
		return res
	}
	if err := r.limiter.wait(ctx, 1); err != nil {
		res.Outcome, res.Reason = OutcomeFailed, err.Error()
		return res
	}
	br, err := r.run.handle(ctx, events.KinesisEvent{Records: []events.KinesisEventRecord{er}})
	res.Records = br.counts
	switch {
	case err != nil:
		res.Records = RecordCounts{Read: 1, Failed: 1}
		res.Outcome, res.Reason = OutcomeFailed, err.Error()
		return res
	case br.counts.ToErrorTable > 0:
		res.Outcome, res.Reason = OutcomeFailedAgain, br.errorReasons[e.ID]
		if res.Reason == "" {
			res.Reason = "failed permanently again (see the processor's warnings)"
		}
		if r.opts.DryRun {
			res.Reason = "would fail again: " + res.Reason
		}
		return res
	case !br.ok():
		res.Outcome, res.Reason = OutcomeFailed, "not stored: a transient failure (see the processor's warnings); the entry is kept"
		return res
	}
	res.Outcome = OutcomeRecovered
	if r.opts.DryRun {
		return res
	}
	del := &dynamodb.DeleteItemInput{
		TableName:                aws.String(r.opts.ErrorTableName),
		Key:                      map[string]types.AttributeValue{processor.ErrorTablePartitionKey: &types.AttributeValueMemberS{Value: e.ID}},
		ExpressionAttributeNames: map[string]string{"#f": processor.ErrorAttrFailedAt},
	}
	if e.FailedAt == "" {
		del.ConditionExpression = aws.String("attribute_not_exists(#f)")
	} else {
		del.ConditionExpression = aws.String("#f = :f")
		del.ExpressionAttributeValues = map[string]types.AttributeValue{":f": &types.AttributeValueMemberS{Value: e.FailedAt}}
	}
	if _, err := r.c.DB.DeleteItem(ctx, del); err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			res.Outcome, res.Reason = OutcomeFailed, "stored, but the entry changed meanwhile (a newer failure of the same record): kept"
		} else {
			res.Outcome, res.Reason = OutcomeFailed, fmt.Sprintf("stored, but the entry was not deleted: %v", err)
		}
		return res
	}
	res.Removed = true
	return res
}
