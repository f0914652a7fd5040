//go:build integration && !kdp_noexpr

package processor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestIntegrationAggregatesRecount runs the ledger against dynalite: a pipeline whose transform sends some records
// to the error table (a bug) and fails others transiently, behind a simulated event source mapping that gives up on
// one batch; a recount (Options.RecountAggregates, with the bug fixed) runs beside a batch the pipeline keeps
// retrying, then redrives the error-tabled and given-up records, twice. Every valid record must be counted exactly
// once (the totals computed from the inputs with math/big), and the second redrive must change nothing.
func TestIntegrationAggregatesRecount(t *testing.T) {
	endpoint := emulators.Dynalite(t)
	direct := emulators.DynamoDBClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	data, errs, aggs := emulators.UniqueName("recdata"), emulators.UniqueName("recerr"), emulators.UniqueName("recagg")
	for _, name := range []string{data, errs} {
		if err := emulators.CreateTable(ctx, direct, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := emulators.CreateAggregateTable(ctx, direct, aggs); err != nil {
		t.Fatal(err)
	}
	cfg := aggConfig()
	rng := rand.New(rand.NewPCG(19, 20))
	inputs := aggInputs(rng, 1, 80)
	shard := inputs[0]

	var mu sync.Mutex
	poison := map[string]bool{}  // the bug: these go to the error table
	failing := map[string]bool{} // transient failures (a lookup timing out)
	for i, in := range shard {
		if in.counted && i%6 == 1 {
			poison[in.seq] = true
		}
	}
	def := processor.DefaultTransform(cfg)
	pipeline, err := processor.New(direct, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName = data, errs, aggs
		o.Config = cfg
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
		o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
			mu.Lock()
			p, f := poison[r.SequenceNumber], failing[r.SequenceNumber] || rng.IntN(15) == 0 && r.SequenceNumber > shard[40].seq
			mu.Unlock()
			switch {
			case p:
				return nil, processor.Permanent(errors.New("the bug"))
			case f:
				return nil, errors.New("lookup timed out")
			}
			return def(ctx, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var recountMetrics emulators.LockedBuffer
	recounter, err := processor.New(direct, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName = data, errs, aggs
		o.Config = cfg // the bug is fixed: the default transform
		o.RecountAggregates = true
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = &recountMetrics
	})
	if err != nil {
		t.Fatal(err)
	}
	handle := func(p *processor.Processor, recs []aggInput) int {
		resp, err := p.Handle(ctx, aggEvent(recs))
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if len(resp.BatchItemFailures) == 0 {
			return len(recs)
		}
		for i, r := range recs {
			if r.seq == resp.BatchItemFailures[0].ItemIdentifier {
				return i
			}
		}
		t.Fatalf("reported %q, not in the batch", resp.BatchItemFailures[0].ItemIdentifier)
		return 0
	}
	// The mapping: batches from the checkpoint until it reaches end.
	run := func(from, end, size int) {
		for cp, steps := from, 0; cp < end; steps++ {
			if steps > 500 {
				t.Fatalf("no progress at %d", cp)
			}
			cp += handle(pipeline, shard[cp:min(end, cp+size)])
		}
	}

	// Records 0..19: the bug sends some to the error table.
	run(0, 20, 7)
	// Records 20..29: record 24 fails on every attempt; the mapping gives up on the batch from it (24..29 go to the
	// on-failure destination), after records 20..23 were stored and counted.
	mu.Lock()
	failing[shard[24].seq] = true
	mu.Unlock()
	if got := handle(pipeline, shard[20:30]); got != 4 {
		t.Fatalf("acknowledged %d, want 4", got)
	}
	if got := handle(pipeline, shard[24:30]); got != 0 {
		t.Fatalf("acknowledged %d, want 0", got)
	}
	run(30, 40, 10)
	// Records 40..79: the pipeline retries through random transient failures while a replay of the same records
	// recounts them beside it, twice.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		run(40, 80, 15)
	}()
	for range 2 {
		for i := 40; i < 80; i += 5 {
			handle(recounter, shard[i:i+5])
		}
	}
	wg.Wait()

	want := aggOracle(t, inputs)
	// The redrive: the error table's records and the on-failure destination's, with the fix. Twice: the second
	// changes nothing and recounts nothing.
	var redrive []aggInput
	for i, in := range shard {
		if poison[in.seq] || i >= 24 && i < 30 {
			redrive = append(redrive, in)
		}
	}
	for round := range 2 {
		seen := len(recountMetrics.String())
		for i := 0; i < len(redrive); i += 4 {
			if got := handle(recounter, redrive[i:min(len(redrive), i+4)]); got != min(4, len(redrive)-i) {
				t.Fatalf("round %d: the redrive acknowledged %d", round, got)
			}
		}
		if d := diffTotals(want, dynaliteTotals(ctx, t, direct, aggs, cfg, want)); len(d) > 0 {
			t.Fatalf("round %d: %d totals differ:\n%s", round, len(d), strings.Join(d[:min(len(d), 10)], "\n"))
		}
		n := recountedMetric(t, recountMetrics.String()[seen:])
		switch {
		case round == 0 && n < len(poison):
			t.Errorf("round 0: AggregateRecounted %d, want at least the %d error-tabled records", n, len(poison))
		case round == 1 && n != 0:
			t.Errorf("round 1: AggregateRecounted %d, want 0", n)
		}
	}
}

// recountedMetric sums AggregateRecounted over the EMF lines.
func recountedMetric(t *testing.T, emf string) int {
	t.Helper()
	n := 0
	for _, m := range regexp.MustCompile(`"AggregateRecounted":(\d+)`).FindAllStringSubmatch(emf, -1) {
		var v int
		for _, c := range m[1] {
			v = v*10 + int(c-'0')
		}
		n += v
	}
	return n
}

// dynaliteTotals reads every total want names with aggregate.Totals.
func dynaliteTotals(ctx context.Context, t *testing.T, db *dynamodb.Client, table string, cfg processor.Config, want map[string]map[string]*big.Rat) map[string]map[string]*big.Rat {
	t.Helper()
	got := map[string]map[string]*big.Rat{}
	for key := range want {
		parts := strings.SplitN(key, "#", 3)
		ws, err := time.Parse(time.RFC3339, parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var ac processor.AggregateConfig
		for _, a := range cfg.Aggregates {
			if a.Name == parts[0] {
				ac = a
			}
		}
		tot, err := aggregate.Totals(ctx, db, table, aggregate.Query{Name: ac.Name, Measures: ac.MeasureList(),
			Group: []any{strings.Trim(parts[2], `[]"`)}, Window: time.Duration(ac.WindowSeconds) * time.Second, Time: ws})
		if err != nil {
			t.Fatal(err)
		}
		got[key] = map[string]*big.Rat{}
		for m, v := range tot.Values {
			r, ok := new(big.Rat).SetString(v.String())
			if !ok {
				t.Fatalf("%s %s = %s", key, m, v)
			}
			got[key][m] = r
		}
	}
	return got
}
