package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// formatResult describes a source left behind on one line. Every field but the outcome comes from the source (a
// message, an object, an entry) or quotes it: each is escaped.
func formatResult(res redrive.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "LEFT %s %s", redrive.Escape(string(res.Outcome)), redrive.Escape(res.Source))
	if res.ShardID != "" {
		fmt.Fprintf(&b, " shard=%s", redrive.Escape(res.ShardID))
	}
	if res.StartSequenceNumber != "" {
		if res.StartSequenceNumber == res.EndSequenceNumber {
			fmt.Fprintf(&b, " sequence=%s", redrive.Escape(res.StartSequenceNumber))
		} else {
			fmt.Fprintf(&b, " range=%s..%s", redrive.Escape(res.StartSequenceNumber), redrive.Escape(res.EndSequenceNumber))
		}
	}
	fmt.Fprintf(&b, ": %s", redrive.Escape(res.Reason))
	return b.String()
}

// outcomeOrder is the order outcomes are listed in.
var outcomeOrder = []redrive.Outcome{redrive.OutcomeRecovered, redrive.OutcomeWouldRecover, redrive.OutcomeExpired,
	redrive.OutcomeFailed, redrive.OutcomeFailedAgain, redrive.OutcomeInvalid, redrive.OutcomeForeignStream,
	redrive.OutcomePayloadDiffers, redrive.OutcomeRefused}

func formatCounts(s redrive.Summary) string {
	var parts []string
	for _, o := range outcomeOrder {
		if n := s.Sources[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	var extra []string
	for o, n := range s.Sources {
		if n > 0 && !containsOutcome(outcomeOrder, o) {
			extra = append(extra, fmt.Sprintf("%d %s", n, redrive.Escape(string(o))))
		}
	}
	sort.Strings(extra)
	parts = append(parts, extra...)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func containsOutcome(list []redrive.Outcome, o redrive.Outcome) bool {
	for _, v := range list {
		if v == o {
			return true
		}
	}
	return false
}

// formatRecords counts records; a dry run says what it would do.
func formatRecords(c redrive.RecordCounts, dryRun bool) string {
	if dryRun {
		return fmt.Sprintf("%d read, would write %d, would skip %d, would send %d to the error table, %d failed, would refuse %d",
			c.Read, c.Written, c.Skipped, c.ToErrorTable, c.Failed, c.Refused)
	}
	return fmt.Sprintf("%d read, %d written, %d skipped, %d to the error table, %d failed, %d refused",
		c.Read, c.Written, c.Skipped, c.ToErrorTable, c.Failed, c.Refused)
}

// formatSummary is the end-of-run summary.
func formatSummary(mode string, s redrive.Summary) string {
	var b strings.Builder
	dry := ""
	if s.DryRun {
		dry = " (dry run: nothing written or deleted)"
	}
	fmt.Fprintf(&b, "redrive %s summary%s\n", mode, dry)
	removed := "removed"
	if s.DryRun {
		removed = "would be removed"
	}
	fmt.Fprintf(&b, "  sources: %d: %s; %d %s\n", s.Total(), formatCounts(s), s.Removed, removed)
	fmt.Fprintf(&b, "  records: %s\n", formatRecords(s.Records, s.DryRun))
	if line := FormatAggregates(s.Aggregates, s.DryRun, s.Records.Recounted); line != "" {
		fmt.Fprintf(&b, "  aggregates: %s\n", line)
		if (mode == ModeDLQ || mode == ModeS3) && s.Records.Unseen > 0 {
			fmt.Fprintf(&b, "  aggregates: %s\n", FormatUnseen(s.Records.Unseen))
		}
		if mode == ModeErrors && s.Records.Unseen > 0 {
			// --count-unseen is for on-failure ranges: nothing counts these.
			fmt.Fprintf(&b, "  aggregates: %d records left uncounted: the aggregate ledger never saw them delivered (no error marker), so "+
				"nothing tells them from records the pipeline counted; their entries are kept: compare the aggregates with the data "+
				"table for their windows\n", s.Records.Unseen)
		}
		if (mode == ModeErrors || mode == ModeS3) && s.Records.Unverified > 0 {
			fmt.Fprintf(&b, "  aggregates: %s\n", FormatUnverified(s.Records.Unverified))
		}
		if s.Records.Forgotten > 0 {
			fmt.Fprintf(&b, "  aggregates: %s\n", FormatForgotten(s.Records.Forgotten))
		}
		if n := s.Records.NoLedger; n > 0 {
			fmt.Fprintf(&b, "  aggregates: %d records left uncounted, perhaps never counted: the aggregate ledger holds no state for "+
				"their shard, so nothing tells whether the pipeline counted them; their sources are kept (--%s does not count them): "+
				"compare the aggregates with the data table for their windows\n", n, FlagCountUnseen)
		}
	}
	fmt.Fprintf(&b, "  time:    %s, %.1f records/s\n", s.Elapsed.Round(time.Millisecond), s.RecordsPerSecond())
	if n := s.Unrecovered(); n > 0 {
		fmt.Fprintf(&b, "  left behind: %d (lines starting with LEFT above)\n", n)
	} else {
		fmt.Fprintf(&b, "  left behind: none\n")
	}
	return b.String()
}

// progress shows running counts on standard error: one line rewritten in place on a terminal, plain lines at most
// every few seconds otherwise. It prints counts only, never text from a source.
type progress struct {
	mu       sync.Mutex // log lines come from other goroutines too
	w        io.Writer
	mode     string
	dryRun   bool
	terminal bool
	every    time.Duration
	last     time.Time
	shown    bool // a line is on the terminal, not yet ended
}

func newProgress(w io.Writer, mode string, dryRun bool) *progress {
	p := &progress{w: w, mode: mode, dryRun: dryRun, every: 5 * time.Second}
	if dryRun {
		p.mode += " (dry run)"
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *progress) line(s redrive.Summary) string {
	return fmt.Sprintf("redrive %s: %d sources (%s) · records: %s · %.1f records/s · %s",
		p.mode, s.Total(), formatCounts(s), formatRecords(s.Records, p.dryRun), s.RecordsPerSecond(), s.Elapsed.Round(100*time.Millisecond))
}

func (p *progress) update(s redrive.Summary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line(s))
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, p.line(s))
}

// clear ends the line in place so other output starts on a clean line.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *progress) clearLocked() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progress) done(s redrive.Summary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintln(p.w, p.line(s))
}

// logWriter returns a writer for log lines that clears the progress line first.
func (p *progress) logWriter() io.Writer { return logWriter{p} }

type logWriter struct{ p *progress }

// Write logs b as one line.
func (l logWriter) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	l.p.clearLocked()
	return l.p.w.Write(b)
}

// FormatUnseen says that n records of on-failure ranges were stored but left uncounted because the aggregate
// ledger never saw them, and how to count them.
func FormatUnseen(n int) string {
	return fmt.Sprintf("%d records of these on-failure ranges left uncounted: the aggregate ledger never saw them "+
		"(a batch given up while DynamoDB was unreachable for all its attempts); run again with --%s to count them, "+
		"if only the mapping can write this queue or bucket", n, FlagCountUnseen)
}

// FormatUnverified says that n records were stored but left uncounted because their payload was not verified
// against the stream, and how to count them.
func FormatUnverified(n int) string {
	return fmt.Sprintf("%d records stored, left uncounted: payload not verified against the stream (an error entry or "+
		"payload record past the stream's retention: anyone able to write the error table or bucket could have forged it); "+
		"their sources are kept; run again with --%s to count them, if you trust their source", n, FlagCountUnverified)
}

// FormatForgotten says that n records were stored but left uncounted because they lie before a give-up range the
// aggregate ledger dropped: nothing tells whether the pipeline counted them.
func FormatForgotten(n int) string {
	return fmt.Sprintf("%d records left uncounted, perhaps never counted: they lie before a give-up range the aggregate ledger "+
		"dropped (too many give-ups on their shard since), so nothing tells whether the pipeline counted them; their sources are "+
		"kept (--%s does not count them): compare the aggregates with the data table for their windows", n, FlagCountUnseen)
}

// FormatAggregates says what a run did with the configuration's aggregates, "" when it has none: the records
// recounted (processor.MetricAggregateRecounted), or why none were. kdp replay's summary says it the same way.
func FormatAggregates(mode redrive.AggregateMode, dryRun bool, recounted int) string {
	switch {
	case mode == redrive.AggregatesNone:
		return ""
	case mode == redrive.AggregatesSkip:
		return fmt.Sprintf("not recounted (--%s): the records stored are left uncounted", FlagSkipAggregates)
	case dryRun:
		return fmt.Sprintf("not recounted (dry run: nothing written to the aggregate table); %d records would be recounted", recounted)
	default:
		return fmt.Sprintf("%d records recounted (the pipeline had not counted them; each counted once)", recounted)
	}
}
