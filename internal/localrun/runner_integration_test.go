//go:build integration

package localrun_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// fast makes the runner poll and retry quickly; tests add their own settings.
func fast(name string) func(*localrun.Options) {
	return func(o *localrun.Options) {
		o.StreamName = name
		o.PollInterval = 20 * time.Millisecond
		o.RetryDelay = time.Millisecond
		o.FunctionTimeout = 10 * time.Second
	}
}

func TestDeliversEveryShardInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := newStream(t, ctx, 3)
	want := map[string][]string{}
	for i, sh := range st.shards {
		want[*sh.ShardId] = st.put(t, ctx, i, "pk", numbered(i*1000, 120+i)...)
	}
	h := &scriptedHandler{}
	r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) { o.BatchSize = 50 })
	if err != nil {
		t.Fatal(err)
	}
	drain(t, ctx, r, time.Minute)

	calls := h.snapshot()
	if got := delivered(calls); !reflect.DeepEqual(got, want) {
		t.Errorf("delivered per shard (%d shards) differs from what was put (%d shards)", len(got), len(want))
	}
	for _, c := range calls {
		if len(c.seqs) > 50 {
			t.Errorf("batch of %d records, batch size 50", len(c.seqs))
		}
	}
	wantCheckpoints := map[string]string{}
	for id, seqs := range want {
		wantCheckpoints[id] = seqs[len(seqs)-1]
	}
	if got := r.Checkpoints(); !reflect.DeepEqual(got, wantCheckpoints) {
		t.Errorf("checkpoints = %v, want %v", got, wantCheckpoints)
	}
	if s := r.Stats(); s.RecordsAcknowledged != 363 || s.RecordsDelivered != 363 || s.FunctionErrors != 0 || s.RecordsGivenUp != 0 {
		t.Errorf("stats = %+v", s)
	}

	// The event is Lambda's: eventID shardId:sequenceNumber, ARN, region, data decoded from base64.
	rec := calls[0].ev.Records[0]
	if !strings.HasPrefix(rec.EventID, "shardId-") || rec.EventID != calls[0].shard+":"+rec.Kinesis.SequenceNumber ||
		rec.EventSourceArn != "arn:aws:kinesis:us-east-1:000000000000:stream/"+st.name || rec.AwsRegion != "us-east-1" ||
		rec.EventName != "aws:kinesis:record" || rec.EventSource != "aws:kinesis" || rec.Kinesis.PartitionKey != "pk" ||
		rec.Kinesis.ApproximateArrivalTimestamp.IsZero() || !strings.HasPrefix(string(rec.Kinesis.Data), `{"n":`) {
		t.Errorf("first record = %s", mustJSON(t, rec))
	}
}

func TestReportBatchItemFailures(t *testing.T) {
	tests := []struct {
		name    string
		report  bool
		respond func(seqs []string) events.KinesisEventResponse
		// wantSecond is the index (in the 10 records put) where the second invocation starts; -1: no second one.
		wantSecond int
		wantAcked  int64 // after the first invocation
	}{
		{"lowest of several identifiers is the checkpoint", true, func(s []string) events.KinesisEventResponse { return failAt(s[7], s[4]) }, 4, 4},
		{"failure at the first record acknowledges none", true, func(s []string) events.KinesisEventResponse { return failAt(s[0]) }, 0, 0},
		{"empty identifier fails the whole batch", true, func(s []string) events.KinesisEventResponse { return failAt(s[3], "") }, 0, 0},
		{"unknown identifier fails the whole batch", true, func(s []string) events.KinesisEventResponse { return failAt("12345") }, 0, 0},
		{"empty list is a success", true, func(s []string) events.KinesisEventResponse { return events.KinesisEventResponse{} }, -1, 10},
		{"ignored without ReportBatchItemFailures", false, func(s []string) events.KinesisEventResponse { return failAt(s[2]) }, -1, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st := newStream(t, ctx, 1)
			seqs := st.put(t, ctx, 0, "pk", numbered(0, 10)...)
			h := &scriptedHandler{respond: func(n int, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
				if n == 0 {
					return tt.respond(seqs), nil
				}
				return events.KinesisEventResponse{}, nil
			}}
			r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) {
				o.ReportBatchItemFailures = tt.report
			})
			if err != nil {
				t.Fatal(err)
			}
			drain(t, ctx, r, 30*time.Second)
			calls := h.snapshot()
			if tt.wantSecond < 0 {
				if len(calls) != 1 {
					t.Fatalf("%d invocations, want 1", len(calls))
				}
			} else {
				if len(calls) != 2 {
					t.Fatalf("%d invocations, want 2", len(calls))
				}
				if !slices.Equal(calls[1].seqs, seqs[tt.wantSecond:]) {
					t.Errorf("second invocation starts at record %s, want record %d", calls[1].seqs[0], tt.wantSecond)
				}
			}
			if got := r.Checkpoints()[*st.shards[0].ShardId]; got != seqs[9] {
				t.Errorf("final checkpoint %s, want the last record %s", got, seqs[9])
			}
			if s := r.Stats(); s.RecordsAcknowledged != 10 || s.RecordsDelivered != 10+int64(max(0, 10-tt.wantSecond))*int64(min(1, tt.wantSecond+1)) {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestRetriesExhaustedGoToTheSink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := newStream(t, ctx, 1)
	seqs := st.put(t, ctx, 0, "pk", numbered(0, 6)...)
	// Batches of 3: the first always fails, the second succeeds.
	h := &scriptedHandler{respond: func(n int, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		if ev.Records[0].Kinesis.SequenceNumber == seqs[0] {
			return events.KinesisEventResponse{}, errors.New("boom")
		}
		return events.KinesisEventResponse{}, nil
	}}
	sinkPath := filepath.Join(t.TempDir(), "dlq.jsonl")
	sink, err := localrun.NewFileSink(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) {
		o.BatchSize = 3
		o.MaximumRetryAttempts = 2
		o.OnFailure = sink
		o.ReportBatchItemFailures = true
	})
	if err != nil {
		t.Fatal(err)
	}
	drain(t, ctx, r, 30*time.Second)
	calls := h.snapshot()
	if len(calls) != 4 {
		t.Fatalf("%d invocations, want 3 of the failing batch and 1 of the next", len(calls))
	}
	recs, err := localrun.ReadFileSink(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d on-failure records, want 1", len(recs))
	}
	got := recs[0]
	bi := got.KinesisBatchInfo
	if bi.ShardID != *st.shards[0].ShardId || bi.StartSequenceNumber != seqs[0] || bi.EndSequenceNumber != seqs[2] || bi.BatchSize != 3 ||
		bi.StreamARN != r.Options().StreamARN || bi.ApproximateArrivalOfFirstRecord == "" ||
		got.RequestContext.Condition != redrive.ConditionRetryAttemptsExhausted || got.RequestContext.ApproximateInvokeCount != 3 ||
		got.ResponseContext.FunctionError != "Unhandled" || got.Version != "1.0" {
		t.Errorf("on-failure record = %s", mustJSON(t, got))
	}
	// The shape AWS sends to SQS, as the redrive command reads it: these keys, times in UTC with milliseconds.
	line, err := os.ReadFile(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	raw := strings.TrimSpace(string(line))
	if back, err := redrive.ParseFailureRecord([]byte(raw)); err != nil || !reflect.DeepEqual(back, got) {
		t.Errorf("redrive reads %s as %+v, %v", raw, back, err)
	}
	millis := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, ts := range []string{got.Timestamp, bi.ApproximateArrivalOfFirstRecord, bi.ApproximateArrivalOfLastRecord} {
		if !millis.MatchString(ts) {
			t.Errorf("time %q is not UTC with milliseconds", ts)
		}
	}
	for _, k := range []string{`"requestContext":{"requestId":`, `"condition":"RetryAttemptsExhausted"`, `"KinesisBatchInfo":{"shardId":`,
		`"startSequenceNumber":`, `"approximateArrivalOfFirstRecord":"`, `"batchSize":3`, `"streamArn":`} {
		if !strings.Contains(raw, k) {
			t.Errorf("on-failure record %s lacks %s", raw, k)
		}
	}
	if s := r.Stats(); s.RecordsGivenUp != 3 || s.RecordsAcknowledged != 3 || s.FailureRecords != 1 || s.Retries != 2 {
		t.Errorf("stats = %+v", s)
	}
	if got := r.Checkpoints()[*st.shards[0].ShardId]; got != seqs[5] {
		t.Errorf("checkpoint %s, want %s", got, seqs[5])
	}
}

func TestBisectIsolatesThePoisonRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := newStream(t, ctx, 1)
	seqs := st.put(t, ctx, 0, "pk", numbered(0, 8)...)
	poison := seqs[5]
	h := &scriptedHandler{respond: func(n int, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		for _, r := range ev.Records {
			if r.Kinesis.SequenceNumber == poison {
				return events.KinesisEventResponse{}, errors.New("poison")
			}
		}
		return events.KinesisEventResponse{}, nil
	}}
	sink := &localrun.MemorySink{}
	r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) {
		o.BatchSize = 8
		o.MaximumRetryAttempts = 0
		o.BisectBatchOnFunctionError = true
		o.OnFailure = sink
	})
	if err != nil {
		t.Fatal(err)
	}
	drain(t, ctx, r, 30*time.Second)
	recs := sink.Records()
	if len(recs) != 1 || recs[0].KinesisBatchInfo.StartSequenceNumber != poison || recs[0].KinesisBatchInfo.EndSequenceNumber != poison {
		t.Fatalf("on-failure records = %s, want only the poison record %s", mustJSON(t, recs), poison)
	}
	// 8 -> [0-3] ok, [4-7] fails -> [4,5] fails -> [4] ok, [5] fails (no retries left), [6,7] ok.
	var sizes []int
	for _, c := range h.snapshot() {
		sizes = append(sizes, len(c.seqs))
	}
	if want := []int{8, 4, 4, 2, 1, 1, 2}; !slices.Equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
	if s := r.Stats(); s.Bisections != 3 || s.RecordsAcknowledged != 7 || s.RecordsGivenUp != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestMaximumRecordAge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := newStream(t, ctx, 1)
	old := st.put(t, ctx, 0, "pk", numbered(0, 4)...)
	time.Sleep(1500 * time.Millisecond)
	fresh := st.put(t, ctx, 0, "pk", numbered(4, 2)...)
	h := &scriptedHandler{}
	sink := &localrun.MemorySink{}
	r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) {
		o.MaximumRecordAge = time.Second
		o.OnFailure = sink
	})
	if err != nil {
		t.Fatal(err)
	}
	drain(t, ctx, r, 30*time.Second)
	recs := sink.Records()
	if len(recs) != 1 || recs[0].RequestContext.Condition != redrive.ConditionRecordAgeExceeded ||
		recs[0].KinesisBatchInfo.StartSequenceNumber != old[0] || recs[0].KinesisBatchInfo.EndSequenceNumber != old[3] ||
		recs[0].KinesisBatchInfo.BatchSize != 4 || recs[0].RequestContext.ApproximateInvokeCount != 1 ||
		recs[0].ResponseContext != (redrive.ResponseContext{}) {
		t.Fatalf("on-failure records = %s", mustJSON(t, recs))
	}
	if got := delivered(h.snapshot())[*st.shards[0].ShardId]; !slices.Equal(got, fresh) {
		t.Errorf("delivered %v, want only the fresh records %v", got, fresh)
	}
}

func TestStartingPositions(t *testing.T) {
	tests := []struct {
		name string
		set  func(o *localrun.Options, between time.Time)
		// readFirst drains once before the newer records are put (LATEST starts there). kinesalite never answers
		// an AT_TIMESTAMP GetShardIterator when no record is that recent, so that case reads after the put.
		readFirst bool
		wantOld   bool
	}{
		{"trim horizon", func(o *localrun.Options, _ time.Time) { o.StartingPosition = localrun.TrimHorizon }, true, true},
		{"latest", func(o *localrun.Options, _ time.Time) { o.StartingPosition = localrun.Latest }, true, false},
		{"at timestamp", func(o *localrun.Options, between time.Time) {
			o.StartingPosition, o.StartingPositionTimestamp = localrun.AtTimestamp, between
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st := newStream(t, ctx, 1)
			old := st.put(t, ctx, 0, "pk", numbered(0, 3)...)
			time.Sleep(50 * time.Millisecond)
			between := time.Now()
			time.Sleep(50 * time.Millisecond)
			h := &scriptedHandler{}
			r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) { tt.set(o, between) })
			if err != nil {
				t.Fatal(err)
			}
			if tt.readFirst {
				drain(t, ctx, r, 30*time.Second)
			}
			newer := st.put(t, ctx, 0, "pk", numbered(3, 2)...)
			drain(t, ctx, r, 30*time.Second) // resumes where it stopped
			want := newer
			if tt.wantOld {
				want = append(append([]string(nil), old...), newer...)
			}
			if got := delivered(h.snapshot())[*st.shards[0].ShardId]; !slices.Equal(got, want) {
				t.Errorf("delivered %v, want %v", got, want)
			}
		})
	}
}

func TestBatchingWindowGathersRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := newStream(t, ctx, 1)
	st.put(t, ctx, 0, "pk", numbered(0, 5)...)
	h := &scriptedHandler{}
	r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) {
		o.MaximumBatchingWindow = 1500 * time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		st.put(t, ctx, 0, "pk", numbered(5, 5)...)
	}()
	start := time.Now()
	drain(t, ctx, r, 30*time.Second)
	<-done
	calls := h.snapshot()
	if len(calls) != 1 || len(calls[0].seqs) != 10 {
		t.Fatalf("%d invocations, first of %d records; want one of 10", len(calls), len(calls[0].seqs))
	}
	if d := time.Since(start); d < 1400*time.Millisecond {
		t.Errorf("invoked after %v, before the batching window passed", d)
	}
}

func TestFunctionTimeoutFailsTheBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := newStream(t, ctx, 1)
	st.put(t, ctx, 0, "pk", numbered(0, 2)...)
	h := &scriptedHandler{respond: func(n int, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		if n == 0 {
			time.Sleep(300 * time.Millisecond) // ignores its deadline
		}
		return events.KinesisEventResponse{}, nil
	}}
	r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) {
		o.FunctionTimeout = 100 * time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	drain(t, ctx, r, 30*time.Second)
	if s := r.Stats(); s.Invocations != 2 || s.FunctionErrors != 1 || s.RecordsAcknowledged != 2 {
		t.Errorf("stats = %+v, want a timed-out invocation then a retry", s)
	}
}

func TestSinkFailureHoldsTheCheckpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := newStream(t, ctx, 1)
	st.put(t, ctx, 0, "pk", numbered(0, 1)...)
	h := &scriptedHandler{respond: func(int, events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{}, errors.New("boom")
	}}
	r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) {
		o.MaximumRetryAttempts = 0
		o.OnFailure = failingSink{}
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	if err := r.Drain(runCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want the deadline: the sink never accepts", err)
	}
	if cp := r.Checkpoints(); len(cp) != 0 {
		t.Errorf("checkpoints = %v: moved past records the sink never held", cp)
	}
}

type failingSink struct{}

func (failingSink) Send(context.Context, redrive.FailureRecord) error {
	return errors.New("sink down")
}

func TestAWSSemanticsOnKinesalite(t *testing.T) {
	tests := []struct {
		name     string
		payloads [][]byte
		opts     func(*localrun.Options)
		// fail reports the record of this index whenever a batch carries it (-1: never).
		fail          int
		wantDelivered []int // indexes delivered, in order, replays included
		wantGivenUp   []int // indexes of the one on-failure record's range (first, last), none: nil
		wantInvokes   int
	}{
		{"recorded on AWS: batch 3, retries 3, last record reported", numbered(0, 6),
			func(o *localrun.Options) { o.BatchSize, o.MaximumRetryAttempts = 3, 3 },
			5, []int{0, 1, 2, 3, 4, 5, 5, 5, 5, 5}, []int{5, 5}, 4},
		{"filters drop non-matching and non-JSON records", [][]byte{[]byte(`{"k":"a"}`), []byte(`nope`), []byte(`{"k":"b"}`), []byte(`{"k":"a","n":3}`)},
			func(o *localrun.Options) { o.FilterPatterns = []string{`{"data":{"k":["a"]}}`} },
			-1, []int{0, 3}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st := newStream(t, ctx, 1)
			seqs := st.put(t, ctx, 0, "pk", tt.payloads...)
			index := map[string]int{}
			for i, s := range seqs {
				index[s] = i
			}
			h := &scriptedHandler{respond: func(_ int, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
				for _, r := range ev.Records {
					if tt.fail >= 0 && r.Kinesis.SequenceNumber == seqs[tt.fail] {
						return failAt(seqs[tt.fail]), nil
					}
				}
				return events.KinesisEventResponse{}, nil
			}}
			sink := &localrun.MemorySink{}
			r, err := localrun.New(st.kc, localrun.InProcess(h.handle), fast(st.name), func(o *localrun.Options) {
				o.ReportBatchItemFailures = true
				o.OnFailure = sink
			}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			drain(t, ctx, r, 30*time.Second)
			var got []int
			for _, s := range delivered(h.snapshot())[*st.shards[0].ShardId] {
				got = append(got, index[s])
			}
			if !slices.Equal(got, tt.wantDelivered) {
				t.Errorf("delivered %v, want %v", got, tt.wantDelivered)
			}
			recs := sink.Records()
			switch {
			case tt.wantGivenUp == nil && len(recs) != 0:
				t.Errorf("on-failure records %s, want none", mustJSON(t, recs))
			case tt.wantGivenUp != nil && (len(recs) != 1 || recs[0].KinesisBatchInfo.StartSequenceNumber != seqs[tt.wantGivenUp[0]] ||
				recs[0].KinesisBatchInfo.EndSequenceNumber != seqs[tt.wantGivenUp[1]] || recs[0].RequestContext.ApproximateInvokeCount != tt.wantInvokes):
				t.Errorf("on-failure records %s, want records %v after %d invocations", mustJSON(t, recs), tt.wantGivenUp, tt.wantInvokes)
			}
			if cp := r.Checkpoints()[*st.shards[0].ShardId]; cp != seqs[len(seqs)-1] {
				t.Errorf("checkpoint %s, want the last record %s", cp, seqs[len(seqs)-1])
			}
		})
	}
}
