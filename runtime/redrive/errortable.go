package redrive

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/kinesisread"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
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
	// ShardID, SequenceNumber and PartitionKey are the record's. PartitionKey is read byte for byte whether the
	// entry stores it as a string or, when it is not valid UTF-8, as binary.
	ShardID, SequenceNumber, PartitionKey string
	// PartitionKeySize is the whole partition key's length in bytes when the entry holds only its first
	// processor.MaxErrorPartitionKey bytes (processor.ErrorAttrPartitionKeySize), 0 when PartitionKey is whole.
	// PartitionKeySHA256 is then the whole key's hex SHA-256. Such an entry is redriven only from the stream's copy.
	PartitionKeySize   int
	PartitionKeySHA256 string
	// ArrivalTime is the record's approximate arrival time.
	ArrivalTime time.Time
	// Payload is the payload as stored; PayloadEncoding says how (processor.PayloadEncoding*). For
	// processor.PayloadEncodingParts the error item holds none: Payload is the parts' bytes joined, once read
	// (Redriver.Errors reads them).
	Payload         []byte
	PayloadEncoding string
	// PayloadSize is the original payload's size in bytes.
	PayloadSize int
	// PayloadSHA256 is the hex SHA-256 of the original payload (processor.PayloadEncodingParts and
	// processor.PayloadEncodingTruncated only).
	PayloadSHA256 string
	// PayloadParts is the number of part items holding the payload (processor.PayloadEncodingParts only).
	PayloadParts int
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
		FailedAt: str(processor.ErrorAttrFailedAt), PayloadSHA256: str(processor.ErrorAttrPayloadSHA256),
	}
	if e.ID == "" {
		return ErrorEntry{}, fmt.Errorf("error entry has no %s", processor.ErrorTablePartitionKey)
	}
	if b, ok := item[processor.ErrorAttrPayload].(*types.AttributeValueMemberB); ok {
		e.Payload = b.Value
	}
	if b, ok := item[processor.ErrorAttrPartitionKey].(*types.AttributeValueMemberB); ok {
		e.PartitionKey = string(b.Value)
	}
	if n, ok := item[processor.ErrorAttrPartitionKeySize].(*types.AttributeValueMemberN); ok {
		e.PartitionKeySize, _ = strconv.Atoi(n.Value)
		e.PartitionKeySHA256 = str(processor.ErrorAttrPartitionKeySHA256)
	}
	if n, ok := item[processor.ErrorAttrPayloadSize].(*types.AttributeValueMemberN); ok {
		e.PayloadSize, _ = strconv.Atoi(n.Value)
	}
	if n, ok := item[processor.ErrorAttrPayloadParts].(*types.AttributeValueMemberN); ok {
		e.PayloadParts, _ = strconv.Atoi(n.Value)
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
	case processor.PayloadEncodingParts:
		if e.Payload == nil {
			return nil, fmt.Errorf("payload stored in %d part items, not read yet", e.PayloadParts)
		}
		if len(e.Payload) != e.PayloadSize {
			return nil, fmt.Errorf("payload parts hold %d bytes, the entry says %d", len(e.Payload), e.PayloadSize)
		}
		sum := sha256.Sum256(e.Payload)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, e.PayloadSHA256) {
			return nil, fmt.Errorf("payload parts' SHA-256 is %s, the entry says %q", got, e.PayloadSHA256)
		}
		return e.Payload, nil
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
//
// With Options.StreamARN, each entry is first looked up in the stream (its shard and sequence number): a record the
// stream still holds must have the entry's payload (else OutcomePayloadDiffers, nothing written) and is then
// written conditionally, from the stream's copy; an entry the stream no longer holds (or cannot name) is unverified
// and written insert-only (conditionally with Options.AllowOverwriteUnverified), as is every entry without the pin.
func (r *Redriver) Errors(ctx context.Context, in ErrorsInput) (Summary, error) {
	r.start()
	if r.opts.ErrorTableName == "" {
		return r.finish(), errors.New("errors: error table name is empty")
	}
	seen := map[string]bool{}
	count := 0
	var start map[string]types.AttributeValue
	for {
		// Part items (processor.PayloadEncodingParts) are not entries: their error item names them.
		out, err := r.c.DB.Scan(ctx, &dynamodb.ScanInput{
			TableName: aws.String(r.opts.ErrorTableName), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true),
			FilterExpression:         aws.String("attribute_not_exists(#partOf)"),
			ExpressionAttributeNames: map[string]string{"#partOf": processor.ErrorAttrPartOf},
		})
		if err != nil {
			return r.finish(), fmt.Errorf("errors: scan %s: %w", r.opts.ErrorTableName, err)
		}
		for _, item := range out.Items {
			if _, part := item[processor.ErrorAttrPartOf]; part {
				continue
			}
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
	if e.PayloadEncoding == processor.PayloadEncodingParts {
		payload, err := r.readParts(ctx, e)
		if err != nil {
			res.Outcome, res.Reason = OutcomeInvalid, err.Error()
			var rerr *partsReadError
			if errors.As(err, &rerr) {
				res.Outcome = OutcomeFailed
			}
			return res
		}
		e.Payload = payload
	}
	er, err := e.EventRecord()
	if err != nil {
		res.Outcome, res.Reason = OutcomeInvalid, err.Error()
		return res
	}
	if err := r.limiter.Wait(ctx, 1); err != nil {
		res.Outcome, res.Reason = OutcomeFailed, err.Error()
		return res
	}
	if err := e.consistent(); err != nil {
		res.Outcome, res.Reason = OutcomeInvalid, err.Error()
		return res
	}
	verified := false
	if r.pin != nil {
		var outcome Outcome
		verified, outcome, err = r.verifyEntry(ctx, e, &er)
		if err != nil {
			res.Records = RecordCounts{Read: 1}
			res.Outcome, res.Reason = outcome, err.Error()
			return res
		}
	}
	if !verified && e.PartitionKeySize > len(e.PartitionKey) {
		// The entry holds only the start of the partition key: rebuilt from it, the record would get another key
		// (a key from the partition key) and other metadata. Only the stream's copy can be redriven.
		res.Outcome = OutcomeInvalid
		res.Reason = fmt.Sprintf("the entry holds only the first %d of the partition key's %d bytes, and the stream does not hold the record (or no --stream was given): not redriven, the entry is kept",
			len(e.PartitionKey), e.PartitionKeySize)
		return res
	}
	br, err := r.run.handle(ctx, events.KinesisEvent{Records: []events.KinesisEventRecord{er}}, verified)
	res.Records = br.counts
	switch {
	case err != nil:
		res.Records = RecordCounts{Read: 1, Failed: 1}
		res.Outcome, res.Reason = OutcomeFailed, err.Error()
		return res
	case br.counts.Refused > 0:
		res.Outcome, res.Reason = OutcomeRefused, refusedReason(br.counts.Refused)+"; the entry is kept"
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
	case len(uncounted(br.counts, false)) > 0:
		// Stored, perhaps never counted: the entry is what is left of it until a run counts it.
		res.Outcome, res.Reason = OutcomeFailed, strings.Join(uncounted(br.counts, false), "; ")
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
	if e.PayloadEncoding == processor.PayloadEncodingParts {
		if err := r.deleteParts(ctx, e); err != nil {
			res.Outcome, res.Reason = OutcomeFailed, fmt.Sprintf("stored and the entry deleted, but not all its part items: %v", err)
			return res
		}
	}
	res.Removed = true
	return res
}

// partsReadError is an error reading part items from DynamoDB (worth a rerun), as opposed to parts that are missing
// or do not match their entry.
type partsReadError struct{ err error }

// Error returns the underlying error's message.
func (e *partsReadError) Error() string { return e.err.Error() }

// Unwrap returns the underlying error.
func (e *partsReadError) Unwrap() error { return e.err }

// partKeys returns the keys of e's part items, in order.
func partKeys(e ErrorEntry) []map[string]types.AttributeValue {
	keys := make([]map[string]types.AttributeValue, e.PayloadParts)
	for k := 1; k <= e.PayloadParts; k++ {
		keys[k-1] = map[string]types.AttributeValue{processor.ErrorTablePartitionKey: &types.AttributeValueMemberS{Value: processor.ErrorPartID(e.ID, k)}}
	}
	return keys
}

// readParts reads e's part items (consistently, with BatchGetItem) and returns their payloads joined in order. It
// checks that every part is there and names e; ErrorEntry.Data checks the size and SHA-256 of the whole.
func (r *Redriver) readParts(ctx context.Context, e ErrorEntry) ([]byte, error) {
	if e.PayloadParts <= 0 || e.PayloadParts > maxPayload/processor.MaxErrorPayload+1 {
		return nil, fmt.Errorf("payload stored in parts, but the entry says %d parts", e.PayloadParts)
	}
	if e.PayloadSize < 0 || e.PayloadSize > maxPayload {
		return nil, fmt.Errorf("payload stored in parts, but the entry says %d bytes", e.PayloadSize)
	}
	parts := make([][]byte, e.PayloadParts)
	keys := partKeys(e)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 100)]
		keys = keys[len(chunk):]
		pending := map[string]types.KeysAndAttributes{r.opts.ErrorTableName: {Keys: chunk, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(pending) > 0; attempt++ {
			if attempt > 0 {
				if attempt > 10 {
					return nil, &partsReadError{fmt.Errorf("read the payload's parts: keys still unprocessed after %d attempts", attempt)}
				}
				if err := kinesisread.Sleep(ctx, time.Duration(50<<min(attempt, 6))*time.Millisecond); err != nil {
					return nil, &partsReadError{err}
				}
			}
			out, err := r.c.DB.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return nil, &partsReadError{fmt.Errorf("read the payload's parts: %w", err)}
			}
			for _, item := range out.Responses[r.opts.ErrorTableName] {
				id, _ := item[processor.ErrorTablePartitionKey].(*types.AttributeValueMemberS)
				of, _ := item[processor.ErrorAttrPartOf].(*types.AttributeValueMemberS)
				n, _ := item[processor.ErrorAttrPart].(*types.AttributeValueMemberN)
				b, _ := item[processor.ErrorAttrPayload].(*types.AttributeValueMemberB)
				if id == nil || of == nil || n == nil || b == nil || of.Value != e.ID {
					return nil, fmt.Errorf("part item %v does not belong to the entry", item[processor.ErrorTablePartitionKey])
				}
				k, err := strconv.Atoi(n.Value)
				if err != nil || k < 1 || k > e.PayloadParts || id.Value != processor.ErrorPartID(e.ID, k) {
					return nil, fmt.Errorf("part item %s says it is part %s", id.Value, n.Value)
				}
				parts[k-1] = b.Value
			}
			pending = out.UnprocessedKeys
		}
	}
	var payload []byte
	for k, p := range parts {
		if p == nil {
			return nil, fmt.Errorf("part item %s of %d is missing", processor.ErrorPartID(e.ID, k+1), e.PayloadParts)
		}
		payload = append(payload, p...)
	}
	if payload == nil {
		payload = []byte{}
	}
	return payload, nil
}

// deleteParts deletes e's part items, once its error item is deleted. A newer failure of the same record may have
// rewritten the error item and its parts meanwhile (same ids, same bytes): if the error item is back, the parts are
// written again.
func (r *Redriver) deleteParts(ctx context.Context, e ErrorEntry) error {
	for _, key := range partKeys(e) {
		if _, err := r.c.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(r.opts.ErrorTableName), Key: key}); err != nil {
			return err
		}
	}
	out, err := r.c.DB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(r.opts.ErrorTableName), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{processor.ErrorTablePartitionKey: &types.AttributeValueMemberS{Value: e.ID}},
	})
	if err != nil {
		return fmt.Errorf("check for a newer failure of the record: %w", err)
	}
	if len(out.Item) == 0 {
		return nil
	}
	newer, err := ParseErrorEntry(out.Item)
	if err != nil || newer.PayloadEncoding != processor.PayloadEncodingParts {
		return nil
	}
	// Put the parts back for the newer entry, from the bytes just read: the same record has the same payload.
	for k := 1; k <= newer.PayloadParts; k++ {
		lo, hi := (k-1)*processor.MaxErrorPayload, min(k*processor.MaxErrorPayload, len(e.Payload))
		if lo > hi {
			return fmt.Errorf("a newer failure of the record needs part %d, beyond the payload read", k)
		}
		item := map[string]types.AttributeValue{
			processor.ErrorTablePartitionKey: &types.AttributeValueMemberS{Value: processor.ErrorPartID(e.ID, k)},
			processor.ErrorAttrPartOf:        &types.AttributeValueMemberS{Value: e.ID},
			processor.ErrorAttrPart:          &types.AttributeValueMemberN{Value: strconv.Itoa(k)},
			processor.ErrorAttrPayload:       &types.AttributeValueMemberB{Value: e.Payload[lo:hi]},
		}
		if ttl, ok := out.Item[processor.ErrorTTLAttribute]; ok {
			item[processor.ErrorTTLAttribute] = ttl
		}
		if _, err := r.c.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(r.opts.ErrorTableName), Item: item}); err != nil {
			return fmt.Errorf("a newer failure of the record was written meanwhile; put its part %d back: %w", k, err)
		}
	}
	return nil
}

// consistent reports, as an error, how the entry fails to name one record of a Kinesis shard: its id must be
// "<shardId>:<sequenceNumber>" (plus "#<n>" for a KPL user record) with the entry's own shard id (canonical, see
// ValidShardID) and sequence number. Nothing can vouch for an entry that does not, and a rerun check by position
// would compare against a record it does not name: it is not redriven.
func (e ErrorEntry) consistent() error {
	shard, rest, ok := strings.Cut(e.ID, ":")
	seq, subText, aggregated := strings.Cut(rest, "#")
	good := ok && ValidShardID(shard) && shard == e.ShardID && seq == e.SequenceNumber && ValidSequenceNumber(seq)
	if good && aggregated {
		n, err := strconv.ParseUint(subText, 10, 32)
		good = err == nil && strconv.FormatUint(n, 10) == subText
	}
	if !good {
		return fmt.Errorf("the entry does not name a record consistently (id %s, shardId %s, sequenceNumber %s): not redriven, the entry is kept",
			e.ID, e.ShardID, e.SequenceNumber)
	}
	return nil
}

// samePartitionKey reports whether the stream's partition key pk is the entry's: equal when the entry holds it whole,
// of the entry's size and SHA-256 and starting with the entry's prefix when it holds only its start. An entry without
// a partition key (written before partition keys were kept) matches any.
func samePartitionKey(e ErrorEntry, pk string) bool {
	if e.PartitionKeySize == 0 {
		return e.PartitionKey == "" || e.PartitionKey == pk
	}
	sum := sha256.Sum256([]byte(pk))
	return len(pk) == e.PartitionKeySize && strings.HasPrefix(pk, e.PartitionKey) && hex.EncodeToString(sum[:]) == e.PartitionKeySHA256
}

// verifyEntry looks the entry's record up in the pinned stream. It returns true when the stream holds it with the
// entry's payload (er then takes the stream's data, partition key and arrival time); false and no error when the
// stream no longer holds it, or the entry does not name a record consistently (its id is not
// "<shardId>:<sequenceNumber>" or that plus "#<n>" for a KPL user record); and an error with the outcome to report
// when the payload differs from the stream's record (OutcomePayloadDiffers) or the stream could not be read
// (OutcomeFailed).
func (r *Redriver) verifyEntry(ctx context.Context, e ErrorEntry, er *events.KinesisEventRecord) (bool, Outcome, error) {
	shard, rest, ok := strings.Cut(e.ID, ":")
	seq, subText, aggregated := strings.Cut(rest, "#")
	sub := 0
	if aggregated {
		n, err := strconv.ParseUint(subText, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != subText {
			return false, "", nil
		}
		sub = int(n)
	}
	if !ok || e.consistent() != nil || r.c.Kinesis == nil {
		return false, "", nil
	}
	bi := KinesisBatchInfo{ShardID: shard, StartSequenceNumber: seq, EndSequenceNumber: seq, BatchSize: 1, StreamARN: r.pin.ARN}
	var held []ktypes.Record
	err := r.readRange(ctx, *r.pin, bi, false, func(recs []ktypes.Record) error {
		held = append(held, recs...)
		return nil
	})
	var exp *errExpired
	switch {
	case errors.As(err, &exp):
		return false, "", nil
	case err != nil:
		return false, OutcomeFailed, fmt.Errorf("the entry cannot be verified against the stream: %w; nothing written, the entry is kept", err)
	case len(held) != 1:
		return false, "", nil
	}
	h := held[0]
	data, pk := h.Data, aws.ToString(h.PartitionKey)
	if aggregated {
		if !kpl.IsAggregated(data) {
			return false, OutcomePayloadDiffers, errors.New("payload differs from the stream: the entry names a user record of a KPL aggregate, and the stream's record is not one; nothing written, the entry is kept")
		}
		urs, err := kpl.Deaggregate(data)
		if err != nil || sub >= len(urs) {
			return false, OutcomePayloadDiffers, fmt.Errorf("payload differs from the stream: the stream's aggregate has no user record %d (%d records, %v); nothing written, the entry is kept", sub, len(urs), err)
		}
		data, pk = urs[sub].Data, urs[sub].PartitionKey
	}
	if !bytes.Equal(data, er.Kinesis.Data) {
		return false, OutcomePayloadDiffers, errors.New("payload differs from the stream: the entry's payload is not the data of the stream's record; nothing written, the entry is kept")
	}
	if !samePartitionKey(e, pk) {
		return false, OutcomePayloadDiffers, errors.New("payload differs from the stream: the entry's partition key is not the stream's record's; nothing written, the entry is kept")
	}
	er.Kinesis.Data, er.Kinesis.PartitionKey = data, pk
	if h.ApproximateArrivalTimestamp != nil {
		er.Kinesis.ApproximateArrivalTimestamp = events.SecondsEpochTime{Time: *h.ApproximateArrivalTimestamp}
	}
	er.EventSourceArn, er.AwsRegion = r.pin.ARN, r.pin.Region
	return true, "", nil
}
