//go:build !kdp_noexpr

package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
)

// Aggregate expressions compute exactly: exactPatcher rewrites their arithmetic and comparisons into calls of the
// functions below, which compute in exact decimals when both sides are numbers (payload numbers, which reach
// aggregate expressions as json.Number, integers, float literals read from their source text, and float64 results of
// expr's functions read as their shortest decimal form) and otherwise do what expr does. Values passed to expr's own
// functions become int or float64 only when that is exact (toNative). Transform's expressions are not patched.

// Names of the functions exactPatcher calls; '$' keeps them apart from anything an expression can name.
const (
	exactAdd    = "$kdpAdd"
	exactSub    = "$kdpSub"
	exactMul    = "$kdpMul"
	exactQuo    = "$kdpQuo"
	exactMod    = "$kdpMod"
	exactPow    = "$kdpPow"
	exactNeg    = "$kdpNeg"
	exactEq     = "$kdpEq"
	exactNe     = "$kdpNe"
	exactLt     = "$kdpLt"
	exactLe     = "$kdpLe"
	exactGt     = "$kdpGt"
	exactGe     = "$kdpGe"
	exactIn     = "$kdpIn"
	exactNative = "$kdpNative"
	exactScalar = "$kdpScalar"
	exactText   = "$kdpText"
	exactSum    = "$kdpSum"
	exactMean   = "$kdpMean"
	exactMedian = "$kdpMedian"
	exactAbs    = "$kdpAbs"
	exactInt    = "$kdpInt"
	exactJSON   = "$kdpFromJSON"
	exactKeys   = "$kdpKeys"
	exactValues = "$kdpValues"
	exactPairs  = "$kdpToPairs"
	exactFloat  = "$kdpFloat"
	exactCeil   = "$kdpCeil"
	exactFloor  = "$kdpFloor"
	exactRound  = "$kdpRound"
)

// exactBinary returns the exact function replacing expr's binary operator op, if any.
func exactBinary(op string) (string, bool) {
	switch op {
	case "+":
		return exactAdd, true
	case "-":
		return exactSub, true
	case "*":
		return exactMul, true
	case "/":
		return exactQuo, true
	case "%":
		return exactMod, true
	case "**", "^":
		return exactPow, true
	case "==":
		return exactEq, true
	case "!=":
		return exactNe, true
	case "<":
		return exactLt, true
	case "<=":
		return exactLe, true
	case ">":
		return exactGt, true
	case ">=":
		return exactGe, true
	case "in":
		return exactIn, true
	}
	return "", false
}

// builtinArgs returns the function that passes the arguments of expr's builtin name (exactPatcher): most get every
// argument converted by toNative, deeply (exactNative); those that take arrays without computing with their
// elements get only numbers passed directly, such as an index or a count (exactScalar: the arrays pass as they are,
// and their elements reach predicates and operators, which are exact); string and toJSON get computed numbers as
// json.Number, which they write exactly (exactText). sum, mean and median are replaced by exact ones (exactBuiltin).
func builtinArgs(name string) string {
	switch name {
	case "string", "toJSON":
		return exactText
	case "len", "keys", "values", "first", "last", "get", "take", "reverse", "concat", "flatten", "toPairs",
		"fromPairs", "filter", "map", "reduce", "all", "any", "none", "one", "count", "find", "findIndex", "findLast",
		"findLastIndex":
		return exactScalar
	}
	return exactNative
}

// keyPredicate reports whether builtin name's predicate gives keys that expr's code compares or hashes.
func keyPredicate(name string) bool { return name == "sortBy" || name == "groupBy" }

// exactBuiltin returns the exact function replacing expr's builtin name, if any.
func exactBuiltin(name string) (string, bool) {
	switch name {
	case "sum":
		return exactSum, true
	case "mean":
		return exactMean, true
	case "median":
		return exactMedian, true
	case "abs":
		return exactAbs, true
	case "int":
		return exactInt, true
	case "fromJSON":
		return exactJSON, true
	case "keys":
		return exactKeys, true
	case "values":
		return exactValues, true
	case "toPairs":
		return exactPairs, true
	case "float":
		return exactFloat, true
	case "ceil":
		return exactCeil, true
	case "floor":
		return exactFloor, true
	case "round":
		return exactRound, true
	}
	return "", false
}

// decimalPair converts an operator's operands to exact decimals: ok is false (and nothing converted) unless both
// are numbers, for the operator's own semantics to apply.
func decimalPair(a, b any) (x, y decimal, ok bool, err error) {
	if !isNumber(a) || !isNumber(b) {
		return x, y, false, nil
	}
	if x, _, err = asDecimal(a); err != nil {
		return x, y, true, err
	}
	y, _, err = asDecimal(b)
	return x, y, true, err
}

// exactOptions are the compile options that make an expression (of source src) exact: the patcher and its functions.
func exactOptions(src string) []expr.Option {
	arith := func(name string, op func(a, b decimal) (decimal, error), fallback func(a, b any) any) expr.Option {
		return expr.Function(name, func(params ...any) (any, error) {
			x, y, ok, err := decimalPair(params[0], params[1])
			if err != nil {
				return nil, err
			}
			if !ok {
				return fallback(nativeOrSelf(params[0]), nativeOrSelf(params[1])), nil
			}
			return op(x, y)
		}, new(func(any, any) any))
	}
	compare := func(name string, test func(c int) bool, fallback func(a, b any) bool) expr.Option {
		return expr.Function(name, func(params ...any) (any, error) {
			x, y, ok, err := decimalPair(params[0], params[1])
			if err != nil {
				return nil, err
			}
			if !ok {
				return fallback(nativeOrSelf(params[0]), nativeOrSelf(params[1])), nil
			}
			return test(decCmp(x, y)), nil
		}, new(func(any, any) bool))
	}
	return []expr.Option{
		expr.Patch(&exactPatcher{src: []rune(src)}),
		arith(exactAdd, decAdd, runtime.Add),
		arith(exactSub, decSub, runtime.Subtract),
		arith(exactMul, decMul, runtime.Multiply),
		arith(exactQuo, decQuo, func(a, b any) any { return runtime.Divide(a, b) }),
		arith(exactMod, decMod, func(a, b any) any { return runtime.Modulo(a, b) }),
		arith(exactPow, decPow, func(a, b any) any { return runtime.Exponent(a, b) }),
		compare(exactEq, func(c int) bool { return c == 0 }, exactEqual),
		compare(exactNe, func(c int) bool { return c != 0 }, func(a, b any) bool { return !exactEqual(a, b) }),
		compare(exactLt, func(c int) bool { return c < 0 }, runtime.Less),
		compare(exactLe, func(c int) bool { return c <= 0 }, runtime.LessOrEqual),
		compare(exactGt, func(c int) bool { return c > 0 }, runtime.More),
		compare(exactGe, func(c int) bool { return c >= 0 }, runtime.MoreOrEqual),
		expr.Function(exactNeg, func(params ...any) (any, error) {
			x, ok, err := asDecimal(params[0])
			if err != nil {
				return nil, err
			}
			if ok {
				return decNeg(x), nil
			}
			return runtime.Negate(params[0]), nil
		}, new(func(any) any)),
		expr.Function(exactIn, func(params ...any) (any, error) {
			needle, list := params[0], params[1]
			lv := reflect.ValueOf(list)
			if list == nil || lv.Kind() != reflect.Slice && lv.Kind() != reflect.Array {
				return runtime.In(nativeOrSelf(needle), list), nil
			}
			if !isNumber(needle) { // arrays and objects holding numbers compare them by value
				for i := range lv.Len() {
					if exactEqual(needle, lv.Index(i).Interface()) {
						return true, nil
					}
				}
				return false, nil
			}
			x, _, err := asDecimal(needle)
			if err != nil {
				return nil, err
			}
			for i := range lv.Len() {
				if y, ok, err := asDecimal(lv.Index(i).Interface()); ok && err == nil && decCmp(x, y) == 0 {
					return true, nil
				}
			}
			return false, nil
		}, new(func(any, any) bool)),
		expr.Function(exactNative, func(params ...any) (any, error) {
			v, err := toNative(params[0])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", params[1], err)
			}
			return v, nil
		}, new(func(any, string) any)),
		expr.Function(exactScalar, func(params ...any) (any, error) {
			switch params[0].(type) {
			case []any, map[string]any:
				return params[0], nil
			}
			v, err := toNative(params[0])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", params[1], err)
			}
			return v, nil
		}, new(func(any, string) any)),
		expr.Function(exactText, func(params ...any) (any, error) {
			return decimalsAsText(params[0]), nil
		}, new(func(any, string) any)),
		expr.Function(exactSum, func(params ...any) (any, error) {
			nums, err := numbersOf("sum()", params[:1])
			if err != nil {
				return nil, err
			}
			return sumOf(nums)
		}),
		expr.Function(exactMean, func(params ...any) (any, error) {
			nums, err := numbersOf("mean()", params)
			if err != nil || len(nums) == 0 {
				return 0.0, err
			}
			sum, err := sumOf(nums)
			if err != nil {
				return nil, err
			}
			n, _, _ := asDecimal(len(nums))
			q, err := decQuo(sum, n)
			if err != nil {
				return nil, fmt.Errorf("mean(): %w", err)
			}
			return q, nil
		}),
		expr.Function(exactAbs, func(params ...any) (any, error) {
			x, ok, err := asDecimal(params[0])
			if err != nil {
				return nil, fmt.Errorf("abs(): %w", err)
			}
			if !ok {
				return builtin.Abs(params[0]), nil
			}
			if x.coef.Sign() < 0 {
				return decNeg(x), nil
			}
			return x, nil
		}),
		expr.Function(exactInt, func(params ...any) (any, error) {
			x, ok, err := asDecimal(params[0])
			if err != nil {
				return nil, fmt.Errorf("int(): %w", err)
			}
			if !ok {
				return builtin.Int(params[0]), nil
			}
			if x.digits()+x.exp > 19 { // beyond an int64, without computing its digits
				return nil, fmt.Errorf("int(): the integral part of %s is beyond an int's range", x)
			}
			i := decTrunc(x)
			if !i.IsInt64() {
				return nil, fmt.Errorf("int(): the integral part of %s is beyond an int's range", x)
			}
			return int(i.Int64()), nil
		}),
		expr.Function(exactJSON, func(params ...any) (any, error) {
			s, ok := params[0].(string)
			if !ok {
				return nil, fmt.Errorf("fromJSON(): %s is not a string", describeValue(params[0]))
			}
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber() // numbers as written: exact
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("fromJSON(): %w", err)
			}
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				return nil, errors.New("fromJSON(): invalid JSON: more after the value")
			}
			return v, nil
		}),
		expr.Function(exactFloat, func(params ...any) (any, error) {
			x, ok, err := asDecimal(params[0])
			if err != nil {
				return nil, fmt.Errorf("float(): %w", err)
			}
			if !ok {
				s, isText := params[0].(string)
				if !isText {
					return builtin.Float(params[0]), nil
				}
				if x, err = parseExactNumber(s); err != nil {
					return builtin.Float(params[0]), nil // expr's own reading (and error) of a text that is no decimal
				}
			}
			if f, ok := exactFloat64(x); ok {
				return f, nil
			}
			return nil, fmt.Errorf("float(): the number %s has no exact float64 form", x)
		}),
		integral(exactCeil, "ceil()", decCeil),
		integral(exactFloor, "floor()", decFloor),
		integral(exactRound, "round()", decRound),
		mapEntries(exactKeys, "keys", func(k, _ any) any { return k }),
		mapEntries(exactValues, "values", func(_, v any) any { return v }),
		mapEntries(exactPairs, "pairs", func(k, v any) any { return []any{k, v} }),
		expr.Function(exactMedian, func(params ...any) (any, error) {
			nums, err := numbersOf("median()", params)
			if err != nil || len(nums) == 0 {
				return 0.0, err
			}
			slices.SortFunc(nums, decCmp)
			if len(nums)%2 == 1 {
				return nums[len(nums)/2], nil
			}
			sum, err := decAdd(nums[len(nums)/2-1], nums[len(nums)/2])
			if err != nil {
				return nil, err
			}
			two, _, _ := asDecimal(2)
			return decQuo(sum, two)
		}),
	}
}

// integral is ceil, floor or round (op, exact): a float64 as expr gives, or the exact decimal when float64 cannot
// hold it (an integer beyond 2^53); anything but a number goes to expr's own function (and its error).
func integral(name, fn string, op func(decimal) decimal) expr.Option {
	return expr.Function(name, func(params ...any) (any, error) {
		x, ok, err := asDecimal(params[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn, err)
		}
		if !ok {
			switch fn {
			case "ceil()":
				return builtin.Ceil(params[0]), nil
			case "floor()":
				return builtin.Floor(params[0]), nil
			}
			return builtin.Round(params[0]), nil
		}
		r := op(x)
		if f, ok := exactFloat64(r); ok {
			return f, nil
		}
		return r, nil
	})
}

// exactFloat64 returns d as a float64 when that holds it exactly.
func exactFloat64(d decimal) (float64, bool) {
	f, err := strconv.ParseFloat(d.String(), 64)
	if err != nil {
		return 0, false
	}
	back, _, err := decimalFloat(f, 64)
	return f, err == nil && decCmp(back, d) == 0
}

// mapEntries is keys, values or toPairs (entry makes one element from a key and its value) in the order of the
// keys, not Go's random map order: a group computed from it must be the same in every delivery of a record, or a
// redelivered record would count again in another group.
func mapEntries(name, what string, entry func(k, v any) any) expr.Option {
	return expr.Function(name, func(params ...any) (any, error) {
		m := reflect.ValueOf(params[0])
		if m.Kind() != reflect.Map {
			return nil, fmt.Errorf("cannot get %s from %s", what, m.Kind())
		}
		keys := m.MapKeys()
		text := make([]string, len(keys)) // a key's sort text: its type and value (a payload's keys are strings)
		for i, k := range keys {
			text[i] = fmt.Sprintf("%T\x00%v", k.Interface(), k.Interface())
		}
		idx := make([]int, len(keys))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return strings.Compare(text[a], text[b]) })
		out := make([]any, len(keys))
		for i, j := range idx {
			out[i] = entry(keys[j].Interface(), m.MapIndex(keys[j]).Interface())
		}
		return out, nil
	})
}

// numbersOf collects the numbers in args, arrays flattened (as expr's mean and median take them).
func numbersOf(fn string, args []any) ([]decimal, error) {
	var out []decimal
	for _, a := range args {
		if v := reflect.ValueOf(a); a != nil && (v.Kind() == reflect.Slice || v.Kind() == reflect.Array) {
			elems := make([]any, v.Len())
			for i := range elems {
				elems[i] = v.Index(i).Interface()
			}
			more, err := numbersOf(fn, elems)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
			continue
		}
		d, ok, err := asDecimal(a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn, err)
		}
		if !ok {
			return nil, fmt.Errorf("%s: %s is not a number", fn, describeValue(a))
		}
		out = append(out, d)
	}
	return out, nil
}

func sumOf(nums []decimal) (decimal, error) {
	sum := zeroDecimal
	for _, d := range nums {
		var err error
		if sum, err = decAdd(sum, d); err != nil {
			return decimal{}, err
		}
	}
	return sum, nil
}

// nativeOrSelf is a computed number as toNative makes it (or itself when it has no exact native form), for expr's
// own operators: they then work, or report the operation with a type users know. Anything else passes as it is.
func nativeOrSelf(v any) any {
	switch v.(type) {
	case decimal, json.Number: // a payload number too: expr's operators know int and float64, not json.Number
		if n, err := toNative(v); err == nil {
			return n
		}
	}
	return v
}

// exactEqual is == for values that are not both numbers: arrays ([]any) and objects (map[string]any) compare
// element by element, their numbers by value (as 1.5 == 1.50); anything else as expr compares it.
func exactEqual(a, b any) bool {
	if isNumber(a) && isNumber(b) {
		x, _, errX := asDecimal(a)
		y, _, errY := asDecimal(b)
		if errX == nil && errY == nil {
			return decCmp(x, y) == 0
		}
	}
	switch x := a.(type) {
	case []any:
		if y, ok := b.([]any); ok {
			if len(x) != len(y) {
				return false
			}
			for i := range x {
				if !exactEqual(x[i], y[i]) {
					return false
				}
			}
			return true
		}
	case map[string]any:
		if y, ok := b.(map[string]any); ok {
			if len(x) != len(y) {
				return false
			}
			for k, e := range x {
				if f, ok := y[k]; !ok || !exactEqual(e, f) {
					return false
				}
			}
			return true
		}
	}
	return runtime.Equal(nativeOrSelf(a), nativeOrSelf(b))
}

// isNumber reports whether v is a number the exact functions compute with (see asDecimal), without parsing it.
func isNumber(v any) bool {
	switch v.(type) {
	case decimal, json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return true
	}
	return false
}

// exactPatcher rewrites an expression's tree for exact arithmetic (see exactOptions).
type exactPatcher struct {
	src []rune
}

// Visit rewrites one node; ast.Walk visits children first, so the calls it makes are not visited again.
func (p *exactPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.FloatNode:
		ast.Patch(node, &ast.ConstantNode{Value: p.literal(n)})
	case *ast.BinaryNode:
		if fn, ok := exactBinary(n.Operator); ok {
			ast.Patch(node, call(fn, n.Left, n.Right))
		} else if n.Operator == ".." {
			n.Left, n.Right = wrap(exactScalar, n.Left, ".."), wrap(exactScalar, n.Right, "..")
		}
	case *ast.UnaryNode:
		if n.Operator == "-" {
			ast.Patch(node, call(exactNeg, n.Node))
		}
	case *ast.BuiltinNode:
		p.builtin(node, n)
	case *ast.CallNode: // a method (date(s).AddDate(0, 0, -1)) or a helper: Go code taking int, float64, time.Time...
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && strings.HasPrefix(id.Value, "$kdp") {
			return // one of ours (not visited, as ast.Walk visits children first; kept safe)
		}
		for i, a := range n.Arguments {
			n.Arguments[i] = wrap(exactNative, a, "a call's argument")
		}
	case *ast.MemberNode:
		n.Property = wrap(exactScalar, n.Property, "an index")
	case *ast.SliceNode:
		if n.From != nil {
			n.From = wrap(exactScalar, n.From, "a slice")
		}
		if n.To != nil {
			n.To = wrap(exactScalar, n.To, "a slice")
		}
	}
}

// builtin rewrites a call of one of expr's builtins (see builtinArgs).
func (p *exactPatcher) builtin(node *ast.Node, n *ast.BuiltinNode) {
	if fn, ok := exactBuiltin(n.Name); ok {
		args := n.Arguments
		if len(args) == 2 && n.Name == "sum" { // sum(array, predicate) is the sum of map(array, predicate)
			args = []ast.Node{&ast.BuiltinNode{Name: "map", Arguments: args}}
		}
		ast.Patch(node, call(fn, args...))
		return
	}
	fn := builtinArgs(n.Name)
	for i, a := range n.Arguments {
		if pred, ok := a.(*ast.PredicateNode); ok {
			if keyPredicate(n.Name) {
				pred.Node = wrap(exactNative, pred.Node, n.Name+"()")
			}
			continue
		}
		n.Arguments[i] = wrap(fn, a, n.Name+"()")
	}
}

// literal returns a float literal's exact value, read from its source text (expr's parser keeps a float64).
func (p *exactPatcher) literal(n *ast.FloatNode) any {
	loc := n.Location()
	if loc.From >= 0 && loc.From < loc.To && loc.To <= len(p.src) {
		text := strings.ReplaceAll(string(p.src[loc.From:loc.To]), "_", "")
		if f, err := strconv.ParseFloat(text, 64); err == nil && f == n.Value { // the text is this literal's
			if d, err := parseExactNumber(text); err == nil {
				return d
			}
		}
	}
	if d, _, err := decimalFloat(n.Value, 64); err == nil {
		return d
	}
	return n.Value
}

func call(name string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: args}
}

// wrap passes a value to expr's own code through fn (exactNative or exactScalar); constants that are not decimals
// pass as they are.
func wrap(fn string, n ast.Node, what string) ast.Node {
	switch n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.BoolNode, *ast.NilNode:
		return n
	}
	out := call(fn, n, &ast.StringNode{Value: what})
	out.SetLocation(n.Location())
	return out
}

// decimalsAsText replaces the computed numbers in v (deeply) by their exact text, as json.Number.
func decimalsAsText(v any) any {
	switch x := v.(type) {
	case decimal:
		return json.Number(x.String())
	case json.Number: // a payload number: its exact value's text, as for a computed one (2.50 and 25e-1 are 2.5)
		if d, err := parseExactNumber(string(x)); err == nil {
			return json.Number(d.String())
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = decimalsAsText(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = decimalsAsText(e)
		}
		return out
	}
	return v
}
