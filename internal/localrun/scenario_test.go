package localrun_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// failedAt is the time the scenarios' runner gives up (its clock).
var failedAt = fakeBase.Add(time.Hour)

// wantRecord is an on-failure record as AWS sends it to SQS, for the records first..last (size of them) of the
// fake's shard. functionError is `null` or `"Unhandled"`; "" leaves responseContext out (expired records).
func wantRecord(condition string, invokes int, functionError string, first, last, size int) string {
	rc := ""
	if functionError != "" {
		rc = fmt.Sprintf(`"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":%s},`, functionError)
	}
	arrival := func(i int) string {
		return fakeBase.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	}
	return fmt.Sprintf(`{"requestContext":{"requestId":"ID","functionArn":"arn:aws:lambda:us-east-1:000000000000:function:local",`+
		`"condition":%q,"approximateInvokeCount":%d},%s"version":"1.0","timestamp":%q,`+
		`"KinesisBatchInfo":{"shardId":"shardId-000000000000","startSequenceNumber":%q,"endSequenceNumber":%q,`+
		`"approximateArrivalOfFirstRecord":%q,"approximateArrivalOfLastRecord":%q,"batchSize":%d,`+
		`"streamArn":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}}`,
		condition, invokes, rc, failedAt.Format("2006-01-02T15:04:05.000Z"), seqNumber(first), seqNumber(last), arrival(first), arrival(last), size)
}

// requestID matches the random request id of an on-failure record.
var requestID = regexp.MustCompile(`"requestId":"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"`)

// scenario is a stream of records, a mapping and a scripted function, and what the runner must do with them.
type scenario struct {
	name    string
	records []string // payloads; nil: n JSON objects {"n":i}
	n       int
	opts    func(*localrun.Options)
	script  script
	// tick advances the runner's clock before each invocation.
	tick time.Duration
	// wantCalls lists the records (by index) each invocation carried, in order.
	wantCalls [][]int
	// wantCheckpoint is the index of the record the shard is checkpointed at.
	wantCheckpoint int
	// wantFailures are the on-failure records, exactly as sent (request ids replaced by "ID").
	wantFailures []string
	// wantStats checks counters; nil: not checked.
	wantStats func(s localrun.Stats) bool
}

func (sc scenario) run(t *testing.T) {
	t.Helper()
	payloads := sc.records
	if payloads == nil {
		for i := 0; i < sc.n; i++ {
			payloads = append(payloads, fmt.Sprintf(`{"n":%d}`, i))
		}
	}
	kc := newFakeKinesis(payloads)
	clk := &clock{now: failedAt}
	fn := &scripted{script: sc.script}
	if sc.tick > 0 {
		clk.now = fakeBase
		fn.before = func(int) { clk.advance(sc.tick) }
	}
	sinkPath := filepath.Join(t.TempDir(), "on-failure.jsonl")
	sink, err := localrun.NewFileSink(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	r, err := localrun.New(kc, fn, func(o *localrun.Options) {
		o.StreamName = "s"
		o.PollInterval = time.Millisecond
		o.RetryDelay = time.Microsecond
		o.FunctionTimeout = 10 * time.Second
		o.ReportBatchItemFailures = true
		o.OnFailure = sink
		o.Now = clk.Now
	}, sc.opts)
	if err != nil {
		t.Fatal(err)
	}
	drainFake(t, r)

	if got := fn.snapshot(); !reflect.DeepEqual(got, sc.wantCalls) {
		t.Errorf("invocations carried\n%v\nwant\n%v", got, sc.wantCalls)
	}
	if got, want := r.Checkpoints()["shardId-000000000000"], seqNumber(sc.wantCheckpoint); got != want {
		t.Errorf("checkpoint %s, want record %d (%s)", got, sc.wantCheckpoint, want)
	}
	raw, err := os.ReadFile(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line != "" {
			got = append(got, requestID.ReplaceAllString(line, `"requestId":"ID"`))
		}
	}
	if len(got) != len(sc.wantFailures) {
		t.Errorf("%d on-failure records, want %d:\n%s", len(got), len(sc.wantFailures), strings.Join(got, "\n"))
	}
	for i := range min(len(got), len(sc.wantFailures)) {
		if got[i] != sc.wantFailures[i] {
			t.Errorf("on-failure record %d\n got %s\nwant %s", i, got[i], sc.wantFailures[i])
		}
		if _, err := redrive.ParseFailureRecord([]byte(got[i])); err != nil {
			t.Errorf("the redrive command cannot read on-failure record %d: %v", i, err)
		}
	}
	if sc.wantStats != nil && !sc.wantStats(r.Stats()) {
		t.Errorf("stats %+v", r.Stats())
	}
}

// failing returns a script that reports the first of these records present in a batch (none: success).
func failing(idx ...int) script {
	return func(_ int, batch []int) (string, error) {
		for _, b := range batch {
			for _, i := range idx {
				if b == i {
					return report(i), nil
				}
			}
		}
		return `{"batchItemFailures":[]}`, nil
	}
}

// erroring returns a script that fails (function error) every batch holding one of these records.
func erroring(idx ...int) script {
	return func(_ int, batch []int) (string, error) {
		for _, b := range batch {
			for _, i := range idx {
				if b == i {
					return "", errors.New("boom")
				}
			}
		}
		return "", nil
	}
}

func repeat(batch []int, n int) [][]int {
	var out [][]int
	for range n {
		out = append(out, batch)
	}
	return out
}

func TestRetryCountingAfterPartialFailures(t *testing.T) {
	tests := []scenario{
		{
			// Recorded on AWS: BatchSize 3, MaximumRetryAttempts 3, the last record always reported. The invocation
			// that moved the checkpoint past records 3 and 4 does not count: record 5 alone then fails 4 times (1 +
			// 3 retries), so it is delivered 5 times in all and the on-failure record says 4 invocations, 1 record.
			name: "recorded on AWS: batch 3, retries 3, last record reported", n: 6,
			opts:           func(o *localrun.Options) { o.BatchSize, o.MaximumRetryAttempts = 3, 3 },
			script:         failing(5),
			wantCalls:      append([][]int{rng(0, 2), rng(3, 5)}, repeat([]int{5}, 4)...),
			wantCheckpoint: 5,
			wantFailures:   []string{wantRecord(redrive.ConditionRetryAttemptsExhausted, 4, "null", 5, 5, 1)},
			wantStats: func(s localrun.Stats) bool {
				return s.Invocations == 6 && s.PartialFailures == 5 && s.RecordsAcknowledged == 5 && s.RecordsGivenUp == 1 && s.Retries == 4
			},
		},
		{
			// Every invocation moves the checkpoint: retries 2 are never used up, whatever the number of partial
			// failures.
			name: "progress never uses up retries", n: 10,
			opts: func(o *localrun.Options) { o.BatchSize, o.MaximumRetryAttempts = 10, 2 },
			script: func(_ int, batch []int) (string, error) {
				if len(batch) >= 3 {
					return report(batch[2]), nil // the third record of every batch
				}
				return "", nil
			},
			wantCalls:      [][]int{rng(0, 9), rng(2, 9), rng(4, 9), rng(6, 9), rng(8, 9)},
			wantCheckpoint: 9,
			wantStats: func(s localrun.Stats) bool {
				return s.PartialFailures == 4 && s.RecordsAcknowledged == 10 && s.RecordsGivenUp == 0
			},
		},
		{
			// A failure at the first record moves nothing: it is a failed attempt of the whole batch.
			name: "failure at the first record uses a retry", n: 4,
			opts:           func(o *localrun.Options) { o.BatchSize, o.MaximumRetryAttempts = 4, 1 },
			script:         failing(0),
			wantCalls:      repeat(rng(0, 3), 2),
			wantCheckpoint: 3,
			wantFailures:   []string{wantRecord(redrive.ConditionRetryAttemptsExhausted, 2, "null", 0, 3, 4)},
		},
		{
			// Lowest of several identifiers; the response of an invocation that moved the checkpoint and then
			// fails at the first record counts from the new checkpoint.
			name: "lowest identifier is the checkpoint, counts restart there", n: 8,
			opts: func(o *localrun.Options) { o.BatchSize, o.MaximumRetryAttempts = 8, 0 },
			script: func(n int, batch []int) (string, error) {
				if n == 0 {
					return report(6, 3), nil
				}
				return report(batch[0]), nil
			},
			wantCalls:      [][]int{rng(0, 7), rng(3, 7)},
			wantCheckpoint: 7,
			wantFailures:   []string{wantRecord(redrive.ConditionRetryAttemptsExhausted, 1, "null", 3, 7, 5)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestBisect(t *testing.T) {
	bisect := func(batch, retries int) func(*localrun.Options) {
		return func(o *localrun.Options) {
			o.BatchSize, o.MaximumRetryAttempts, o.BisectBatchOnFunctionError = batch, retries, true
		}
	}
	tests := []scenario{
		{
			// With bisect and ReportBatchItemFailures, the batch is bisected at the returned record and only the
			// records from there on are retried; the split uses no retry (0 here), so record 5 then gets its one
			// invocation of its own before it is given up on, with the two records after it.
			name: "partial failure: bisected at the returned record, no retry used", n: 8,
			opts:           bisect(8, 0),
			script:         failing(5),
			wantCalls:      [][]int{rng(0, 7), rng(5, 7)},
			wantCheckpoint: 7,
			wantFailures:   []string{wantRecord(redrive.ConditionRetryAttemptsExhausted, 1, "null", 5, 7, 3)},
			wantStats:      func(s localrun.Stats) bool { return s.Bisections == 0 && s.PartialFailures == 2 },
		},
		{
			name: "partial failure, then success of the rest", n: 8,
			opts: bisect(8, 0),
			script: func(n int, _ []int) (string, error) {
				if n == 0 {
					return report(5), nil
				}
				return "", nil
			},
			wantCalls:      [][]int{rng(0, 7), rng(5, 7)},
			wantCheckpoint: 7,
			wantStats:      func(s localrun.Stats) bool { return s.RecordsAcknowledged == 8 && s.RecordsGivenUp == 0 },
		},
		{
			// A function error halves the batch until the failing record is alone; halving uses no retry. The
			// record was carried by 4 invocations.
			name: "function error: halves isolate the poison record", n: 8,
			opts:           bisect(8, 0),
			script:         erroring(5),
			wantCalls:      [][]int{rng(0, 7), rng(0, 3), rng(4, 7), rng(4, 5), {4}, {5}, rng(6, 7)},
			wantCheckpoint: 7,
			wantFailures:   []string{wantRecord(redrive.ConditionRetryAttemptsExhausted, 4, `"Unhandled"`, 5, 5, 1)},
			wantStats: func(s localrun.Stats) bool {
				return s.Bisections == 3 && s.FunctionErrors == 4 && s.RecordsAcknowledged == 7 && s.RecordsGivenUp == 1
			},
		},
		{
			// Two poison records: each given up on in its own record with its exact range (no consolidation).
			name: "function error: two poison records, two exact on-failure records", n: 4,
			opts:           bisect(4, 0),
			script:         erroring(1, 2),
			wantCalls:      [][]int{rng(0, 3), rng(0, 1), {0}, {1}, rng(2, 3), {2}, {3}},
			wantCheckpoint: 3,
			wantFailures: []string{
				wantRecord(redrive.ConditionRetryAttemptsExhausted, 3, `"Unhandled"`, 1, 1, 1),
				wantRecord(redrive.ConditionRetryAttemptsExhausted, 3, `"Unhandled"`, 2, 2, 1),
			},
		},
		{
			name: "function error without bisect: retried whole, then given up", n: 6,
			opts:           func(o *localrun.Options) { o.BatchSize, o.MaximumRetryAttempts = 3, 2 },
			script:         erroring(1),
			wantCalls:      append(repeat(rng(0, 2), 3), rng(3, 5)),
			wantCheckpoint: 5,
			wantFailures:   []string{wantRecord(redrive.ConditionRetryAttemptsExhausted, 3, `"Unhandled"`, 0, 2, 3)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestResponses(t *testing.T) {
	// Recorded on AWS with BatchSize 1 and MaximumRetryAttempts 2: these responses fail the whole batch, which is
	// retried and then given up on with functionError null. The runner does not bisect on them (unconfirmed on
	// AWS): two records, bisect on, stay together.
	invalid := []struct{ name, body string }{
		{"identifier not a string", `{"batchItemFailures":[{"itemIdentifier":123}]}`},
		{"empty identifier", `{"batchItemFailures":[{"itemIdentifier":""}]}`},
		{"null identifier", `{"batchItemFailures":[{"itemIdentifier":null}]}`},
		{"bad key", `{"batchItemFailures":[{"foo":123}]}`},
		{"bad key, null value", `{"batchItemFailures":[{"foo":null}]}`},
		{"identifier of no record of the batch", `{"batchItemFailures":[{"itemIdentifier":"12345"}]}`},
		{"key in another case", `{"BatchItemFailures":[{"itemIdentifier":"12345"}]}`},
		{"not a list", `{"batchItemFailures":{"itemIdentifier":"12345"}}`},
		{"a string", `"oops"`},
	}
	var tests []scenario
	for _, tt := range invalid {
		body := tt.body
		tests = append(tests, scenario{
			name: "invalid: " + tt.name, n: 2,
			opts: func(o *localrun.Options) {
				o.BatchSize, o.MaximumRetryAttempts, o.BisectBatchOnFunctionError = 2, 2, true
			},
			script:         func(int, []int) (string, error) { return body, nil },
			wantCalls:      repeat(rng(0, 1), 3),
			wantCheckpoint: 1,
			wantFailures:   []string{wantRecord(redrive.ConditionRetryAttemptsExhausted, 3, "null", 0, 1, 2)},
			wantStats: func(s localrun.Stats) bool {
				return s.InvalidResponses == 3 && s.FunctionErrors == 0 && s.Bisections == 0
			},
		})
	}
	// Recorded on AWS: these are a success.
	for _, body := range []string{``, `null`, `""`, `[]`, `{}`, `{"batchItemFailures":[]}`, `{"batchItemFailures":null}`, `{"other":1}`} {
		tests = append(tests, scenario{
			name: "success: " + body, n: 2,
			opts:           func(o *localrun.Options) { o.BatchSize, o.MaximumRetryAttempts = 2, 0 },
			script:         func(int, []int) (string, error) { return body, nil },
			wantCalls:      [][]int{rng(0, 1)},
			wantCheckpoint: 1,
		})
	}
	// Without ReportBatchItemFailures the response is ignored.
	tests = append(tests, scenario{
		name: "ignored without ReportBatchItemFailures", n: 2,
		opts:           func(o *localrun.Options) { o.ReportBatchItemFailures, o.MaximumRetryAttempts = false, 0 },
		script:         func(int, []int) (string, error) { return report(0), nil },
		wantCalls:      [][]int{rng(0, 1)},
		wantCheckpoint: 1,
	})
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestRecordAge(t *testing.T) {
	tests := []scenario{
		{
			// Recorded on AWS: records that expired before any invocation are reported with an invoke count of 1
			// and no responseContext.
			name: "expired before the first invocation", n: 3,
			opts:           func(o *localrun.Options) { o.MaximumRecordAge = time.Minute },
			script:         failing(),
			wantCheckpoint: 2,
			wantFailures:   []string{wantRecord(redrive.ConditionRecordAgeExceeded, 1, "", 0, 2, 3)},
		},
		{
			// The function always fails, retries are unlimited, and each invocation takes 25 s: at the fourth
			// check the record is older than a minute. The invoke count is the invocations so far.
			name: "expired while retrying", n: 1,
			opts:           func(o *localrun.Options) { o.MaximumRecordAge, o.MaximumRetryAttempts = time.Minute, -1 },
			script:         erroring(0),
			tick:           25 * time.Second,
			wantCalls:      repeat([]int{0}, 3),
			wantCheckpoint: 0,
			wantFailures:   []string{wantRecordAt(redrive.ConditionRecordAgeExceeded, 3, 0, 0, 1, fakeBase.Add(75*time.Second))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// wantRecordAt is wantRecord without responseContext, given up at a time.
func wantRecordAt(condition string, invokes, first, last, size int, at time.Time) string {
	return strings.Replace(wantRecord(condition, invokes, "", first, last, size),
		failedAt.Format("2006-01-02T15:04:05.000Z"), at.Format("2006-01-02T15:04:05.000Z"), 1)
}

func TestFilters(t *testing.T) {
	keep := `{"data":{"kind":["keep"]}}`
	records := []string{
		`{"kind":"keep","n":0}`, // 0
		`{"kind":"other"}`,      // 1: JSON, matches no filter
		`not json`,              // 2: not JSON: dropped under a data filter
		`{"kind":"keep","n":3}`, // 3
		`{"kind":"drop"}`,       // 4
	}
	tests := []scenario{
		{
			name: "only matching records are invoked; dropped ones are checkpointed", records: records,
			opts:           func(o *localrun.Options) { o.FilterPatterns = []string{keep} },
			wantCalls:      [][]int{{0, 3}},
			wantCheckpoint: 4,
			wantStats:      func(s localrun.Stats) bool { return s.RecordsFiltered == 3 && s.RecordsAcknowledged == 2 },
		},
		{
			name: "filters are ORed", records: records,
			opts:           func(o *localrun.Options) { o.FilterPatterns = []string{keep, `{"data":{"kind":[{"prefix":"oth"}]}}`} },
			wantCalls:      [][]int{{0, 1, 3}},
			wantCheckpoint: 4,
		},
		{
			name: "nothing matches: no invocation, every record checkpointed", records: records,
			opts:           func(o *localrun.Options) { o.FilterPatterns = []string{`{"data":{"kind":["none"]}}`} },
			wantCheckpoint: 4,
			wantStats:      func(s localrun.Stats) bool { return s.RecordsFiltered == 5 && s.Invocations == 0 },
		},
		{
			// Dropped records are never retried and never reported: only the invoked records are given up on
			// (the range spans record 1 and 2, which the batch did not carry: batchSize counts 2).
			name: "dropped records are never retried nor reported", records: records,
			opts: func(o *localrun.Options) {
				o.FilterPatterns, o.MaximumRetryAttempts = []string{keep}, 1
			},
			script:         erroring(0),
			wantCalls:      repeat([]int{0, 3}, 2),
			wantCheckpoint: 4,
			wantFailures:   []string{wantRecord(redrive.ConditionRetryAttemptsExhausted, 2, `"Unhandled"`, 0, 3, 2)},
		},
		{
			name: "without filters non-JSON data is delivered", records: records,
			wantCalls:      [][]int{rng(0, 4)},
			wantCheckpoint: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestWarnings(t *testing.T) {
	kc := newFakeKinesis(nil)
	tests := []struct {
		name string
		give func(*localrun.Options)
		want []string // a substring per warning, in order
	}{
		{"emulated settings: none", func(o *localrun.Options) { o.FilterPatterns = []string{`{"data":{"a":["b"]}}`} }, nil},
		{"parallelization factor", func(o *localrun.Options) { o.ParallelizationFactor = 3 }, []string{"ParallelizationFactor 3 is not emulated"}},
		{"everything", func(o *localrun.Options) {
			o.ParallelizationFactor, o.TumblingWindow, o.StreamConsumerARN, o.MaximumRecordAge = 10, time.Minute, "arn:aws:kinesis:us-east-1:1:stream/s/consumer/c:1", time.Second
		}, []string{"ParallelizationFactor 10", "TumblingWindow 1m0s", "enhanced fan-out", "MaximumRecordAge 1s is below"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := localrun.New(kc, &scripted{}, func(o *localrun.Options) { o.StreamName = "s" }, tt.give)
			if err != nil {
				t.Fatal(err)
			}
			got := r.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q does not say %q", got[i], w)
				}
			}
		})
	}
}
