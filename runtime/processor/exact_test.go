//go:build !kdp_noexpr

package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// evalAggExpr compiles src as an aggregate expression and runs it on payload (a JSON object, decoded as the processor
// decodes records: numbers as json.Number).
func evalAggExpr(t *testing.T, src, payload string) (any, error) {
	t.Helper()
	fn, err := compileAggExpr(src)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	r := &Record{EventID: "s:1", ShardID: "s", SequenceNumber: "1", ArrivalTime: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
	return fn(context.Background(), r, data)
}

// TestAggExprExact: aggregate expressions compute exactly, or fail the record naming the expression; the oracle is
// math/big.Rat reading the wanted decimal.
func TestAggExprExact(t *testing.T) {
	tests := []struct {
		name, expr, payload string
		wantNum             string // the measure's value, compared by value
		wantVal             any    // a non-number result (bool, string)
		wantErr             string
	}{
		// Sums and differences.
		{name: "decimals", expr: "v + w", payload: `{"v":0.1,"w":0.2}`, wantNum: "0.3"},
		{name: "decimal literal", expr: "v + 0.2", payload: `{"v":0.1}`, wantNum: "0.3"},
		{name: "literal only", expr: "0.1 + 0.2", payload: `{}`, wantNum: "0.3"},
		{name: "beyond int64", expr: "v + 1", payload: `{"v":9223372036854775807}`, wantNum: "9223372036854775808"},
		{name: "below int64", expr: "v - 1", payload: `{"v":-9223372036854775808}`, wantNum: "-9223372036854775809"},
		{name: "23 digits", expr: "v", payload: `{"v":12345678901234567890123}`, wantNum: "12345678901234567890123"},
		{name: "23 digits plus 1", expr: "v + 1", payload: `{"v":12345678901234567890123}`, wantNum: "12345678901234567890124"},
		{name: "nested", expr: "payload.a.b - a.c", payload: `{"a":{"b":1.05,"c":0.05}}`, wantNum: "1"},
		{name: "unary minus", expr: "-v", payload: `{"v":1234567890.1234567891}`, wantNum: "-1234567890.1234567891"},
		{name: "long literal", expr: "v + 0.12345678901234567890", payload: `{"v":1}`, wantNum: "1.1234567890123456789"},
		{name: "long literal after multibyte text", expr: `s == "é€" ? v + 0.12345678901234567890 : 0`, payload: `{"s":"é€","v":1}`, wantNum: "1.1234567890123456789"},
		{name: "literal with exponent", expr: "v * 1.5e3", payload: `{"v":2}`, wantNum: "3000"},
		{name: "underscored literal", expr: "v + 1_000.5", payload: `{"v":0.5}`, wantNum: "1001"},
		// Products.
		{name: "product", expr: "v * 3", payload: `{"v":0.1}`, wantNum: "0.3"},
		{name: "product of decimals", expr: "v * w", payload: `{"v":1.1,"w":1.1}`, wantNum: "1.21"},
		{name: "product of 19-digit integers", expr: "v * v", payload: `{"v":1234567890123456789}`, wantNum: "1524157875323883675019051998750190521"},
		// Division.
		{name: "terminating", expr: "v / 8", payload: `{"v":1}`, wantNum: "0.125"},
		{name: "integers divide exactly", expr: "v / w", payload: `{"v":7,"w":2}`, wantNum: "3.5"},
		{name: "by a decimal", expr: "v / 0.25", payload: `{"v":3}`, wantNum: "12"},
		{name: "negative divisor", expr: "v / -0.5", payload: `{"v":3}`, wantNum: "-6"},
		{name: "non-terminating", expr: "v / 3", payload: `{"v":1}`, wantErr: `expression "v / 3": 1 / 3 has no finite decimal form`},
		{name: "non-terminating divides out", expr: "v / 3", payload: `{"v":0.9}`, wantNum: "0.3"},
		{name: "by zero", expr: "v / 0", payload: `{"v":1}`, wantErr: "division by zero"},
		{name: "modulo", expr: "v % 3", payload: `{"v":7}`, wantNum: "1"},
		{name: "modulo of a decimal", expr: "v % 2", payload: `{"v":-7.5}`, wantNum: "-1.5"},
		{name: "modulo by zero", expr: "v % 0", payload: `{"v":7}`, wantErr: "division by zero"},
		// Powers.
		{name: "square", expr: "v ** 2", payload: `{"v":1.1}`, wantNum: "1.21"},
		{name: "caret", expr: "v ^ 3", payload: `{"v":-2}`, wantNum: "-8"},
		{name: "negative exponent", expr: "v ** -2", payload: `{"v":2}`, wantNum: "0.25"},
		{name: "fractional exponent", expr: "v ** 0.5", payload: `{"v":4}`, wantErr: "integral exponent"},
		{name: "huge power", expr: "v ** 100000", payload: `{"v":3}`, wantErr: "to compute exactly"},
		// Comparisons (group values).
		{name: "beyond float64 precision", expr: "v > 0.1", payload: `{"v":0.10000000000000001}`, wantVal: true},
		{name: "equal 23-digit numbers differ", expr: "v == w", payload: `{"v":12345678901234567890123,"w":12345678901234567890124}`, wantVal: false},
		{name: "less by one in 23 digits", expr: "v < w", payload: `{"v":12345678901234567890123,"w":12345678901234567890124}`, wantVal: true},
		{name: "not equal", expr: "v != w", payload: `{"v":1.0,"w":1}`, wantVal: false},
		{name: "trailing zeros equal", expr: "v == 0.1", payload: `{"v":0.10}`, wantVal: true},
		{name: "sum equals", expr: "0.1 + 0.2 == 0.3", payload: `{}`, wantVal: true},
		{name: "less or equal", expr: "v <= 1", payload: `{"v":1.000}`, wantVal: true},
		{name: "greater or equal", expr: "v >= 1e-130", payload: `{"v":0}`, wantVal: false},
		{name: "missing is nil", expr: "v == nil", payload: `{}`, wantVal: true},
		{name: "number is not a string", expr: `v == "1"`, payload: `{"v":1}`, wantVal: false},
		{name: "in a list", expr: "v in [1, 2.5]", payload: `{"v":2.50}`, wantVal: true},
		{name: "in a range", expr: "v in 1..3", payload: `{"v":2.0}`, wantVal: true},
		{name: "not in a range", expr: "v in 1..3", payload: `{"v":2.5}`, wantVal: false},
		{name: "not in a list", expr: "v not in [1, 2.5]", payload: `{"v":2.51}`, wantVal: true},
		{name: "conditional", expr: `v > 50 ? "high" : "low"`, payload: `{"v":50.000000000000000001}`, wantVal: "high"},
		// Mixed integer and float literals.
		{name: "int and float literals", expr: "1 + 0.1", payload: `{}`, wantNum: "1.1"},
		{name: "integer division", expr: "3 / 2", payload: `{}`, wantNum: "1.5"},
		{name: "mixed chain", expr: "v * 2 + 0.5 - 1", payload: `{"v":0.25}`, wantNum: "0"},
		// Strings, times and expr's functions.
		{name: "concatenation", expr: `s + "-" + t`, payload: `{"s":"a","t":"b"}`, wantVal: "a-b"},
		{name: "string of a decimal", expr: `s + string(v)`, payload: `{"s":"n=","v":12345678901234567890123}`, wantVal: "n=12345678901234567890123"},
		{name: "string of a sum", expr: `string(v + 0.2)`, payload: `{"v":0.1}`, wantVal: "0.3"},
		{name: "toJSON", expr: `toJSON([v * 2, payload.v])`, payload: `{"v":0.1}`, wantVal: "[\n  0.2,\n  0.1\n]"},
		{name: "string comparison", expr: `s < "b"`, payload: `{"s":"a"}`, wantVal: true},
		{name: "time", expr: `unixSeconds(record.arrivalTime) / 60`, payload: `{}`, wantNum: "28488240"},
		{name: "abs", expr: "abs(v)", payload: `{"v":-0.5}`, wantNum: "0.5"},
		{name: "abs beyond float64", expr: "abs(v)", payload: `{"v":-12345678901234567890123}`, wantNum: "12345678901234567890123"},
		{name: "max beyond float64", expr: "max(v, 0)", payload: `{"v":-12345678901234567890123}`, wantErr: "no exact int or float64 form"},
		{name: "ceil beyond float64", expr: "ceil(v)", payload: `{"v":-12345678901234567890123.5}`, wantNum: "-12345678901234567890123"},
		{name: "float beyond float64", expr: "float(v)", payload: `{"v":9007199254740993}`, wantErr: "no exact float64 form"},
		{name: "float of a string", expr: "float(s) * 3", payload: `{"s":"0.1"}`, wantNum: "0.3"},
		{name: "float of a non-decimal string", expr: "float(s)", payload: `{"s":"abc"}`, wantErr: "float(abc)"},
		{name: "int beyond int64", expr: "int(v)", payload: `{"v":1e19}`, wantErr: "beyond an int's range"},
		{name: "int of a far exponent", expr: "int(v)", payload: `{"v":1e99999}`, wantErr: "beyond an int's range"},
		{name: "int of a tiny number", expr: "int(v)", payload: `{"v":-1e-99999}`, wantNum: "0"},
		{name: "int of a string", expr: "int(s) + 1", payload: `{"s":"41"}`, wantNum: "42"},
		{name: "fromJSON trailing data", expr: "fromJSON(s)", payload: `{"s":"1 2"}`, wantErr: "more after the value"},
		{name: "fromJSON of a non-string", expr: "fromJSON(v)", payload: `{"v":1}`, wantErr: "not a string"},
		{name: "max", expr: "max(v, w)", payload: `{"v":0.1,"w":0.2}`, wantNum: "0.2"},
		{name: "round", expr: "round(v)", payload: `{"v":2.5}`, wantNum: "3"},
		{name: "len of big numbers", expr: "len(items)", payload: `{"items":[12345678901234567890123,2]}`, wantNum: "2"},
		{name: "index", expr: "items[i]", payload: `{"items":[0.1,0.2],"i":1}`, wantNum: "0.2"},
		{name: "sum of an array", expr: "sum(items)", payload: `{"items":[0.1,0.2,12345678901234567890123]}`, wantNum: "12345678901234567890123.3"},
		{name: "sum with a predicate", expr: "sum(items, # * 0.1)", payload: `{"items":[1,2]}`, wantNum: "0.3"},
		{name: "sum with a field predicate", expr: "sum(items, .v)", payload: `{"items":[{"v":0.1},{"v":0.2}]}`, wantNum: "0.3"},
		{name: "mean", expr: "mean(items)", payload: `{"items":[0.1,0.2]}`, wantNum: "0.15"},
		{name: "mean non-terminating", expr: "mean(items)", payload: `{"items":[1,1,2]}`, wantErr: "no finite decimal form"},
		{name: "median", expr: "median(items)", payload: `{"items":[0.3,0.1,0.2,0.4]}`, wantNum: "0.25"},
		{name: "filter and count", expr: "count(items, # > 0.1)", payload: `{"items":[0.1,0.10000000000000001,12345678901234567890123]}`, wantNum: "2"},
		{name: "reduce", expr: "reduce(items, #acc + #, 0)", payload: `{"items":[0.1,0.2,12345678901234567890123]}`, wantNum: "12345678901234567890123.3"},
		{name: "map then sum", expr: "sum(map(items, # / 4))", payload: `{"items":[1,1]}`, wantNum: "0.5"},
		{name: "range", expr: "sum(1..n)", payload: `{"n":4}`, wantNum: "10"},
		{name: "sort", expr: "sort(items)[0]", payload: `{"items":[0.2,0.1]}`, wantNum: "0.1"},
		{name: "let", expr: "let x = v * 10; x + 0.01", payload: `{"v":0.1}`, wantNum: "1.01"},
		// Results DynamoDB cannot hold go to the error table.
		{name: "39 digits", expr: "v * w", payload: `{"v":12345678901234567891,"w":12345678901234567891}`, wantErr: `expression "v * w": its value has 39 significant digits, more than DynamoDB's 38`},
		{name: "out of range", expr: "v * 1e200", payload: `{"v":1}`, wantErr: "larger in magnitude"},
		{name: "too small", expr: "v / 1e200", payload: `{"v":1}`, wantErr: "smaller in magnitude"},
		{name: "payload beyond the bounds", expr: "v + 1", payload: `{"v":1e999999999}`, wantErr: "to compute exactly"},
		{name: "payload far apart", expr: "v + w", payload: `{"v":1e99999,"w":1e-99999}`, wantErr: "to compute exactly"},
		{name: "number plus string", expr: `v + s`, payload: `{"v":1,"s":"a"}`, wantErr: "invalid operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := evalAggExpr(t, tt.expr, tt.payload)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("%s on %s = %v, error %v; want error %q", tt.expr, tt.payload, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.expr) {
					t.Errorf("error %q does not name the expression", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s on %s: %v", tt.expr, tt.payload, err)
			}
			if tt.wantNum == "" {
				if got != tt.wantVal {
					t.Errorf("%s on %s = %#v, want %#v", tt.expr, tt.payload, got, tt.wantVal)
				}
				return
			}
			n, err := measureNumber(got)
			if err != nil {
				t.Fatalf("%s on %s = %#v: %v", tt.expr, tt.payload, got, err)
			}
			want, ok := new(big.Rat).SetString(tt.wantNum)
			if !ok {
				t.Fatalf("bad want %q", tt.wantNum)
			}
			if g, ok := new(big.Rat).SetString(n.String()); !ok || g.Cmp(want) != 0 {
				t.Errorf("%s on %s = %s, want %s", tt.expr, tt.payload, n, tt.wantNum)
			}
		})
	}
}

// TestAggExprCompile: aggregate expressions are checked as Transform's are (the same errors at synth), and an
// expression Transform accepts also compiles exactly.
func TestAggExprCompile(t *testing.T) {
	tests := []struct{ expr, wantErr string }{
		{"v + 1", ""},
		{`upper(s) + "x"`, ""},
		{`filter(items, # > 0.5)`, ""},
		{`sortBy(items, #)`, ""},
		{`groupBy(items, # > 1)`, ""},
		{`items[1:n]`, ""},
		{`1 + "a"`, "mismatched types"},
		{`uper(s)`, "unknown function uper"},
		{"", "expression is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := compileAggExpr(tt.expr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if _, terr := compileExpr(tt.expr, false); terr == nil || terr.Error() != err.Error() {
				t.Errorf("Transform's error %v differs from the aggregate's %v", terr, err)
			}
		})
	}
}

// TestAggExprAgreesWithTransform: on numbers float64 and int64 hold exactly, an aggregate expression gives what the
// same expression gives in Transform (expr's own arithmetic, the oracle), for expr's operators, functions, predicates,
// pipes and member access: the rewrite changes how numbers are computed, not what expressions mean.
func TestAggExprAgreesWithTransform(t *testing.T) {
	payload := `{"v":2.5,"w":4,"n":3,"s":"a,b","items":[3,1,2],"objs":[{"v":0.5,"k":"x"},{"v":1.5,"k":"y"}],"o":{"a":{"b":7}},"z":null}`
	exprs := []string{
		"v + w", "v - w", "v * w", "w / 2", "v / w", "w % 3", "v ** 2", "w ^ 2", "-v", "+w", "v == 2.5", "v != w",
		"v < w", "v <= 2.5", "v > w", "w >= 4", "v > 1 && w < 5", "v > 1 and not (w > 5)", "!(v > 1)", "v ?? 0",
		"z ?? 1.5", "z == nil", "v in [1, 2.5]", "w not in items", "n in 1..3", `s + "!"`, `s contains ","`,
		`s startsWith "a"`, `s matches "^a"`, "upper(s)", `split(s, ",")[1]`, "len(s)", "s[1:2]", "items[1]",
		"items[-1]", "items[n - 2]", "items[1:]", "items[:n - 1]", "o.a.b + 1", `o["a"].b`, "payload.v", "$env.w",
		"abs(-v)", "ceil(v)", "floor(v)", "round(v)", "int(v)", "float(w)", "max(v, w)", "min(items)", "max(items)",
		"sum(items)", "sum(items, # * 2)", "sum(objs, .v)", "mean(items)", "mean(v, w)", "median(items)",
		"median(1, 2, 3, 4)", "sort(items)", `sortBy(objs, .v, "desc")[0].k`, "reverse(items)", "first(items)",
		"last(items)", "get(items, 1)", "take(items, 2)", "uniq([1, 1, 2])", "flatten([[1], [2.5]])",
		"concat(items, [v])", "all(items, # > 0)", "any(items, # > 2.5)", "none(items, # > 3)", "one(items, # == 2)",
		"filter(items, # >= 2)", "map(items, # * v)", "count(items, # > 1)", "find(items, # > 1)",
		"findIndex(items, # > 1)", "findLast(items, # < 3)", "findLastIndex(items, # < 3)",
		"reduce(items, #acc + #, 0.5)", "groupBy(objs, .v > 1)[true][0].k", "items | filter(# > 1) | map(# * 2) | sum()",
		"len(keys(o))", "type(v)", "type(w)", "string(w)", "toJSON(items)", "bitand(w, 6)", "let x = v * 2; x + w",
		"v > 2 ? w : v", `objs[0]?.k`, "z?.a", "1..n", "[1, 2.5][1]", `{"a": 0.5}.a + v`,
		`unixMillis(record.arrivalTime) % 1000`, `iso8601(record.arrivalTime)`, "record.arrivalTime < record.processedAt",
		"date(\"2024-01-02\").Year() + 1", "duration(\"1h\").Hours() * v",
	}
	r := &Record{EventID: "s:1", ShardID: "s", SequenceNumber: "1", ArrivalTime: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		t.Fatal(err)
	}
	for _, src := range exprs {
		t.Run(src, func(t *testing.T) {
			prog, err := compileExpr(src, false)
			if err != nil {
				t.Fatalf("Transform: %v", err)
			}
			d := &declarative{}
			d.addVars(prog)
			st := exprStates.Get().(*exprState)
			rec := *r
			rec.Data = data
			d.fillEnv(context.Background(), st, &rec)
			want, err := st.vm.Run(prog, st.env)
			clear(st.env)
			if err != nil {
				t.Fatalf("Transform: %v", err)
			}
			got, err := evalAggExpr(t, src, payload)
			if err != nil {
				t.Fatalf("aggregate: %v (Transform gives %#v)", err, want)
			}
			if g, w := canonical(got), canonical(want); g != w {
				t.Errorf("aggregate gives %s, Transform %s", g, w)
			}
		})
	}
}

// canonical formats an expression's result with numbers by value (an int, a float64, a json.Number and an exact
// result print alike when equal).
func canonical(v any) string {
	switch x := decimalsAsText(v).(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = canonical(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case []int:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = canonical(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[string]any:
		return fmt.Sprint(x)
	}
	if n, err := measureNumber(decimalsAsText(v)); err == nil && n != nil {
		return "number " + n.String()
	}
	return fmt.Sprintf("%T %v", v, v)
}
