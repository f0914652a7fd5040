package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
)

// TestSelfTestRecordsCountedApart checks that malformed records put by the self-test (partition key with
// SelfTestPartitionKeyPrefix) are stored in the error table like any other, but counted under
// MetricSelfTestRecordsToErrorTable, so they do not fire the error-table alarm.
func TestSelfTestRecordsCountedApart(t *testing.T) {
	tests := []struct {
		name          string
		partitionKeys []string
		wantErrors    float64 // MetricRecordsToErrorTable
		wantSelfTest  float64 // MetricSelfTestRecordsToErrorTable
	}{
		{"producer records", []string{"pk-0", "pk-1"}, 2, 0},
		{"self-test records", []string{SelfTestPartitionKeyPrefix + "a", SelfTestPartitionKeyPrefix + "b"}, 0, 2},
		{"both", []string{"pk-0", SelfTestPartitionKeyPrefix + "b"}, 1, 1},
		{"prefix not at the start", []string{"x" + SelfTestPartitionKeyPrefix, "KDP-SELFTEST-b"}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var metrics bytes.Buffer
			db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
			p := newTestProcessor(t, db, func(o *Options) {
				o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
				o.MetricsWriter = &metrics
			})
			ev := event("not json", "{also not")
			for i, pk := range tt.partitionKeys {
				ev.Records[i].Kinesis.PartitionKey = pk
			}
			resp, err := p.Handle(context.Background(), ev)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("Handle = %+v, %v", resp, err)
			}
			if got := len(db.tables[testErrorTable]); got != 2 {
				t.Errorf("%d error items, want 2 (self-test records are stored like any other)", got)
			}
			var emf map[string]any
			if err := json.Unmarshal(metrics.Bytes(), &emf); err != nil {
				t.Fatalf("EMF %q: %v", metrics.String(), err)
			}
			if emf[MetricRecordsToErrorTable] != tt.wantErrors || emf[MetricSelfTestRecordsToErrorTable] != tt.wantSelfTest {
				t.Errorf("%s = %v, %s = %v; want %v, %v", MetricRecordsToErrorTable, emf[MetricRecordsToErrorTable],
					MetricSelfTestRecordsToErrorTable, emf[MetricSelfTestRecordsToErrorTable], tt.wantErrors, tt.wantSelfTest)
			}
		})
	}
}
