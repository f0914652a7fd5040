//go:build !kdp_noexpr

package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	aggr "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
)

// compileAggExpr compiles an aggregate's expression (a group value or a measure's value). It is checked as
// Transform's expressions are (compileExpr: the same errors at synth), then compiled again with exact arithmetic
// (exactOptions): numbers are exact decimals, and a value DynamoDB cannot hold (more than 38 significant digits, out
// of range) or a quotient with no finite decimal form (1/3) fails the record with a reason naming the expression,
// never a rounded value.
func compileAggExpr(src string) (valueFn, error) {
	checked, err := compileExpr(src, false)
	if err != nil {
		return nil, err
	}
	prog, err := expr.Compile(src, append(exprOptions(), exactOptions(src)...)...)
	if err != nil {
		return nil, fmt.Errorf("expression %q: cannot compute exactly: %s", src, oneLine(err))
	}
	d := &declarative{}
	d.addVars(checked)
	fn := func(ctx context.Context, r *Record, data map[string]any) (any, error) {
		st := exprStates.Get().(*exprState)
		defer func() {
			clear(st.env)
			st.rec = exprRecord{}
			exprStates.Put(st)
		}()
		rec := *r
		rec.Data = data
		d.fillEnvWith(ctx, st, &rec, toExactValue)
		out, err := st.vm.Run(prog, st.env)
		if err != nil {
			return nil, reason("expression failed", fmt.Sprintf("expression %q: %s", src, oneLine(err)))
		}
		if x, ok := out.(decimal); ok {
			n, err := aggr.ParseNumber(x.String())
			if err != nil {
				return nil, reason("expression value not storable", fmt.Sprintf("expression %q: its value %s", src, err))
			}
			return n, nil
		}
		return out, nil
	}
	if names, all := identifiers(checked); len(names) == 0 && !all && !callsNow(checked) {
		// It reads nothing from the record: what it gives (or how it fails) is the same for every record.
		if _, err := fn(context.Background(), &Record{}, map[string]any{}); err != nil {
			return nil, fmt.Errorf("it reads nothing from the record and fails on every record: %v", err)
		}
	}
	return fn, nil
}

// toExactValue copies a decoded JSON value for aggregate expressions: objects and arrays deeply (new maps and
// slices), numbers as they are (json.Number, exact; exactOptions computes with them).
func toExactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = toExactValue(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = toExactValue(e)
		}
		return l
	}
	return v
}

// checkGroupExpr refuses a group expression that reads the processing time: now(), record.processedAt, or the record
// or $env as a whole (through which it could). Each delivery of a record has its own processing time, so a
// redelivered record (a retried batch, a duplicate) would land in another group's item, whose fence has not seen
// it, and count twice. The record's other metadata (arrivalTime, eventId, ...) is the same in every delivery.
func checkGroupExpr(src string) error {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil // compileAggExpr reports it
	}
	allowed := map[ast.Node]bool{} // record.x and $env.x naming a field that is the same in every delivery
	var visit groupVisitor = func(node *ast.Node) error {
		switch n := (*node).(type) {
		case *ast.MemberNode:
			id, ok := n.Node.(*ast.IdentifierNode)
			prop, isName := n.Property.(*ast.StringNode)
			if ok && isName && (id.Value == exprRecordVar && prop.Value != "processedAt" || id.Value == "$env" && prop.Value != exprRecordVar) {
				allowed[id] = true
			}
		case *ast.BuiltinNode:
			if n.Name == "now" {
				return errors.New("now() differs between deliveries of a record: a redelivered record would count again in another group")
			}
		}
		return nil
	}
	if err := visit.walk(tree.Node); err != nil {
		return err
	}
	var check groupVisitor = func(node *ast.Node) error {
		if id, ok := (*node).(*ast.IdentifierNode); ok && (id.Value == exprRecordVar || id.Value == "$env") && !allowed[id] {
			return fmt.Errorf("%s.processedAt (or %s as a whole) differs between deliveries of a record: a redelivered record would count again in another group; use record.arrivalTime", exprRecordVar, id.Value)
		}
		return nil
	}
	return check.walk(tree.Node)
}

// groupVisitor is an ast.Visitor keeping the first error its function returns.
type groupVisitor func(node *ast.Node) error

func (v groupVisitor) walk(root ast.Node) error {
	w := &groupWalk{fn: v}
	ast.Walk(&root, w)
	return w.err
}

type groupWalk struct {
	fn  groupVisitor
	err error
}

// Visit implements ast.Visitor.
func (w *groupWalk) Visit(node *ast.Node) {
	if w.err == nil {
		w.err = w.fn(node)
	}
}

// callsNow reports whether prog calls now(), whose value differs from run to run.
func callsNow(prog *vm.Program) bool {
	var visit groupVisitor = func(node *ast.Node) error {
		if b, ok := (*node).(*ast.BuiltinNode); ok && b.Name == "now" {
			return errors.New("now")
		}
		return nil
	}
	return visit.walk(prog.Node()) != nil
}
