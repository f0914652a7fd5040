//go:build !kdp_noexpr

package processor_test

import (
	"bytes"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// exactCase is one record of an attack on aggregate expressions: its payload and the exact value (a decimal the
// test wrote by hand, read by math/big) its measure must have if it counts.
type exactCase struct {
	payload string
	want    string
}

// TestAttackExactMeasureNeverWrong: a measure's expression either stores the exact value (computed here by hand, read
// with math/big) or sends the record to the error table with the raw payload and a reason naming the expression, and
// the record then counts nowhere. mustCount marks values the expression can compute exactly (as Transform does): those
// must count. Attacks expr's own functions (int64 overflow in abs and int, fromJSON's float64, float, ceil, floor and
// round converting an int beyond 2^53 to float64).
func TestAttackExactMeasureNeverWrong(t *testing.T) {
	tests := []struct {
		name, expr string
		recs       []exactCase
		mustCount  bool
	}{
		{"abs of the smallest int64", "abs(v)", []exactCase{{`{"v":-9223372036854775808}`, "9223372036854775808"}}, false},
		{"abs of a decimal", "abs(v)", []exactCase{{`{"v":-0.5}`, "0.5"}, {`{"v":2}`, "2"}}, true},
		{"int beyond int64", "int(v)", []exactCase{{`{"v":1e19}`, "10000000000000000000"}}, false},
		{"int below int64", "int(v)", []exactCase{{`{"v":-9.3e18}`, "-9300000000000000000"}}, false},
		{"int truncates", "int(v)", []exactCase{{`{"v":-2.7}`, "-2"}, {`{"v":2.345}`, "2"}}, true},
		{"fromJSON of a long decimal", "fromJSON(s) + 0", []exactCase{{`{"s":"0.10000000000000000001"}`, "0.10000000000000000001"}}, false},
		{"fromJSON of a 20-digit field", "fromJSON(s).a", []exactCase{{`{"s":"{\"a\": 12345678901234567891}"}`, "12345678901234567891"}}, false},
		{"fromJSON sums exactly", "sum(fromJSON(s))", []exactCase{{`{"s":"[0.1, 0.2]"}`, "0.3"}}, true},
		{"float of 2^53 + 1", "float(v)", []exactCase{{`{"v":9007199254740993}`, "9007199254740993"}}, false},
		{"float of a 2^53 + 1 literal", "float(9007199254740993) + v", []exactCase{{`{"v":0}`, "9007199254740993"}}, false},
		{"float of a long decimal string", "float(s)", []exactCase{{`{"s":"0.10000000000000000001"}`, "0.10000000000000000001"}}, false},
		{"ceil of 2^53 + 1", "ceil(v)", []exactCase{{`{"v":9007199254740993}`, "9007199254740993"}}, false},
		{"floor of 2^53 + 1", "floor(v)", []exactCase{{`{"v":-9007199254740993}`, "-9007199254740993"}}, false},
		{"round of 2^53 + 1", "round(v)", []exactCase{{`{"v":9007199254740993}`, "9007199254740993"}}, false},
		{"ceil, floor and round of halves", "ceil(v) * 100 + floor(v) * 10 + round(v)", []exactCase{{`{"v":-2.5}`, "-233"}, {`{"v":2.5}`, "323"}, {`{"v":0.49999999999999999999}`, "100"}}, true},
		{"ceil and floor of tiny numbers", "ceil(v) * 10 + floor(-v)", []exactCase{{`{"v":1e-120}`, "9"}}, true},
		// Regression guards: exact where float64 is not.
		{"spread of decimals", "max(items) - min(items)", []exactCase{{`{"items":[0.1,0.3]}`, "0.2"}}, true},
		{"rounding to cents", "round(v * 100) / 100", []exactCase{{`{"v":2.345}`, "2.35"}}, true},
		{"product by reduce", "reduce(items, #acc * #)", []exactCase{{`{"items":[1.1,1.1,1.1]}`, "1.331"}}, true},
		{"count times a decimal", "count(items, # > 1) * 0.5", []exactCase{{`{"items":[1,2,3,4,5,6]}`, "2.5"}}, true},
		{"negative literal with 20 digits", "-0.10000000000000000001 + v", []exactCase{{`{"v":1}`, "0.89999999999999999999"}}, true},
		{"negative zero", "v * -1", []exactCase{{`{"v":-0.0}`, "0"}, {`{"v":-0}`, "0"}}, true},
		{"modulo by a negative decimal", "v % w", []exactCase{{`{"v":1,"w":-0.3}`, "0.1"}, {`{"v":-1,"w":-0.3}`, "-0.1"}}, true},
		{"power with a negative exponent", "v ** w", []exactCase{{`{"v":-8,"w":-3}`, "-0.001953125"}, {`{"v":0.1,"w":130}`, "1E-130"}}, true},
		{"zero with a far exponent", "v * 2 + w", []exactCase{{`{"v":0e-1000000,"w":-0e999999999999}`, "0"}, {`{"v":0.000e+100001,"w":1}`, "1"}}, true},
		{"float of a string", `float(s) + 0.2`, []exactCase{{`{"s":"0.1"}`, "0.3"}}, true},
	}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aggs := []processor.AggregateConfig{{Name: "e", WindowSeconds: 60,
				Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Expression: tt.expr}}}}
			p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
			var recs []attackRec
			for i, c := range tt.recs {
				recs = append(recs, attackRec{seq: fmt.Sprint(i + 1), payload: c.payload, arrival: at})
			}
			if resp := mustHandle(t, p, recs); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %v", resp.BatchItemFailures)
			}
			errItems := s.Items(aggErrTable)
			wantSum, wantN := new(big.Rat), 0
			for i, c := range tt.recs {
				item, inErr := errItems[attackShard+":"+fmt.Sprint(i+1)]
				if !inErr {
					wantSum.Add(wantSum, rat(t, c.want))
					wantN++
					continue
				}
				reason, _ := item[processor.ErrorAttrReason].(*types.AttributeValueMemberS)
				raw, _ := item[processor.ErrorAttrPayload].(*types.AttributeValueMemberB)
				switch {
				case tt.mustCount:
					t.Errorf("%s on %s: in the error table (%v), want %s (its exact value)", tt.expr, c.payload, item[processor.ErrorAttrReason], c.want)
				case reason == nil || !strings.Contains(reason.Value, tt.expr):
					t.Errorf("%s on %s: reason %v does not name the expression", tt.expr, c.payload, item[processor.ErrorAttrReason])
				case raw == nil || !bytes.Equal(raw.Value, []byte(c.payload)):
					t.Errorf("%s on %s: error item's payload %v, want the raw payload", tt.expr, c.payload, item[processor.ErrorAttrPayload])
				}
			}
			got := rawTotals(t, s, map[string]string{"n": "count", "s": "sum"})["e#2024-03-01T12:00:00Z#[]"]
			if wantN == 0 {
				if got != nil {
					t.Errorf("nothing counts, but the aggregate holds n=%s s=%s", fmtRat(got["n"]), fmtRat(got["s"]))
				}
				return
			}
			if got["n"] == nil || got["n"].Cmp(big.NewRat(int64(wantN), 1)) != 0 {
				t.Errorf("n = %s, want %d (the records not in the error table)", fmtRat(got["n"]), wantN)
			}
			if got["s"] == nil || got["s"].Cmp(wantSum) != 0 {
				t.Errorf("%s: stored sum %s, want %s exactly", tt.expr, fmtRat(got["s"]), wantSum.FloatString(25))
			}
		})
	}
}

// TestAttackExactGroupValues: a group expression gives equal numbers one group, whatever their text (2.5, 2.50,
// 25e-1), as Transform's expressions and the paths do: string() of a number and comparisons of arrays and objects
// holding numbers compare numbers by value; a payload number times a duration is a duration, and a method gets a
// computed number (date(s).AddDate(0, 0, -1)), as in Transform. want maps each group (the JSON of the group values in the item's key) to
// its count.
func TestAttackExactGroupValues(t *testing.T) {
	tests := []struct {
		name, expr string
		payloads   []string
		want       map[string]int
	}{
		{"string of a payload number", "string(v)", []string{`{"v":2.5}`, `{"v":2.50}`, `{"v":25e-1}`}, map[string]int{`["2.5"]`: 3}},
		{"string of an integer with an exponent", "string(v)", []string{`{"v":100}`, `{"v":1e2}`, `{"v":1.00E+2}`}, map[string]int{`["100"]`: 3}},
		{"toJSON of a payload number", "toJSON(v)", []string{`{"v":1.50}`, `{"v":1.5}`}, map[string]int{`["1.5"]`: 2}},
		{"arrays holding numbers", "[v] == [2.5]", []string{`{"v":2.50}`, `{"v":2.5}`, `{"v":3}`}, map[string]int{`[true]`: 2, `[false]`: 1}},
		{"objects holding numbers", `{"a": v} == {"a": 2.5}`, []string{`{"v":2.50}`, `{"v":2}`}, map[string]int{`[true]`: 1, `[false]`: 1}},
		{"array in a list of arrays", "[v] in [[1], [2.5]]", []string{`{"v":2.50}`, `{"v":1.0}`, `{"v":7}`}, map[string]int{`[true]`: 2, `[false]`: 1}},
		{"duration times a payload number", `string(duration("1h") * v)`, []string{`{"v":2}`, `{"v":2.0}`}, map[string]int{`["2h0m0s"]`: 2}},
		{"payload number times a duration", `string(v * duration("1m"))`, []string{`{"v":3}`}, map[string]int{`["3m0s"]`: 1}},
		{"time plus a duration from a payload number", `date("2024-01-01T00:00:00Z") + duration("1s") * v`, []string{`{"v":7}`}, map[string]int{`["2024-01-01T00:00:07Z"]`: 1}},
		{"method argument computed", `date(s).AddDate(0, 0, 1 + 1).Day()`, []string{`{"s":"2024-01-01T00:00:00Z"}`}, map[string]int{`[3]`: 1}},
		{"method argument negative", `date(s).AddDate(0, 0, -1).Day()`, []string{`{"s":"2024-01-01T00:00:00Z"}`}, map[string]int{`[31]`: 1}},
		{"method argument from a payload number", `date(s).AddDate(0, 0, n).Day()`, []string{`{"s":"2024-01-01T00:00:00Z","n":4}`}, map[string]int{`[5]`: 1}},
		// Regression guards.
		{"number computed two ways", "v * 1", []string{`{"v":2.5}`, `{"v":2.50}`, `{"v":25e-1}`}, map[string]int{`[2.5]`: 3}},
		{"identity", "v", []string{`{"v":2.50}`, `{"v":2.5}`}, map[string]int{`[2.5]`: 2}},
		{"sum of decimals compared", "v + w == 0.3", []string{`{"v":0.1,"w":0.2}`, `{"v":0.15,"w":0.15}`, `{"v":0.1,"w":0.21}`}, map[string]int{`[true]`: 2, `[false]`: 1}},
	}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aggs := []processor.AggregateConfig{{Name: "g", WindowSeconds: 60, GroupBy: []processor.AggregateValue{{Expression: tt.expr}},
				Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
			p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
			var recs []attackRec
			for i, pl := range tt.payloads {
				recs = append(recs, attackRec{seq: fmt.Sprint(i + 1), payload: pl, arrival: at})
			}
			if resp := mustHandle(t, p, recs); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %v", resp.BatchItemFailures)
			}
			if errs := s.Items(aggErrTable); len(errs) != 0 {
				for k, it := range errs {
					t.Errorf("record %s in the error table: %v", k, it[processor.ErrorAttrReason])
				}
			}
			got := map[string]string{}
			for pk, m := range rawTotals(t, s, map[string]string{"n": "count"}) {
				got[strings.TrimPrefix(pk, "g#2024-03-01T12:00:00Z#")] = m["n"].RatString()
			}
			want := map[string]string{}
			for g, n := range tt.want {
				want[g] = fmt.Sprint(n)
			}
			if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
				t.Errorf("%s: groups %v, want %v", tt.expr, sorted(got), sorted(want))
			}
		})
	}
}

func sorted(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// TestAttackExactReplayDependsOnTime: a record delivered twice (a duplicate delivery, a retried batch) counts once,
// also when a group or a measure is computed from the processing time (record.processedAt, now()), which differs
// between the deliveries: either the configuration is refused (the processor's code validates it, at synth too) or
// the aggregate holds the record once.
func TestAttackExactReplayDependsOnTime(t *testing.T) {
	tests := []struct {
		name  string
		group []processor.AggregateValue
		meas  []processor.AggregateMeasure
	}{
		{"group from processedAt", []processor.AggregateValue{{Expression: "unixSeconds(record.processedAt) / 60"}}, nil},
		{"group from the whole record", []processor.AggregateValue{{Expression: `toJSON(record)`}}, nil},
		{"sum from processedAt", nil, []processor.AggregateMeasure{{Name: "s", Kind: "sum", Expression: "unixSeconds(record.processedAt)"}}},
		{"group from $env's record", []processor.AggregateValue{{Expression: `$env.record.processedAt`}}, nil},
		{"group from $env by a payload name", []processor.AggregateValue{{Expression: `string($env[k])`}}, nil},
	}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aggs := []processor.AggregateConfig{{Name: "r", WindowSeconds: 3600, GroupBy: tt.group,
				Measures: append([]processor.AggregateMeasure{{Name: "n", Kind: "count"}}, tt.meas...)}}
			clock := time.Date(2024, 3, 1, 12, 0, 30, 0, time.UTC)
			p, s := attackProcOrRefused(t, aggs, func(o *processor.Options) { o.Now = func() time.Time { return clock } })
			if p == nil {
				return // refused: fine
			}
			rec := attackRec{seq: "1", payload: `{"v":1,"k":"record"}`, arrival: at}
			mustHandle(t, p, []attackRec{rec})
			clock = clock.Add(61 * time.Minute) // the retry comes later
			mustHandle(t, p, []attackRec{rec})
			total := new(big.Rat)
			for _, m := range rawTotals(t, s, map[string]string{"n": "count"}) {
				if m["n"] != nil {
					total.Add(total, m["n"])
				}
			}
			if total.Cmp(big.NewRat(1, 1)) != 0 {
				t.Errorf("one record delivered twice counts %s times over the groups %v", total.RatString(), keysOf(rawTotals(t, s, map[string]string{"n": "count"})))
			}
		})
	}
}

// attackProcOrRefused is attackProc, returning nil when processor.New refuses the configuration.
func attackProcOrRefused(t *testing.T, aggs []processor.AggregateConfig, opt func(o *processor.Options)) (*processor.Processor, *dynamostandin.Server) {
	t.Helper()
	cfg := processor.DefaultConfig()
	cfg.Aggregates = aggs
	if err := cfg.Validate(); err != nil {
		t.Logf("refused: %v", err)
		return nil, nil
	}
	return attackProc(t, dynamostandin.Options{}, aggs, opt)
}

func keysOf(m map[string]map[string]*big.Rat) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestAttackExactGroupTimeValidation: group expressions may read the record's metadata that every delivery shares
// (arrivalTime, eventId, shardId, ...) and payload fields, also through $env; not the processing time.
func TestAttackExactGroupTimeValidation(t *testing.T) {
	tests := []struct {
		expr    string
		refused bool
	}{
		{"unixSeconds(record.arrivalTime) / 60", false},
		{"record.shardId + record.eventId", false},
		{`$env.v + $env["w"]`, false},
		{`payload.record`, false},
		{`record.processedAt`, true},
		{`record?.processedAt`, true},
		{`record["processedAt"]`, true},
		{`now()`, true},
		{`date("2024-01-01") < now() ? 1 : 0`, true},
		{`$env["record"].processedAt`, true},
		{`$env[k]`, true},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			cfg := processor.DefaultConfig()
			cfg.Aggregates = []processor.AggregateConfig{{Name: "r", WindowSeconds: 60, GroupBy: []processor.AggregateValue{{Expression: tt.expr}},
				Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
			err := cfg.Validate()
			if (err != nil) != tt.refused {
				t.Errorf("Validate = %v, want refused %v", err, tt.refused)
			}
			if err != nil && !strings.Contains(err.Error(), "differs between deliveries") {
				t.Errorf("Validate = %v, want the reason", err)
			}
		})
	}
}

// TestAttackExactGroupFromMapOrder: a group expression reading a payload object's keys or values in order (keys,
// values, toPairs) gives every delivery of a record the same group: expr returns them in Go's random map order, so
// a redelivered record would land in another group's item and count twice.
func TestAttackExactGroupFromMapOrder(t *testing.T) {
	payload := `{"o":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12}}`
	for _, src := range []string{"first(keys(o))", "last(values(o))", "toPairs(o)[0][0]", "reduce(values(o), #acc * 2 + #)"} {
		t.Run(src, func(t *testing.T) {
			aggs := []processor.AggregateConfig{{Name: "m", WindowSeconds: 3600, GroupBy: []processor.AggregateValue{{Expression: src}},
				Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
			p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
			rec := attackRec{seq: "1", payload: payload, arrival: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
			for range 20 { // 20 deliveries of one record
				mustHandle(t, p, []attackRec{rec})
			}
			got := rawTotals(t, s, map[string]string{"n": "count"})
			if len(got) != 1 {
				t.Errorf("one record delivered 20 times is in %d groups: %v", len(got), keysOf(got))
			}
		})
	}
}

// TestAttackExactConstantFailsAtSynth: an aggregate expression that reads nothing from the record and cannot be
// computed exactly (1 / 3) would send every record to the error table; the processor's validation (which synth
// runs) refuses it. Expressions reading the record are checked per record, as before.
func TestAttackExactConstantFailsAtSynth(t *testing.T) {
	tests := []struct {
		expr    string
		group   bool
		refused bool
	}{
		{"1 / 3", false, true},
		{"2 ** 0.5", false, true},
		{"int(1e19)", false, true},
		{"0.1 ** 200", false, true},
		{"1e30 * 1e30 + 1", false, true},
		{"1 / 4 > 0.2", true, false},
		{"string(1 / 7)", true, true},
		{"1 / 4", false, false},
		{"sum(map(1..4, # / 8))", false, false},
		{"v / 3", false, false},
		{"record.shardId", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			a := processor.AggregateConfig{Name: "c", WindowSeconds: 60, Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}
			if tt.group {
				a.GroupBy = []processor.AggregateValue{{Expression: tt.expr}}
			} else {
				a.Measures = append(a.Measures, processor.AggregateMeasure{Name: "s", Kind: "sum", Expression: tt.expr})
			}
			cfg := processor.DefaultConfig()
			cfg.Aggregates = []processor.AggregateConfig{a}
			err := cfg.Validate()
			if (err != nil) != tt.refused {
				t.Errorf("Validate = %v, want refused %v", err, tt.refused)
			}
			if err != nil && !strings.Contains(err.Error(), tt.expr) {
				t.Errorf("Validate = %v, want the expression named", err)
			}
		})
	}
}
