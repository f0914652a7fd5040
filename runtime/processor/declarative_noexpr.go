//go:build kdp_noexpr

package processor

import "context"

// Built with -tags kdp_noexpr: the expression and JSON Schema libraries are left out, and a configuration that needs
// them (Config.NeedsExpressions) is rejected by Config.Validate, so New and ParseConfig refuse it too.

// exprParts is empty: there are no computed attributes, filter or schema to run.
type exprParts struct{}

// noExprReason is the problem reported for each computed attribute and the filter.
const noExprReason = "this processor was built with -tags " + NoExprBuildTag + ", which leaves out expressions; rebuild without it"

// noSchemaReason is the problem reported for the schema.
const noSchemaReason = "this processor was built with -tags " + NoExprBuildTag + ", which leaves out JSON Schema validation; rebuild without it"

// compileExprParts reports every computed attribute, the filter and the schema of t as a problem: this build cannot
// run them. Silently ignoring them would store records the configuration means to drop, reject or enrich.
func (d *declarative) compileExprParts(t *TransformConfig, _ func(prefix, name, as string), fail func(format string, args ...any)) {
	for i, ca := range t.Computed {
		fail("transform.computed[%d] (%s): %s", i, ca.Name, noExprReason)
	}
	if t.Filter != "" {
		fail("transform.filter: %s", noExprReason)
	}
	if t.hasSchema() {
		fail("transform.schema: %s", noSchemaReason)
	}
}

// transform is the Transform of a declarative configuration (field selection, keys, metadata and TTL only).
func (d *declarative) transform(ctx context.Context, r *Record) ([]Item, error) {
	item, err := d.fields(r.Data, len(d.keys)+len(d.renames)+5)
	if err != nil {
		return nil, Permanent(err)
	}
	return d.finish(ctx, r, item)
}
