//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/sqsfake"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
	redrivecli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive/cli"
	replaycli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay/cli"
)

// The redrive scenario's phases. Each puts records whose payload time "ts" lies in a minute of its own, so the
// per-minute aggregate shows which phase a wrong total comes from.
var redrivePhases = []struct {
	name   string
	n      int
	minute int // offset of the phase's minute from redriveBase
}{
	{"1 schema rejects category d", 1000, 0},
	{"2a DynamoDB outage (every request throttled)", 200, 5},
	{"2b DynamoDB brownout (80% of requests throttled)", 200, 10},
	{"2c recovered", 600, 15},
}

// redriveBase is the payload time of the first phase's minute.
var redriveBase = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// redriveSchemaReason is what the error table says of a record the schema rejected (the redrive picks these).
const redriveSchemaReason = "does not match the schema"

// redriveConfigs returns the pipeline's configuration (its schema knows categories a, b and c only: records of
// category d go to the error table) and the fixed one (d too). Both count readings per category per minute of the
// payload's "ts", and readings and their sum per day of arrival.
func redriveConfigs() (bad, fixed processor.Config) {
	mk := func(categories string) processor.Config {
		cfg := processor.DefaultConfig()
		cfg.Transform = &processor.TransformConfig{Schema: json.RawMessage(
			`{"type":"object","required":["n","Category","ts"],"properties":{"Category":{"enum":[` + categories + `]}}}`)}
		cfg.Aggregates = []processor.AggregateConfig{
			{Name: "byMinute", WindowSeconds: 60, TimeFrom: "ts", GroupBy: []processor.AggregateValue{{Path: "Category"}},
				Measures: []processor.AggregateMeasure{{Name: "readings", Kind: "count"}, {Name: "total", Kind: "sum", Path: "Value"},
					{Name: "lowest", Kind: "min", Path: "Value"}, {Name: "highest", Kind: "max", Path: "Value"}}},
			{Name: "daily", WindowSeconds: 86400,
				Measures: []processor.AggregateMeasure{{Name: "readings", Kind: "count"}, {Name: "total", Kind: "sum", Path: "Value"}}},
		}
		return cfg.WithDefaults()
	}
	return mk(`"a","b","c"`), mk(`"a","b","c","d"`)
}

// redriveRecord is one record put, as the oracle sees it.
type redriveRecord struct {
	n        int
	phase    int
	category string
	ts       time.Time
	value    *big.Rat // nil for a poison record (its Value is a string: no configuration counts it)
}

// makeRedriveRecords makes every phase's records: 10% of category d (rejected by the pipeline's schema, accepted by
// the fixed one), about 1% poison (Value is a string: error table under both configurations), values exact
// decimals, some of 20 digits and negative.
func makeRedriveRecords() ([]redriveRecord, [][]entry) {
	rng := rand.New(rand.NewPCG(19, 35))
	var recs []redriveRecord
	var phases [][]entry
	n := 0
	for pi, ph := range redrivePhases {
		var es []entry
		for i := 0; i < ph.n; i++ {
			r := redriveRecord{n: n, phase: pi, category: []string{"a", "b", "c"}[rng.IntN(3)],
				ts: redriveBase.Add(time.Duration(ph.minute)*time.Minute + time.Duration(i%60)*time.Second)}
			if i%10 == 3 && i%97 != 41 { // a poison record is never of d: the redrive of d's entries must leave nothing behind
				r.category = "d"
			}
			value := fmt.Sprintf("%d.%03d", rng.IntN(2000000)-1000000, rng.IntN(1000))
			if i%50 == 17 {
				value = fmt.Sprintf("98765432109876543%03d.5", rng.IntN(1000))
			}
			if i%97 == 41 {
				value = `"n/a"`
			} else {
				r.value, _ = new(big.Rat).SetString(value)
			}
			payload := fmt.Sprintf(`{"n":%d,"Category":%q,"ts":%q,"Value":%s}`, n, r.category, r.ts.Format(time.RFC3339), value)
			es = append(es, entry{partitionKey: fmt.Sprintf("k-%d", rng.IntN(1<<30)), data: []byte(payload)})
			recs = append(recs, r)
			n++
		}
		phases = append(phases, es)
	}
	return recs, phases
}

// redriveTotal is one expected or observed total.
type redriveTotal struct {
	count   int64
	sum     *big.Rat
	lo, hi  *big.Rat
	shards  int
	hasLoHi bool
}

func (t *redriveTotal) add(v *big.Rat) {
	t.count++
	t.sum = new(big.Rat).Add(t.sum, v)
	if !t.hasLoHi || v.Cmp(t.lo) < 0 {
		t.lo = v
	}
	if !t.hasLoHi || v.Cmp(t.hi) > 0 {
		t.hi = v
	}
	t.hasLoHi = true
}

func (t *redriveTotal) String() string {
	if t == nil {
		return "none"
	}
	s := fmt.Sprintf("count %d sum %s", t.count, t.sum.RatString())
	if t.hasLoHi {
		s += fmt.Sprintf(" min %s max %s", t.lo.RatString(), t.hi.RatString())
	}
	return s
}

// TestAggregatesRedriveExactlyOnce is issue 19's "redrive of failed batches" end to end: 2,000 records over 4
// shards through the local event source mapping (MaximumRetryAttempts 1, an SQS on-failure destination) into a
// pipeline with aggregates. Phase 1: the pipeline's schema sends category d to the error table. Phase 2: a DynamoDB
// outage (every request throttled), then a brownout (80% throttled): the mapping gives up on batches; then recovery.
// Phase 3, as an operator would: the redrive command with the fixed configuration for the schema's error entries,
// then for the on-failure queue, with the aggregate table; the same again (error entries put back, the queue's
// messages sent again: must change nothing); a `kdp replay` of phase 1's window (must change nothing). Every
// aggregate total, read with aggregate.Totals and by summing the aggregate table's per-shard items here, must equal
// the one computed from the records put, each valid record counted once; the data table must hold each valid
// record once, the error table the poison records only.
func TestAggregatesRedriveExactlyOnce(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bad, fixed := redriveConfigs()
	p := newPipeline(t, ctx, 4, bad, dynamostandin.Options{Seed: 19, ThrottleRate: 0.05,
		FaultOperations: []string{dynamostandin.OpBatchWriteItem, dynamostandin.OpPutItem}})
	dynaliteURL := aws.ToString(p.db.Options().BaseEndpoint)
	kinesaliteURL := aws.ToString(p.kc.Options().BaseEndpoint)
	aggTable := createRedriveAggregateTable(t, ctx, p.db, t.Name())

	// The pipeline's processor writes through one of three stand-ins in front of dynalite: normal (5% throttled,
	// retried within the invocation), outage and brownout. The handler uses the current one.
	outage := dynamostandin.New(dynamostandin.Options{Upstream: dynaliteURL, ThrottleRate: 1})
	t.Cleanup(outage.Close)
	brownout := dynamostandin.New(dynamostandin.Options{Upstream: dynaliteURL, Seed: 20, ThrottleRate: 0.8})
	t.Cleanup(brownout.Close)
	procFor := func(url string) *processor.Processor {
		db := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(url) })
		proc, err := processor.New(db, func(o *processor.Options) {
			o.TableName, o.ErrorTableName, o.AggregateTableName, o.Config = p.table, p.errTable, aggTable, bad
			o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			o.MetricsWriter = io.Discard
		})
		if err != nil {
			t.Fatal(err)
		}
		return proc
	}
	phaseProc := []*processor.Processor{procFor(p.standin.URL()), procFor(outage.URL()), procFor(brownout.URL()), procFor(p.standin.URL())}
	var cur atomic.Pointer[processor.Processor]
	handler := func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		return cur.Load().Handle(ctx, ev)
	}

	queue, err := sqsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(queue.Close)
	queueURL := queue.CreateQueue("pipeline-on-failure")
	sq := sqs.NewFromConfig(emulators.AWSConfig(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(queue.URL()) })
	sqsSink := localrun.SQSSink{Client: sq, QueueURL: queueURL}
	kept := &localrun.MemorySink{} // a copy of what the mapping sent, to send it again for the second redrive
	streamARN := fmt.Sprintf("arn:aws:kinesis:%s:000000000000:stream/%s", emulators.Region, p.stream)
	r := p.runner(t, localrun.InProcess(handler), func(o *localrun.Options) {
		o.StreamARN, o.Region = streamARN, emulators.Region
		o.OnFailure = teeSink{kept, sqsSink}
		o.MaximumRetryAttempts = 1
		o.FunctionTimeout = 2 * time.Second
	})

	recs, phases := makeRedriveRecords()
	var phase1Since, phase1Until time.Time
	put := 0
	for i, es := range phases {
		cur.Store(phaseProc[i])
		if i == 0 {
			phase1Since = time.Now().Add(-time.Second)
		}
		before := r.Stats()
		p.put(t, ctx, es)
		put += len(es)
		drain(t, ctx, r, 2*time.Minute)
		for j := 0; j < 40; j++ { // a drain can end before the last records show
			if st := r.Stats(); st.RecordsAcknowledged+st.RecordsGivenUp >= int64(put) {
				break
			}
			time.Sleep(250 * time.Millisecond)
			drain(t, ctx, r, time.Minute)
		}
		st := r.Stats()
		t.Logf("phase %s: %d records, %d acknowledged, %d given up", redrivePhases[i].name, len(es),
			st.RecordsAcknowledged-before.RecordsAcknowledged, st.RecordsGivenUp-before.RecordsGivenUp)
		if i == 0 {
			time.Sleep(time.Second) // phase 1's arrival times end before the replay window's end, phase 2's after
			phase1Until = time.Now()
			time.Sleep(time.Second)
		}
		if i == 1 && st.RecordsGivenUp-before.RecordsGivenUp != int64(len(es)) {
			t.Fatalf("the outage gave up on %d of its %d records, want all (stats %+v)", st.RecordsGivenUp-before.RecordsGivenUp, len(es), st)
		}
	}
	st := r.Stats()
	if st.RecordsAcknowledged+st.RecordsGivenUp != int64(put) {
		t.Fatalf("%d records acknowledged and %d given up, want %d in all", st.RecordsAcknowledged, st.RecordsGivenUp, put)
	}
	errEntries, _ := p.scan(t, ctx, p.errTable, "id")
	schemaEntries := map[string]map[string]types.AttributeValue{}
	for id, it := range errEntries {
		if strings.Contains(str(it[processor.ErrorAttrReason]), redriveSchemaReason) {
			schemaEntries[id] = it
		}
	}
	if len(schemaEntries) == 0 || len(kept.Records()) == 0 {
		t.Fatalf("%d schema error entries, %d on-failure records: the scenario needs both", len(schemaEntries), len(kept.Records()))
	}
	t.Logf("before the redrive: %d error entries (%d of the schema), %d on-failure records for %d records",
		len(errEntries), len(schemaEntries), len(kept.Records()), st.RecordsGivenUp)

	// Phase 3: the operator fixes the configuration and redrives, as the runbook says, straight to the recovered
	// DynamoDB.
	cfgJSON, err := fixed.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), processor.ConfigFileName)
	if err := os.WriteFile(cfgFile, cfgJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	noFile := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_REGION": emulators.Region, "AWS_ACCESS_KEY_ID": "AKIDEMULATOR", "AWS_SECRET_ACCESS_KEY": "emulator-secret",
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": noFile, "AWS_SHARED_CREDENTIALS_FILE": noFile,
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "",
		"AWS_ENDPOINT_URL_DYNAMODB": dynaliteURL, "AWS_ENDPOINT_URL_KINESIS": kinesaliteURL, "AWS_ENDPOINT_URL_SQS": queue.URL(),
		processor.EnvAggregateTableName: aggTable,
	} {
		t.Setenv(k, v)
	}
	redriveErrors := []string{"redrive", "errors", "--error-table", p.errTable, "--table", p.table, "--stream", streamARN,
		"--reason", redriveSchemaReason, "--config", cfgFile}
	redriveDLQ := []string{"redrive", "dlq", "--queue-url", queueURL, "--stream", streamARN, "--table", p.table,
		"--error-table", p.errTable, "--config", cfgFile}
	replay := []string{"replay", "--stream", streamARN, "--since", phase1Since.UTC().Format(time.RFC3339Nano),
		"--until", phase1Until.UTC().Format(time.RFC3339Nano), "--table", p.table, "--error-table", p.errTable, "--config", cfgFile}
	runKDP(t, ctx, withAggregateTable(redriveErrors, aggTable)...)
	// The outage gave batches up before any attempt reached the aggregate table: only the on-failure ranges name
	// them. Without --count-unseen the redrive stores them, leaves them uncounted, says so and keeps their messages
	// (exit 1); with it (only the local event source mapping writes this queue) it counts them.
	var out, errOut bytes.Buffer
	if code := kdp(ctx, withAggregateTable(redriveDLQ, aggTable), &out, &errOut); code != 1 ||
		!strings.Contains(out.String(), "left uncounted: the aggregate ledger never saw them") {
		t.Fatalf("redrive dlq without --count-unseen: exit %d, want 1 with the uncounted records named\n%s%s", code, out.String(), lastLines(errOut.String(), 20))
	}
	redriveDLQ = append(redriveDLQ, "--count-unseen")
	runKDP(t, ctx, withAggregateTable(redriveDLQ, aggTable)...)
	after := redriveState(t, ctx, p, aggTable)

	// The same redrives again: the schema's entries are back (a redrive interrupted before it deleted them) and the
	// queue holds the same on-failure records again (a message delivered twice). Nothing may change.
	for _, it := range schemaEntries {
		if _, err := p.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(p.errTable), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
	for _, fr := range kept.Records() {
		if err := sqsSink.Send(ctx, fr); err != nil {
			t.Fatal(err)
		}
	}
	runKDP(t, ctx, withAggregateTable(redriveErrors, aggTable)...)
	runKDP(t, ctx, withAggregateTable(redriveDLQ, aggTable)...)
	if again := redriveState(t, ctx, p, aggTable); !again.equal(after) {
		t.Errorf("the second redrive changed the tables:\n%s", again.diff(after))
	}
	// kdp replay of phase 1's window: records the pipeline counted, and the redriven category d: nothing may change.
	runKDP(t, ctx, withAggregateTable(replay, aggTable)...)
	if again := redriveState(t, ctx, p, aggTable); !again.equal(after) {
		t.Errorf("the replay changed the tables:\n%s", again.diff(after))
	}

	// The oracle: every record whose Value is a number counts once, in its minute and category (by its payload)
	// and in its day of arrival (read back from the stream).
	arrival := map[int]time.Time{}
	for _, shard := range allShardRecords(t, ctx, p) {
		for _, er := range shard {
			var pl struct{ N int }
			if err := json.Unmarshal(er.Kinesis.Data, &pl); err != nil {
				t.Fatal(err)
			}
			arrival[pl.N] = er.Kinesis.ApproximateArrivalTimestamp.Time
		}
	}
	want := map[string]*redriveTotal{}
	add := func(key string, v *big.Rat) {
		if want[key] == nil {
			want[key] = &redriveTotal{sum: new(big.Rat)}
		}
		want[key].add(v)
	}
	valid := 0
	for _, rec := range recs {
		if rec.value == nil {
			continue
		}
		at, ok := arrival[rec.n]
		if !ok {
			t.Fatalf("record %d is not in the stream", rec.n)
		}
		valid++
		add(fmt.Sprintf(`byMinute#%s#["%s"]`, rec.ts.Truncate(time.Minute).Format(time.RFC3339), rec.category), rec.value)
		add(fmt.Sprintf(`daily#%s#[]`, at.UTC().Truncate(24*time.Hour).Format(time.RFC3339)), rec.value)
	}

	// Check 1: the aggregate table's items, summed here.
	got := after.totals
	wrong := 0
	for _, k := range sortedKeys(want) {
		w, g := want[k], got[k]
		if g == nil || g.count != w.count || g.sum.Cmp(w.sum) != 0 || (strings.HasPrefix(k, "byMinute#") && (g.lo.Cmp(w.lo) != 0 || g.hi.Cmp(w.hi) != 0)) {
			wrong++
			if wrong <= 12 {
				t.Errorf("items of %s summed: %v, want %v", k, g, w)
			}
		}
	}
	for k := range got {
		if want[k] == nil {
			t.Errorf("aggregate items for %s, which no record counts towards: %v", k, got[k])
		}
	}
	// The same per phase, by the per-minute aggregate's counts: where the missing records come from.
	for pi, ph := range redrivePhases {
		minute := redriveBase.Add(time.Duration(ph.minute) * time.Minute).Format(time.RFC3339)
		var wc, gc int64
		for k, w := range want {
			if strings.HasPrefix(k, "byMinute#"+minute+"#") {
				wc += w.count
				if g := got[k]; g != nil {
					gc += g.count
				}
			}
		}
		t.Logf("phase %s: %d readings counted, want %d", redrivePhases[pi].name, gc, wc)
		if gc != wc {
			t.Errorf("phase %s: %d readings counted, want %d (%+d)", ph.name, gc, wc, gc-wc)
		}
	}

	// Check 2: every total through aggregate.Totals.
	totalsWrong := 0
	for _, k := range sortedKeys(want) {
		name, rest, _ := strings.Cut(k, "#")
		ws, groupJSON, _ := strings.Cut(rest, "#")
		at, err := time.Parse(time.RFC3339, ws)
		if err != nil {
			t.Fatal(err)
		}
		var group []string
		if err := json.Unmarshal([]byte(groupJSON), &group); err != nil {
			t.Fatal(err)
		}
		var ac processor.AggregateConfig
		for _, a := range fixed.Aggregates {
			if a.Name == name {
				ac = a
			}
		}
		q := aggregate.Query{Name: name, Measures: ac.MeasureList(), Window: time.Duration(ac.WindowSeconds) * time.Second, Time: at}
		for _, g := range group {
			q.Group = append(q.Group, g)
		}
		tot, err := aggregate.Totals(ctx, p.db, aggTable, q)
		if err != nil {
			t.Errorf("totals of %s: %v", k, err)
			totalsWrong++
			continue
		}
		w := want[k]
		checks := map[string]*big.Rat{"readings": new(big.Rat).SetInt64(w.count), "total": w.sum}
		if name == "byMinute" {
			checks["lowest"], checks["highest"] = w.lo, w.hi
		}
		for m, wv := range checks {
			gv, ok := tot.Values[m]
			var r *big.Rat
			if ok {
				r, ok = new(big.Rat).SetString(gv.String())
			}
			if !ok || r.Cmp(wv) != 0 {
				totalsWrong++
				if totalsWrong <= 6 {
					t.Errorf("aggregate.Totals %s %s = %v, want %s", k, m, gv, wv.RatString())
				}
			}
		}
	}

	// The raw items: each valid record once in the data table, the poison ones once in the error table.
	wantData, wantErr := map[int]bool{}, map[int]bool{}
	for _, rec := range recs {
		if rec.value == nil {
			wantErr[rec.n] = true
		} else {
			wantData[rec.n] = true
		}
	}
	lost, dup := compareRecordSet(t, "data table", after.data, wantData)
	l2, d2 := compareRecordSet(t, "error table", after.errors, wantErr)
	// Readings missing from (or extra in) the daily totals: every valid record counts there once.
	var wantReadings, gotReadings int64
	for k, w := range want {
		if strings.HasPrefix(k, "daily#") {
			wantReadings += w.count
			if g := got[k]; g != nil {
				gotReadings += g.count
			}
		}
	}
	t.Logf("daily readings: %d counted, want %d (%+d)", gotReadings, wantReadings, gotReadings-wantReadings)
	report(t, figures{Test: fmt.Sprintf("aggregates under redrive: 2,000 records, 4 shards, schema errors, outage and brownout given up (%d records), redriven twice and replayed: %d of %d totals exact",
		st.RecordsGivenUp, len(want)-wrong, len(want)), Records: len(recs), FaultsInjected: faultsInjected(p.standin.Stats()) + faultsInjected(outage.Stats()) + faultsInjected(brownout.Stats()),
		Lost: lost + l2 + int(max(0, wantReadings-gotReadings)), Duplicated: dup + d2 + int(max(0, gotReadings-wantReadings)), Seconds: time.Since(start).Seconds()})
	t.Logf("%d valid records, %d totals checked (%d wrong summed, %d wrong by Totals) in %v", valid, len(want), wrong, totalsWrong, time.Since(start).Round(time.Second))
}

// teeSink sends each on-failure record to every sink.
type teeSink []localrun.Sink

// Send sends rec to each sink in order.
func (s teeSink) Send(ctx context.Context, rec redrive.FailureRecord) error {
	for _, k := range s {
		if err := k.Send(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// createRedriveAggregateTable creates an aggregate table (pk, sk: S) as the construct does.
func createRedriveAggregateTable(t *testing.T, ctx context.Context, db *dynamodb.Client, name string) string {
	t.Helper()
	table := emulators.UniqueName(name + "-aggregates")
	if err := emulators.CreateAggregateTable(ctx, db, table); err != nil {
		t.Fatal(err)
	}
	return table
}

// withAggregateTable adds --aggregate-table to a redrive or replay command line, as the stack outputs do.
func withAggregateTable(args []string, table string) []string {
	return append(append([]string(nil), args...), "--aggregate-table", table)
}

// kdp runs `kdp redrive ...` or `kdp replay ...` in this process (the commands' own Main functions) and returns
// the exit status.
func kdp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch args[0] {
	case "redrive":
		return redrivecli.Main(ctx, args[1:], stdout, stderr)
	case "replay":
		return replaycli.Main(ctx, args[1:], stdout, stderr)
	}
	panic("kdp " + args[0])
}

// runKDP runs a command and fails the test unless it exits 0.
func runKDP(t *testing.T, ctx context.Context, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := kdp(ctx, args, &stdout, &stderr)
	t.Logf("kdp %s: exit %d in %v\n%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), lastLines(stdout.String(), 8))
	if code != 0 {
		t.Fatalf("kdp %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), lastLines(stderr.String(), 20))
	}
}

// redriveSnapshot is what the checks read: the aggregate table's items summed here by partition key, its items'
// measures one by one, and the payload numbers of the data and error tables' items (with repeats).
type redriveSnapshot struct {
	totals map[string]*redriveTotal
	items  map[string]string // pk + " " + sk -> measures as text
	data   map[int]int
	errors map[int]int
}

// redriveState reads the tables straight from dynalite.
func redriveState(t *testing.T, ctx context.Context, p *pipeline, aggTable string) redriveSnapshot {
	t.Helper()
	s := redriveSnapshot{totals: map[string]*redriveTotal{}, items: map[string]string{}, data: map[int]int{}, errors: map[int]int{}}
	scanAll(t, ctx, p.db, aggTable, func(it map[string]types.AttributeValue) {
		pk, sk := str(it["pk"]), str(it["sk"])
		if strings.HasPrefix(pk, "_") { // the ledger's own items, not totals
			return
		}
		tot := s.totals[pk]
		if tot == nil {
			tot = &redriveTotal{sum: new(big.Rat)}
			s.totals[pk] = tot
		}
		tot.shards++
		num := func(name string) (*big.Rat, bool) {
			av, ok := it[name].(*types.AttributeValueMemberN)
			if !ok {
				return nil, false
			}
			r, ok := new(big.Rat).SetString(av.Value)
			if !ok {
				t.Fatalf("item %s %s: %s = %q is not a number", pk, sk, name, av.Value)
			}
			return r, true
		}
		var text []string
		if c, ok := num("readings"); ok {
			if !c.IsInt() {
				t.Fatalf("item %s %s: readings %s", pk, sk, c.RatString())
			}
			tot.count += c.Num().Int64()
			text = append(text, "readings="+c.RatString())
		}
		if v, ok := num("total"); ok {
			tot.sum = new(big.Rat).Add(tot.sum, v)
			text = append(text, "total="+v.RatString())
		}
		lo, okLo := num("lowest")
		hi, okHi := num("highest")
		if okLo && okHi {
			if !tot.hasLoHi || lo.Cmp(tot.lo) < 0 {
				tot.lo = lo
			}
			if !tot.hasLoHi || hi.Cmp(tot.hi) > 0 {
				tot.hi = hi
			}
			tot.hasLoHi = true
			text = append(text, "lowest="+lo.RatString(), "highest="+hi.RatString())
		}
		s.items[pk+" "+sk] = strings.Join(text, " ")
	})
	scanAll(t, ctx, p.db, p.table, func(it map[string]types.AttributeValue) {
		s.data[payloadNumber(t, str(it["n"]))]++
	})
	scanAll(t, ctx, p.db, p.errTable, func(it map[string]types.AttributeValue) {
		if _, part := it[processor.ErrorAttrPartOf]; part {
			return
		}
		if enc := str(it[processor.ErrorAttrPayloadEncoding]); enc != processor.PayloadEncodingRaw {
			t.Fatalf("error item %s: payload encoding %q", str(it["id"]), enc)
		}
		var pl struct{ N json.Number }
		if err := json.Unmarshal([]byte(str(it[processor.ErrorAttrPayload])), &pl); err != nil {
			t.Fatalf("error item %s: payload: %v", str(it["id"]), err)
		}
		s.errors[payloadNumber(t, pl.N.String())]++
	})
	return s
}

func payloadNumber(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		t.Fatalf("payload number %q: %v", s, err)
	}
	return n
}

// equal reports whether two snapshots hold the same items and records.
func (s redriveSnapshot) equal(o redriveSnapshot) bool {
	return s.diff(o) == ""
}

// diff describes how s differs from o (at most 10 lines), or "".
func (s redriveSnapshot) diff(o redriveSnapshot) string {
	var lines []string
	keys := map[string]bool{}
	for k := range s.items {
		keys[k] = true
	}
	for k := range o.items {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		if s.items[k] != o.items[k] {
			lines = append(lines, fmt.Sprintf("aggregate item %s: %q, was %q", k, s.items[k], o.items[k]))
		}
	}
	for _, c := range []struct {
		what string
		a, b map[int]int
	}{{"data", s.data, o.data}, {"error", s.errors, o.errors}} {
		ns := map[int]bool{}
		for n := range c.a {
			ns[n] = true
		}
		for n := range c.b {
			ns[n] = true
		}
		for n := range ns {
			if c.a[n] != c.b[n] {
				lines = append(lines, fmt.Sprintf("%s items of record %d: %d, was %d", c.what, n, c.a[n], c.b[n]))
			}
		}
	}
	sort.Strings(lines)
	if len(lines) > 10 {
		lines = append(lines[:10], fmt.Sprintf("... %d more", len(lines)-10))
	}
	return strings.Join(lines, "\n")
}

// compareRecordSet checks that got holds each wanted record exactly once and nothing else.
func compareRecordSet(t *testing.T, what string, got map[int]int, want map[int]bool) (lost, duplicated int) {
	t.Helper()
	var problems []string
	for n := range want {
		if got[n] == 0 {
			lost++
			problems = append(problems, fmt.Sprintf("record %d missing", n))
		} else if got[n] > 1 {
			duplicated += got[n] - 1
			problems = append(problems, fmt.Sprintf("record %d %d times", n, got[n]))
		}
	}
	for n, c := range got {
		if !want[n] {
			duplicated += c
			problems = append(problems, fmt.Sprintf("record %d should not be there (%d times)", n, c))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		t.Errorf("%s: %d lost, %d extra or repeated: %s", what, lost, duplicated, strings.Join(problems[:min(10, len(problems))], "; "))
	}
	return lost, duplicated
}

// scanAll calls f with every item of table (strongly consistent).
func scanAll(t *testing.T, ctx context.Context, db *dynamodb.Client, table string, f func(map[string]types.AttributeValue)) {
	t.Helper()
	pager := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for pages := 0; pager.HasMorePages() && pages < 10000; pages++ {
		out, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, it := range out.Items {
			f(it)
		}
	}
}
