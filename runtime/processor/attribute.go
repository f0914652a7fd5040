package processor

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ToAttributeValue converts a Go value to a DynamoDB attribute value. For a decoded JSON document (as in
// Record.Data): string to S, json.Number to N (exact), bool to BOOL, nil to NULL, map[string]any to M, []any to L.
// It also takes Go integers (exact N) and floats (N, shortest form; NaN and infinities are errors), []byte (B),
// time.Time (S, RFC 3339 in UTC), time.Duration (S, as Duration.String), pointers, typed slices and maps with string
// keys, and an attribute value as is, which covers what expressions return. Other types are an error.
func ToAttributeValue(v any) (types.AttributeValue, error) {
	switch x := v.(type) {
	case string:
		return &types.AttributeValueMemberS{Value: x}, nil
	case json.Number:
		return &types.AttributeValueMemberN{Value: string(x)}, nil
	case bool:
		return &types.AttributeValueMemberBOOL{Value: x}, nil
	case nil:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case map[string]any:
		m := make(map[string]types.AttributeValue, len(x))
		for k, e := range x {
			av, err := ToAttributeValue(e)
			if err != nil {
				return nil, prefixReason(pathName(k), err)
			}
			m[k] = av
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	case []any:
		l := make([]types.AttributeValue, len(x))
		for i, e := range x {
			av, err := ToAttributeValue(e)
			if err != nil {
				return nil, prefixReason("["+strconv.Itoa(i)+"]", err)
			}
			l[i] = av
		}
		return &types.AttributeValueMemberL{Value: l}, nil
	case int:
		return &types.AttributeValueMemberN{Value: strconv.Itoa(x)}, nil
	case int64:
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(x, 10)}, nil
	case float64:
		return floatValue(x)
	case []byte:
		return &types.AttributeValueMemberB{Value: x}, nil
	case time.Time:
		return &types.AttributeValueMemberS{Value: x.UTC().Format(time.RFC3339Nano)}, nil
	case time.Duration:
		return &types.AttributeValueMemberS{Value: x.String()}, nil
	case types.AttributeValue:
		return x, nil
	}
	return reflectValue(reflect.ValueOf(v))
}

func floatValue(f float64) (types.AttributeValue, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, safeReason(fmt.Sprintf("number %v has no DynamoDB representation", f))
	}
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(f, 'g', -1, 64)}, nil
}

// reflectValue converts the less common types: other numeric kinds, pointers, typed slices and maps.
func reflectValue(rv reflect.Value) (types.AttributeValue, error) {
	if !rv.IsValid() {
		return &types.AttributeValueMemberNULL{Value: true}, nil
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if rv.Type() == reflect.TypeFor[time.Duration]() {
			return ToAttributeValue(time.Duration(rv.Int()))
		}
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(rv.Int(), 10)}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return &types.AttributeValueMemberN{Value: strconv.FormatUint(rv.Uint(), 10)}, nil
	case reflect.Float32, reflect.Float64:
		return floatValue(rv.Float())
	case reflect.String:
		return &types.AttributeValueMemberS{Value: rv.String()}, nil
	case reflect.Bool:
		return &types.AttributeValueMemberBOOL{Value: rv.Bool()}, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return &types.AttributeValueMemberNULL{Value: true}, nil
		}
		return ToAttributeValue(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		l := make([]types.AttributeValue, rv.Len())
		for i := range l {
			av, err := ToAttributeValue(rv.Index(i).Interface())
			if err != nil {
				return nil, prefixReason("["+strconv.Itoa(i)+"]", err)
			}
			l[i] = av
		}
		return &types.AttributeValueMemberL{Value: l}, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		m := make(map[string]types.AttributeValue, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			av, err := ToAttributeValue(it.Value().Interface())
			if err != nil {
				return nil, prefixReason(pathName(it.Key().String()), err)
			}
			m[it.Key().String()] = av
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	}
	if rv.Type() == reflect.TypeFor[time.Time]() {
		return ToAttributeValue(rv.Interface())
	}
	return nil, safeReason(fmt.Sprintf("a %s has no DynamoDB representation", rv.Type()))
}
