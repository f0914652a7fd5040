//go:build !kdp_noexpr

package processor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// Attack tests of Config.Aggregates (data integrity). Their oracle is the input itself: expected totals are computed
// here with math/big from the payload strings, and the aggregate items are read raw from the stand-in and combined
// here (never with runtime/aggregate's Totals or the processor's contribution code).

const attackShard = "shardId-000000000007"

// attackRec is one Kinesis record of an attack test.
type attackRec struct {
	seq     string
	payload string
	arrival time.Time
	pk      string // partition key, "p" when empty
}

func attackEvent(recs []attackRec) events.KinesisEvent {
	var ev events.KinesisEvent
	for _, r := range recs {
		pk := r.pk
		if pk == "" {
			pk = "p"
		}
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: attackShard + ":" + r.seq, EventSource: "aws:kinesis",
			Kinesis: events.KinesisRecord{SequenceNumber: r.seq, PartitionKey: pk, Data: []byte(r.payload),
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: r.arrival}}})
	}
	return ev
}

// attackProc returns a processor with aggregates aggs over a fresh stand-in (faults as given), and the stand-in.
func attackProc(t testing.TB, so dynamostandin.Options, aggs []processor.AggregateConfig, opt func(o *processor.Options)) (*processor.Processor, *dynamostandin.Server) {
	t.Helper()
	so.KeyAttributes = map[string][]string{aggTable: {"pk", "sk"}}
	s := dynamostandin.New(so)
	t.Cleanup(s.Close)
	client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(s.URL())
		o.RetryMaxAttempts = 1
	})
	p, err := processor.New(client, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
		o.Config = processor.DefaultConfig()
		o.Config.Aggregates = aggs
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
		if opt != nil {
			opt(o)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

// rawTotals combines the stand-in's aggregate items per partition key: measures named by kinds ("count"/"sum" add,
// "min"/"max" take the extreme), read as exact decimals.
func rawTotals(t *testing.T, s *dynamostandin.Server, kinds map[string]string) map[string]map[string]*big.Rat {
	t.Helper()
	got := map[string]map[string]*big.Rat{}
	for _, it := range aggItems(s) {
		pk := it["pk"].(*types.AttributeValueMemberS).Value
		if got[pk] == nil {
			got[pk] = map[string]*big.Rat{}
		}
		for name, kind := range kinds {
			av, ok := it[name]
			if !ok {
				continue
			}
			var text string
			switch x := av.(type) {
			case *types.AttributeValueMemberN:
				text = x.Value
			case *types.AttributeValueMemberS: // a sum DynamoDB's numbers cannot hold, as an exact decimal
				text = x.Value
			default:
				t.Fatalf("item %s: %s is a %T", pk, name, av)
			}
			v, ok := new(big.Rat).SetString(text)
			if !ok {
				t.Fatalf("item %s: %s = %q is not a decimal", pk, name, text)
			}
			cur, seen := got[pk][name]
			switch {
			case !seen:
				got[pk][name] = v
			case kind == "min":
				if v.Cmp(cur) < 0 {
					got[pk][name] = v
				}
			case kind == "max":
				if v.Cmp(cur) > 0 {
					got[pk][name] = v
				}
			default:
				got[pk][name] = new(big.Rat).Add(cur, v)
			}
		}
	}
	return got
}

func rat(t testing.TB, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad decimal %q", s)
	}
	return r
}

func mustHandle(t testing.TB, p *processor.Processor, recs []attackRec) events.KinesisEventResponse {
	t.Helper()
	resp, err := p.Handle(context.Background(), attackEvent(recs))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	return resp
}

// TestAttackAggExactNumbers: sums, minima and maxima of values at DynamoDB's edges (38 digits, 1E-130, 9.99E+125,
// negative zero, exponents, trailing zeros, mixed signs) are exact; values DynamoDB cannot hold, non-numbers, and
// strings holding numbers go to the error table and count nowhere; missing values add nothing but are counted.
func TestAttackAggExactNumbers(t *testing.T) {
	aggs := []processor.AggregateConfig{{Name: "x", WindowSeconds: 86400, GroupBy: []processor.AggregateValue{{Path: "g"}},
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Path: "v"},
			{Name: "lo", Kind: "min", Path: "v"}, {Name: "hi", Kind: "max", Path: "v"}}}}
	kinds := map[string]string{"n": "count", "s": "sum", "lo": "min", "hi": "max"}
	groups := map[string][]string{ // group -> values (raw JSON), "" for a record without v
		"big":   {"12345678901234567890123456789012345678", "-12345678901234567890123456789012345677", "0.5E0"},
		"tiny":  {"1E-130", "2e-130", "-0.0", "-0"},
		"huge":  {"9.9999999999999999999999999999999999999E+125", "-9.9999999999999999999999999999999999999E+125", "1E+125"},
		"mixed": {"-3", "2.50", "1.0", "1", "", "-3.000"},
		"frac":  {"0.1", "0.2", "0.30000000000000004"},
	}
	bad := []string{`"12"`, `"NaN"`, `true`, `1E+126`, `1E-131`, `123456789012345678901234567890123456789`, `[1]`, `{"a":1}`}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var recs []attackRec
	seq := 100
	for _, g := range []string{"big", "tiny", "huge", "mixed", "frac"} {
		for _, v := range groups[g] {
			p := fmt.Sprintf(`{"g":%q}`, g)
			if v != "" {
				p = fmt.Sprintf(`{"g":%q,"v":%s}`, g, v)
			}
			recs = append(recs, attackRec{seq: fmt.Sprint(seq), payload: p, arrival: at})
			seq++
		}
	}
	for _, v := range bad {
		recs = append(recs, attackRec{seq: fmt.Sprint(seq), payload: fmt.Sprintf(`{"g":"mixed","v":%s}`, v), arrival: at})
		seq++
	}
	p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
	if resp := mustHandle(t, p, recs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", resp.BatchItemFailures)
	}
	if n := len(s.Items(aggErrTable)); n != len(bad) {
		t.Errorf("%d records in the error table, want %d", n, len(bad))
	}
	got := rawTotals(t, s, kinds)
	for g, vals := range groups {
		key := `x#2024-03-01T00:00:00Z#["` + g + `"]`
		var sum, lo, hi *big.Rat
		for _, v := range vals {
			if v == "" {
				continue
			}
			r := rat(t, v)
			if sum == nil {
				sum, lo, hi = new(big.Rat), r, r
			}
			sum = new(big.Rat).Add(sum, r)
			if r.Cmp(lo) < 0 {
				lo = r
			}
			if r.Cmp(hi) > 0 {
				hi = r
			}
		}
		want := map[string]*big.Rat{"n": big.NewRat(int64(len(vals)), 1), "s": sum, "lo": lo, "hi": hi}
		for m, w := range want {
			if g := got[key][m]; g == nil || g.Cmp(w) != 0 {
				t.Errorf("%s %s = %v, want %v", key, m, g, w.FloatString(3))
			}
		}
	}
	if len(got) != len(groups) {
		t.Errorf("%d aggregate keys, want %d: %v", len(got), len(groups), got)
	}
}

// TestAttackAggOverflowNotRounded: a sum DynamoDB's numbers cannot hold (39 significant digits, or beyond 9.99E+125)
// is never stored rounded, nor does it stop the shard: the record is acknowledged and the item holds the exact sum as
// a string (S), its other measures as numbers.
func TestAttackAggOverflowNotRounded(t *testing.T) {
	aggs := []processor.AggregateConfig{{Name: "x", WindowSeconds: 60,
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Path: "v"}}}}
	tests := []struct{ first, second, want string }{
		{"99999999999999999999999999999999999999", "2", "100000000000000000000000000000000000001"},
		{"10000000000000000000000000000000000000", "0.1", "10000000000000000000000000000000000000.1"},
		{"9E+125", "9E+125", "18" + strings.Repeat("0", 125)},
		{"1E+125", "1E-130", "1" + strings.Repeat("0", 125) + "." + strings.Repeat("0", 129) + "1"},
	}
	for _, tt := range tests {
		t.Run(tt.first+"+"+tt.second, func(t *testing.T) {
			p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
			at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
			if resp := mustHandle(t, p, []attackRec{{seq: "1", payload: `{"v":` + tt.first + `}`, arrival: at}}); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("first: %v", resp.BatchItemFailures)
			}
			if resp := mustHandle(t, p, []attackRec{{seq: "2", payload: `{"v":` + tt.second + `}`, arrival: at}}); len(resp.BatchItemFailures) != 0 {
				t.Errorf("the record whose sum overflows DynamoDB's numbers is reported: %v", resp.BatchItemFailures)
			}
			key := `x#2024-03-01T12:00:00Z#[]`
			for _, it := range aggItems(s) {
				if _, ok := it["s"].(*types.AttributeValueMemberS); !ok {
					t.Errorf("s is a %T, want a string (S) holding the exact sum", it["s"])
				}
				if _, ok := it["n"].(*types.AttributeValueMemberN); !ok {
					t.Errorf("n is a %T, want a number (N)", it["n"])
				}
			}
			got := rawTotals(t, s, map[string]string{"n": "count", "s": "sum"})
			if g := got[key]["s"]; g == nil || g.Cmp(rat(t, tt.want)) != 0 || got[key]["n"].Cmp(big.NewRat(2, 1)) != 0 {
				t.Errorf("item = %v, want s=%s n=2", got[key], tt.want)
			}
		})
	}
}

// TestAttackAggGroupKeys: group values that look alike stay apart (the string "1" and the number 1, "true" and true,
// "null" and null, strings holding '#', quotes, brackets or JSON, NFC and NFD forms), the documented equalities hold
// (1, 1.0, 1E0 and 10E-1 group together; null and missing group together), and a group value too long for DynamoDB's
// 2048-byte partition key sends the record to the error table instead of failing the batch.
func TestAttackAggGroupKeys(t *testing.T) {
	aggs := []processor.AggregateConfig{{Name: "g", WindowSeconds: 3600, GroupBy: []processor.AggregateValue{{Path: "a"}, {Path: "b"}},
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
	type give struct {
		a, b  string // raw JSON, "" for missing
		class string // records with the same class must share one group; different classes must not
	}
	gives := []give{
		{`1`, `2`, "num1"}, {`1.0`, `2`, "num1"}, {`1E0`, `2.00`, "num1"}, {`10E-1`, `20e-1`, "num1"},
		{`"1"`, `2`, "str1"}, {`"1"`, `"2"`, "str1str2"},
		{`true`, `null`, "bool"}, {`"true"`, `null`, "strtrue"}, {`true`, ``, "bool"},
		{`null`, `null`, "nulls"}, {``, ``, "nulls"}, {`"null"`, `null`, "strnull"},
		{`"a#b"`, `"c"`, "hash1"}, {`"a"`, `"b#c"`, "hash2"}, {`"a\",\"b"`, `"c"`, "quote1"}, {`"a"`, `"b\",\"c"`, "quote2"},
		{`"[\"a\",\"b\"]"`, `null`, "json1"}, {`"a"`, `"b"`, "plain"},
		{`"\u00e9"`, `1`, "nfc"}, {`"e\u0301"`, `1`, "nfd"}, {`"\u00e9"`, `1E0`, "nfc"},
		{`-0`, `0.0`, "zeros"}, {`0`, `0`, "zeros"},
	}
	at := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	var recs []attackRec
	classOf := map[string]string{}
	for i, g := range gives {
		var fields []string
		if g.a != "" {
			fields = append(fields, `"a":`+g.a)
		}
		if g.b != "" {
			fields = append(fields, `"b":`+g.b)
		}
		seq := fmt.Sprint(1000 + i)
		classOf[seq] = g.class
		recs = append(recs, attackRec{seq: seq, payload: "{" + strings.Join(fields, ",") + "}", arrival: at})
	}
	long := strings.Repeat("é", 1100) // 2200 bytes, 1100 characters
	recs = append(recs, attackRec{seq: "2000", payload: `{"a":"` + long + `"}`, arrival: at})
	p, s := attackProc(t, dynamostandin.Options{}, aggs, nil)
	if resp := mustHandle(t, p, recs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", resp.BatchItemFailures)
	}
	if _, ok := s.Items(aggErrTable)[attackShard+":2000"]; !ok {
		t.Error("the record with a 2200-byte group value is not in the error table")
	}
	wantCount := map[string]int64{}
	for _, g := range gives {
		wantCount[g.class]++
	}
	got := rawTotals(t, s, map[string]string{"n": "count"})
	if len(got) != len(wantCount) {
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		t.Fatalf("%d groups, want %d (one per class): %q", len(got), len(wantCount), keys)
	}
	counts := map[int64]int{}
	for _, m := range got {
		counts[m["n"].Num().Int64()]++
	}
	wantCounts := map[int64]int{}
	for _, n := range wantCount {
		wantCounts[n]++
	}
	if fmt.Sprint(counts) != fmt.Sprint(wantCounts) {
		t.Errorf("group sizes %v, want %v", counts, wantCounts)
	}
	for _, it := range aggItems(s) {
		if pk := it["pk"].(*types.AttributeValueMemberS).Value; len(pk) > 2048 {
			t.Errorf("partition key of %d bytes", len(pk))
		}
	}
}

// TestAttackAggWindows: payload times at window edges, before 1970, with offsets, fractional and millisecond epochs,
// far in the past and future each count in the window computed here from the time's instant; unreadable times go to
// the error table.
func TestAttackAggWindows(t *testing.T) {
	mk := func(unit string) []processor.AggregateConfig {
		return []processor.AggregateConfig{{Name: "w", WindowSeconds: 300, TimeFrom: "ts", TimeUnit: unit,
			Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
	}
	tests := []struct {
		unit, ts string
		want     string // the window start, "" for the error table
	}{
		{"", `"2024-03-01T12:05:00Z"`, "2024-03-01T12:05:00Z"},
		{"", `"2024-03-01T12:04:59.999999999Z"`, "2024-03-01T12:00:00Z"},
		{"", `"2024-03-01T17:35:00+05:30"`, "2024-03-01T12:05:00Z"},
		{"", `"2024-03-01T06:59:59-05:00"`, "2024-03-01T11:55:00Z"},
		{"", `"1969-12-31T23:59:59.5Z"`, "1969-12-31T23:55:00Z"},
		{"", `"0001-01-01T00:00:00Z"`, "0001-01-01T00:00:00Z"},
		{"", `"9999-12-31T23:59:59Z"`, "9999-12-31T23:55:00Z"},
		{"", `-0.5`, "1969-12-31T23:55:00Z"},
		{"", `-300`, "1969-12-31T23:55:00Z"},
		{"", `-300.000000001`, "1969-12-31T23:50:00Z"},
		{"", `1709294700`, "2024-03-01T12:05:00Z"},
		{"", `1709294699.9999999999`, "2024-03-01T12:00:00Z"},
		{"", `1.7092947E9`, "2024-03-01T12:05:00Z"},
		{"milliseconds", `1709294700000`, "2024-03-01T12:05:00Z"},
		{"milliseconds", `1709294699999.5`, "2024-03-01T12:00:00Z"},
		{"", `1e400`, ""},
		{"", `1e999999999`, ""},
		{"", `1e999999`, ""},
		{"", `-1.5E+400000`, ""},
		{"", `0e999999`, "1970-01-01T00:00:00Z"},
		{"", `-1e-130`, "1970-01-01T00:00:00Z"},
		{"", `0.0000000000000000000000000000000000000000001e50`, "1970-04-26T17:45:00Z"},
		{"", `1E+9`, "2001-09-09T01:45:00Z"},
		{"milliseconds", `-1E-8`, "1970-01-01T00:00:00Z"},
		{"", `"1709294700"`, ""},
		{"", `"2024-03-01 12:05:00"`, ""},
		{"", `"2024-03-01T23:59:60Z"`, ""},
		{"", `true`, ""},
		{"", `null`, ""},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", i, tt.ts), func(t *testing.T) {
			p, s := attackProc(t, dynamostandin.Options{}, mk(tt.unit), nil)
			resp := mustHandle(t, p, []attackRec{{seq: "5", payload: `{"ts":` + tt.ts + `}`, arrival: time.Now()}})
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %v", resp.BatchItemFailures)
			}
			got := rawTotals(t, s, map[string]string{"n": "count"})
			_, inErr := s.Items(aggErrTable)[attackShard+":5"]
			if tt.want == "" {
				if !inErr || len(got) != 0 {
					t.Errorf("error table %v, aggregates %v: want the error table only", inErr, got)
				}
				return
			}
			key := "w#" + tt.want + "#[]"
			if inErr || len(got) != 1 || got[key] == nil || got[key]["n"].Cmp(big.NewRat(1, 1)) != 0 {
				t.Errorf("error table %v, aggregates %v: want %s counted once", inErr, got, key)
			}
		})
	}
}

// TestAttackAggPartialRetryKPL: a KPL aggregate whose third user record fails (a transient transform error) while
// the user records around it and the plain records after it are stored: Lambda retries from the aggregate; in the
// end each user record and plain record counts exactly once, two records of the shard sharing an item.
func TestAttackAggPartialRetryKPL(t *testing.T) {
	aggs := []processor.AggregateConfig{{Name: "k", WindowSeconds: 60, GroupBy: []processor.AggregateValue{{Path: "g"}},
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Path: "v"}}}}
	failOnce := map[string]bool{"u2": true}
	p, s := attackProc(t, dynamostandin.Options{}, aggs, func(o *processor.Options) {
		def := processor.DefaultTransform(o.Config)
		o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
			id, _ := r.Data["id"].(string)
			if failOnce[id] {
				failOnce[id] = false
				return nil, errors.New("lookup timed out")
			}
			return def(ctx, r)
		}
	})
	var urs []kpl.UserRecord
	wantN, wantS := map[string]int64{}, map[string]*big.Rat{}
	addWant := func(g, v string) {
		wantN[g]++
		if wantS[g] == nil {
			wantS[g] = new(big.Rat)
		}
		wantS[g].Add(wantS[g], rat(t, v))
	}
	for i := range 5 {
		g, v := []string{"A", "B"}[i%2], fmt.Sprintf("%d.0%d", i+1, i)
		urs = append(urs, kpl.UserRecord{PartitionKey: "u", Data: fmt.Appendf(nil, `{"id":"u%d","g":%q,"v":%s}`, i, g, v)})
		addWant(g, v)
	}
	at := time.Date(2024, 3, 1, 12, 0, 30, 0, time.UTC)
	recs := []attackRec{{seq: "700", payload: `{"id":"p0","g":"A","v":0.5}`, arrival: at},
		{seq: "701", payload: string(kpl.Aggregate(urs)), arrival: at},
		{seq: "702", payload: `{"id":"p1","g":"A","v":7}`, arrival: at},
		{seq: "703", payload: `{"id":"p2","g":"B","v":-7}`, arrival: at}}
	addWant("A", "0.5")
	addWant("A", "7")
	addWant("B", "-7")
	resp := mustHandle(t, p, recs)
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "701" {
		t.Fatalf("first pass reported %v, want the aggregate 701", resp.BatchItemFailures)
	}
	// Bisection-like: first the failing half alone, then the whole rest again, then a replay of all of it.
	for _, batch := range [][]attackRec{recs[1:2], recs[1:], recs} {
		if resp := mustHandle(t, p, batch); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("retry reported %v", resp.BatchItemFailures)
		}
	}
	got := rawTotals(t, s, map[string]string{"n": "count", "s": "sum"})
	for g, n := range wantN {
		key := `k#2024-03-01T12:00:00Z#["` + g + `"]`
		if got[key]["n"] == nil || got[key]["n"].Cmp(big.NewRat(n, 1)) != 0 || got[key]["s"].Cmp(wantS[g]) != 0 {
			t.Errorf("%s = %v, want n=%d s=%s", key, got[key], n, wantS[g].FloatString(2))
		}
	}
}

// TestAttackAggWriteOptions runs the fault schedule of TestAggregatesExactlyOnce (throttling, connections dropped
// after the write applied, crashes, replays, a failing transform) with ConditionalWrites and with InsertOnly: the
// totals equal those computed from the inputs.
func TestAttackAggWriteOptions(t *testing.T) {
	for _, mode := range []string{"conditional", "insertOnly", "both"} {
		t.Run(mode, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 99))
			var mu sync.Mutex
			p, s := attackProc(t, dynamostandin.Options{Seed: 7, ThrottleRate: 0.15, DropRate: 0.05, DropAfterApply: true},
				aggConfig().Aggregates, func(o *processor.Options) {
					o.Config = aggConfig()
					o.ConditionalWrites = mode != "insertOnly"
					o.InsertOnly = mode != "conditional"
					def := processor.DefaultTransform(o.Config)
					o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
						mu.Lock()
						fail := rng.IntN(30) == 0
						mu.Unlock()
						if fail {
							return nil, errors.New("lookup timed out")
						}
						return def(ctx, r)
					}
				})
			inputs := aggInputs(rng, 2, 120)
			runAggSchedule(t, p, rng, &mu, inputs)
			if d := diffTotals(aggOracle(t, inputs), aggStored(t, s)); len(d) > 0 {
				t.Fatalf("%d totals differ:\n%s", len(d), strings.Join(d[:min(len(d), 10)], "\n"))
			}
		})
	}
}
