//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// byEventIDWithSequence is the default configuration (event-id key) plus the sequence number as metadata, which
// checkByEventID compares with each item's key.
func byEventIDWithSequence() processor.Config {
	cfg := processor.DefaultConfig()
	cfg.Metadata = []string{processor.AttrSequenceNumber, processor.AttrArrivalTime}
	return cfg
}

// checkByEventID checks a table keyed by event id (the default): one item per JSON object put (a producer's
// duplicate is a second record, so a second item), none for a replay, and one error item per payload that is not a
// JSON object. It returns lost and duplicated counts.
func checkByEventID(t *testing.T, ctx context.Context, p *pipeline, w workload) (lost, duplicated int) {
	t.Helper()
	// identity names a payload: its businessId, else its "n".
	identity := func(get func(field string) string) string {
		if id := get("businessId"); id != "" {
			return id
		}
		return "n:" + get("n")
	}
	wantItems, wantErrors := map[string]int{}, map[string]int{}
	for _, e := range w.entries {
		var obj map[string]any
		if json.Unmarshal(e.data, &obj) == nil {
			wantItems[identity(func(f string) string { return payloadField(string(e.data), f) })]++
		} else {
			wantErrors[string(e.data)]++
		}
	}
	items, total := p.scan(t, ctx, p.table, "id")
	duplicated += total - len(items)
	gotItems := map[string]int{}
	for id, it := range items {
		if got := str(it[processor.AttrSequenceNumber]); !strings.HasSuffix(id, ":"+got) {
			t.Errorf("item %s holds sequence number %s", id, got)
		}
		if _, ok := it[processor.AttrPosition]; ok {
			t.Errorf("item %s carries %s: under an event-id key its key names its position", id, processor.AttrPosition)
		}
		gotItems[identity(func(f string) string {
			if it[f] == nil {
				return ""
			}
			return str(it[f])
		})]++
	}
	errs, errTotal := p.scan(t, ctx, p.errTable, "id")
	duplicated += errTotal - len(errs)
	gotErrors := map[string]int{}
	for _, it := range errs {
		gotErrors[str(it[processor.ErrorAttrPayload])]++
	}
	for _, c := range []struct {
		what      string
		want, got map[string]int
	}{{"items", wantItems, gotItems}, {"error items", wantErrors, gotErrors}} {
		for k, want := range c.want {
			if got := c.got[k]; got < want {
				lost += want - got
				t.Errorf("%s of %s: %d, want %d", c.what, k, got, want)
			} else if got > want {
				duplicated += got - want
				t.Errorf("%s of %s: %d, want %d", c.what, k, got, want)
			}
		}
		for k, got := range c.got {
			if c.want[k] == 0 {
				duplicated += got
				t.Errorf("unexpected %s of %s: %d", c.what, k, got)
			}
		}
	}
	return lost, duplicated
}

func TestReplaysAfterReportedFailures(t *testing.T) {
	start := time.Now()
	// Generous bounds: under this much throttling, progress depends on the machine's load (about 45 s when idle).
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	// Heavy throttling and a short deadline: the processor runs out of time and reports the records it could not
	// store; the runner replays from there. Items keyed by event id make any duplicate visible.
	p := newPipeline(t, ctx, 2, byEventIDWithSequence(), dynamostandin.Options{
		Seed: 4, ThrottleRate: 0.85, UnprocessedRate: 0.5, Latency: 5 * time.Millisecond,
		FaultOperations: []string{dynamostandin.OpBatchWriteItem, dynamostandin.OpPutItem},
	})
	w := makeWorkload(1000, 4)
	p.put(t, ctx, w.entries)
	sink := &localrun.MemorySink{}
	r := p.runner(t, localrun.InProcess(p.processor(t).Handle), func(o *localrun.Options) {
		o.FunctionTimeout = 1 * time.Second
		o.MaximumRetryAttempts = -1
		o.OnFailure = sink
	})
	drain(t, ctx, r, 5*time.Minute)
	st := r.Stats()
	if st.PartialFailures == 0 || st.RecordsDelivered <= int64(len(w.entries)) {
		t.Errorf("no replay happened (%+v): the test proves nothing", st)
	}
	if len(sink.Records()) != 0 || st.RecordsAcknowledged != int64(len(w.entries)) {
		t.Errorf("stats %+v, on-failure records %d", st, len(sink.Records()))
	}
	lost, duplicated := checkByEventID(t, ctx, p, w)
	ss := p.standin.Stats()
	t.Logf("runner %+v; stand-in %d requests, %d throttled, %d partial", st, ss.Requests, ss.Throttled, ss.PartialBatches)
	report(t, figures{Test: fmt.Sprintf("replays: 1,000 records, 85%% throttled + 50%% partial, 1 s deadline (%d partial failures, %d records replayed)",
		st.PartialFailures, st.RecordsDelivered-int64(len(w.entries))), Records: len(w.entries), FaultsInjected: faultsInjected(ss),
		Lost: lost, Duplicated: duplicated, Seconds: time.Since(start).Seconds()})
}

func TestProcessorKilledMidBatch(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Slow writes, so an invocation is in the middle of its batch for a while; 20% faults on top.
	faults := twentyPercent(5)
	faults.Latency = 150 * time.Millisecond
	p := newPipeline(t, ctx, 2, byEventIDWithSequence(), faults)
	w := makeWorkload(1000, 5)
	p.put(t, ctx, w.entries)

	var log bytes.Buffer
	rie := p.rie(t, ctx, 30*time.Second, &syncWriter{w: &log})
	// Kill the runtime (bootstrap) in the 2nd and 5th invocations, and the whole emulator in the 8th, each once
	// the batch's first write request has reached DynamoDB.
	plan := map[int]string{2: "runtime", 5: "runtime", 8: "emulator"}
	var invocations, killed int
	var mu sync.Mutex // one invocation at a time, so a kill hits the invocation that watches for it
	inv := localrun.InvokerFunc(func(ictx context.Context, payload []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		invocations++
		n := invocations
		what, ok := plan[n]
		if !ok {
			return rie.Invoke(ictx, payload)
		}
		before := p.standin.Stats().Operations[dynamostandin.OpBatchWriteItem]
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			deadline := time.After(10 * time.Second)
			for {
				select {
				case <-stop:
					done <- nil
					return
				case <-deadline:
					done <- fmt.Errorf("invocation %d: no write request seen in 10s", n)
					return
				case <-time.After(2 * time.Millisecond):
				}
				if p.standin.Stats().Operations[dynamostandin.OpBatchWriteItem] > before {
					var err error
					if what == "runtime" {
						var n int
						n, err = rie.KillRuntime()
						if err == nil && n == 0 {
							err = fmt.Errorf("invocation %d: no runtime process to kill", n)
						}
					} else {
						err = rie.Kill()
					}
					done <- err
					return
				}
			}
		}()
		out, err := rie.Invoke(ictx, payload)
		close(stop)
		if kerr := <-done; kerr != nil {
			t.Error(kerr)
		}
		if err == nil {
			t.Errorf("invocation %d succeeded although its %s was killed", n, what)
		} else {
			killed++
		}
		return out, err
	})
	sink := &localrun.MemorySink{}
	r := p.runner(t, inv, func(o *localrun.Options) {
		o.Logger = testLogger(t)
		o.FunctionTimeout = 30 * time.Second
		o.OnFailure = sink
	})
	drain(t, ctx, r, 2*time.Minute)

	st := r.Stats()
	if killed != 3 || st.FunctionErrors != 3 || rie.Starts() != 2 {
		t.Errorf("%d kills, %d function errors, %d emulator starts; want 3, 3, 2\n%s", killed, st.FunctionErrors, rie.Starts(), lastLines(log.String(), 20))
	}
	if len(sink.Records()) != 0 || st.RecordsAcknowledged != int64(len(w.entries)) {
		t.Errorf("stats %+v, on-failure records %d", st, len(sink.Records()))
	}
	lost, duplicated := checkByEventID(t, ctx, p, w)
	ss := p.standin.Stats()
	t.Logf("runner %+v; stand-in %d requests, %d faults", st, ss.Requests, faultsInjected(ss))
	report(t, figures{Test: "crash: real bootstrap under aws-lambda-rie killed mid-batch 3 times (runtime twice, emulator once), 20% faults",
		Records: len(w.entries), FaultsInjected: faultsInjected(ss) + int64(killed), Lost: lost, Duplicated: duplicated, Seconds: time.Since(start).Seconds()})
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func lastLines(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// testLogger logs the runner's warnings and errors to t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
