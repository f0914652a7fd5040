//go:build integration

package replay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// TestReplayUnderLivePipeline: items keyed by a device id get a new version every few milliseconds while the live
// local pipeline (the default processor behind internal/localrun) stores them; a replay of an earlier window runs
// meanwhile. A watcher reading dynalite never sees a device's item go back to an older version, every device ends
// at its last version, and the replay met newer items (superseded), so the test would catch a replay that
// overwrote them.
func TestReplayUnderLivePipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := processor.Config{PartitionKey: processor.KeyAttribute{Name: "id", Type: processor.AttributeTypeString, Source: "device"}}
	e := newEnv(t, 2, cfg)
	devices := []string{"d0", "d1", "d2", "d3", "d4", "d5"}
	dev := func(p map[string]any) string { return p["device"].(string) }
	version := func(v int) []map[string]any {
		var out []map[string]any
		for _, d := range devices {
			out = append(out, map[string]any{"device": d, "version": v})
		}
		return out
	}

	proc, err := processor.New(e.db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.Config = e.table, e.errors, cfg
		o.Logger, o.MetricsWriter = slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	live, err := localrun.New(e.kc, localrun.InProcess(proc.Handle), func(o *localrun.Options) {
		o.StreamName, o.BatchSize, o.ReportBatchItemFailures = e.stream, 10, true
		o.PollInterval, o.RetryDelay = 20*time.Millisecond, 10*time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	// Versions 1..10 are in the past; the window holds 3..8.
	var since, until time.Time
	for v := 1; v <= 10; v++ {
		if v == 3 {
			since = mark()
		}
		e.putAll(t, "", dev, version(v)...)
		if v == 8 {
			until = mark()
		}
	}
	liveCtx, stopLive := context.WithCancel(ctx)
	liveDone := make(chan error, 1)
	go func() { liveDone <- live.Run(liveCtx) }()

	// The watcher: a device's version must never go down.
	var (
		mu          sync.Mutex
		regressions []string
		polls       int
	)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		seen := map[string]int{}
		for watchCtx.Err() == nil {
			items, _ := scan(t, e.db, e.table, "id")
			mu.Lock()
			polls++
			for d, it := range items {
				v := atoi(t, attr(it, "version"))
				if v < seen[d] {
					regressions = append(regressions, fmt.Sprintf("%s went from version %d to %d", d, seen[d], v))
				}
				seen[d] = max(seen[d], v)
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// The producer keeps putting new versions while the replay runs.
	const last = 40
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for v := 11; v <= last && ctx.Err() == nil; v++ {
			e.putAll(t, "", dev, version(v)...)
			time.Sleep(40 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond) // the live pipeline is at work
	sum := e.run(t, ctx, func(o *replay.Options) {
		o.Since, o.Until, o.Config, o.Rate, o.BatchSize = since, until, cfg, 20, 3
	})
	<-produced
	// Let the live pipeline finish what was put, then stop it and the watcher.
	deadline := time.Now().Add(time.Minute)
	for {
		items, _ := scan(t, e.db, e.table, "id")
		done := len(items) == len(devices)
		for _, it := range items {
			done = done && attr(it, "version") == fmt.Sprint(last)
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopLive()
	if err := <-liveDone; err != nil {
		t.Errorf("live pipeline: %v", err)
	}
	stopWatch()
	<-watchDone

	mu.Lock()
	defer mu.Unlock()
	for _, r := range regressions {
		t.Error(r)
	}
	items, _ := scan(t, e.db, e.table, "id")
	for _, d := range devices {
		if got := attr(items[d], "version"); got != fmt.Sprint(last) {
			t.Errorf("%s ends at version %q, want %d", d, got, last)
		}
	}
	want := 6 * len(devices)
	if !sum.Complete() || sum.Records.Read != want || sum.Records.Superseded == 0 || polls < 10 {
		t.Errorf("replay %+v (%d watcher polls): want complete, %d read, some superseded", sum.Records, polls, want)
	}
	t.Logf("replay: %+v; %d watcher polls", sum.Records, polls)
}
