//go:build !kdp_noexpr

package processor

import (
	"context"
	"fmt"

	"github.com/expr-lang/expr"

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
	return func(ctx context.Context, r *Record, data map[string]any) (any, error) {
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
	}, nil
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
