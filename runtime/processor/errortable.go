package processor

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const (
	// MaxErrorPayload is the largest payload, in bytes, an error item holds: larger payloads are gzip-compressed
	// when that fits, or split into part items of at most this size otherwise (PayloadEncodingParts), so every
	// item stays under DynamoDB's 400 KB.
	MaxErrorPayload = 350 * 1024
	maxReason       = 4096 // bytes of a failure reason kept in an error item
)

// errorItems builds the error-table items of record r, which failed permanently because of err: its error item,
// then the part items holding its payload when it does not fit the error item even compressed (PayloadEncodingParts).
// The record is in the error table only once all of them are.
func (p *Processor) errorItems(ctx context.Context, r *Record, err error) []Item {
	now := p.opts.Now().UTC()
	reason := "permanent failure"
	if err != nil {
		reason = err.Error()
	}
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "") + "..."
	}
	id := r.EventID
	if id == "" {
		id = "unknown"
	}
	item := Item{
		ErrorTablePartitionKey:    &types.AttributeValueMemberS{Value: id},
		ErrorAttrShardID:          &types.AttributeValueMemberS{Value: r.ShardID},
		ErrorAttrSequenceNumber:   &types.AttributeValueMemberS{Value: r.SequenceNumber},
		ErrorAttrPartitionKey:     &types.AttributeValueMemberS{Value: r.PartitionKey},
		ErrorAttrArrivalTime:      &types.AttributeValueMemberS{Value: formatTime(r.ArrivalTime)},
		ErrorAttrPayloadSize:      &types.AttributeValueMemberN{Value: strconv.Itoa(len(r.Raw))},
		ErrorAttrReason:           &types.AttributeValueMemberS{Value: reason},
		ErrorAttrProcessorVersion: &types.AttributeValueMemberS{Value: p.opts.Version},
		ErrorAttrFailedAt:         &types.AttributeValueMemberS{Value: now.Format(time.RFC3339Nano)},
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
