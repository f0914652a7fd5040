package aggregate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// capOutcome is what happens to record seq in the delivery-th delivery that holds it (0 first): 's' stored,
// 'e' sent to the error table, 'f' failed (transient).
type capOutcome func(seq uint64, delivery int) byte

// TestLedgerCapsNeverDropMarks runs a shard through the ledger, as the event source mapping and the processor do,
// with a shard state that holds only a few positions (Store.LedgerPositions): more records are sent to the error
// table (or fail before they are) than the state can hold at once. The records MarkErrors cannot mark must be
// reported (Batch.Unmarked) and, delivered again from the first of them, marked then: every record sent to the
// error table ends with a marker, the state never holds more than the cap, the shard makes progress, and a
// redrive of the error-tabled records then counts each exactly once (totals: every record once, computed from
// the inputs); a second redrive changes nothing.
func TestLedgerCapsNeverDropMarks(t *testing.T) {
	tests := []struct {
		name    string
		cap     int
		last    uint64
		outcome capOutcome
	}{
		{"errors beyond the cap", 4, 12, func(q uint64, _ int) byte {
			if slices.Contains([]uint64{2, 3, 4, 5, 6, 7, 9, 10}, q) {
				return 'e'
			}
			return 's'
		}},
		{"every record an error, cap 1", 1, 6, func(uint64, int) byte { return 'e' }},
		{"unstored beyond the cap, then errors", 3, 10, func(q uint64, d int) byte {
			switch {
			case q < 2 || q > 8:
				return 's'
			case d == 0:
				return 'f' // a transient failure on the first delivery (throttled), then the error table
			}
			return 'e'
		}},
		{"errors and transient failures mixed", 2, 14, func(q uint64, d int) byte {
			switch {
			case q%3 == 0:
				return 'e'
			case q%4 == 1 && d < 2:
				return 'f'
			}
			return 's'
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fake := newFakeDB()
			s := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond,
				MaxInFlight: 2, LedgerPositions: tt.cap}
			seen := map[uint64]int{}   // deliveries of each record
			final := map[uint64]byte{} // each record's last outcome
			checkpoint, deliveries := uint64(1), 0
			for ; checkpoint != 0; deliveries++ {
				if deliveries > 3*int(tt.last) {
					t.Fatalf("no progress after %d deliveries: the checkpoint stays at %d", deliveries, checkpoint)
				}
				b, err := s.BeginBatch(ctx, "shard-1", pos(checkpoint), pos(tt.last))
				if err != nil {
					t.Fatal(err)
				}
				var errored, failed [][]byte
				outcome := map[uint64]byte{}
				for q := checkpoint; q <= tt.last; q++ {
					outcome[q] = tt.outcome(q, seen[q])
					seen[q]++
					final[q] = outcome[q]
					switch outcome[q] {
					case 'e':
						errored = append(errored, pos(q))
					case 'f':
						failed = append(failed, pos(q))
					}
				}
				if err := s.MarkErrors(ctx, b, errored, failed); err != nil {
					t.Fatal(err)
				}
				unmarked := map[string]bool{}
				for _, p := range b.Unmarked {
					unmarked[string(p)] = true
				}
				// The processor: records up to the first not done (failed, or sent to the error table unmarked)
				// are counted; the first not done is reported, and the mapping delivers again from it.
				var cs []Contribution
				next := uint64(0)
				for q := checkpoint; q <= tt.last && next == 0; q++ {
					switch {
					case outcome[q] == 'f' || unmarked[string(pos(q))]:
						next = q
					case outcome[q] == 's':
						for _, c := range ledgerContrib(q) {
							c.Ledgered = b.Ledgered(c.Position)
							cs = append(cs, c)
						}
					}
				}
				for _, r := range s.Apply(ctx, cs, b.Gaps...) {
					if r.Err != nil {
						t.Fatal(r.Err)
					}
				}
				var ff []byte
				if next != 0 {
					ff = pos(next)
				}
				if err := s.EndBatch(ctx, b, ff); err != nil {
					t.Fatal(err)
				}
				st, err := s.ReadShardState(ctx, "shard-1")
				if err != nil {
					t.Fatal(err)
				}
				if n := len(st.Errs) + len(st.Unstored); n > tt.cap {
					t.Fatalf("delivery %d: the shard state holds %d positions, more than the cap %d", deliveries, n, tt.cap)
				}
				checkpoint = next
			}
			var errorTabled, stored []uint64
			for q := uint64(1); q <= tt.last; q++ {
				if final[q] == 'e' {
					errorTabled = append(errorTabled, q)
				} else {
					stored = append(stored, q)
				}
			}
			if len(errorTabled) <= tt.cap {
				t.Fatalf("the scenario sends %d records to the error table, not more than the cap %d", len(errorTabled), tt.cap)
			}
			markers := markedSeqs(t, fake)
			if fmt.Sprint(markers) != fmt.Sprint(errorTabled) {
				t.Errorf("after %d deliveries, markers for %v, want every record sent to the error table %v", deliveries, markers, errorTabled)
			}
			// The redrive of the error table, with the bug fixed: each error-tabled record is recounted.
			for round := range 2 {
				var recs [][]Contribution
				for _, q := range errorTabled {
					recs = append(recs, ledgerContrib(q))
				}
				for i, r := range s.RecountBatch(ctx, recs).Records {
					if r.Err != nil || r.Class != RecountMarked || r.Counted() != (round == 0) {
						t.Errorf("round %d: recount of %d: class %v, applied %d, err %v; want marked, counted on the first round only",
							round, errorTabled[i], r.Class, r.Applied, r.Err)
					}
				}
				all := append(append([]uint64(nil), stored...), errorTabled...)
				checkTotals(t, fake, "a", all)
				checkTotals(t, fake, "b", all)
			}
		})
	}
}

// markedSeqs returns the sequence numbers (pos) of the error markers in db, sorted.
func markedSeqs(t *testing.T, db *fakeDB) []uint64 {
	t.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	var out []uint64
	for k, it := range db.items {
		if !strings.HasPrefix(k[0], ErrorMarkerPrefix) {
			continue
		}
		p := it[AttrMarkerPosition].(*types.AttributeValueMemberB).Value
		for q := uint64(1); q < 1000; q++ {
			if string(pos(q)) == string(p) {
				out = append(out, q)
			}
		}
	}
	slices.Sort(out)
	return out
}
