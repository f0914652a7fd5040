package cli

import (
	"strings"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// TestAtkFormatSummaryForgotten: records a replay stored but could not count (before a give-up range the aggregate
// ledger dropped) are named in the summary with their number; none, no such line.
func TestAtkFormatSummaryForgotten(t *testing.T) {
	for _, tt := range []struct {
		name      string
		forgotten int
		want      string
	}{
		{name: "none", forgotten: 0},
		{name: "some", forgotten: 3, want: "  aggregates: 3 records left uncounted, perhaps never counted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := formatSummary(replay.Summary{Stream: "s", Aggregates: redrive.AggregatesRecount,
				Records: replay.Counts{Read: 5, Stored: 5, Recounted: 2, Forgotten: tt.forgotten}})
			if tt.want == "" {
				if strings.Contains(got, "left uncounted") {
					t.Errorf("summary speaks of uncounted records:\n%s", got)
				}
				return
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("summary lacks %q:\n%s", tt.want, got)
			}
		})
	}
}
