package processor

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item is one DynamoDB item, as BatchWriteItem and PutItem take it.
type Item = map[string]types.AttributeValue

// Record is one Kinesis record as a Transform sees it: its metadata, its raw payload and the payload decoded as a
// JSON object. For a record the Kinesis Producer Library aggregated, it is one user record of the aggregate: the
// aggregate's metadata, the user record's partition key and payload, and its index as SubSequenceNumber.
type Record struct {
	// EventID is the record's event id, "shardId:sequenceNumber". It is unique per Kinesis record and stable across
	// retries. When the event carries none, the sequence number is used. For a user record of an aggregate, the
	// aggregate's event id followed by "#" and the sub-sequence number ("shardId:sequenceNumber#3"), unique per user
	// record and stable across retries.
	EventID string
	// ShardID is the shard the record came from (the part of the event id before the colon).
	ShardID string
	// SequenceNumber is the record's sequence number: a decimal string of up to 129 digits. The user records of an
	// aggregate share the aggregate's.
	SequenceNumber string
	// SubSequenceNumber is the index of the user record in its aggregate, from 0; 0 for a plain record, except one
	// whose event id is "shardId:sequenceNumber#<n>" (a user record rebuilt from its error item, as redrive does):
	// n, with Aggregated set.
	SubSequenceNumber int
	// Aggregated reports whether the record is a user record of a KPL-aggregated Kinesis record.
	Aggregated bool
	// PartitionKey is the partition key the producer chose (for a user record of an aggregate, the user record's own,
	// from the aggregate's table; its explicit hash key is not kept).
	PartitionKey string
	// ArrivalTime is the approximate time the stream received the record.
	ArrivalTime time.Time
	// Raw is the record's payload as the producer wrote it (for a user record of an aggregate, the user record's
	// data). A Transform must not modify it.
	Raw []byte
	// Data is Raw decoded as a JSON object: numbers are json.Number (exact), objects map[string]any, arrays []any,
	// null nil. A record whose payload is not a JSON object never reaches a Transform: it is a permanent failure.
	Data map[string]any
}

// Transform turns one record into the items to write: zero, one or several. It returns ErrSkip (possibly wrapped) to
// skip the record, an error made by Permanent to send the record to the error table, and any other error to have the
// record retried. A Transform is called from one goroutine per batch, in sequence-number order.
type Transform func(ctx context.Context, r *Record) ([]Item, error)

// ErrSkip is returned (possibly wrapped) by a Transform to skip a record: it is counted as skipped, nothing is written
// and the record is acknowledged.
var ErrSkip = errors.New("skip record")

// PermanentError marks a failure that retrying cannot fix: the record goes to the error table (or, without one, is
// reported for retry so the event source mapping's on-failure destination receives it).
type PermanentError struct {
	// Err is the reason, recorded in the error table.
	Err error
}

// Error returns the reason's message.
func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent failure"
	}
	return e.Err.Error()
}

// Unwrap returns the reason.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a *PermanentError. A nil err gives a generic permanent failure; an err that already is
// permanent is returned unchanged.
func Permanent(err error) error {
	var pe *PermanentError
	if errors.As(err, &pe) {
		return err
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is, or wraps, a *PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// Metadata attributes the default transform can add to every item (strings): those Config.Metadata lists, by
// default only AttrArrivalTime.
const (
	// AttrSequenceNumber holds the record's sequence number.
	AttrSequenceNumber = "_kinesisSequenceNumber"
	// AttrPartitionKey holds the producer's partition key; as binary (B), byte for byte, when it is not valid UTF-8,
	// which only a KPL user record's can be.
	AttrPartitionKey = "_kinesisPartitionKey"
	// AttrArrivalTime holds the record's approximate arrival time, RFC 3339 with nanoseconds, UTC.
	AttrArrivalTime = "_kinesisArrivalTime"
	// AttrProcessedAt holds the time the batch was processed, RFC 3339 with nanoseconds, UTC.
	AttrProcessedAt = "_processedAt"
)

// Attributes of the error table's items, besides ErrorTablePartitionKey (the event id, see Record.EventID) and
// ErrorTTLAttribute. An error item of a KPL aggregate that cannot be read holds the whole Kinesis record; one of a user
// record of an aggregate holds the user record (its partition key and payload).
const (
	ErrorAttrShardID           = "shardId"           // S: the record's shard (B if not valid UTF-8; at most 1024 bytes).
	ErrorAttrSequenceNumber    = "sequenceNumber"    // S: the record's sequence number (B if not valid UTF-8; at most 1024 bytes).
	ErrorAttrSubSequenceNumber = "subSequenceNumber" // N: the user record's index in its KPL aggregate (user records only).
	ErrorAttrPartitionKey      = "partitionKey"      // S: the producer's partition key; B (byte for byte) when it is not valid UTF-8. At most MaxErrorPartitionKey bytes.
	// ErrorAttrPartitionKeySize is the partition key's length in bytes (N), only when ErrorAttrPartitionKey holds
	// its first MaxErrorPartitionKey bytes (a KPL user record's partition key can be longer).
	ErrorAttrPartitionKeySize = "partitionKeySize"
	// ErrorAttrPartitionKeySHA256 is the hex SHA-256 of the whole partition key (S), with ErrorAttrPartitionKeySize.
	ErrorAttrPartitionKeySHA256 = "partitionKeySha256"
	ErrorAttrArrivalTime        = "arrivalTime"      // S: RFC 3339, UTC.
	ErrorAttrPayload            = "payload"          // B: the payload, encoded as ErrorAttrPayloadEncoding says.
	ErrorAttrPayloadEncoding    = "payloadEncoding"  // S: PayloadEncodingRaw, PayloadEncodingGzip or PayloadEncodingParts.
	ErrorAttrPayloadSize        = "payloadSize"      // N: the original payload's size in bytes.
	ErrorAttrPayloadSHA256      = "payloadSha256"    // S: hex SHA-256 of the original payload (PayloadEncodingParts only).
	ErrorAttrPayloadParts       = "payloadParts"     // N: the number of part items holding the payload (PayloadEncodingParts only).
	ErrorAttrReason             = "reason"           // S: why the record failed.
	ErrorAttrProcessorVersion   = "processorVersion" // S: Options.Version.
	ErrorAttrFailedAt           = "failedAt"         // S: RFC 3339, UTC.
)

// Values of ErrorAttrPayloadEncoding.
const (
	PayloadEncodingRaw  = "raw"  // the payload as received.
	PayloadEncodingGzip = "gzip" // the payload gzip-compressed.
	// PayloadEncodingParts: the payload did not fit one item even gzip-compressed. The error item has no
	// ErrorAttrPayload; ErrorAttrPayloadParts part items (see ErrorPartID) hold the original bytes in order, and
	// ErrorAttrPayloadSize and ErrorAttrPayloadSHA256 describe the whole.
	PayloadEncodingParts = "parts"
	// PayloadEncodingTruncated: a prefix of the payload, ErrorAttrPayloadSHA256 and ErrorAttrPayloadSize describing
	// the whole. The processor no longer writes it (oversized payloads are stored whole, in parts); error items
	// written by earlier versions may hold it.
	PayloadEncodingTruncated = "truncated"
)

// Attributes of the part items of an error item whose payload is stored in parts (PayloadEncodingParts), besides
// ErrorTablePartitionKey (ErrorPartID), ErrorAttrPayload (the part's bytes, at most MaxErrorPayload, raw) and
// ErrorTTLAttribute (when the error items have one).
const (
	ErrorAttrPartOf = "partOf" // S: the error item's id (its ErrorTablePartitionKey).
	ErrorAttrPart   = "part"   // N: the part's number, from 1 to the error item's ErrorAttrPayloadParts.
)

// ErrorPartID returns the id (ErrorTablePartitionKey) of part k (from 1) of the error item whose id is id.
func ErrorPartID(id string, k int) string { return id + "#part-" + strconv.Itoa(k) }
