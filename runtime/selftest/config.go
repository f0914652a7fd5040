package selftest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// ConfigFileName is the name of the self-test's configuration file, which the construct writes next to the
// self-test function's `bootstrap`.
const ConfigFileName = "selftest.json"

// Config is the self-test's static configuration: what the canary is and where its item goes. The construct builds
// it from the pipeline's props, checks it at synth time with Validate, and writes it into the self-test function's
// asset (ConfigFileName); deploy-time names (stream, tables) travel in environment variables.
type Config struct {
	// Pipeline is the processor's configuration (key schema and transform), as the construct bundles it.
	Pipeline processor.Config `json:"pipeline"`
	// Record is the canary's payload, a JSON object (the SelfTestRecord prop). Empty: derived from Pipeline (see
	// Validate for when that is possible).
	Record string `json:"record,omitempty"`
	// Key gives key attributes of the canary's item (the SelfTestKey prop): attribute name to value, a string for
	// S, a number for N, a base64 string for B. A string value "$eventId", "$sequenceNumber" or "$partitionKey"
	// stands for that value of the canary record, known once PutRecord returns. Key attributes it does not name are
	// derived from Pipeline's key sources.
	Key map[string]any `json:"key,omitempty"`
	// Malformed puts a second canary that is not JSON and waits for it in the error table.
	Malformed bool `json:"malformed,omitempty"`
}

// NoncePlaceholder in Record, or in a string value of Key, stands for the run's nonce: a canary item keyed by it
// (`{"orderId": "kdp-selftest-$nonce"}`) is every run's own, so overlapping runs (a schedule during a deployment)
// never write, wait for or delete the same item.
const NoncePlaceholder = "$nonce"

// ParseConfig decodes a configuration file's content (numbers kept exact) and validates it.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decode self-test config: %w", err)
	}
	c.Pipeline = c.Pipeline.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ReadConfigFile reads and parses the configuration file at path.
func ReadConfigFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read self-test config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Marshal encodes c as the content of the configuration file, with stable output for stable asset hashes.
func (c Config) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode self-test config: %w", err)
	}
	return append(b, '\n'), nil
}

// Problems with the configuration that name the prop to set, so the construct's synth error says what to do.
var (
	// ErrRecordRequired: the canary's payload cannot be derived; the user must give it (SelfTestRecord).
	ErrRecordRequired = errors.New("the canary's payload cannot be derived")
	// ErrKeyRequired: the canary item's key cannot be derived; the user must give it (SelfTestKey).
	ErrKeyRequired = errors.New("the canary item's key cannot be derived")
)

// Validate reports every problem with c, joined. A derived canary (no Record) is possible only when the partition
// key comes from the record's metadata ($eventId, $sequenceNumber or $partitionKey: unique to the canary, so it can
// never overwrite a real item) and the transform has no schema, filter or computed attributes (which the canary
// would have to satisfy); a key attribute from $shardId or $arrivalTime must be given in Key. Problems of that kind
// wrap ErrRecordRequired or ErrKeyRequired.
func (c Config) Validate() error {
	cfg := c.Pipeline.WithDefaults()
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("pipeline config: %w", err))
	}
	keys := keyAttributes(cfg)
	var payload map[string]any
	if c.Record == "" {
		if t := cfg.Transform; t != nil && (len(t.Computed) > 0 || t.Filter != "" || len(t.Schema) > 0 && string(t.Schema) != "null") {
			errs = append(errs, fmt.Errorf("%w: the transform has a schema, a filter or computed attributes, which a derived canary may not pass", ErrRecordRequired))
		}
		if !strings.HasPrefix(cfg.PartitionKey.Source, "$") {
			errs = append(errs, fmt.Errorf("%w: the partition key comes from payload field %s (a business key), where a derived canary could overwrite a real item", ErrRecordRequired, cfg.PartitionKey.Source))
		}
	} else {
		var err error
		if payload, err = decodeObject([]byte(c.Record)); err != nil {
			errs = append(errs, fmt.Errorf("record: %w", err))
		}
	}
	names := map[string]processor.KeyAttribute{}
	for _, k := range keys {
		names[k.Name] = k
		if v, given := c.Key[k.Name]; given {
			if _, err := keyValue(k, v, Put{PartitionKey: "p", ShardID: "s", SequenceNumber: "1", EventID: "s:1"}); err != nil {
				errs = append(errs, fmt.Errorf("key: %w", err))
			}
			continue
		}
		switch k.Source {
		case processor.SourceShardID, processor.SourceArrivalTime:
			errs = append(errs, fmt.Errorf("%w: key attribute %s comes from %s, which the self-test cannot know in advance", ErrKeyRequired, k.Name, k.Source))
		case processor.SourceEventID, processor.SourcePartitionKey, processor.SourceSequenceNumber:
		default:
			if payload != nil {
				if _, err := pathValue(k, payload); err != nil {
					errs = append(errs, fmt.Errorf("record: %w", err))
				}
			}
		}
	}
	var unknown []string
	for name := range c.Key {
		if _, ok := names[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		errs = append(errs, fmt.Errorf("key: %q is not a key attribute of the table", name))
	}
	return errors.Join(errs...)
}

func keyAttributes(cfg processor.Config) []processor.KeyAttribute {
	keys := []processor.KeyAttribute{cfg.PartitionKey}
	if cfg.SortKey != nil {
		keys = append(keys, *cfg.SortKey)
	}
	return keys
}

func metadataSource(s string) bool {
	return s == processor.SourceEventID || s == processor.SourceSequenceNumber || s == processor.SourcePartitionKey
}

// payload returns the canary's payload: Record, or a derived JSON object with the marker and a value for every key
// attribute read from a payload path.
func (c Config) payload(nonce string) ([]byte, error) {
	if c.Record != "" {
		return []byte(strings.ReplaceAll(c.Record, NoncePlaceholder, nonce)), nil // hex digits: JSON-safe anywhere
	}
	obj := map[string]any{MarkerField: nonce}
	for _, k := range keyAttributes(c.Pipeline.WithDefaults()) {
		if k.Source == "" || strings.HasPrefix(k.Source, "$") {
			continue
		}
		if _, given := c.Key[k.Name]; given {
			continue
		}
		var v any
		switch k.Type {
		case processor.AttributeTypeNumber:
			v = 0 // the partition key is the canary's own (Validate): any sort key value is unique with it
		case processor.AttributeTypeBinary:
			v = base64.StdEncoding.EncodeToString([]byte(processor.SelfTestPartitionKeyPrefix + nonce))
		default:
			v = processor.SelfTestPartitionKeyPrefix + nonce
		}
		setPath(obj, k.Source, v)
	}
	return json.Marshal(obj)
}

func setPath(obj map[string]any, path string, v any) {
	segs := strings.Split(path, ".")
	for _, seg := range segs[:len(segs)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[seg] = next
		}
		obj = next
	}
	obj[segs[len(segs)-1]] = v
}

// itemKey returns the key of the item the processor writes for canary p with payload.
func (c Config) itemKey(p Put, payload []byte) (processor.Item, error) {
	var data map[string]any
	key := processor.Item{}
	for _, k := range keyAttributes(c.Pipeline.WithDefaults()) {
		if v, given := c.Key[k.Name]; given {
			av, err := keyValue(k, v, p)
			if err != nil {
				return nil, err
			}
			key[k.Name] = av
			continue
		}
		if metadataSource(k.Source) {
			key[k.Name] = &types.AttributeValueMemberS{Value: metadata(k.Source, p)}
			continue
		}
		if data == nil {
			var err error
			if data, err = decodeObject(payload); err != nil {
				return nil, fmt.Errorf("canary payload: %w", err)
			}
		}
		av, err := pathValue(k, data)
		if err != nil {
			return nil, err
		}
		key[k.Name] = av
	}
	return key, nil
}

// markerKept says whether the canary's item carries MarkerField with the run's nonce: a derived canary (no Record)
// through the processor's transform, which keeps every payload field unless Include, Exclude, Rename, the TTL or a
// key attribute names it.
func (c Config) markerKept() bool {
	if c.Record != "" {
		return false
	}
	cfg := c.Pipeline.WithDefaults()
	for _, k := range keyAttributes(cfg) {
		if k.Name == MarkerField {
			return false
		}
	}
	t := cfg.Transform
	if t == nil {
		return true
	}
	if t.TTL != nil && t.TTL.Attribute == MarkerField {
		return false
	}
	if len(t.Include) > 0 && !slices.Contains(t.Include, MarkerField) {
		return false
	}
	if _, renamed := t.Rename[MarkerField]; renamed || slices.Contains(t.Exclude, MarkerField) {
		return false
	}
	for _, dst := range t.Rename {
		if dst == MarkerField {
			return false
		}
	}
	return true
}

// partitionKeyIs says whether key's partition key attribute is the string eventID.
func (c Config) partitionKeyIs(key processor.Item, eventID string) bool {
	s, ok := key[c.Pipeline.WithDefaults().PartitionKey.Name].(*types.AttributeValueMemberS)
	return ok && s.Value == eventID
}

func metadata(source string, p Put) string {
	switch source {
	case processor.SourceEventID:
		return p.EventID
	case processor.SourceSequenceNumber:
		return p.SequenceNumber
	case processor.SourcePartitionKey:
		return p.PartitionKey
	}
	return ""
}

// keyValue converts a Key value for attribute k.
func keyValue(k processor.KeyAttribute, v any, p Put) (types.AttributeValue, error) {
	if s, ok := v.(string); ok && strings.Contains(s, NoncePlaceholder) && k.Type == processor.AttributeTypeString {
		v = strings.ReplaceAll(s, NoncePlaceholder, strings.TrimPrefix(p.PartitionKey, processor.SelfTestPartitionKeyPrefix))
	} else if s, ok := v.(string); ok && strings.HasPrefix(s, "$") {
		if !metadataSource(s) {
			return nil, fmt.Errorf("key attribute %s: %q is not $eventId, $sequenceNumber or $partitionKey (or a string holding %s)", k.Name, s, NoncePlaceholder)
		}
		if k.Type != processor.AttributeTypeString {
			return nil, fmt.Errorf("key attribute %s: %s gives a string, but the attribute's type is %s", k.Name, s, k.Type)
		}
		return &types.AttributeValueMemberS{Value: metadata(s, p)}, nil
	}
	return convert(k, v, "value")
}

// pathValue reads key attribute k from the payload at its path, as the processor does.
func pathValue(k processor.KeyAttribute, data map[string]any) (types.AttributeValue, error) {
	var v any = data
	for _, seg := range strings.Split(k.Source, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("key attribute %s: payload field %s is missing", k.Name, k.Source)
		}
		if v, ok = m[seg]; !ok {
			return nil, fmt.Errorf("key attribute %s: payload field %s is missing", k.Name, k.Source)
		}
	}
	return convert(k, v, "payload field "+k.Source)
}

func convert(k processor.KeyAttribute, v any, what string) (types.AttributeValue, error) {
	switch k.Type {
	case processor.AttributeTypeNumber:
		var s string
		switch n := v.(type) {
		case json.Number:
			s = string(n)
		case float64:
			s = strconv.FormatFloat(n, 'f', -1, 64)
		case int:
			s = strconv.Itoa(n)
		case int64:
			s = strconv.FormatInt(n, 10)
		default:
			return nil, fmt.Errorf("key attribute %s: %s is %T, want a number", k.Name, what, v)
		}
		return &types.AttributeValueMemberN{Value: s}, nil
	case processor.AttributeTypeBinary:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("key attribute %s: %s is %T, want a base64 string", k.Name, what, v)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("key attribute %s: %s is not a non-empty base64 string", k.Name, what)
		}
		return &types.AttributeValueMemberB{Value: b}, nil
	default:
		s, ok := v.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("key attribute %s: %s is not a non-empty string", k.Name, what)
		}
		return &types.AttributeValueMemberS{Value: s}, nil
	}
}

func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("not a single JSON object")
	}
	return m, nil
}
