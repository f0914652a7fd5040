package cli

import (
	"strings"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// TestAtkFormatSummaryNoLedger: records left uncounted because the aggregate ledger holds no state for their shard
// get their own line in every mode, with their number; none, no line.
func TestAtkFormatSummaryNoLedger(t *testing.T) {
	for _, tt := range []struct {
		name     string
		mode     string
		noLedger int
		want     bool
	}{
		{"dlq", ModeDLQ, 3, true},
		{"s3", ModeS3, 3, true},
		{"errors", ModeErrors, 3, true},
		{"none", ModeDLQ, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := formatSummary(tt.mode, redrive.Summary{Aggregates: redrive.AggregatesRecount,
				Records: redrive.RecordCounts{Read: 3, Written: 3, NoLedger: tt.noLedger}})
			line := "  aggregates: 3 records left uncounted, perhaps never counted: the aggregate ledger holds no state for their shard"
			if strings.Contains(got, line) != tt.want {
				t.Errorf("summary (want the no-ledger line: %v):\n%s", tt.want, got)
			}
		})
	}
}

// TestAtkFormatSummaryErrorsUnseen: an errors run's records left uncounted because the ledger never saw them are
// named in the summary (without offering --count-unseen, which the errors mode does not take).
func TestAtkFormatSummaryErrorsUnseen(t *testing.T) {
	for _, tt := range []struct {
		name   string
		unseen int
		want   bool
	}{{"some", 2, true}, {"none", 0, false}} {
		t.Run(tt.name, func(t *testing.T) {
			got := formatSummary(ModeErrors, redrive.Summary{Aggregates: redrive.AggregatesRecount,
				Records: redrive.RecordCounts{Read: 2, Written: 2, Unseen: tt.unseen}})
			if strings.Contains(got, "  aggregates: 2 records left uncounted: the aggregate ledger never saw them delivered") != tt.want {
				t.Errorf("summary (want the unseen line: %v):\n%s", tt.want, got)
			}
			if strings.Contains(got, "--"+FlagCountUnseen) {
				t.Errorf("summary offers --%s to the errors mode:\n%s", FlagCountUnseen, got)
			}
		})
	}
}
