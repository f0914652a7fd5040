package dynamostandin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item is a stored DynamoDB item: attribute name to value, in the SDK's types so tests can compare them directly
// (for example with reflect.DeepEqual against &types.AttributeValueMemberN{Value: "81"}).
type Item map[string]types.AttributeValue

// Error type names as DynamoDB sends them in the "__type" field of an error body.
const (
	typeThrottled   = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
	typeValidation  = "com.amazon.coral.validate#ValidationException"
	typeUnknownOp   = "com.amazon.coral.service#UnknownOperationException"
	typeSerializing = "com.amazon.coral.service#SerializationException"
)

// maxItemSize is DynamoDB's item size limit in bytes.
const maxItemSize = 400 * 1024

// wireItem is an item as it travels in a request: attribute name to its JSON-encoded attribute value.
type wireItem map[string]json.RawMessage

type writeRequest struct {
	PutRequest    *putRequest    `json:"PutRequest,omitempty"`
	DeleteRequest *deleteRequest `json:"DeleteRequest,omitempty"`
}

type putRequest struct {
	Item wireItem `json:"Item"`
}

type deleteRequest struct {
	Key wireItem `json:"Key"`
}

// batchWriteInput holds the fields of a BatchWriteItem request the stand-in reads; everything else is kept in rest so
// a forwarded request loses nothing.
type batchWriteInput struct {
	RequestItems map[string][]json.RawMessage `json:"RequestItems"`
}

type putItemInput struct {
	TableName string   `json:"TableName"`
	Item      wireItem `json:"Item"`
}

type batchWriteOutput struct {
	UnprocessedItems map[string][]json.RawMessage `json:"UnprocessedItems"`
}

// apiError is a DynamoDB error response: its HTTP status, "__type" and message.
type apiError struct {
	status  int
	typ     string
	message string
}

func (e *apiError) Error() string { return e.typ + ": " + e.message }

func validationError(format string, args ...any) *apiError {
	return &apiError{status: 400, typ: typeValidation, message: fmt.Sprintf(format, args...)}
}

// body encodes the error as DynamoDB does.
func (e *apiError) body() []byte {
	b, _ := json.Marshal(map[string]string{"__type": e.typ, "message": e.message})
	return b
}

// decodeItem converts a wire item into SDK attribute values and estimates its size the way DynamoDB counts it.
func decodeItem(w wireItem) (Item, int, error) {
	it := make(Item, len(w))
	size := 0
	for name, raw := range w {
		if name == "" {
			return nil, 0, errors.New("one or more parameter values are not valid: an attribute name is empty")
		}
		av, n, err := decodeValue(raw, 1)
		if err != nil {
			return nil, 0, fmt.Errorf("attribute %q: %w", name, err)
		}
		it[name] = av
		size += len(name) + n
	}
	return it, size, nil
}

// decodeValue converts one JSON attribute value ({"S": "x"}, {"N": "1"}, {"M": {...}}, ...) and returns its size.
func decodeValue(raw json.RawMessage, depth int) (types.AttributeValue, int, error) {
	if depth > 32 {
		return nil, 0, errors.New("nesting levels have exceeded supported limits")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, 0, fmt.Errorf("decode attribute value: %w", err)
	}
	if len(m) != 1 {
		return nil, 0, fmt.Errorf("supplied AttributeValue has %d data types, want exactly 1", len(m))
	}
	for typ, v := range m {
		switch typ {
		case "S":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, 0, fmt.Errorf("decode S: %w", err)
			}
			return &types.AttributeValueMemberS{Value: s}, len(s), nil
		case "N":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, 0, fmt.Errorf("decode N: %w", err)
			}
			if !json.Valid([]byte(s)) || strings.ContainsAny(s, `"{}[]tfn`) {
				return nil, 0, fmt.Errorf("the parameter cannot be converted to a numeric value: %s", s)
			}
			return &types.AttributeValueMemberN{Value: s}, len(s)/2 + 1, nil
		case "B":
			var b []byte
			if err := json.Unmarshal(v, &b); err != nil {
				return nil, 0, fmt.Errorf("decode B: %w", err)
			}
			return &types.AttributeValueMemberB{Value: b}, len(b), nil
		case "BOOL":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				return nil, 0, fmt.Errorf("decode BOOL: %w", err)
			}
			return &types.AttributeValueMemberBOOL{Value: b}, 1, nil
		case "NULL":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil || !b {
				return nil, 0, errors.New("NULL must be true")
			}
			return &types.AttributeValueMemberNULL{Value: true}, 1, nil
		case "SS", "NS":
			var ss []string
			if err := json.Unmarshal(v, &ss); err != nil {
				return nil, 0, fmt.Errorf("decode %s: %w", typ, err)
			}
			n := 3
			for _, s := range ss {
				n += len(s)
			}
			if typ == "SS" {
				return &types.AttributeValueMemberSS{Value: ss}, n, nil
			}
			return &types.AttributeValueMemberNS{Value: ss}, n, nil
		case "BS":
			var bs [][]byte
			if err := json.Unmarshal(v, &bs); err != nil {
				return nil, 0, fmt.Errorf("decode BS: %w", err)
			}
			n := 3
			for _, b := range bs {
				n += len(b)
			}
			return &types.AttributeValueMemberBS{Value: bs}, n, nil
		case "M":
			var mm map[string]json.RawMessage
			if err := json.Unmarshal(v, &mm); err != nil {
				return nil, 0, fmt.Errorf("decode M: %w", err)
			}
			out := make(map[string]types.AttributeValue, len(mm))
			n := 3
			for k, e := range mm {
				av, sz, err := decodeValue(e, depth+1)
				if err != nil {
					return nil, 0, err
				}
				out[k] = av
				n += len(k) + sz + 1
			}
			return &types.AttributeValueMemberM{Value: out}, n, nil
		case "L":
			var ll []json.RawMessage
			if err := json.Unmarshal(v, &ll); err != nil {
				return nil, 0, fmt.Errorf("decode L: %w", err)
			}
			out := make([]types.AttributeValue, 0, len(ll))
			n := 3
			for _, e := range ll {
				av, sz, err := decodeValue(e, depth+1)
				if err != nil {
					return nil, 0, err
				}
				out = append(out, av)
				n += sz + 1
			}
			return &types.AttributeValueMemberL{Value: out}, n, nil
		default:
			return nil, 0, fmt.Errorf("unknown attribute value type %q", typ)
		}
	}
	panic("unreachable")
}

// KeyString serializes the key attributes of it, in the order given, as Server.Items keys them: each key value (an
// S or N value as is, a B value in standard base64) joined with "|".
func KeyString(it Item, keyAttributes []string) (string, error) {
	parts := make([]string, 0, len(keyAttributes))
	for _, name := range keyAttributes {
		av, ok := it[name]
		if !ok {
			return "", fmt.Errorf("one or more parameter values were invalid: missing the key %s in the item", name)
		}
		switch v := av.(type) {
		case *types.AttributeValueMemberS:
			if v.Value == "" {
				return "", fmt.Errorf("one or more parameter values are not valid: the AttributeValue for a key attribute cannot contain an empty string value. Key: %s", name)
			}
			if !utf8.ValidString(v.Value) {
				return "", fmt.Errorf("key %s is not valid UTF-8", name)
			}
			parts = append(parts, v.Value)
		case *types.AttributeValueMemberN:
			parts = append(parts, v.Value)
		case *types.AttributeValueMemberB:
			if len(v.Value) == 0 {
				return "", fmt.Errorf("one or more parameter values are not valid: the AttributeValue for a key attribute cannot contain an empty binary value. Key: %s", name)
			}
			parts = append(parts, base64.StdEncoding.EncodeToString(v.Value))
		default:
			return "", fmt.Errorf("one or more parameter values were invalid: key %s has an invalid attribute value type", name)
		}
	}
	return strings.Join(parts, "|"), nil
}

// sortedTables returns the table names of a RequestItems map in a stable order.
func sortedTables[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
