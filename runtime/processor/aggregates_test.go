//go:build !kdp_noexpr

package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"sort"
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
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

func TestAggregateConfigProblems(t *testing.T) {
	valid := func() processor.AggregateConfig {
		return processor.AggregateConfig{Name: "perCategory", WindowSeconds: 60,
			GroupBy:  []processor.AggregateValue{{Path: "Category"}},
			Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "total", Kind: "sum", Path: "Value"}}}
	}
	tests := []struct {
		name string
		give func(a *processor.AggregateConfig) []processor.AggregateConfig
		want []string // one line each, in order
	}{
		{"valid", func(a *processor.AggregateConfig) []processor.AggregateConfig { return []processor.AggregateConfig{*a} }, nil},
		{"window not dividing a day", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.WindowSeconds = 7
			return []processor.AggregateConfig{*a}
		}, []string{"aggregates[0] (perCategory): windowSeconds 7 must be between 1 and 86400 and divide a day"}},
		{"window zero", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.WindowSeconds = 0
			return []processor.AggregateConfig{*a}
		}, []string{"windowSeconds 0"}},
		{"window over a day", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.WindowSeconds = 172800
			return []processor.AggregateConfig{*a}
		}, []string{"windowSeconds 172800"}},
		{"duplicate names", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			return []processor.AggregateConfig{*a, *a}
		}, []string{`aggregates[1] (perCategory): name "perCategory" is also aggregates[0]'s`}},
		{"bad name", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.Name = "per#cat"
			return []processor.AggregateConfig{*a}
		}, []string{`aggregates[0] (per#cat): name "per#cat" must be`}},
		{"expression does not compile", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.GroupBy = []processor.AggregateValue{{Expression: "uper(Category)"}}
			return []processor.AggregateConfig{*a}
		}, []string{"aggregates[0] (perCategory): groupBy[0]: expression \"uper(Category)\": unknown function uper (nearest known function: upper)"}},
		{"path and expression", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.Measures[1].Expression = "Value * 2"
			return []processor.AggregateConfig{*a}
		}, []string{"measures[1] (total): set a path or an expression, not both"}},
		{"count with a path", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.Measures[0].Path = "Value"
			return []processor.AggregateConfig{*a}
		}, []string{"measures[0] (n): a count takes no path or expression"}},
		{"unknown kind and reserved name", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.Measures = append(a.Measures, processor.AggregateMeasure{Name: "avg", Kind: "average", Path: "Value"},
				processor.AggregateMeasure{Name: "group", Kind: "max", Path: "Value"})
			return []processor.AggregateConfig{*a}
		}, []string{`measures[2] (avg): kind "average" is not count, sum, min or max`, `measures[3] (group): name "group" is reserved`}},
		{"no measures", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.Measures = nil
			return []processor.AggregateConfig{*a}
		}, []string{"measures: at least one is needed"}},
		{"time unit without a path", func(a *processor.AggregateConfig) []processor.AggregateConfig {
			a.TimeUnit = "milliseconds"
			return []processor.AggregateConfig{*a}
		}, []string{"timeUnit is set but timeFrom is not"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := valid()
			cfg := processor.DefaultConfig()
			cfg.Aggregates = tt.give(&a)
			err := cfg.WithDefaults().Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the configuration")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Validate gave %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
	// Unknown fields in the configuration file fail as for the rest of the configuration.
	if _, err := processor.ParseConfig([]byte(`{"aggregates":[{"name":"a","windowSeconds":60,"measures":[{"name":"n","kind":"count"}],"windw":1}]}`)); err == nil || !strings.Contains(err.Error(), "windw") {
		t.Errorf("ParseConfig with an unknown field: %v", err)
	}
}

// aggInput is one test record: its payload and whether the processor must store (and count) it.
type aggInput struct {
	shard, seq string
	arrival    time.Time
	payload    string
	counted    bool
	category   string
	value      string // "" for none
	ts         time.Time
}

const (
	aggDataTable = "agg-data"
	aggErrTable  = "agg-errors"
	aggTable     = "agg-aggregates"
)

func aggConfig() processor.Config {
	cfg := processor.DefaultConfig()
	cfg.Aggregates = []processor.AggregateConfig{
		{Name: "perCategory", WindowSeconds: 60, GroupBy: []processor.AggregateValue{{Path: "Category"}},
			Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "total", Kind: "sum", Path: "Value"},
				{Name: "lo", Kind: "min", Path: "Value"}, {Name: "hi", Kind: "max", Path: "Value"}}},
		{Name: "byBand", WindowSeconds: 3600, TimeFrom: "Timestamp",
			GroupBy:  []processor.AggregateValue{{Expression: `Value == nil ? "none" : Value > 50 ? "high" : "low"`}},
			Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "doubled", Kind: "sum", Expression: "Value == nil ? nil : Value * 2"}}},
	}
	return cfg
}

func aggInputs(rng *rand.Rand, shards, perShard int) [][]aggInput {
	base := time.Date(2024, 9, 13, 23, 0, 0, 0, time.UTC)
	out := make([][]aggInput, shards)
	for s := range shards {
		for i := range perShard {
			in := aggInput{shard: fmt.Sprintf("shardId-%012d", s), seq: fmt.Sprintf("4960%016d", 1000+i*7),
				arrival: base.Add(time.Duration(i) * 700 * time.Millisecond), counted: true}
			in.category = string(rune('A' + rng.IntN(3)))
			in.ts = base.Add(time.Duration(rng.IntN(7200)) * time.Second)
			fields := map[string]any{"Category": in.category, "Timestamp": in.ts.Format(time.RFC3339)}
			if rng.IntN(8) > 0 {
				in.value = fmt.Sprintf("%d.%d", rng.IntN(100), rng.IntN(10))
				fields["Value"] = json.Number(in.value)
			}
			b, _ := json.Marshal(fields)
			in.payload = string(b)
			switch rng.IntN(25) {
			case 0:
				in.payload, in.counted = "not json", false
			case 1:
				in.payload, in.counted = `{"Category":"A","Timestamp":"yesterday","Value":1}`, false // no time: error table
			case 2:
				in.payload, in.counted = `{"Category":"A","Timestamp":"2024-09-13T23:00:00Z","Value":"12"}`, false // not a number
			}
			out[s] = append(out[s], in)
		}
	}
	return out
}

func aggEvent(recs []aggInput) events.KinesisEvent {
	var ev events.KinesisEvent
	for _, r := range recs {
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: r.shard + ":" + r.seq, EventSource: "aws:kinesis",
			Kinesis: events.KinesisRecord{SequenceNumber: r.seq, PartitionKey: "pk", Data: []byte(r.payload),
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: r.arrival}}})
	}
	return ev
}

// aggOracle computes the expected totals straight from the inputs, with math/big: "<key>" -> measure -> value.
func aggOracle(t *testing.T, inputs [][]aggInput) map[string]map[string]*big.Rat {
	want := map[string]map[string]*big.Rat{}
	add := func(key, m string, v *big.Rat, op string) {
		if want[key] == nil {
			want[key] = map[string]*big.Rat{}
		}
		cur, ok := want[key][m]
		switch {
		case !ok:
			want[key][m] = v
		case op == "sum":
			want[key][m] = new(big.Rat).Add(cur, v)
		case op == "min" && v.Cmp(cur) < 0, op == "max" && v.Cmp(cur) > 0:
			want[key][m] = v
		}
	}
	one := big.NewRat(1, 1)
	for _, shard := range inputs {
		for _, in := range shard {
			if !in.counted {
				continue
			}
			k1 := fmt.Sprintf(`perCategory#%s#["%s"]`, in.arrival.Truncate(time.Minute).Format(time.RFC3339), in.category)
			add(k1, "n", one, "sum")
			band := "none"
			var v *big.Rat
			if in.value != "" {
				v, _ = new(big.Rat).SetString(in.value)
				add(k1, "total", v, "sum")
				add(k1, "lo", v, "min")
				add(k1, "hi", v, "max")
				band = "low"
				if v.Cmp(big.NewRat(50, 1)) > 0 {
					band = "high"
				}
			}
			k2 := fmt.Sprintf(`byBand#%s#["%s"]`, in.ts.Truncate(time.Hour).Format(time.RFC3339), band)
			add(k2, "n", one, "sum")
			if v != nil {
				add(k2, "doubled", new(big.Rat).Mul(v, big.NewRat(2, 1)), "sum")
			}
		}
	}
	return want
}

// aggStored sums the stand-in's aggregate items per partition key (per-shard items combined), read as stored.
func aggStored(t *testing.T, s *dynamostandin.Server) map[string]map[string]*big.Rat {
	got := map[string]map[string]*big.Rat{}
	for _, it := range aggItems(s) {
		pk := it["pk"].(*types.AttributeValueMemberS).Value
		if got[pk] == nil {
			got[pk] = map[string]*big.Rat{}
		}
		for name, av := range it {
			n, ok := av.(*types.AttributeValueMemberN)
			if !ok || strings.HasPrefix(name, "_") { // _kver: the ledger's version
				continue
			}
			v, ok := new(big.Rat).SetString(n.Value)
			if !ok {
				t.Fatalf("item %s: %s = %q is not a number", pk, name, n.Value)
			}
			cur, seen := got[pk][name]
			switch {
			case !seen:
				got[pk][name] = v
			case name == "lo":
				if v.Cmp(cur) < 0 {
					got[pk][name] = v
				}
			case name == "hi":
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

func diffTotals(want, got map[string]map[string]*big.Rat) []string {
	var diffs []string
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		ms := map[string]bool{}
		for m := range want[k] {
			ms[m] = true
		}
		for m := range got[k] {
			ms[m] = true
		}
		for m := range ms {
			w, g := want[k][m], got[k][m]
			if w == nil || g == nil || w.Cmp(g) != 0 {
				diffs = append(diffs, fmt.Sprintf("%s %s: got %v, want %v", k, m, g, w))
			}
		}
	}
	return diffs
}

// TestAggregatesExactlyOnce runs records over two shards through the processor, the real SDK client and the
// stand-in throttling and dropping requests (some after applying them), behind a simulated event source mapping:
// batches from each shard's checkpoint, the checkpoint moved to the reported record, a crash (the response lost)
// now and then, and old ranges replayed. The aggregate items, read from the stand-in, must equal what the inputs
// say, computed with math/big; every stored record's data item is there once.
func TestAggregatesExactlyOnce(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			var mu sync.Mutex
			s := dynamostandin.New(dynamostandin.Options{Seed: seed, ThrottleRate: 0.2, DropRate: 0.05, DropAfterApply: true,
				KeyAttributes: map[string][]string{aggTable: {"pk", "sk"}}})
			t.Cleanup(s.Close)
			client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) {
				o.BaseEndpoint = aws.String(s.URL())
				o.RetryMaxAttempts = 1
			})
			var metrics bytes.Buffer
			p, err := processor.New(client, func(o *processor.Options) {
				o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
				o.Config = aggConfig()
				o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
				o.MetricsWriter = &metrics
				// A transform that fails now and then (a lookup timing out): the record is retried, and the
				// records after it in its batch must not count before it does.
				def := processor.DefaultTransform(o.Config)
				o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
					mu.Lock()
					fail := rng.IntN(40) == 0
					mu.Unlock()
					if fail {
						return nil, errors.New("lookup timed out")
					}
					return def(ctx, r)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			inputs := aggInputs(rng, 2, 200)
			runAggSchedule(t, p, rng, &mu, inputs)
			if d := diffTotals(aggOracle(t, inputs), aggStored(t, s)); len(d) > 0 {
				t.Fatalf("%d totals differ:\n%s", len(d), strings.Join(d[:min(len(d), 10)], "\n"))
			}
			data := s.Items(aggDataTable)
			for _, shard := range inputs {
				for _, in := range shard {
					_, ok := data[in.shard+":"+in.seq]
					if ok != in.counted {
						t.Errorf("%s:%s: data item present %v, want %v", in.shard, in.seq, ok, in.counted)
					}
				}
			}
			st := s.Stats()
			if st.Throttled == 0 || st.Dropped == 0 {
				t.Errorf("no faults injected: %+v", st)
			}
			if !strings.Contains(metrics.String(), `"AggregateWrites":`) {
				t.Error("no aggregate metrics emitted")
			}
		})
	}
}

// TestAggregatesFailuresNotCounted: a record whose aggregate values cannot be read goes to the error table with the
// aggregate named in its reason, and counts nowhere.
func TestAggregatesFailuresNotCounted(t *testing.T) {
	s := dynamostandin.New(dynamostandin.Options{KeyAttributes: map[string][]string{aggTable: {"pk", "sk"}}})
	t.Cleanup(s.Close)
	client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	p, err := processor.New(client, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
		o.Config = aggConfig()
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 9, 13, 23, 0, 0, 0, time.UTC)
	recs := []aggInput{
		{shard: "shardId-000000000000", seq: "1", arrival: at, payload: `{"Category":"A","Timestamp":"later","Value":1}`},
		{shard: "shardId-000000000000", seq: "2", arrival: at, payload: `{"Category":"A","Timestamp":"2024-09-13T23:00:00Z","Value":true}`},
		{shard: "shardId-000000000000", seq: "3", arrival: at, payload: `{"Category":{"x":1},"Timestamp":"2024-09-13T23:00:00Z"}`},
	}
	wantReason := []string{"aggregates[1] (byBand): timeFrom Timestamp: not an RFC 3339 time",
		"aggregates[0] (perCategory): measures[1] (total): the value is a boolean, not a number",
		"aggregates[0] (perCategory): groupBy[0]: the value is a map"}
	resp, err := p.Handle(context.Background(), aggEvent(recs))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle: %v %v", resp, err)
	}
	errs := s.Items(aggErrTable)
	for i, r := range recs {
		it, ok := errs[r.shard+":"+r.seq]
		if !ok {
			t.Errorf("record %s not in the error table", r.seq)
			continue
		}
		if got := it["reason"].(*types.AttributeValueMemberS).Value; !strings.Contains(got, wantReason[i]) {
			t.Errorf("record %s: reason %q, want %q", r.seq, got, wantReason[i])
		}
	}
	if n := len(aggItems(s)); n != 0 {
		t.Errorf("%d aggregate items, want none", n)
	}
	// A self-test canary (partition key kdp-selftest-...) is stored, and counts nowhere, even without the fields
	// the aggregates read.
	canary := aggEvent([]aggInput{{shard: "shardId-000000000000", seq: "4", arrival: at, payload: `{"canary":"n1"}`}})
	canary.Records[0].Kinesis.PartitionKey = "kdp-selftest-n1"
	if resp, err := p.Handle(context.Background(), canary); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle: %v %v", resp, err)
	}
	if _, ok := s.Items(aggDataTable)["shardId-000000000000:4"]; !ok {
		t.Error("the canary is not stored")
	}
	if n := len(aggItems(s)); n != 0 {
		t.Errorf("%d aggregate items after the canary, want none", n)
	}
}

// TestAggregatesOff: without aggregates, a processor neither needs an aggregate table nor emits aggregate metrics,
// and one with aggregates refuses to start without its table.
func TestAggregatesOff(t *testing.T) {
	s := dynamostandin.New(dynamostandin.Options{})
	t.Cleanup(s.Close)
	client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	var metrics bytes.Buffer
	p, err := processor.New(client, func(o *processor.Options) {
		o.TableName = aggDataTable
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = &metrics
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Handle(context.Background(), aggEvent([]aggInput{{shard: "s", seq: "1", payload: `{"a":1}`}})); err != nil {
		t.Fatal(err)
	}
	if strings.Count(metrics.String(), "\n") != 1 || strings.Contains(metrics.String(), "Aggregate") {
		t.Errorf("metrics without aggregates: %s", metrics.String())
	}
	_, err = processor.New(client, func(o *processor.Options) {
		o.TableName = aggDataTable
		o.Config = aggConfig()
	})
	if err == nil || !strings.Contains(err.Error(), "aggregate table name is empty") {
		t.Errorf("New with aggregates and no table: %v", err)
	}
	// Tools that run records out of the mapping's order (redrive, replay) skip aggregates: no table needed, none
	// written, records stored as usual.
	metrics.Reset()
	p, err = processor.New(client, func(o *processor.Options) {
		o.TableName = aggDataTable
		o.Config = aggConfig()
		o.SkipAggregates = true
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = &metrics
	})
	if err != nil {
		t.Fatalf("New with SkipAggregates: %v", err)
	}
	ev := aggEvent([]aggInput{{shard: "s", seq: "2", payload: `{"Category":"A","Timestamp":"2024-09-13T23:00:00Z","Value":1}`}})
	if resp, err := p.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle: %v %v", resp, err)
	}
	if _, ok := s.Items(aggDataTable)["s:2"]; !ok || strings.Contains(metrics.String(), "Aggregate") {
		t.Errorf("with SkipAggregates: item stored %v, metrics %s", ok, metrics.String())
	}
}

// runAggSchedule runs the inputs through p behind a simulated event source mapping: per shard, batches of random
// size from the checkpoint, the checkpoint moved to the reported record, a crash (the response lost) now and then,
// and old ranges replayed. rng is shared with the test's transform, under mu.
func runAggSchedule(t *testing.T, p *processor.Processor, rng *rand.Rand, mu *sync.Mutex, inputs [][]aggInput) {
	t.Helper()
	invoke := func(recs []aggInput) (int, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := p.Handle(ctx, aggEvent(recs))
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if len(resp.BatchItemFailures) == 0 {
			return len(recs), true
		}
		for i, r := range recs {
			if r.seq == resp.BatchItemFailures[0].ItemIdentifier {
				return i, true
			}
		}
		t.Fatalf("reported %q, not in the batch", resp.BatchItemFailures[0].ItemIdentifier)
		return 0, false
	}
	for _, shard := range inputs {
		checkpoint := 0
		for steps := 0; checkpoint < len(shard); steps++ {
			if steps > 2000 {
				t.Fatalf("no progress at %d", checkpoint)
			}
			mu.Lock()
			end := min(len(shard), checkpoint+1+rng.IntN(40))
			mu.Unlock()
			acked, _ := invoke(shard[checkpoint:end])
			if rng.IntN(8) == 0 {
				acked = 0 // the invocation crashed after its writes: the response is lost
			}
			checkpoint += acked
			if checkpoint > 0 && rng.IntN(5) == 0 { // a replay or redrive of counted records
				a := rng.IntN(checkpoint)
				invoke(shard[a : a+1+rng.IntN(checkpoint-a)])
			}
		}
	}
}
