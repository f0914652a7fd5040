package cli

import (
	"strings"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// TestFormatSummaryForgotten: records left uncounted because they lie before a give-up range the aggregate ledger
// dropped get their own line (not the unseen one, whose --count-unseen would not count them), in every mode.
func TestFormatSummaryForgotten(t *testing.T) {
	tests := []struct {
		name      string
		mode      string
		forgotten int
		want      bool
	}{
		{"dlq", ModeDLQ, 2, true},
		{"s3", ModeS3, 2, true},
		{"errors", ModeErrors, 2, true},
		{"none forgotten", ModeDLQ, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := formatSummary(tt.mode, redrive.Summary{Aggregates: redrive.AggregatesRecount,
				Records: redrive.RecordCounts{Read: 2, Written: 2, Forgotten: tt.forgotten}})
			line := "  aggregates: 2 records left uncounted, perhaps never counted: they lie before a give-up range the aggregate ledger dropped"
			if strings.Contains(got, line) != tt.want || strings.Contains(got, "never saw them") {
				t.Errorf("summary (want the forgotten line: %v, never the unseen one):\n%s", tt.want, got)
			}
		})
	}
}
