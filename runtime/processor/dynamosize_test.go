package processor

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The tests' own DynamoDB item size rules: an oracle independent of the processor's size checks, shared by the
// integrity tests and the cost benchmark (exported to the external test package in export_test.go).

// dynamoItemSize is an item's size by DynamoDB's documented rules: per attribute, the UTF-8 bytes of its name plus its
// value's size.
func dynamoItemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + dynamoValueSize(v)
	}
	return n
}

// dynamoValueSize is a value's size: strings by UTF-8 bytes, binaries by raw bytes, numbers by about one byte per two
// significant digits plus one, booleans and nulls one byte, lists and maps 3 bytes plus one per element plus the
// elements (names included for maps), sets the sum of their elements.
func dynamoValueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return dynamoNumberSize(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += dynamoNumberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + dynamoValueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + dynamoValueSize(e)
		}
		return n
	}
	panic(fmt.Sprintf("dynamoValueSize: unknown attribute value %T", v))
}

// dynamoNumberSize is (significant digits + 1)/2 + 1: sign, decimal point and exponent dropped, leading and trailing
// zeros trimmed.
func dynamoNumberSize(s string) int {
	s = strings.TrimLeft(s, "+-")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	s = strings.Replace(s, ".", "", 1)
	s = strings.Trim(s, "0")
	return (len(s)+1)/2 + 1
}
