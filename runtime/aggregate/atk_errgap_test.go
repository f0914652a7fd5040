package aggregate

import (
	"context"
	"math/big"
	"slices"
	"testing"
	"time"
)

// errgapStep is a step of the verdict-change attacks: a ledgerStep whose MarkErrors state write may be applied with
// its answer lost (a timeout: the SDK's retry then finds its own write).
type errgapStep struct {
	ledgerStep
	markLost  bool
	positions int      // Store.LedgerPositions from this step on (0: unchanged)
	mid       []uint64 // records recounted between MarkErrors and Apply (a concurrent redrive)
}

// runErrgap runs steps as runLedger does, with markLost faults; it returns the recount results.
func runErrgap(t *testing.T, steps []errgapStep) (*fakeDB, []RecountResult) {
	t.Helper()
	ctx := context.Background()
	db := newFakeDB()
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond, MaxInFlight: 1}
	lose := false
	db.fault = func(op string) string {
		if op == "put" && lose {
			lose = false
			return "after"
		}
		return ""
	}
	var out []RecountResult
	for i, st := range steps {
		if st.positions > 0 {
			s.LedgerPositions = st.positions
		}
		if st.pipeline {
			var errored, failed [][]byte
			for q := st.first; q <= st.last; q++ {
				switch {
				case slices.Contains(st.errored, q):
					errored = append(errored, pos(q))
				case !slices.Contains(st.stored, q):
					failed = append(failed, pos(q))
				}
			}
			b, err := s.BeginBatch(ctx, "shard-1", pos(st.first), pos(st.last))
			if err != nil {
				t.Fatalf("step %d: BeginBatch: %v", i, err)
			}
			lose = st.markLost
			if err := s.MarkErrors(ctx, b, errored, failed); err != nil {
				t.Fatalf("step %d: MarkErrors: %v", i, err)
			}
			if lose {
				t.Fatalf("step %d: no answer was lost", i)
			}
			for _, q := range st.mid {
				r := s.Recount(ctx, ledgerContrib(q))
				if r.Err != nil {
					t.Fatalf("step %d: Recount(%d): %v", i, q, r.Err)
				}
				out = append(out, r)
			}
			var cs []Contribution
			for _, q := range st.stored {
				for _, c := range ledgerContrib(q) {
					c.Ledgered = b.Ledgered(c.Position)
					cs = append(cs, c)
				}
			}
			if st.partial > 0 {
				cs = cs[:st.partial]
			}
			for _, r := range s.Apply(ctx, cs, b.Gaps...) {
				if r.Err != nil {
					t.Fatalf("step %d: Apply: %v", i, r.Err)
				}
			}
			if st.end {
				var ff []byte
				if st.firstFail != 0 {
					ff = pos(st.firstFail)
				}
				if err := s.EndBatch(ctx, b, ff); err != nil {
					t.Fatalf("step %d: EndBatch: %v", i, err)
				}
			}
		}
		for _, q := range st.recount {
			r := s.Recount(ctx, ledgerContrib(q))
			if r.Err != nil {
				t.Fatalf("step %d: Recount(%d): %v", i, q, r.Err)
			}
			out = append(out, r)
		}
	}
	return db, out
}

// egRange lists lo..hi.
func egRange(lo, hi uint64) []uint64 {
	var r []uint64
	for q := lo; q <= hi; q++ {
		r = append(r, q)
	}
	return r
}

// TestErrgapVerdictChange: records 1..n must each end counted exactly once in both groups (a and b); the expected
// count and sum are computed from the input with math/big, not from the ledger. A record that a recount reports
// forgotten (RecountForgotten) is a reported loss and is left out of the expectation, but must not count twice.
func TestErrgapVerdictChange(t *testing.T) {
	many := uint64(MaxLedgerGaps + 20)
	tests := []struct {
		name      string
		n         uint64
		forgotten int // records the recounts report forgotten (distinct)
		steps     []errgapStep
	}{
		{
			name: "stored uncounted, error-tabled by the retry whose state write's answer is lost",
			n:    3,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, partial: 2, end: true, firstFail: 2}},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: 3, stored: []uint64{2}, errored: []uint64{3}, end: true}, markLost: true},
				{ledgerStep: ledgerStep{recount: []uint64{3, 3}}},
			},
		},
		{
			name: "counted in a not in b, then error-tabled, then stored again by a duplicate, then redriven",
			n:    4,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, partial: 5, end: true, firstFail: 3}},
				{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 4, stored: []uint64{4}, errored: []uint64{3}, end: true}},
				{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 4, stored: []uint64{3, 4}, end: true}},
				{ledgerStep: ledgerStep{recount: []uint64{3, 3}}},
			},
		},
		{
			name: "counted in a not in b, error-tabled with the answer lost, redriven twice",
			n:    4,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, partial: 5, end: true, firstFail: 3}},
				{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 4, stored: []uint64{4}, errored: []uint64{3}, end: true}, markLost: true},
				{ledgerStep: ledgerStep{recount: []uint64{3, 3}}},
			},
		},
		{
			name: "counted in a not in b, redriven between MarkErrors and Apply, again before and after",
			n:    4,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, partial: 5, end: true, firstFail: 3, recount: []uint64{3}}},
				{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 4, stored: []uint64{4}, errored: []uint64{3}, end: true}, mid: []uint64{3}},
				{ledgerStep: ledgerStep{recount: []uint64{3}}},
			},
		},
		{
			name: "stored uncounted, redriven only between MarkErrors and Apply, then flipped back",
			n:    4,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, partial: 2, end: true, firstFail: 2}},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: 4, stored: []uint64{2, 4}, errored: []uint64{3}, end: true}, mid: []uint64{3}},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: 4, stored: []uint64{2, 3, 4}, end: true}},
				{ledgerStep: ledgerStep{recount: []uint64{3}}},
			},
		},
		{
			name: "counted everywhere, then error-tabled by a duplicate: not counted again",
			n:    3,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, end: true}},
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2}, errored: []uint64{3}, end: true}},
				{ledgerStep: ledgerStep{recount: []uint64{3, 3}}},
			},
		},
		{
			name: "given up, then a duplicate error-tables it (a one-record range inside the give-up range)",
			n:    4,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 2, stored: []uint64{1}, end: true, firstFail: 2}},
				{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 4, stored: []uint64{3, 4}, end: true}},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: 4, stored: []uint64{3, 4}, errored: []uint64{2}, end: true}},
				{ledgerStep: ledgerStep{recount: []uint64{2, 2}}},
			},
		},
		{
			name: "given up, stored by a duplicate, error-tabled by another, redriven",
			n:    4,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 2, stored: []uint64{1}, end: true, firstFail: 2}},
				{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 4, stored: []uint64{3, 4}, end: true}},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: 4, stored: []uint64{2, 3, 4}, end: true}},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: 4, stored: []uint64{3, 4}, errored: []uint64{2}, end: true}},
				{ledgerStep: ledgerStep{recount: []uint64{2, 2}}},
			},
		},
		{
			name: "marked, mark pruned, rewound delivery error-tables it again",
			n:    4,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 2, stored: []uint64{1}, errored: []uint64{2}, end: true}},
				{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 4, stored: []uint64{3, 4}, end: true}},
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 4, stored: []uint64{1, 3, 4}, errored: []uint64{2}, end: true}},
				{ledgerStep: ledgerStep{recount: []uint64{2, 2}}},
			},
		},
		{
			// Room for one position: the retry marks 7 and is cut at 8 (fresh); the flipped 3 lies before the cut.
			name: "cut batch: flipped record before the cut, fresh error-tabled records at and after it",
			n:    9,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 6, stored: egRange(1, 6), partial: 2, end: true, firstFail: 2}, positions: 1},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: 9, stored: []uint64{2, 4, 5, 6}, errored: []uint64{3, 7, 8}, end: true, firstFail: 8}},
				{ledgerStep: ledgerStep{pipeline: true, first: 8, last: 9, stored: []uint64{9}, errored: []uint64{8}, end: true}},
				{ledgerStep: ledgerStep{recount: []uint64{3, 7, 8, 3, 7, 8}}},
			},
		},
		{
			// The retry is cut at its flipped record's neighbour 4 (fresh after a first delivery that ended at 3);
			// then the next delivery flips 3 back (stored) before the redrive.
			name: "cut batch, flipped record stored again by the next delivery",
			n:    5,
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 3, stored: egRange(1, 3), partial: 3, end: true, firstFail: 2}, positions: 1},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: 5, stored: []uint64{2}, errored: []uint64{3, 4, 5}, end: true, firstFail: 5}},
				{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 5, stored: []uint64{3, 4}, errored: []uint64{5}, end: true}},
				{ledgerStep: ledgerStep{recount: []uint64{3, 4, 5, 3, 4, 5}}},
			},
		},
		{
			name:      "more flipped records than MaxLedgerGaps: forgotten ones reported, none counted twice",
			n:         many,
			forgotten: int(many) - 2 - MaxLedgerGaps, // 3..many flipped, the newest MaxLedgerGaps ranges kept
			steps: []errgapStep{
				{ledgerStep: ledgerStep{pipeline: true, first: 1, last: many, stored: egRange(1, many), partial: 2, end: true, firstFail: 2}},
				{ledgerStep: ledgerStep{pipeline: true, first: 2, last: many, stored: []uint64{2}, errored: egRange(3, many), end: true}},
				{ledgerStep: ledgerStep{recount: append(egRange(3, many), egRange(3, many)...)}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, res := runErrgap(t, tc.steps)
			var recounted []uint64
			for _, st := range tc.steps {
				recounted = append(recounted, st.mid...)
				recounted = append(recounted, st.recount...)
			}
			forgotten := map[uint64]bool{}
			for i, r := range res {
				if r.Class == RecountForgotten {
					forgotten[recounted[i]] = true
				}
			}
			if len(forgotten) != tc.forgotten {
				t.Errorf("%d records reported forgotten, want %d", len(forgotten), tc.forgotten)
			}
			n, sum := new(big.Int), new(big.Int)
			for q := uint64(1); q <= tc.n; q++ {
				if !forgotten[q] {
					n.Add(n, big.NewInt(1))
					sum.Add(sum, new(big.Int).SetUint64(q))
				}
			}
			for _, g := range []string{"a", "b"} {
				gn, gs := groupTotal(t, db, g)
				if gn != n.String() || gs != sum.String() {
					t.Errorf("group %s: count %s sum %s, want %s %s (forgotten %d)", g, gn, gs, n, sum, len(forgotten))
				}
			}
		})
	}
}

// TestErrgapRewindKeepsGiveUps: a genuine give-up range (record 2) and then a rewound delivery that sends more
// than MaxLedgerGaps already marked records (marks pruned from errs, markers kept) to the error table again. The
// rewound records are marked, so they need no give-up range; the genuine range must survive and record 2 be counted
// by its redrive (not reported forgotten).
func TestErrgapRewindKeepsGiveUps(t *testing.T) {
	k := uint64(5 + MaxLedgerGaps + 5)
	steps := []errgapStep{
		{ledgerStep: ledgerStep{pipeline: true, first: 1, last: 2, stored: []uint64{1}, end: true, firstFail: 2}},
		{ledgerStep: ledgerStep{pipeline: true, first: 3, last: 4, stored: []uint64{3, 4}, end: true}},
		{ledgerStep: ledgerStep{pipeline: true, first: 5, last: k, stored: []uint64{5}, errored: egRange(6, k), end: true}},
		{ledgerStep: ledgerStep{pipeline: true, first: k + 1, last: k + 2, stored: []uint64{k + 1, k + 2}, end: true}},
		{ledgerStep: ledgerStep{pipeline: true, first: 5, last: k + 2, stored: []uint64{5, k + 1, k + 2}, errored: egRange(6, k), end: true}},
		{ledgerStep: ledgerStep{recount: []uint64{2}}},
	}
	db, res := runErrgap(t, steps)
	if res[0].Class == RecountForgotten || !res[0].Counted() {
		t.Errorf("record 2 (a genuine give-up range): recount class %v, counted %v; want counted", res[0].Class, res[0].Counted())
	}
	n, sum := new(big.Int), new(big.Int)
	for _, q := range append([]uint64{1, 2, 3, 4, 5}, k+1, k+2) {
		n.Add(n, big.NewInt(1))
		sum.Add(sum, new(big.Int).SetUint64(q))
	}
	for _, g := range []string{"a", "b"} {
		if gn, gs := groupTotal(t, db, g); gn != n.String() || gs != sum.String() {
			t.Errorf("group %s: count %s sum %s, want %s %s", g, gn, gs, n, sum)
		}
	}
}
