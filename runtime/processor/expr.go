//go:build !kdp_noexpr

package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Names expressions see besides the payload's fields.
const (
	exprRecordVar  = "record"  // the record's metadata, exprRecord
	exprPayloadVar = "payload" // the whole payload, for fields shadowed by record/payload or not valid identifiers
)

// exprRecord is the record variable of expressions.
type exprRecord struct {
	EventID        string    `expr:"eventId"`
	PartitionKey   string    `expr:"partitionKey"`
	SequenceNumber string    `expr:"sequenceNumber"`
	ShardID        string    `expr:"shardId"`
	ArrivalTime    time.Time `expr:"arrivalTime"`
	ProcessedAt    time.Time `expr:"processedAt"`
}

// exprOptions are the compile options every expression gets: the environment's declared names, undefined names
// allowed (payload fields are only known per record; they are nil when missing) and the helper functions.
func exprOptions() []expr.Option {
	return []expr.Option{
		expr.Env(map[string]any{exprRecordVar: &exprRecord{}, exprPayloadVar: map[string]any{}}),
		expr.AllowUndefinedVariables(),
		expr.Function("iso8601", func(params ...any) (any, error) {
			return params[0].(time.Time).UTC().Format(time.RFC3339Nano), nil
		}, new(func(time.Time) string)),
		expr.Function("unixMillis", func(params ...any) (any, error) {
			return params[0].(time.Time).UnixMilli(), nil
		}, new(func(time.Time) int64)),
		expr.Function("unixSeconds", func(params ...any) (any, error) {
			return params[0].(time.Time).Unix(), nil
		}, new(func(time.Time) int64)),
	}
}

// compileExpr compiles an expression, returning a one-line error that quotes it.
func compileExpr(src string, asBool bool) (*vm.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("expression is empty")
	}
	opts := exprOptions()
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %s", src, oneLine(err))
	}
	if !asBool {
		if t := prog.Node().Type(); t != nil && !storable(t) {
			return nil, fmt.Errorf("expression %q gives a %s, which has no DynamoDB representation", src, t)
		}
	}
	return prog, nil
}

// storable reports whether a value of type t can (at least sometimes) become an attribute value.
func storable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Struct:
		return t == reflect.TypeOf(time.Time{})
	case reflect.Pointer:
		return t.Elem().Kind() != reflect.Struct && storable(t.Elem())
	}
	return true
}

// oneLine formats an expr error on one line: its message and, when known, the position (line:column).
func oneLine(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		if fe.Line > 0 {
			return fmt.Sprintf("%s (%d:%d)", flatten(fe.Message), fe.Line, fe.Column+1)
		}
		return flatten(fe.Message)
	}
	return flatten(err.Error())
}

func flatten(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// identifiers returns the names an expression reads from its environment, and whether it reads the whole of it
// ($env).
func identifiers(prog *vm.Program) (names []string, all bool) {
	v := &identVisitor{}
	node := prog.Node()
	ast.Walk(&node, v)
	return v.names, v.all
}

type identVisitor struct {
	names []string
	all   bool
}

func (v *identVisitor) Visit(node *ast.Node) {
	id, ok := (*node).(*ast.IdentifierNode)
	if !ok {
		return
	}
	if id.Value == "$env" {
		v.all = true
		return
	}
	for _, n := range v.names {
		if n == id.Value {
			return
		}
	}
	v.names = append(v.names, id.Value)
}

// exprState is the per-evaluation state: the environment map and a reusable VM. Pooled: transforms run on several
// batches at once.
type exprState struct {
	env map[string]any
	rec exprRecord
	vm  vm.VM
}

var exprStates = sync.Pool{New: func() any { return &exprState{env: make(map[string]any, 8)} }}

// toExprValue converts a decoded JSON value for expressions: json.Number becomes int64 when written as an integer
// that fits, else float64; objects and arrays are converted deeply (new maps and slices).
func toExprValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		return exprNumber(string(x))
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = toExprValue(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = toExprValue(e)
		}
		return l
	}
	return v
}

func exprNumber(s string) any {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return s // cannot happen: the decoder only produces valid numbers
	}
	return f
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(time.Duration(0))
)

// fromExprValue converts an expression's result to an attribute value: integers to exact N, floats to N
// (strconv 'g', shortest; NaN and infinities are errors), strings to S, bools to BOOL, nil to NULL, time.Time to S
// (RFC 3339 with nanoseconds, UTC), time.Duration to S ("1h30m0s"), []byte to B, maps with string keys to M, slices
// and arrays to L.
func fromExprValue(v any) (types.AttributeValue, error) {
	switch x := v.(type) {
	case nil:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case string:
		return &types.AttributeValueMemberS{Value: x}, nil
	case bool:
		return &types.AttributeValueMemberBOOL{Value: x}, nil
	case int:
		return &types.AttributeValueMemberN{Value: strconv.Itoa(x)}, nil
	case int64:
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(x, 10)}, nil
	case float64:
		return floatValue(x)
	case time.Time:
		return &types.AttributeValueMemberS{Value: x.UTC().Format(time.RFC3339Nano)}, nil
	case time.Duration:
		return &types.AttributeValueMemberS{Value: x.String()}, nil
	case json.Number:
		return &types.AttributeValueMemberN{Value: string(x)}, nil
	case []byte:
		return &types.AttributeValueMemberB{Value: x}, nil
	case map[string]any:
		m := make(map[string]types.AttributeValue, len(x))
		for k, e := range x {
			av, err := fromExprValue(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = av
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	case []any:
		l := make([]types.AttributeValue, len(x))
		for i, e := range x {
			av, err := fromExprValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			l[i] = av
		}
		return &types.AttributeValueMemberL{Value: l}, nil
	}
	return reflectValue(reflect.ValueOf(v))
}

func floatValue(f float64) (types.AttributeValue, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %v has no DynamoDB representation", f)
	}
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(f, 'g', -1, 64)}, nil
}

// reflectValue converts the less common result types (other numeric kinds, typed slices and maps).
func reflectValue(rv reflect.Value) (types.AttributeValue, error) {
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if rv.Type() == durationType {
			return fromExprValue(time.Duration(rv.Int()))
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
		return fromExprValue(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		l := make([]types.AttributeValue, rv.Len())
		for i := range l {
			av, err := fromExprValue(rv.Index(i).Interface())
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
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
			av, err := fromExprValue(it.Value().Interface())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", it.Key().String(), err)
			}
			m[it.Key().String()] = av
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	}
	if rv.Type() == timeType {
		return fromExprValue(rv.Interface())
	}
	return nil, fmt.Errorf("a %s has no DynamoDB representation", rv.Type())
}
