//go:build kdp_noexpr

package processor

import "errors"

// compileAggExpr reports that this build cannot run expressions.
func compileAggExpr(string) (valueFn, error) { return nil, errors.New(noExprReason) }
