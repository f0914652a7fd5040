package dynamostandin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
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
	// typeConditionFailed is a PutItem whose ConditionExpression is false.
	typeConditionFailed = "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
)

// maxItemSize is DynamoDB's item size limit in bytes.
const maxItemSize = 400 * 1024

// wireValue is an attribute value as it travels in a request: exactly one field is set. Decoding a whole request
// into these takes one pass over its JSON.
type wireValue struct {
	S    *string               `json:"S"`
	N    *string               `json:"N"`
	B    *[]byte               `json:"B"`
	BOOL *bool                 `json:"BOOL"`
	NULL *bool                 `json:"NULL"`
	SS   []string              `json:"SS"`
	NS   []string              `json:"NS"`
	BS   [][]byte              `json:"BS"`
	M    map[string]*wireValue `json:"M"`
	L    []*wireValue          `json:"L"`
}

// wireItem is an item as it travels in a request: attribute name to value.
type wireItem map[string]*wireValue

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
	TableName                 string            `json:"TableName"`
	Item                      wireItem          `json:"Item"`
	ConditionExpression       string            `json:"ConditionExpression"`
	ExpressionAttributeNames  map[string]string `json:"ExpressionAttributeNames"`
	ExpressionAttributeValues wireItem          `json:"ExpressionAttributeValues"`
}

type getItemInput struct {
	TableName                string            `json:"TableName"`
	Key                      wireItem          `json:"Key"`
	ConsistentRead           bool              `json:"ConsistentRead"`
	ProjectionExpression     string            `json:"ProjectionExpression"`
	ExpressionAttributeNames map[string]string `json:"ExpressionAttributeNames"`
}

type getItemOutput struct {
	Item wireItem `json:"Item,omitempty"`
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

// Error returns the error's DynamoDB type and message.
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
	for name, v := range w {
		if name == "" {
			return nil, 0, errors.New("one or more parameter values are not valid: an attribute name is empty")
		}
		av, n, err := v.decode(1)
		if err != nil {
			return nil, 0, fmt.Errorf("attribute %q: %w", name, err)
		}
		it[name] = av
		size += len(name) + n
	}
	return it, size, nil
}

// decode converts one attribute value and returns its size.
func (v *wireValue) decode(depth int) (types.AttributeValue, int, error) {
	if depth > 32 {
		return nil, 0, errors.New("nesting levels have exceeded supported limits")
	}
	if v == nil {
		return nil, 0, errors.New("supplied AttributeValue is empty, must contain exactly one of the supported data types")
	}
	set := 0
	for _, ok := range []bool{v.S != nil, v.N != nil, v.B != nil, v.BOOL != nil, v.NULL != nil, v.SS != nil,
		v.NS != nil, v.BS != nil, v.M != nil, v.L != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return nil, 0, fmt.Errorf("supplied AttributeValue has %d data types, must contain exactly one of the supported data types", set)
	}
	switch {
	case v.S != nil:
		return &types.AttributeValueMemberS{Value: *v.S}, len(*v.S), nil
	case v.N != nil:
		s := *v.N
		sig, err := checkNumber(s)
		if err != nil {
			return nil, 0, err
		}
		return &types.AttributeValueMemberN{Value: s}, (sig+1)/2 + 1, nil
	case v.B != nil:
		return &types.AttributeValueMemberB{Value: *v.B}, len(*v.B), nil
	case v.BOOL != nil:
		return &types.AttributeValueMemberBOOL{Value: *v.BOOL}, 1, nil
	case v.NULL != nil:
		if !*v.NULL {
			return nil, 0, errors.New("one or more parameter values were invalid: null attribute value types must have the value of true")
		}
		return &types.AttributeValueMemberNULL{Value: true}, 1, nil
	case v.SS != nil:
		if err := checkSet(v.SS, func(s string) (string, error) { return s, nil }); err != nil {
			return nil, 0, err
		}
		return &types.AttributeValueMemberSS{Value: v.SS}, setSize(v.SS), nil
	case v.NS != nil:
		if err := checkSet(v.NS, func(s string) (string, error) {
			if _, err := checkNumber(s); err != nil {
				return "", err
			}
			return numberKey(s), nil
		}); err != nil {
			return nil, 0, err
		}
		return &types.AttributeValueMemberNS{Value: v.NS}, setSize(v.NS), nil
	case v.BS != nil:
		if err := checkSet(v.BS, func(b []byte) (string, error) { return string(b), nil }); err != nil {
			return nil, 0, err
		}
		n := 3
		for _, b := range v.BS {
			n += len(b)
		}
		return &types.AttributeValueMemberBS{Value: v.BS}, n, nil
	case v.M != nil:
		out := make(map[string]types.AttributeValue, len(v.M))
		n := 3
		for k, e := range v.M {
			av, sz, err := e.decode(depth + 1)
			if err != nil {
				return nil, 0, err
			}
			out[k] = av
			n += len(k) + sz + 1
		}
		return &types.AttributeValueMemberM{Value: out}, n, nil
	default:
		out := make([]types.AttributeValue, 0, len(v.L))
		n := 3
		for _, e := range v.L {
			av, sz, err := e.decode(depth + 1)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, av)
			n += sz + 1
		}
		return &types.AttributeValueMemberL{Value: out}, n, nil
	}
}

func setSize(ss []string) int {
	n := 3
	for _, s := range ss {
		n += len(s)
	}
	return n
}

// KeyString serializes the key attributes of it, in the order given, as Server.Items keys them: each key value (an
// S value as is, an N value in one canonical decimal form ("1" for "1.0", "10e-1" and "0.1e1"; "0.<digits>e<n>" for
// very large or small magnitudes), so that numbers DynamoDB stores as one are one key, a B value in standard base64)
// joined with "|".
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
			if _, err := checkNumber(v.Value); err != nil {
				return "", err
			}
			parts = append(parts, numberKey(v.Value))
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

// numberPattern is DynamoDB's number syntax: an optional minus, digits with an optional fraction, an optional
// exponent.
var numberPattern = regexp.MustCompile(`^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$`)

// checkNumber checks a number as DynamoDB does (at most 38 significant digits, magnitude within 1E-130 and
// 9.9999999999999999999999999999999999999E+125, or zero) and returns its count of significant digits.
func checkNumber(s string) (int, error) {
	if !numberPattern.MatchString(s) {
		return 0, fmt.Errorf("the parameter cannot be converted to a numeric value: %s", s)
	}
	mant, exp, _ := strings.Cut(strings.ToLower(strings.TrimPrefix(s, "-")), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return 0, nil // zero
	}
	// The decimal exponent of the first significant digit.
	lead := len(intPart) - len(strings.TrimLeft(intPart, "0"))
	e := len(intPart) - lead - 1
	if lead == len(intPart) { // the integer part is all zeros: count the fraction's leading zeros
		e = -(len(frac) - len(strings.TrimLeft(frac, "0"))) - 1
	}
	if exp != "" {
		x, err := strconv.Atoi(exp)
		if err != nil || x > 1000000 || x < -1000000 {
			return 0, fmt.Errorf("number overflow. Attempting to store a number with magnitude larger than supported range")
		}
		e += x
	}
	sig := len(strings.TrimRight(digits, "0"))
	switch {
	case sig > 38:
		return 0, fmt.Errorf("attempting to store more than 38 significant digits in a Number")
	case e > 125:
		return 0, fmt.Errorf("number overflow. Attempting to store a number with magnitude larger than supported range")
	case e < -130:
		return 0, fmt.Errorf("number underflow. Attempting to store a number with magnitude smaller than supported range")
	}
	return sig, nil
}

// decimal is a number as sign, significant digits (no leading or trailing zeros; empty for zero) and the decimal
// exponent of the first of them.
type decimal struct {
	neg    bool
	digits string
	exp    int
}

// parseDecimal reads a number already checked by checkNumber.
func parseDecimal(s string) decimal {
	neg := strings.HasPrefix(s, "-")
	mant, exp, _ := strings.Cut(strings.ToLower(strings.TrimPrefix(s, "-")), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	all := intPart + frac
	lead := len(all) - len(strings.TrimLeft(all, "0"))
	digits := strings.TrimRight(all[lead:], "0")
	if digits == "" {
		return decimal{}
	}
	x, _ := strconv.Atoi(exp)
	return decimal{neg: neg, digits: digits, exp: len(intPart) - lead - 1 + x}
}

// compareDecimals orders two numbers by value.
func compareDecimals(a, b decimal) int {
	sign := func(d decimal) int {
		switch {
		case d.digits == "":
			return 0
		case d.neg:
			return -1
		}
		return 1
	}
	sa, sb := sign(a), sign(b)
	if sa != sb || sa == 0 {
		return sa - sb
	}
	c := 0
	switch {
	case a.exp != b.exp:
		c = a.exp - b.exp
	default:
		c = strings.Compare(a.digits, b.digits)
	}
	if sa < 0 {
		c = -c
	}
	return c
}

// numberKey returns a string equal for numbers of equal value (checked by checkNumber first).
func numberKey(s string) string {
	d := parseDecimal(s)
	if d.digits == "" {
		return "0"
	}
	sign := ""
	if d.neg {
		sign = "-"
	}
	switch {
	case d.exp < -40 || d.exp > 80:
		return sign + "0." + d.digits + "e" + strconv.Itoa(d.exp+1)
	case d.exp < 0:
		return sign + "0." + strings.Repeat("0", -d.exp-1) + d.digits
	case len(d.digits) <= d.exp+1:
		return sign + d.digits + strings.Repeat("0", d.exp+1-len(d.digits))
	}
	return sign + d.digits[:d.exp+1] + "." + d.digits[d.exp+1:]
}

// checkSet rejects an empty set and one holding duplicates (compared by key).
func checkSet[E any](members []E, key func(E) (string, error)) error {
	if len(members) == 0 {
		return errors.New("one or more parameter values were invalid: an set may not be empty")
	}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		k, err := key(m)
		if err != nil {
			return err
		}
		if seen[k] {
			return errors.New("one or more parameter values were invalid: input collection contains duplicates")
		}
		seen[k] = true
	}
	return nil
}

// encodeItem converts an item to its wire form.
func encodeItem(it Item) wireItem {
	out := make(wireItem, len(it))
	for k, v := range it {
		out[k] = encodeValue(v)
	}
	return out
}

func encodeValue(v types.AttributeValue) *wireValue {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return &wireValue{S: &x.Value}
	case *types.AttributeValueMemberN:
		return &wireValue{N: &x.Value}
	case *types.AttributeValueMemberB:
		return &wireValue{B: &x.Value}
	case *types.AttributeValueMemberBOOL:
		return &wireValue{BOOL: &x.Value}
	case *types.AttributeValueMemberNULL:
		return &wireValue{NULL: &x.Value}
	case *types.AttributeValueMemberSS:
		return &wireValue{SS: x.Value}
	case *types.AttributeValueMemberNS:
		return &wireValue{NS: x.Value}
	case *types.AttributeValueMemberBS:
		return &wireValue{BS: x.Value}
	case *types.AttributeValueMemberM:
		m := make(map[string]*wireValue, len(x.Value))
		for k, e := range x.Value {
			m[k] = encodeValue(e)
		}
		return &wireValue{M: m}
	case *types.AttributeValueMemberL:
		l := make([]*wireValue, len(x.Value))
		for i, e := range x.Value {
			l[i] = encodeValue(e)
		}
		return &wireValue{L: l}
	}
	return &wireValue{}
}
