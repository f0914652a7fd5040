//go:build integration

package kdplocal

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
)

// TestLocalAggregatesExample runs examples/aggregates through kdp local: the AWS sample's readings are stored and
// counted per category per minute in the aggregate table kdp local creates from the template; a reading without a
// Timestamp goes to the error table and counts nowhere.
func TestLocalAggregatesExample(t *testing.T) {
	dir := synthExample(t, "aggregates")
	var records strings.Builder
	type reading struct {
		ts, cat string
		value   int
	}
	readings := []reading{{"2024-09-13T23:06:55Z", "C", 81}, {"2024-09-13T23:06:10Z", "C", 19}, {"2024-09-13T23:06:59Z", "A", 5},
		{"2024-09-13T23:07:01Z", "C", 40}, {"2024-09-13T23:06:30Z", "A", 7}}
	for i, r := range readings {
		fmt.Fprintf(&records, `{"data": {"Timestamp": %q, "Value": %d, "Category": %q}, "partitionKey": "sensor-%d"}`+"\n", r.ts, r.value, r.cat, i)
	}
	records.WriteString(`{"data": {"Value": 3, "Category": "C"}, "partitionKey": "no-time"}` + "\n")
	var stdout, stderr emulators.LockedBuffer
	code := Main(context.Background(), []string{"--cdk-out", dir, "--stack", "KinesisDynamoPipelineAggregates", "--json"},
		strings.NewReader(records.String()), &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr.String(), stdout.String())
	}
	var res struct {
		Table      []map[string]map[string]any `json:"table"`
		ErrorTable []map[string]map[string]any `json:"errorTable"`
		Aggregates []map[string]map[string]any `json:"aggregates"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not the JSON object: %v\n%s", err, stdout.String())
	}
	if len(res.Table) != len(readings) || len(res.ErrorTable) != 1 {
		t.Errorf("%d items and %d error items, want %d and 1", len(res.Table), len(res.ErrorTable), len(readings))
	}
	// One shard: one item per category and minute. Expected from the readings above.
	want := map[string][4]string{ // pk -> readings, total, lowest, highest
		`perCategory#2024-09-13T23:06:00Z#["C"]`: {"2", "100", "19", "81"},
		`perCategory#2024-09-13T23:06:00Z#["A"]`: {"2", "12", "5", "7"},
		`perCategory#2024-09-13T23:07:00Z#["C"]`: {"1", "40", "40", "40"},
	}
	if len(res.Aggregates) != len(want) {
		t.Fatalf("%d aggregate items, want %d: %v", len(res.Aggregates), len(want), res.Aggregates)
	}
	for _, it := range res.Aggregates {
		pk, _ := attr(it, "pk").(string)
		w, ok := want[pk]
		if !ok {
			t.Errorf("unexpected aggregate item %s", pk)
			continue
		}
		got := [4]string{}
		for i, m := range []string{"readings", "total", "lowest", "highest"} {
			got[i], _ = attr(it, m).(string)
		}
		if got != w {
			t.Errorf("%s: readings, total, lowest, highest = %v, want %v", pk, got, w)
		}
	}
}
