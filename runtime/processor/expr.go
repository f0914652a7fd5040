//go:build !kdp_noexpr

package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
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

// exprHelper is a function this package adds to expressions.
type exprHelper struct {
	name string
	fn   func(params ...any) (any, error)
	typ  any // a pointer to the function's signature, for expr's type checker
}

// exprHelpers are the functions expressions can call besides expr's own (builtin.Names).
func exprHelpers() []exprHelper {
	return []exprHelper{
		{"iso8601", func(params ...any) (any, error) {
			return params[0].(time.Time).UTC().Format(time.RFC3339Nano), nil
		}, new(func(time.Time) string)},
		{"unixMillis", func(params ...any) (any, error) {
			return params[0].(time.Time).UnixMilli(), nil
		}, new(func(time.Time) int64)},
		{"unixSeconds", func(params ...any) (any, error) {
			return params[0].(time.Time).Unix(), nil
		}, new(func(time.Time) int64)},
	}
}

// exprOptions are the compile options every expression gets: the environment's declared names, undefined names
// allowed (payload fields are only known per record; they are nil when missing) and the helper functions.
func exprOptions() []expr.Option {
	opts := []expr.Option{
		expr.Env(map[string]any{exprRecordVar: &exprRecord{}, exprPayloadVar: map[string]any{}}),
		expr.AllowUndefinedVariables(),
	}
	for _, h := range exprHelpers() {
		opts = append(opts, expr.Function(h.name, h.fn, h.typ))
	}
	return opts
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
	if err := checkCalls(src, prog); err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
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

// checkCalls rejects calls of anything that is not a function. Undefined variables are allowed (payload fields are
// variables), so expr compiles `uper(Category)` and every record would then fail with "cannot call nil"; a call of an
// unknown name, or of a method on a payload value (JSON values have none), is always a mistake. It names the nearest
// known function.
func checkCalls(src string, prog *vm.Program) error {
	v := &callVisitor{}
	node := prog.Node()
	ast.Walk(&node, v)
	if len(v.bad) == 0 {
		return nil
	}
	slices.SortStableFunc(v.bad, func(a, b *ast.CallNode) int { return a.Location().From - b.Location().From })
	known := knownFunctions()
	problems := make([]string, 0, len(v.bad))
	for _, call := range v.bad {
		line, col := position(src, call.Location().From)
		switch callee := call.Callee.(type) {
		case *ast.MemberNode:
			name := calleeName(callee)
			problems = append(problems, fmt.Sprintf("%s.%s is not a method (payload values have none; nearest known "+
				"function: %s) (%d:%d)", callee.Node.String(), name, nearest(name, known), line, col))
		default:
			name := calleeName(callee)
			problems = append(problems, fmt.Sprintf("unknown function %s (nearest known function: %s) (%d:%d)",
				name, nearest(name, known), line, col))
		}
	}
	return errors.New(strings.Join(problems, "; "))
}

// callVisitor collects the calls whose callee the type checker could not resolve to a function.
type callVisitor struct{ bad []*ast.CallNode }

// Visit records a call of something that is not known to be a function.
func (v *callVisitor) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok {
		return
	}
	if t := call.Callee.Type(); t != nil && t.Kind() == reflect.Func {
		return
	}
	v.bad = append(v.bad, call)
}

// calleeName is the name a call uses: the identifier, or the member's property.
func calleeName(n ast.Node) string {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return x.Value
	case *ast.MemberNode:
		if s, ok := x.Property.(*ast.StringNode); ok {
			return s.Value
		}
	}
	return n.String()
}

// knownFunctions returns the names expressions can call, sorted.
func knownFunctions() []string {
	names := slices.Clone(builtin.Names)
	for _, h := range exprHelpers() {
		names = append(names, h.name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// nearest returns the name in known (sorted) closest to name by edit distance, ignoring case; ties go to the first.
func nearest(name string, known []string) string {
	best, bestDist := "", -1
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// position converts a rune offset into src to a 1-based line and column.
func position(src string, offset int) (line, col int) {
	line, col = 1, 1
	for i, r := range []rune(src) {
		if i >= offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
