package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	aggr "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
)

// EnvAggregateTableName names the environment variable holding the aggregate table's name (a deploy-time value),
// required when Config.Aggregates is not empty.
const EnvAggregateTableName = "PIPELINE_AGGREGATE_TABLE_NAME"

// Aggregate metrics, emitted on their own Embedded Metric Format line per batch, only when Config.Aggregates is set.
const (
	// MetricAggregateWrites counts aggregate items written (Count).
	MetricAggregateWrites = "AggregateWrites"
	// MetricAggregateConflicts counts aggregate writes refused because the item changed after it was read (another
	// writer, such as a redrive beside the pipeline) and done again (Count).
	MetricAggregateConflicts = "AggregateConflicts"
	// MetricAggregateFailures counts aggregate items not updated in the batch: their records are reported for retry
	// (Count).
	MetricAggregateFailures = "AggregateFailures"
	// MetricAggregateRecounted counts records a redrive or replay counted into the aggregates because the
	// pipeline had not (Options.RecountAggregates) (Count).
	MetricAggregateRecounted = "AggregateRecounted"
	// MetricAggregateUnseen counts records a redrive or replay stored but did not count because the aggregate
	// ledger never saw them delivered (aggregate.RecountResult.Unseen; Options.RecountUnseen counts them) (Count).
	MetricAggregateUnseen = "AggregateUnseen"
	// MetricAggregateUnverified counts records a redrive stored but did not count because their payload was not
	// verified against the stream (Options.Unverified, Options.InsertOnly; Options.RecountUnverified counts them)
	// (Count).
	MetricAggregateUnverified = "AggregateUnverified"
	// MetricAggregateForgotten counts records a redrive or replay stored but did not count because they lie before
	// the end of a give-up range the aggregate ledger dropped (aggregate.RecountForgotten: uncounted or counted,
	// nothing tells) (Count).
	MetricAggregateForgotten = "AggregateForgotten"
	// MetricAggregateNoLedger counts records a redrive or replay stored but did not count because the aggregate
	// ledger holds no state for their shard (aggregate.RecountNoLedger: the pipeline never ran the ledger there, so
	// nothing tells counted from uncounted) (Count).
	MetricAggregateNoLedger = "AggregateNoLedger"
)

// MaxAggregateWindowSeconds is the longest window an aggregate may have: one day.
const MaxAggregateWindowSeconds = 86400

// AggregateConfig is a windowed aggregate the processor keeps in the aggregate table (see runtime/aggregate for the
// layout and the exactly-once argument): for each group (the GroupBy values) and tumbling window, the measures over
// the records stored in the data table. Records skipped, sent to the error table or failed are not counted.
type AggregateConfig struct {
	// Name names the aggregate: 1 to 64 letters, digits, '_' or '-', starting with a letter; unique.
	Name string `json:"name"`
	// GroupBy lists the values records are grouped by, in order: each a payload path or an expression. A missing
	// value groups as null. Default: none, one group.
	GroupBy []AggregateValue `json:"groupBy,omitempty"`
	// WindowSeconds is the tumbling window's length: 1 to 86400 seconds, dividing a day (so windows start at UTC
	// midnight and every window after).
	WindowSeconds int64 `json:"windowSeconds"`
	// TimeFrom is the payload path of the time records are windowed by: an RFC 3339 string or a number of Unix
	// seconds (TimeUnit says otherwise). A record without a readable time there goes to the error table. Default:
	// "", the record's arrival time in the stream.
	TimeFrom string `json:"timeFrom,omitempty"`
	// TimeUnit is the unit of a numeric TimeFrom value: "seconds" or "milliseconds". Default: "seconds".
	TimeUnit string `json:"timeUnit,omitempty"`
	// Measures are what is computed, each an attribute of the aggregate's items. At least one.
	Measures []AggregateMeasure `json:"measures"`
}

// AggregateValue is a value taken from a record: a payload path or an expression (exactly one).
type AggregateValue struct {
	// Path is a dot-separated payload path.
	Path string `json:"path,omitempty"`
	// Expression is an expression, seeing what Transform's expressions see, with exact numbers (exact decimals; a
	// value DynamoDB cannot hold, or a quotient with no finite decimal form, fails the record, never rounded).
	Expression string `json:"expression,omitempty"`
}

// AggregateMeasure is one measure of an aggregate.
type AggregateMeasure struct {
	// Name is the measure's attribute name (not pk, sk, aggregate, windowStart, group or _kfence).
	Name string `json:"name"`
	// Kind is "count", "sum", "min" or "max".
	Kind string `json:"kind"`
	// Path or Expression give the value of a sum, min or max (a number: exact, as everywhere in this module; a record
	// without it adds nothing to that measure; any other type sends the record to the error table). A count takes
	// neither.
	Path       string `json:"path,omitempty"`
	Expression string `json:"expression,omitempty"`
}

// MeasureList returns the aggregate's measures as runtime/aggregate describes them (for aggregate.Totals).
func (a AggregateConfig) MeasureList() []aggr.Measure {
	out := make([]aggr.Measure, len(a.Measures))
	for i, m := range a.Measures {
		out[i] = aggr.Measure{Name: m.Name, Kind: aggr.Kind(m.Kind)}
	}
	return out
}

// usesExpressions reports whether any aggregate has an expression.
func aggregatesUseExpressions(aggs []AggregateConfig) bool {
	for _, a := range aggs {
		for _, g := range a.GroupBy {
			if g.Expression != "" {
				return true
			}
		}
		for _, m := range a.Measures {
			if m.Expression != "" {
				return true
			}
		}
	}
	return false
}

// valueFn reads a value from a record: a decoded JSON value, an expression's result, or nil when missing.
type valueFn func(ctx context.Context, r *Record, data map[string]any) (any, error)

// compiledAggregate is an AggregateConfig ready to run.
type compiledAggregate struct {
	name     string
	label    string // "aggregates[i] (name)"
	window   time.Duration
	timeFrom []string
	millis   bool
	groupBy  []valueFn
	measures []aggr.Measure
	values   []valueFn // per measure, nil for counts
}

// compileAggregates compiles aggs, returning every problem, one line each, prefixed "aggregates[i] (name)".
func compileAggregates(aggs []AggregateConfig) ([]*compiledAggregate, []error) {
	var errs []error
	var out []*compiledAggregate
	names := map[string]int{}
	for i, a := range aggs {
		label := fmt.Sprintf("aggregates[%d] (%s)", i, a.Name)
		fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(label+": "+format, args...)) }
		ca := &compiledAggregate{name: a.Name, label: label, window: time.Duration(a.WindowSeconds) * time.Second}
		if err := aggr.CheckName(a.Name); err != nil {
			fail("%v", err)
		} else if j, dup := names[a.Name]; dup {
			fail("name %q is also aggregates[%d]'s", a.Name, j)
		} else {
			names[a.Name] = i
		}
		if a.WindowSeconds < 1 || a.WindowSeconds > MaxAggregateWindowSeconds || MaxAggregateWindowSeconds%a.WindowSeconds != 0 {
			fail("windowSeconds %d must be between 1 and %d and divide a day (60, 300, 3600, ...)", a.WindowSeconds, MaxAggregateWindowSeconds)
		}
		switch a.TimeUnit {
		case "", "seconds":
		case "milliseconds":
			ca.millis = true
		default:
			fail("timeUnit %q is not seconds or milliseconds", a.TimeUnit)
		}
		if a.TimeFrom != "" {
			if err := validatePath(a.TimeFrom); err != nil {
				fail("timeFrom: %v", err)
			}
			ca.timeFrom = strings.Split(a.TimeFrom, ".")
		} else if a.TimeUnit != "" {
			fail("timeUnit is set but timeFrom is not (the arrival time has no unit to choose)")
		}
		for j, g := range a.GroupBy {
			fn, err := compileValue(g.Path, g.Expression)
			if err == nil && g.Expression != "" {
				err = checkGroupExpr(g.Expression)
			}
			if err != nil {
				fail("groupBy[%d]: %v", j, err)
			}
			ca.groupBy = append(ca.groupBy, fn)
		}
		if len(a.Measures) == 0 {
			fail("measures: at least one is needed")
		}
		mnames := map[string]int{}
		for j, m := range a.Measures {
			mlabel := fmt.Sprintf("measures[%d] (%s)", j, m.Name)
			am := aggr.Measure{Name: m.Name, Kind: aggr.Kind(m.Kind)}
			if err := aggr.CheckMeasure(am); err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					fail("%s: %s", mlabel, line)
				}
			}
			if k, dup := mnames[m.Name]; dup {
				fail("%s: name %q is also measures[%d]'s", mlabel, m.Name, k)
			}
			mnames[m.Name] = j
			var fn valueFn
			if am.Kind == aggr.KindCount {
				if m.Path != "" || m.Expression != "" {
					fail("%s: a count takes no path or expression", mlabel)
				}
			} else {
				var err error
				if fn, err = compileValue(m.Path, m.Expression); err != nil {
					fail("%s: %v", mlabel, err)
				}
			}
			ca.measures = append(ca.measures, am)
			ca.values = append(ca.values, fn)
		}
		out = append(out, ca)
	}
	return out, errs
}

// compileValue compiles a path or an expression (exactly one).
func compileValue(path, expression string) (valueFn, error) {
	switch {
	case path != "" && expression != "":
		return nil, errors.New("set a path or an expression, not both")
	case path == "" && expression == "":
		return nil, errors.New("set a path or an expression")
	case path != "":
		if err := validatePath(path); err != nil {
			return nil, err
		}
		segs := strings.Split(path, ".")
		return func(_ context.Context, _ *Record, data map[string]any) (any, error) {
			v, _ := lookupPath(data, segs)
			return v, nil
		}, nil
	}
	return compileAggExpr(expression)
}

// contributions computes what record r (index ref in its batch, payload data) adds to each aggregate: nothing for
// a self-test canary (isSelfTest): it is stored as any record, but aggregates hold the producers' numbers, and a
// canary has none of the fields an aggregate reads.
func (p *Processor) contributions(ctx context.Context, r *Record, data map[string]any, ref int) ([]aggr.Contribution, error) {
	if isSelfTest(r) {
		return nil, nil
	}
	pos, err := EncodePosition(r.ShardID, r.SequenceNumber, r.SubSequenceNumber)
	if err != nil {
		return nil, err // cannot happen: the caller checked it
	}
	out := make([]aggr.Contribution, 0, len(p.aggs.list))
	for _, a := range p.aggs.list {
		c, err := a.contribution(ctx, r, data)
		if err != nil {
			return nil, prefixReason(a.label, err)
		}
		c.Shard, c.Position, c.Ref = r.ShardID, pos, ref
		out = append(out, c)
	}
	return out, nil
}

func (a *compiledAggregate) contribution(ctx context.Context, r *Record, data map[string]any) (aggr.Contribution, error) {
	t := r.ArrivalTime
	if a.timeFrom != nil {
		v, _ := lookupPath(data, a.timeFrom)
		var err error
		if t, err = recordTime(v, a.millis); err != nil {
			return aggr.Contribution{}, safeReason("timeFrom " + strings.Join(a.timeFrom, ".") + ": " + err.Error())
		}
	}
	ws := aggr.WindowStart(t, a.window)
	group := make([]any, len(a.groupBy))
	for i, fn := range a.groupBy {
		v, err := fn(ctx, r, data)
		if err != nil {
			return aggr.Contribution{}, prefixReason(fmt.Sprintf("groupBy[%d]", i), err)
		}
		if tv, ok := v.(time.Time); ok {
			v = tv.UTC().Format(time.RFC3339Nano)
		}
		if group[i], err = aggr.GroupValue(v); err != nil {
			return aggr.Contribution{}, safeReason(fmt.Sprintf("groupBy[%d]: the value %v", i, err))
		}
	}
	key, err := aggr.KeyText(a.name, ws, group)
	if err != nil {
		return aggr.Contribution{}, safeReason(err.Error())
	}
	values := make([]*aggr.Number, len(a.values))
	for i, fn := range a.values {
		if fn == nil {
			continue
		}
		v, err := fn(ctx, r, data)
		if err != nil {
			return aggr.Contribution{}, prefixReason("measures["+strconv.Itoa(i)+"]", err)
		}
		if values[i], err = measureNumber(v); err != nil {
			return aggr.Contribution{}, safeReason(fmt.Sprintf("measures[%d] (%s): the value %v", i, a.measures[i].Name, err))
		}
	}
	return aggr.Contribution{Aggregate: a.name, Key: key, WindowStart: ws, Group: group, Values: values}, nil
}

// recordTime reads a payload time: an RFC 3339 string, or a number of Unix seconds (milliseconds with millis).
func recordTime(v any, millis bool) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, errors.New("missing")
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, errors.New("not an RFC 3339 time")
		}
		return t, nil
	case json.Number:
		if t, ok := extremeTime(string(x)); ok {
			return t.t, t.err
		}
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			return time.Time{}, errors.New("not a number")
		}
		unit := int64(time.Second)
		if millis {
			unit = int64(time.Millisecond)
		}
		r.Mul(r, new(big.Rat).SetInt64(unit))
		f, _ := r.Float64()
		if math.Abs(f) > 9e18 {
			return time.Time{}, errors.New("out of range")
		}
		ns := new(big.Int).Quo(r.Num(), r.Denom())
		return time.Unix(0, ns.Int64()), nil
	}
	return time.Time{}, fmt.Errorf("%s, not a time", jsonKind(v))
}

// extremeResult is extremeTime's answer.
type extremeResult struct {
	t   time.Time
	err error
}

// extremeTime answers for a JSON number whose exponent puts it far out of range (an error) or far below a
// nanosecond (the Unix epoch: the conversion truncates toward zero) without computing its power of ten, which
// big.Rat would do exactly (megabytes for "1e999999"). ok is false for every other number.
func extremeTime(s string) (extremeResult, bool) {
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return extremeResult{}, false
	}
	mant := s[:i]
	exp, err := strconv.Atoi(s[i+1:])
	if err != nil { // beyond an int: as far out as it gets
		exp = math.MaxInt32
		if strings.HasPrefix(s[i+1:], "-") {
			exp = math.MinInt32
		}
	}
	if !strings.ContainsAny(mant, "123456789") {
		if err != nil || exp > 40 || exp < -40 {
			return extremeResult{t: time.Unix(0, 0)}, true // zero
		}
		return extremeResult{}, false
	}
	// |mantissa| is at least 10^-len(mant) and below 10^len(mant).
	switch {
	case exp-len(mant) > 40:
		return extremeResult{err: errors.New("out of range")}, true
	case exp+len(mant) < -40:
		return extremeResult{t: time.Unix(0, 0)}, true
	}
	return extremeResult{}, false
}

// measureNumber converts a measure's value: nil (no value), a JSON number or an expression's number.
func measureNumber(v any) (*aggr.Number, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case *aggr.Number: // an aggregate expression's exact result, checked
		return x, nil
	case json.Number:
		return aggr.ParseNumber(string(x))
	case int:
		return aggr.NewInt(int64(x)), nil
	case int64:
		return aggr.NewInt(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("is not a finite number")
		}
		return aggr.ParseNumber(strconv.FormatFloat(x, 'g', -1, 64))
	}
	return nil, fmt.Errorf("is %s, not a number", jsonKind(v))
}
