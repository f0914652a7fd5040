//go:build !kdp_noexpr

package processor

import (
	"context"
	"fmt"
)

// compileAggExpr compiles an aggregate's expression (a group value or a measure's value).
func compileAggExpr(src string) (valueFn, error) {
	prog, err := compileExpr(src, false)
	if err != nil {
		return nil, err
	}
	d := &declarative{}
	d.addVars(prog)
	return func(ctx context.Context, r *Record, data map[string]any) (any, error) {
		st := exprStates.Get().(*exprState)
		defer func() {
			clear(st.env)
			st.rec = exprRecord{}
			exprStates.Put(st)
		}()
		rec := *r
		rec.Data = data
		d.fillEnv(ctx, st, &rec)
		out, err := st.vm.Run(prog, st.env)
		if err != nil {
			return nil, reason("expression failed", fmt.Sprintf("expression %q: %s", src, oneLine(err)))
		}
		return out, nil
	}, nil
}
