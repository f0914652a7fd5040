package processor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// batchTimeKey is the context key under which Handle stores the batch's processing time.
type batchTimeKey struct{}

type batchTime struct {
	t   time.Time
	str string // t formatted as RFC 3339 with nanoseconds, UTC
}

func withBatchTime(ctx context.Context, t time.Time) context.Context {
	t = t.UTC()
	return context.WithValue(ctx, batchTimeKey{}, &batchTime{t: t, str: t.Format(time.RFC3339Nano)})
}

// ProcessedAt returns the time at which the processor started the batch that ctx belongs to (the value the default
// transform writes as AttrProcessedAt), or the current time outside a batch.
func ProcessedAt(ctx context.Context) time.Time {
	if bt, ok := ctx.Value(batchTimeKey{}).(*batchTime); ok {
		return bt.t
	}
	return time.Now().UTC()
}

func processedAtString(ctx context.Context) string {
	if bt, ok := ctx.Value(batchTimeKey{}).(*batchTime); ok {
		return bt.str
	}
	return time.Now().UTC().Format(time.RFC3339Nano)
}

// decodeObject decodes a payload that must hold exactly one JSON object, with numbers as json.Number.
func decodeObject(raw []byte) (map[string]any, error) {
	if !utf8.Valid(raw) {
		return nil, safeReason("payload is not valid UTF-8")
	}
	p := jsonParser{b: raw}
	p.ws()
	if p.i == len(raw) {
		return nil, safeReason("payload is empty, not a JSON object")
	}
	isObject := raw[p.i] == '{'
	v, err := p.value()
	if err != nil {
		return nil, prefixReason("payload is not valid JSON", err)
	}
	if p.ws(); p.i != len(raw) {
		return nil, safeReason(fmt.Sprintf("payload has data after its JSON value, at offset %d", p.i))
	}
	if isObject {
		return v.(map[string]any), nil
	}
	switch v.(type) {
	case nil:
		return nil, safeReason("payload is JSON null, not an object")
	case []any:
		return nil, safeReason("payload is a JSON array, not an object")
	case string:
		return nil, safeReason("payload is a JSON string, not an object")
	case json.Number:
		return nil, safeReason("payload is a JSON number, not an object")
	default:
		return nil, safeReason("payload is a JSON boolean, not an object")
	}
}

// DefaultTransform returns the transform of the default processor: the record's JSON object becomes one item with
// the same attributes (see ToAttributeValue), plus the key attributes cfg describes and the metadata attributes
// cfg.Metadata lists (by default AttrArrivalTime only, see DefaultMetadata). Key and metadata attributes replace
// payload attributes of the same name, and a key attribute named like a listed metadata attribute keeps the key's
// value. A key value that is missing, empty or of the wrong type is a permanent error.
// A zero cfg means DefaultConfig().
//
// With cfg.Transform set, the item is built as TransformConfig describes (schema, filter, field selection, computed
// attributes, TTL). Its expressions and schema are compiled here, once. A configuration that does not pass
// cfg.Validate gives a Transform that fails every record with that error as a transient one (retried, never sent to
// the error table); New validates the configuration first, so it never builds one.
func DefaultTransform(cfg Config) Transform {
	cfg = cfg.WithDefaults()
	if cfg.Transform != nil {
		t, err := newDeclarativeTransform(cfg)
		if err != nil {
			err = fmt.Errorf("invalid transform config: %w", err)
			return func(context.Context, *Record) ([]Item, error) { return nil, err }
		}
		return t
	}
	meta, merrs := compileMetadata(cfg.Metadata)
	if len(merrs) > 0 {
		err := fmt.Errorf("invalid transform config: %w", errors.Join(merrs...))
		return func(context.Context, *Record) ([]Item, error) { return nil, err }
	}
	keys := []KeyAttribute{cfg.PartitionKey}
	if cfg.SortKey != nil {
		keys = append(keys, *cfg.SortKey)
	}
	return func(ctx context.Context, r *Record) ([]Item, error) {
		if _, ok := r.Data[AttrPosition]; ok {
			return nil, Permanent(errReservedPayload)
		}
		item := make(Item, len(r.Data)+len(keys)+4)
		for k, v := range r.Data {
			av, err := ToAttributeValue(v)
			if err != nil {
				return nil, Permanent(prefixReason("attribute "+pathName(k), err))
			}
			item[k] = av
		}
		// Metadata first, then the keys: a key named like a listed metadata attribute keeps the key's value (else
		// every record of one millisecond, or of one producer key, would share one item).
		addMetadata(ctx, item, r, meta)
		for _, k := range keys {
			av, err := keyValue(k, r)
			if err != nil {
				return nil, Permanent(err)
			}
			item[k.Name] = av
		}
		return []Item{item}, nil
	}
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// keyValue computes the value of key attribute k for record r.
func keyValue(k KeyAttribute, r *Record) (types.AttributeValue, error) {
	var s string
	switch k.Source {
	case SourceEventID:
		s = r.EventID
	case SourceSequenceNumber:
		s = r.SequenceNumber
	case SourcePartitionKey:
		s = r.PartitionKey
	case SourceShardID:
		s = r.ShardID
	case SourceArrivalTime:
		if k.Type == AttributeTypeNumber {
			return &types.AttributeValueMemberN{Value: strconv.FormatInt(r.ArrivalTime.UnixMilli(), 10)}, nil
		}
		s = formatTime(r.ArrivalTime)
	default:
		return pathKeyValue(k, r.Data)
	}
	if s == "" {
		return nil, keyErrorf("key attribute %s: %s is empty", k.Name, k.Source)
	}
	return &types.AttributeValueMemberS{Value: s}, nil
}

// pathKeyValue reads key attribute k from the payload at its dot-separated path. S wants a non-empty string, N a
// JSON number, B a non-empty base64 string.
func pathKeyValue(k KeyAttribute, data map[string]any) (types.AttributeValue, error) {
	var v any = data
	rest := k.Source
	for rest != "" {
		var seg string
		seg, rest, _ = strings.Cut(rest, ".")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, keyErrorf("key attribute %s: payload field %s is missing (%s is not an object)", k.Name, k.Source, seg)
		}
		if v, ok = m[seg]; !ok {
			return nil, keyErrorf("key attribute %s: payload field %s is missing", k.Name, k.Source)
		}
	}
	switch k.Type {
	case AttributeTypeString:
		s, ok := v.(string)
		if !ok {
			return nil, keyErrorf("key attribute %s: payload field %s is %s, want a string", k.Name, k.Source, jsonKind(v))
		}
		if s == "" {
			return nil, keyErrorf("key attribute %s: payload field %s is empty", k.Name, k.Source)
		}
		return &types.AttributeValueMemberS{Value: s}, nil
	case AttributeTypeNumber:
		switch n := v.(type) {
		case json.Number:
			return &types.AttributeValueMemberN{Value: string(n)}, nil
		case int, int64, float64:
			return ToAttributeValue(n)
		}
		return nil, keyErrorf("key attribute %s: payload field %s is %s, want a number", k.Name, k.Source, jsonKind(v))
	case AttributeTypeBinary:
		s, ok := v.(string)
		if !ok {
			return nil, keyErrorf("key attribute %s: payload field %s is %s, want a base64 string", k.Name, k.Source, jsonKind(v))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, keyErrorf("key attribute %s: payload field %s is not base64: %v", k.Name, k.Source, err)
		}
		if len(b) == 0 {
			return nil, keyErrorf("key attribute %s: payload field %s is empty", k.Name, k.Source)
		}
		return &types.AttributeValueMemberB{Value: b}, nil
	}
	return nil, keyErrorf("key attribute %s: unknown type %q", k.Name, k.Type)
}

// keyErrorf formats a key attribute's failure: it names the attribute, its source and the rule, never a value.
func keyErrorf(format string, args ...any) error { return safeReason(fmt.Sprintf(format, args...)) }

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, int, int64, float64:
		return "a number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
