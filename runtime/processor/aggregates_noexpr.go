//go:build kdp_noexpr

package processor

import "errors"

// compileAggExpr reports that this build cannot run expressions.
func compileAggExpr(string) (valueFn, error) { return nil, errors.New(noExprReason) }

// checkGroupExpr has nothing to check in this build: compileAggExpr refuses every expression.
func checkGroupExpr(string) error { return nil }
