//go:build !kdp_noexpr

package processor

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
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
)

// exactBinary maps expr's binary operators to the exact functions.
var exactBinary = map[string]string{
	"+": exactAdd, "-": exactSub, "*": exactMul, "/": exactQuo, "%": exactMod, "**": exactPow, "^": exactPow,
	"==": exactEq, "!=": exactNe, "<": exactLt, "<=": exactLe, ">": exactGt, ">=": exactGe, "in": exactIn,
}

// nativeArgs lists expr builtins whose arguments are passed as they are: they format, count or pick values without
// computing with them (string() and toJSON() write a decimal exactly).
var nativeArgs = map[string]bool{"len": true, "string": true, "toJSON": true, "keys": true, "values": true,
	"first": true, "last": true}

// exactOptions are the compile options that make an expression (of source src) exact: the patcher and its functions.
func exactOptions(src string) []expr.Option {
	arith := func(name string, op func(a, b *decimal) (*decimal, error), fallback func(a, b any) any) expr.Option {
		return expr.Function(name, func(params ...any) (any, error) {
			a, b := params[0], params[1]
			x, xok, err := asDecimal(a)
			if err != nil {
				return nil, err
			}
			y, yok, err := asDecimal(b)
			if err != nil {
				return nil, err
			}
			if xok && yok {
				return op(x, y)
			}
			return fallback(nativeOrSelf(a), nativeOrSelf(b)), nil
		}, new(func(any, any) any))
	}
	compare := func(name string, test func(c int) bool, fallback func(a, b any) bool) expr.Option {
		return expr.Function(name, func(params ...any) (any, error) {
			a, b := params[0], params[1]
			x, xok, errx := asDecimal(a)
			y, yok, erry := asDecimal(b)
			if xok && yok {
				if err := firstErr(errx, erry); err != nil {
					return nil, err
				}
				return test(decCmp(x, y)), nil
			}
			return fallback(nativeOrSelf(a), nativeOrSelf(b)), nil
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
		compare(exactEq, func(c int) bool { return c == 0 }, runtime.Equal),
		compare(exactNe, func(c int) bool { return c != 0 }, func(a, b any) bool { return !runtime.Equal(a, b) }),
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
			x, ok, err := asDecimal(needle)
			if err != nil {
				return nil, err
			}
			l, isList := list.([]any)
			if !ok || !isList {
				return runtime.In(nativeOrSelf(needle), list), nil
			}
			for _, e := range l {
				if y, ok, err := asDecimal(e); ok && err == nil && decCmp(x, y) == 0 {
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
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// nativeOrSelf is v as toNative makes it, or v itself when it has no exact native form (expr then reports the
// operation as it would).
func nativeOrSelf(v any) any {
	if n, err := toNative(v); err == nil {
		return n
	}
	return v
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
		if fn, ok := exactBinary[n.Operator]; ok {
			ast.Patch(node, call(fn, n.Left, n.Right))
		} else if n.Operator == ".." {
			n.Left, n.Right = native(n.Left, ".."), native(n.Right, "..")
		}
	case *ast.UnaryNode:
		if n.Operator == "-" {
			ast.Patch(node, call(exactNeg, n.Node))
		}
	case *ast.BuiltinNode:
		if nativeArgs[n.Name] {
			return
		}
		for i, a := range n.Arguments {
			if pred, ok := a.(*ast.PredicateNode); ok {
				pred.Node = native(pred.Node, n.Name+"()")
				continue
			}
			n.Arguments[i] = native(a, n.Name+"()")
		}
	case *ast.MemberNode:
		n.Property = native(n.Property, "an index")
	case *ast.SliceNode:
		if n.From != nil {
			n.From = native(n.From, "a slice")
		}
		if n.To != nil {
			n.To = native(n.To, "a slice")
		}
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

// native wraps a value passed to expr's own code in a call of toNative; constants that are not decimals stay.
func native(n ast.Node, what string) ast.Node {
	switch n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.BoolNode, *ast.NilNode:
		return n
	}
	out := call(exactNative, n, &ast.StringNode{Value: what})
	out.SetLocation(n.Location())
	return out
}
