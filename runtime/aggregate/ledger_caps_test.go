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

// TestLedgerForgottenRangeReported: the mapping gives up on record 1 after the pipeline counted it into group a
// but not b (its write there failed), then on more than MaxLedgerGaps later batches, so the shard state drops the
// range holding 1 (AttrForgot). A recount of 1 cannot tell counted from uncounted: it must count nothing, with or
// without CountUnseen, and report the record as forgotten (not as counted by the pipeline), so a redrive keeps its
// source; a record of a range still held is recounted by the gap rule, and one the pipeline counted after the
// ranges is reported counted.
func TestLedgerForgottenRangeReported(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	s := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	deliver := func(first, last uint64, apply []Contribution, failed [][]byte, firstFail []byte) {
		t.Helper()
		b, err := s.BeginBatch(ctx, "shard-1", pos(first), pos(last))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkErrors(ctx, b, nil, failed); err != nil {
			t.Fatal(err)
		}
		for _, r := range s.Apply(ctx, apply, b.Gaps...) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if err := s.EndBatch(ctx, b, firstFail); err != nil {
			t.Fatal(err)
		}
	}
	deliver(1, 1, ledgerContrib(1)[:1], nil, pos(1)) // group a only: b's write "failed", 1 reported
	q := uint64(10)
	for range MaxLedgerGaps + 1 { // each batch fails transiently, and the mapping gives up on it
		deliver(q, q, nil, [][]byte{pos(q)}, pos(q))
		q += 10
	}
	deliver(q, q, ledgerContrib(q), nil, nil) // then one goes through
	st, err := s.ReadShardState(ctx, "shard-1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Forgot == nil || len(st.Gaps) != MaxLedgerGaps {
		t.Fatalf("state: forgot %x, %d gaps; want a forgotten range and %d gaps", st.Forgot, len(st.Gaps), MaxLedgerGaps)
	}
	tests := []struct {
		name       string
		seq        uint64
		unseen     bool
		want       RecountClass
		counted    bool
		wantUnseen bool // reported unseen (uncounted for want of CountUnseen)
	}{
		{"in the forgotten range", 1, false, RecountForgotten, false, false},
		{"in the forgotten range, CountUnseen", 1, true, RecountForgotten, false, false},
		{"in a range still held", q - 10, false, RecountGap, true, false},
		{"counted by the pipeline", q, false, RecountCounted, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.CountUnseen = tt.unseen
			r := s.Recount(ctx, ledgerContrib(tt.seq))
			if r.Err != nil || r.Class != tt.want || r.Counted() != tt.counted || r.Unseen != tt.wantUnseen {
				t.Errorf("recount of %d: class %v, applied %d, unseen %v, err %v; want %v, counted %v, unseen %v",
					tt.seq, r.Class, r.Applied, r.Unseen, r.Err, tt.want, tt.counted, tt.wantUnseen)
			}
		})
	}
	s.CountUnseen = false
	checkTotals(t, fake, "a", []uint64{1, q - 10, q})
	checkTotals(t, fake, "b", []uint64{q - 10, q})
}
