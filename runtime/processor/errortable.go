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
	// when that fits, or truncated to this size otherwise, so the error item stays under DynamoDB's 400 KB.
	MaxErrorPayload = 350 * 1024
	maxReason       = 4096 // bytes of a failure reason kept in an error item
)

// errorItem builds the error-table item of record r, which failed permanently because of err.
func (p *Processor) errorItem(ctx context.Context, r *Record, err error) Item {
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
	payload, encoding := r.Raw, PayloadEncodingRaw
	if len(payload) > MaxErrorPayload {
		if gz, ok := gzipUpTo(payload, MaxErrorPayload); ok {
			payload, encoding = gz, PayloadEncodingGzip
		} else {
			sum := sha256.Sum256(r.Raw)
			payload, encoding = r.Raw[:MaxErrorPayload], PayloadEncodingTruncated
			item[ErrorAttrPayloadSHA256] = &types.AttributeValueMemberS{Value: hex.EncodeToString(sum[:])}
		}
	}
	if payload == nil {
		payload = []byte{}
	}
	item[ErrorAttrPayload] = &types.AttributeValueMemberB{Value: payload}
	item[ErrorAttrPayloadEncoding] = &types.AttributeValueMemberS{Value: encoding}
	if ttl := p.opts.Config.ErrorTTLSeconds; ttl > 0 {
		item[ErrorTTLAttribute] = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix()+ttl, 10)}
	}
	return item
}

// gzipUpTo compresses b, reporting false if the result is larger than limit.
func gzipUpTo(b []byte, limit int) ([]byte, bool) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		return nil, false
	}
	if err := zw.Close(); err != nil || buf.Len() > limit {
		return nil, false
	}
	return buf.Bytes(), true
}
