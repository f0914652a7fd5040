package processor

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const (
	// MaxErrorPayload is the largest payload, in bytes, an error item holds: larger payloads are gzip-compressed
	// when that fits, or split into part items of at most this size otherwise (PayloadEncodingParts), so every
	// item stays under DynamoDB's 400 KB.
	MaxErrorPayload = 350 * 1024
	// MaxErrorPartitionKey is the longest partition key, in bytes, an error item holds whole. A KPL user record's
	// partition key is bounded only by its aggregate: a longer one is kept as its first MaxErrorPartitionKey bytes,
	// with ErrorAttrPartitionKeySize and ErrorAttrPartitionKeySHA256 describing the whole.
	MaxErrorPartitionKey = 4096
	maxReason            = 4096 // bytes of a failure reason kept in an error item
	maxErrorField        = 1024 // bytes of the event id, shard id, sequence number and version kept in an error item
)

// errorItems builds the error-table items of record r, which failed permanently because of err: its error item,
// then the part items holding its payload when it does not fit the error item even compressed (PayloadEncodingParts).
// The record is in the error table only once all of them are. Every field taken from the record is bounded (or
// hashed), so the error item fits DynamoDB's 400 KB whatever the record holds; fields that are not valid UTF-8 are
// stored as binary, byte for byte.
func (p *Processor) errorItems(ctx context.Context, r *Record, err error) []Item {
	now := p.opts.Now().UTC()
	reason := "permanent failure"
	if err != nil {
		reason = err.Error()
	}
	id := errorID(r)
	item := Item{
		ErrorTablePartitionKey:    &types.AttributeValueMemberS{Value: id},
		ErrorAttrShardID:          boundedField(r.ShardID, maxErrorField),
		ErrorAttrSequenceNumber:   boundedField(r.SequenceNumber, maxErrorField),
		ErrorAttrPartitionKey:     boundedField(r.PartitionKey, MaxErrorPartitionKey),
		ErrorAttrArrivalTime:      &types.AttributeValueMemberS{Value: formatTime(r.ArrivalTime)},
		ErrorAttrPayloadSize:      &types.AttributeValueMemberN{Value: strconv.Itoa(len(r.Raw))},
		ErrorAttrReason:           &types.AttributeValueMemberS{Value: printable(reason, maxReason)},
		ErrorAttrProcessorVersion: &types.AttributeValueMemberS{Value: printable(p.opts.Version, maxErrorField)},
		ErrorAttrFailedAt:         &types.AttributeValueMemberS{Value: now.Format(time.RFC3339Nano)},
	}
	if len(r.PartitionKey) > MaxErrorPartitionKey {
		sum := sha256.Sum256([]byte(r.PartitionKey))
		item[ErrorAttrPartitionKeySize] = &types.AttributeValueMemberN{Value: strconv.Itoa(len(r.PartitionKey))}
		item[ErrorAttrPartitionKeySHA256] = &types.AttributeValueMemberS{Value: hex.EncodeToString(sum[:])}
	}
	if r.Aggregated {
		item[ErrorAttrSubSequenceNumber] = &types.AttributeValueMemberN{Value: strconv.Itoa(r.SubSequenceNumber)}
	}
	var ttl types.AttributeValue
	if secs := p.opts.Config.ErrorTTLSeconds; secs > 0 {
		ttl = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix()+secs, 10)}
		item[ErrorTTLAttribute] = ttl
	}
	payload, encoding := r.Raw, PayloadEncodingRaw
	if len(payload) > MaxErrorPayload {
		gz, ok := gzipUpTo(payload, MaxErrorPayload)
		if !ok {
			return p.partItems(item, id, r.Raw, ttl)
		}
		payload, encoding = gz, PayloadEncodingGzip
	}
	if payload == nil {
		payload = []byte{}
	}
	item[ErrorAttrPayload] = &types.AttributeValueMemberB{Value: payload}
	item[ErrorAttrPayloadEncoding] = &types.AttributeValueMemberS{Value: encoding}
	return []Item{item}
}

// partItems completes error item item (id id) for a payload stored in parts and returns it followed by its part
// items: chunks of raw of at most MaxErrorPayload bytes, in order. ttl, if not nil, is the items' time to live.
func (p *Processor) partItems(item Item, id string, raw []byte, ttl types.AttributeValue) []Item {
	n := (len(raw) + MaxErrorPayload - 1) / MaxErrorPayload
	sum := sha256.Sum256(raw)
	item[ErrorAttrPayloadEncoding] = &types.AttributeValueMemberS{Value: PayloadEncodingParts}
	item[ErrorAttrPayloadSHA256] = &types.AttributeValueMemberS{Value: hex.EncodeToString(sum[:])}
	item[ErrorAttrPayloadParts] = &types.AttributeValueMemberN{Value: strconv.Itoa(n)}
	items := make([]Item, 1, n+1)
	items[0] = item
	partOf := &types.AttributeValueMemberS{Value: id}
	for k := 1; k <= n; k++ {
		part := Item{
			ErrorTablePartitionKey: &types.AttributeValueMemberS{Value: ErrorPartID(id, k)},
			ErrorAttrPartOf:        partOf,
			ErrorAttrPart:          &types.AttributeValueMemberN{Value: strconv.Itoa(k)},
			ErrorAttrPayload:       &types.AttributeValueMemberB{Value: raw[(k-1)*MaxErrorPayload : min(k*MaxErrorPayload, len(raw))]},
		}
		if ttl != nil {
			part[ErrorTTLAttribute] = ttl
		}
		items = append(items, part)
	}
	return items
}

// gzipUpTo compresses b, reporting false if the result is larger than limit. It gives up as soon as the output
// passes limit, so an incompressible payload costs little more than limit bytes of compression.
func gzipUpTo(b []byte, limit int) ([]byte, bool) {
	const step = 64 << 10
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	for len(b) > 0 {
		n := min(len(b), step)
		if _, err := zw.Write(b[:n]); err != nil || buf.Len() > limit {
			return nil, false
		}
		b = b[n:]
	}
	if err := zw.Close(); err != nil || buf.Len() > limit {
		return nil, false
	}
	return buf.Bytes(), true
}

// errorID returns the error item's id: the record's event id when it is valid UTF-8 and at most maxErrorField bytes
// (always so for Lambda's events), else "sha256:" and the hex SHA-256 of the event id, or, without an event id (no
// sequence number either: only hand-made events), "unknown:" and the hex SHA-256 of the shard id and the payload.
func errorID(r *Record) string {
	switch {
	case r.EventID == "":
		h := sha256.New()
		h.Write([]byte(r.ShardID))
		h.Write([]byte{0})
		h.Write(r.Raw)
		return "unknown:" + hex.EncodeToString(h.Sum(nil))
	case len(r.EventID) > maxErrorField || !utf8.ValidString(r.EventID):
		sum := sha256.Sum256([]byte(r.EventID))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return r.EventID
}

// boundedField stores a string taken from the record in an error item: S when it is valid UTF-8, else B (byte for
// byte: the SDK would replace invalid bytes in a string); cut to its first limit bytes (at a character boundary for
// S) when longer.
func boundedField(s string, limit int) types.AttributeValue {
	if len(s) > limit {
		cut := limit
		for cut > 0 && cut > limit-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if utf8.ValidString(s[:cut]) {
			return &types.AttributeValueMemberS{Value: s[:cut]}
		}
		return &types.AttributeValueMemberB{Value: []byte(s[:limit])}
	}
	if utf8.ValidString(s) {
		return &types.AttributeValueMemberS{Value: s}
	}
	return &types.AttributeValueMemberB{Value: []byte(s)}
}

// printable returns s as valid UTF-8 of at most limit bytes: each byte that is not part of valid UTF-8 written as
// \xNN, and the text cut (at a character boundary, with "...") when longer.
func printable(s string, limit int) string {
	if utf8.ValidString(s) && len(s) <= limit {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var next string
		if r == utf8.RuneError && size <= 1 {
			next = fmt.Sprintf("\\x%02x", s[i])
			size = 1
		} else {
			next = s[i : i+size]
		}
		if b.Len()+len(next) > limit-3 {
			b.WriteString("...")
			break
		}
		b.WriteString(next)
		i += size
	}
	return b.String()
}
