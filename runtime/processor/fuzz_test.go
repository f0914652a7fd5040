package processor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// FuzzHandle feeds arbitrary payloads, next to valid ones, through Handle with injected faults chosen by mode. The
// handler must not panic, must answer with at most one known sequence number, and must account for every record:
// stored, in the error table, or at or after the reported sequence number.
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		`{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`,
		`{"a": 1e400}`, `{"a": 123456789012345678901234567890123456789}`, `{"": 1}`, `{"a": {"": null}}`,
		`null`, `[]`, `"s"`, `12`, `{"a":1} trailing`, "\xff\xfe", ``, `{"id": "x", "poison": true}`,
		strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40), `{"a": [1, 2, {"b": [true, false, null]}]}`,
		`{"n": -0.0e-1000}`, `{"n": 0.00000000000000000000000000000000000000000000000001}`,
	} {
		for mode := range byte(8) {
			f.Add([]byte(seed), mode)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte, mode byte) {
		db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
		if mode&1 != 0 { // the first data write is throttled, the second leaves half unprocessed
			db.batchHook = func(_ context.Context, n int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
				switch {
				case table == testTable && n == 1:
					return nil, throttle()
				case table == testTable && n == 2:
					return reqs[len(reqs)/2:], nil
				}
				return nil, nil
			}
		}
		if mode&2 != 0 { // the error table refuses everything
			prev := db.batchHook
			db.batchHook = func(ctx context.Context, n int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
				if table == testErrorTable {
					return nil, apiError("AccessDeniedException")
				}
				if prev != nil {
					return prev(ctx, n, table, reqs)
				}
				return nil, nil
			}
		}
		p := newTestProcessor(t, db, func(o *Options) {
			if mode&4 != 0 {
				o.ErrorTableName = ""
			}
		})
		ev := event(string(payload), `{"ok": true}`, string(payload)+" ", `{"k": `+string(payload)+`}`)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := p.Handle(ctx, ev)
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if len(resp.BatchItemFailures) > 1 {
			t.Fatalf("%d batch item failures", len(resp.BatchItemFailures))
		}
		reported := ""
		if len(resp.BatchItemFailures) == 1 {
			reported = resp.BatchItemFailures[0].ItemIdentifier
			known := false
			for _, r := range ev.Records {
				known = known || r.Kinesis.SequenceNumber == reported
			}
			if !known {
				t.Fatalf("reported unknown sequence number %q", reported)
			}
		}
		for _, r := range ev.Records {
			k := itemKey(Item{"id": &types.AttributeValueMemberS{Value: r.EventID}}, testKeys(Config{}))
			_, stored := db.tables[testTable][k]
			_, failed := db.tables[testErrorTable][k]
			retried := reported != "" && compareSequence(r.Kinesis.SequenceNumber, reported) >= 0
			if !stored && !failed && !retried {
				t.Fatalf("record %s (%q) is lost: not stored, not in the error table, not reported (reported %q)", r.Kinesis.SequenceNumber, r.Kinesis.Data, reported)
			}
			if stored && failed {
				t.Fatalf("record %s is both stored and in the error table", r.Kinesis.SequenceNumber)
			}
		}
	})
}
