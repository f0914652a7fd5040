package aggregate

import (
	"context"
	"math/big"
	"testing"
	"time"
)

// TestAtkBegunAfterUpgrade: a shard state written by a version before AttrBegun (errs pruned below the first
// record of the last batches, no begun), then duplicates of earlier records: the first one sets begun to its own
// first record, far below the batches that pruned the marks. A second duplicate from there, holding a record
// marked before the upgrade and stored now (the fix deployed), must still read its marker (rewound): counted in
// fence order, the redrive of its error entry would count it again.
func TestAtkBegunAfterUpgrade(t *testing.T) {
	tests := []struct {
		name  string
		dups  [][2]int // the duplicates after the upgrade, [from, to) record indexes; the last stores record 1
		strip bool     // the state is rewritten without begun (by the older version) before the duplicates
	}{
		{"first duplicate below the marked record", [][2]int{{0, 1}, {1, 3}}, true},
		{"first duplicate holds the marked record", [][2]int{{0, 2}, {1, 3}}, true},
		{"duplicate at the marked record", [][2]int{{1, 2}, {1, 3}}, true},
		{"without the upgrade", [][2]int{{0, 1}, {1, 3}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := newFakeDB()
			s := &Store{DB: db, Table: "agg", Measures: atkMeasures, BackoffBase: time.Nanosecond}
			// Record 1 is alone in group 1; the others are in group 0.
			var recs []atkRec
			for i := range 6 {
				g := 0
				if i == 1 {
					g = 1
				}
				recs = append(recs, atkRec{seq: big.NewInt(int64(1000 + i)), start: i, group: g, val: int64(10 * (i + 1))})
			}
			p := func(i int) []byte { return atkPos(recs[i].seq, 0) }
			fixed := false
			deliver := func(from, to int) {
				b, err := s.BeginBatch(ctx, atkShard, p(from), p(to-1))
				if err != nil {
					t.Fatal(err)
				}
				var errored, stored [][]byte
				for i := from; i < to; i++ {
					if i == 1 && !fixed {
						errored = append(errored, p(i))
					} else {
						stored = append(stored, p(i))
					}
				}
				if err := s.MarkErrors(ctx, b, errored, nil); err != nil {
					t.Fatal(err)
				}
				if err := s.LoadMarkers(ctx, b, stored); err != nil {
					t.Fatal(err)
				}
				var cs []Contribution
				for i := from; i < to; i++ {
					if i == 1 && !fixed {
						continue
					}
					for _, c := range atkContribs(t, recs, i) {
						c.Ledgered = b.Ledgered(c.Position)
						cs = append(cs, c)
					}
				}
				for _, r := range s.Apply(ctx, cs, b.Gaps...) {
					if r.Err != nil {
						t.Fatal(r.Err)
					}
				}
				if err := s.EndBatch(ctx, b, nil); err != nil {
					t.Fatal(err)
				}
			}
			deliver(0, 3) // record 1 sent to the error table, marked
			deliver(3, 6) // errs pruned below record 3
			if tt.strip {
				db.mu.Lock()
				delete(db.items[[2]string{ShardStatePartitionKey, atkShard}], AttrBegun)
				db.mu.Unlock()
			}
			for i, d := range tt.dups {
				fixed = i == len(tt.dups)-1
				deliver(d[0], d[1])
			}
			// The redrive of record 1's error entry, twice.
			for range 2 {
				if r := s.Recount(ctx, atkContribs(t, recs, 1)); r.Err != nil || r.Class != RecountMarked {
					t.Fatalf("recount: %+v", r)
				}
			}
			for g := -1; g < 2; g++ {
				wantN, wantSum := new(big.Rat), new(big.Rat)
				for _, r := range recs {
					if r.group == g || g < 0 {
						wantN.Add(wantN, big.NewRat(1, 1))
						wantSum.Add(wantSum, big.NewRat(r.val, 1))
					}
				}
				if n, sum := atkTotals(t, db, g); n.Cmp(wantN) != 0 || sum.Cmp(wantSum) != 0 {
					t.Errorf("group %d: count %s sum %s, want %s and %s", g, n.RatString(), sum.RatString(), wantN.RatString(), wantSum.RatString())
				}
			}
		})
	}
}
