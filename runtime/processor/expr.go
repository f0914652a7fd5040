//go:build !kdp_noexpr

package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

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

// Visit records the identifiers an expression reads.
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
