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
	markLost bool
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
		name  string
		n     uint64
		steps []errgapStep
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
			name: "more flipped records than MaxLedgerGaps: forgotten ones reported, none counted twice",
			n:    many,
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
				recounted = append(recounted, st.recount...)
			}
			forgotten := map[uint64]bool{}
			for i, r := range res {
				if r.Class == RecountForgotten {
					forgotten[recounted[i]] = true
				}
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
