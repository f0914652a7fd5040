package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
	redrivecli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive/cli"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// formatCounts describes counts; a dry run says what it would do.
func formatCounts(c replay.Counts, dryRun bool) string {
	if dryRun {
		return fmt.Sprintf("%d read, would write %d items, %d superseded (the table holds a later version), would skip %d, would send %d to the error table, %d failed",
			c.Read, c.Written, c.Superseded, c.Skipped, c.ToErrorTable, c.Failed)
	}
	return fmt.Sprintf("%d read, %d items written, %d superseded (the table holds a later version), %d skipped, %d to the error table, %d failed",
		c.Read, c.Written, c.Superseded, c.Skipped, c.ToErrorTable, c.Failed)
}

// formatShardCounts is formatCounts without the explanations, for the per-shard lines.
func formatShardCounts(c replay.Counts, dryRun bool) string {
	would := ""
	if dryRun {
		would = "would "
	}
	return fmt.Sprintf("%d read, %swrite %d, %d superseded, %sskip %d, %ssend %d to the error table, %d failed",
		c.Read, would, c.Written, c.Superseded, would, c.Skipped, would, c.ToErrorTable, c.Failed)
}

// formatShard describes one shard on one line.
func formatShard(s replay.ShardResult, dryRun bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s %s", redrive.Escape(s.ShardID), s.State)
	if len(s.Parents) > 0 {
		fmt.Fprintf(&b, " (after %s)", redrive.Escape(strings.Join(s.Parents, ", ")))
	}
	fmt.Fprintf(&b, ": %s", formatShardCounts(s.Records, dryRun))
	if s.FirstSequenceNumber != "" {
		fmt.Fprintf(&b, "; sequence numbers %s..%s, last arrived %s", s.FirstSequenceNumber, s.LastSequenceNumber, s.LastArrival.UTC().Format(time.RFC3339Nano))
	}
	if s.Start != "" {
		fmt.Fprintf(&b, "; from %s", s.Start)
	}
	if s.End != "" {
		fmt.Fprintf(&b, " to %s", s.End)
	}
	if s.Reason != "" {
		fmt.Fprintf(&b, "; %s", redrive.Escape(s.Reason))
	}
	return b.String()
}

// formatSummary is the end-of-run summary, for standard output.
func formatSummary(s replay.Summary) string {
	var b strings.Builder
	dry := ""
	if s.DryRun {
		dry = " (dry run: nothing written)"
	}
	fmt.Fprintf(&b, "kdp replay summary%s\n", dry)
	fmt.Fprintf(&b, "  stream:  %s, window %s .. %s\n", redrive.Escape(s.Stream), s.Since.UTC().Format(time.RFC3339Nano), s.Until.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(&b, "  records: %s\n", formatCounts(s.Records, s.DryRun))
	if line := redrivecli.FormatAggregates(s.Aggregates, s.DryRun, s.Records.Recounted); line != "" {
		fmt.Fprintf(&b, "  aggregates: %s\n", line)
		if n := s.Records.Forgotten; n > 0 {
			fmt.Fprintf(&b, "  aggregates: %d records left uncounted, perhaps never counted: they lie before a give-up range the aggregate "+
				"ledger dropped (too many give-ups on their shard since), so nothing tells whether the pipeline counted them, and no "+
				"rerun counts them: compare the aggregates with the data table for their windows\n", n)
		}
	}
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Records.Read) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(&b, "  time:    %s, %.1f records/s\n", s.Elapsed.Round(time.Millisecond), rate)
	if s.PastRetention != "" {
		fmt.Fprintf(&b, "  PAST RETENTION: %s\n", s.PastRetention)
	}
	fmt.Fprintf(&b, "  shards:  %d\n", len(s.Shards))
	for _, sh := range s.Shards {
		fmt.Fprintln(&b, formatShard(sh, s.DryRun))
	}
	if s.Complete() {
		fmt.Fprintf(&b, "  left: none\n")
	} else {
		fmt.Fprintf(&b, "  left: the window was not processed in full (see the shards above); a rerun is safe\n")
	}
	return b.String()
}

// progress prints each shard's position, records and rate on standard error: a line per shard at most every few
// seconds while it is read, and one when it ends. Log lines go through it too.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	every time.Duration
	last  map[string]time.Time
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, every: 5 * time.Second, last: map[string]time.Time{}}
}

func (p *progress) update(s replay.ShardResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	final := s.State != replay.ShardReading
	if !final && now.Sub(p.last[s.ShardID]) < p.every {
		return
	}
	p.last[s.ShardID] = now
	pos := "no record yet"
	if s.LastSequenceNumber != "" {
		pos = "at " + s.LastSequenceNumber + " (arrived " + s.LastArrival.UTC().Format(time.RFC3339) + ")"
	}
	fmt.Fprintf(p.w, "kdp replay: %s %s %s: %d records, %.1f records/s\n", redrive.Escape(s.ShardID), s.State, redrive.Escape(pos), s.Records.Read, s.RecordsPerSecond())
}

// Write writes a log line.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.Write(b)
}
