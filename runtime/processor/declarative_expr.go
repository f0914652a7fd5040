//go:build !kdp_noexpr

package processor

import (
	"context"
	"fmt"
	"slices"

	"github.com/expr-lang/expr/vm"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// exprParts is the part of a compiled TransformConfig that needs expressions or the JSON Schema library. Building
// with -tags kdp_noexpr replaces it (declarative_noexpr.go) and leaves both libraries out.
type exprParts struct {
	computed []computedOp
	filter   *vm.Program
	schema   *jsonschema.Schema
	fast     *fastSchema // schema's allocation-free pre-check, nil if it uses keywords fastSchema does not handle

	exprs   bool     // there is a filter or a computed attribute
	vars    []string // payload fields the expressions read
	allVars bool     // an expression reads $env: every field is a variable
	payload bool     // an expression reads the payload variable
}

type computedOp struct {
	name  string
	label string // "transform.computed[i] (name)"
	prog  *vm.Program
	bind  bool // later expressions see the result under name
}

// compileExprParts compiles t's computed attributes, filter and schema into d, reporting problems through fail;
// claim reserves attribute names as compileTransform does.
func (d *declarative) compileExprParts(t *TransformConfig, claim func(prefix, name, as string), fail func(format string, args ...any)) {
	// Computed attributes.
	for i, ca := range t.Computed {
		prefix := fmt.Sprintf("transform.computed[%d] (%s)", i, ca.Name)
		if ca.Name == "" {
			fail("%s: name is empty", prefix)
		} else {
			claim(prefix, ca.Name, "computed by "+prefix)
		}
		prog, err := compileExpr(ca.Expression, false)
		if err != nil {
			fail("%s: %v", prefix, err)
			continue
		}
		d.computed = append(d.computed, computedOp{name: ca.Name, label: prefix, prog: prog,
			bind: ca.Name != exprRecordVar && ca.Name != exprPayloadVar})
		d.addVars(prog)
	}

	// Filter.
	if t.Filter != "" {
		prog, err := compileExpr(t.Filter, true)
		if err != nil {
			fail("transform.filter: %v", err)
		} else {
			d.filter = prog
			d.addVars(prog)
		}
	}

	// Schema.
	if t.hasSchema() {
		sch, err := compileSchema(t.Schema)
		if err != nil {
			fail("transform.schema: %v", err)
		}
		d.schema = sch
		if sch != nil {
			d.fast = newFastSchema(sch)
		}
	}
	d.exprs = d.filter != nil || len(d.computed) > 0
}

// addVars records the payload fields prog reads.
func (d *declarative) addVars(prog *vm.Program) {
	names, all := identifiers(prog)
	d.allVars = d.allVars || all
	for _, n := range names {
		switch n {
		case exprRecordVar:
		case exprPayloadVar:
			d.payload = true
		default:
			if !slices.Contains(d.vars, n) {
				d.vars = append(d.vars, n)
			}
		}
	}
}

// transform is the Transform of a declarative configuration.
func (d *declarative) transform(ctx context.Context, r *Record) ([]Item, error) {
	if d.schema != nil && (d.fast == nil || !d.fast.valid(r.Data)) {
		if err := d.schema.Validate(r.Data); err != nil {
			return nil, schemaFailure(err)
		}
	}
	var st *exprState
	if d.exprs {
		st = exprStates.Get().(*exprState)
		defer func() {
			clear(st.env)
			st.rec = exprRecord{}
			exprStates.Put(st)
		}()
		d.fillEnv(ctx, st, r)
	}
	if d.filter != nil {
		out, err := st.vm.Run(d.filter, st.env)
		if err != nil {
			return nil, Permanent(fmt.Errorf("transform.filter: %s", oneLine(err)))
		}
		keep, ok := out.(bool)
		if !ok {
			return nil, Permanent(fmt.Errorf("transform.filter: gives %s, want a boolean", describeValue(out)))
		}
		if !keep {
			return nil, ErrSkip
		}
	}

	extra := len(d.keys) + len(d.computed) + len(d.renames) + 5
	item, err := d.fields(r.Data, extra)
	if err != nil {
		return nil, Permanent(err)
	}
	for _, c := range d.computed {
		out, err := st.vm.Run(c.prog, st.env)
		if err != nil {
			return nil, Permanent(fmt.Errorf("%s: %s", c.label, oneLine(err)))
		}
		av, err := ToAttributeValue(out)
		if err != nil {
			return nil, Permanent(fmt.Errorf("%s: %w", c.label, err))
		}
		item[c.name] = av
		if c.bind {
			st.env[c.name] = out
		}
	}
	return d.finish(ctx, r, item)
}

// fillEnv sets the variables of r's expressions.
func (d *declarative) fillEnv(ctx context.Context, st *exprState, r *Record) {
	d.fillEnvWith(ctx, st, r, toExprValue)
}

// fillEnvWith sets the variables of r's expressions, converting payload values with conv.
func (d *declarative) fillEnvWith(ctx context.Context, st *exprState, r *Record, conv func(any) any) {
	if d.allVars {
		for k, v := range r.Data {
			st.env[k] = conv(v)
		}
	} else {
		for _, name := range d.vars {
			if v, ok := r.Data[name]; ok {
				st.env[name] = conv(v)
			}
		}
	}
	if d.payload {
		st.env[exprPayloadVar] = conv(r.Data)
	}
	st.rec = exprRecord{
		EventID:        r.EventID,
		PartitionKey:   r.PartitionKey,
		SequenceNumber: r.SequenceNumber,
		ShardID:        r.ShardID,
		ArrivalTime:    r.ArrivalTime.UTC(),
		ProcessedAt:    ProcessedAt(ctx),
	}
	st.env[exprRecordVar] = &st.rec
}

// describeValue names an expression result's type for error messages.
func describeValue(v any) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprintf("a %T (%v)", v, abbreviate(fmt.Sprint(v)))
}
