package aggregate

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"
)

// dupStep is one step of a duplicate-delivery scenario: a delivery of records first..last to the pipeline (stored
// and errored: the records stored and sent to the error table, the others fail), or recounts.
type dupStep struct {
	first, last     uint64
	stored, errored []uint64
	beginLost       bool // BeginBatch's state write is applied and its answer lost (a timeout): it retries
	crash           bool // the invocation dies right after BeginBatch
	recount         []uint64
}

// TestLedgerDuplicateDeliveries runs duplicate deliveries (the mapping delivers at least once, also records it
// acknowledged or gave up on) through the ledger's steps as the processor does, then redrives what the mapping
// gave up on or sent to the error table. Every record of the input must count exactly once: the oracle is the
// input's records per group, each once.
func TestLedgerDuplicateDeliveries(t *testing.T) {
	tests := []struct {
		name   string
		groups map[uint64]string // record -> its group (its value is its sequence number)
		steps  []dupStep
	}{
		{
			// Records 1 and 2 are given up before any delivery reaches MarkErrors, and processed passes them with
			// the next batch; a duplicate then sends 1 to the error table (not marked: processed has passed it)
			// and stores 2. Applied in fence order, 2 would hide 1 below the range's crossing.
			name:   "give-up range redelivered, a record of it sent to the error table",
			groups: map[uint64]string{1: "x", 2: "x", 3: "y", 4: "x"},
			steps: []dupStep{
				{first: 1, last: 2, crash: true},
				{first: 3, last: 3, stored: []uint64{3}},
				{first: 1, last: 2, stored: []uint64{2}, errored: []uint64{1}},
				{first: 4, last: 4, stored: []uint64{4}},
				{recount: []uint64{1, 2, 1}}, // the on-failure range, then the error table's entry
			},
		},
		{
			// 2 is marked, its mark pruned by the next batch; a duplicate stores it (the fix is out), but its
			// BeginBatch reads its own write again after a lost answer: pending is its first record.
			name:   "duplicate whose BeginBatch answer is lost",
			groups: map[uint64]string{1: "a", 2: "x", 3: "a", 4: "a", 5: "a"},
			steps: []dupStep{
				{first: 1, last: 3, stored: []uint64{1, 3}, errored: []uint64{2}},
				{first: 4, last: 5, stored: []uint64{4, 5}},
				{first: 1, last: 3, stored: []uint64{1, 2, 3}, beginLost: true},
				{recount: []uint64{2}},
			},
		},
		{
			// The same, the duplicate dying after BeginBatch and coming again: it starts at pending.
			name:   "duplicate crashing after BeginBatch, delivered again",
			groups: map[uint64]string{1: "a", 2: "x", 3: "a", 4: "a", 5: "a"},
			steps: []dupStep{
				{first: 1, last: 3, stored: []uint64{1, 3}, errored: []uint64{2}},
				{first: 4, last: 5, stored: []uint64{4, 5}},
				{first: 1, last: 3, crash: true},
				{first: 1, last: 3, stored: []uint64{1, 2, 3}},
				{recount: []uint64{2}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := newFakeDB()
			lose := false
			db.fault = func(op string) string {
				if op == "put" && lose {
					lose = false
					return "after"
				}
				return ""
			}
			s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond, MaxInFlight: 1}
			cs := func(q uint64) []Contribution {
				return []Contribution{contrib(int(q), q, tc.groups[q], strconv.FormatUint(q, 10))}
			}
			for i, st := range tc.steps {
				for _, q := range st.recount {
					if r := s.Recount(ctx, cs(q)); r.Err != nil {
						t.Fatalf("step %d: recount %d: %v", i, q, r.Err)
					}
				}
				if st.first == 0 {
					continue
				}
				lose = st.beginLost
				b, err := s.BeginBatch(ctx, "shard-1", pos(st.first), pos(st.last))
				if err != nil {
					t.Fatalf("step %d: BeginBatch: %v", i, err)
				}
				if lose {
					t.Fatalf("step %d: no answer was lost", i)
				}
				if st.crash {
					continue
				}
				var errored, failed, stored [][]byte
				var firstFail []byte
				for q := st.first; q <= st.last; q++ {
					switch {
					case slices.Contains(st.stored, q):
						stored = append(stored, pos(q))
					case slices.Contains(st.errored, q):
						errored = append(errored, pos(q))
					default:
						failed = append(failed, pos(q))
						if firstFail == nil {
							firstFail = pos(q)
						}
					}
				}
				if err := s.MarkErrors(ctx, b, errored, failed); err != nil {
					t.Fatalf("step %d: MarkErrors: %v", i, err)
				}
				if err := s.LoadMarkers(ctx, b, stored); err != nil {
					t.Fatalf("step %d: LoadMarkers: %v", i, err)
				}
				var apply []Contribution
				for _, q := range st.stored {
					for _, c := range cs(q) {
						c.Ledgered = b.Ledgered(c.Position)
						apply = append(apply, c)
					}
				}
				for _, r := range s.Apply(ctx, apply, b.Gaps...) {
					if r.Err != nil {
						t.Fatalf("step %d: Apply: %v", i, r.Err)
					}
				}
				if err := s.EndBatch(ctx, b, firstFail); err != nil {
					t.Fatalf("step %d: EndBatch: %v", i, err)
				}
			}
			// The oracle: every record of the input once, straight from the table of groups.
			want := map[string][2]uint64{}
			for q, g := range tc.groups {
				w := want[g]
				want[g] = [2]uint64{w[0] + 1, w[1] + q}
			}
			for g, w := range want {
				n, sum := groupTotal(t, db, g)
				if n != strconv.FormatUint(w[0], 10) || sum != strconv.FormatUint(w[1], 10) {
					t.Errorf("group %s: count %s, sum %s; want %d, %d (each record once)", g, n, sum, w[0], w[1])
				}
			}
		})
	}
}

// TestLedgerSimHeavyDuplicates runs the fence simulation with many duplicate deliveries (of acknowledged and of
// given-up records) under high fault rates, one shard and small batches: the settings and seeds where a duplicate
// of a give-up range lost records (it sent one to the error table unmarked and moved the fence past it) are
// among those run. Every record must count exactly once.
func TestLedgerSimHeavyDuplicates(t *testing.T) {
	heavy := simConfig{shards: 1, records: 80, pData: 0.05, pCrash: 0.2, pGetFault: 0.05, pPutBefore: 0.15,
		pPutAfter: 0.15, pReplay: 0.5, pGiveUp: 0.4, pFix: 0.03, pInterleave: 0.05, maxBatch: 5, consume: true, pRace: 0.5,
		pDuplicate: 0.4}
	heavier := heavy
	heavier.pDuplicate = 0.6
	tests := []struct {
		name  string
		cfg   simConfig
		seeds []uint64
	}{
		{"duplicates 0.4", heavy, seedRange(80, 100, 238)},
		{"duplicates 0.6", heavier, seedRange(160, 180)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, seed := range tc.seeds {
				if simulate(t, seed, tc.cfg) {
					t.Errorf("seed %d: a shard reached MaxLedgerGaps: the exact check did not run", seed)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// seedRange returns the seeds from a up to b (excluded), then more.
func seedRange(a, b uint64, more ...uint64) []uint64 {
	var out []uint64
	for s := a; s < b; s++ {
		out = append(out, s)
	}
	return append(out, more...)
}

// TestLedgerLargeGapDuplicate: the mapping gives up on 10,000 records of one group and window, then a duplicate
// delivers them all again, stored. Counted through the item's set (they lie in a give-up range), they must not
// grow the item past DynamoDB's 400 KB (the wire-faithful fake refuses larger items): the pipeline counts each
// once, MaxRecountedPositions in the item's set and the rest in its archive; a redrive after it counts nothing
// twice and reports nothing full; the pipeline still writes the item afterwards.
func TestLedgerLargeGapDuplicate(t *testing.T) {
	const n = 10000
	const shard = "shardId-000000000000"
	ctx := context.Background()
	fake := newFakeDB()
	s := &Store{DB: &hookDB{fakeDB: fake}, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	deliver := func(first, last uint64, failAll bool) {
		t.Helper()
		b, err := s.BeginBatch(ctx, shard, realPos(first), realPos(last))
		if err != nil {
			t.Fatal(err)
		}
		var failed, stored [][]byte
		var cs []Contribution
		for q := first; q <= last; q++ {
			if failAll {
				failed = append(failed, realPos(q))
				continue
			}
			stored = append(stored, realPos(q))
			cs = append(cs, realContrib(q))
		}
		if err := s.MarkErrors(ctx, b, nil, failed); err != nil {
			t.Fatal(err)
		}
		if err := s.LoadMarkers(ctx, b, stored); err != nil {
			t.Fatal(err)
		}
		for _, r := range s.Apply(ctx, cs, b.Gaps...) {
			if r.Err != nil {
				t.Fatalf("delivery %d..%d: %v", first, last, r.Err)
			}
		}
		var ff []byte
		if failAll {
			ff = realPos(first)
		}
		if err := s.EndBatch(ctx, b, ff); err != nil {
			t.Fatal(err)
		}
	}
	deliver(1, n, true)
	deliver(n+1, n+1, false) // the mapping gave up on 1..n
	deliver(1, n, false)     // a duplicate of the range
	// The duplicate counts the whole range through the item's set and its archive (MaxRecountedPositions in the
	// set, the rest archived), so the redrive after it finds each counted.
	counted := append(seqRange(1, n), n+1)
	checkTotals(t, fake, "a", counted)
	full := 0
	for lo := uint64(1); lo <= n; lo += 100 {
		var recs [][]Contribution
		for q := lo; q < lo+100; q++ {
			recs = append(recs, []Contribution{realContrib(q)})
		}
		for _, r := range s.RecountBatch(ctx, recs).Records {
			switch {
			case errors.Is(r.Err, ErrItemFull):
				full++
			case r.Err != nil:
				t.Errorf("redrive: %v", r.Err)
			case r.Applied > 0:
				t.Errorf("redrive counted a record the duplicate counted")
			}
		}
	}
	if full != 0 {
		t.Errorf("redrive reported %d records full, want none (the archive holds them)", full)
	}
	checkTotals(t, fake, "a", counted)
	deliver(n+2, n+2, false)
	checkTotals(t, fake, "a", append(counted, n+2))
}
