package aggregate

import (
	"context"
	"math/big"
	"testing"
	"time"
)

// TestAtkCrossingsBounded: a shard whose mapping gives up on a batch again and again (MaximumRetryAttempts 0 and
// a dependency failing) while one hourly item keeps receiving records: the item's crossings must not grow it past
// DynamoDB's 400 KB, and every record applied must be counted.
func TestAtkCrossingsBounded(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	s := &Store{DB: db, Table: "agg", Measures: atkMeasures, BackoffBase: time.Nanosecond, MaxAttempts: 2}
	seq, _ := new(big.Int).SetString("49590338271490256608559692538361571095921575989136588898", 10)
	next := func() []byte { seq.Add(seq, big.NewInt(1)); return atkPos(seq, 0) }
	recs := []atkRec{{}}
	applied := 0
	var given [][]byte // the positions given up, in order
	for i := range 1700 {
		// A batch that fails whole (its records' transient failures): pending stays at its first record.
		f := next()
		b, err := s.BeginBatch(ctx, atkShard, f, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkErrors(ctx, b, nil, [][]byte{f}); err != nil {
			t.Fatal(err)
		}
		if err := s.EndBatch(ctx, b, f); err != nil {
			t.Fatal(err)
		}
		given = append(given, f)
		// The mapping gives up on it; the next batch is stored and counted.
		p := next()
		b, err = s.BeginBatch(ctx, atkShard, p, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkErrors(ctx, b, nil, nil); err != nil {
			t.Fatal(err)
		}
		recs[0] = atkRec{seq: new(big.Int).Set(seq), val: 1}
		cs := atkContribs(t, recs, 0)
		for _, r := range s.Apply(ctx, cs, b.Gaps...) {
			if r.Err != nil {
				t.Fatalf("batch %d: %v", i, r.Err)
			}
		}
		applied++
		if err := s.EndBatch(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, _ := atkTotals(t, db, 0)
	if n.Cmp(big.NewRat(int64(applied), 1)) != 0 {
		t.Fatalf("count %s, want %d", n.RatString(), applied)
	}
	// The redrive of the given-up records: those of ranges the state still lists count once each (twice asked),
	// the older ones are reported forgotten and count nothing.
	recount := func(p []byte) RecountResult {
		q, _ := new(big.Int).SetString("0", 10)
		q.SetBytes(p[len(p)-4-len(seq.Bytes()) : len(p)-4])
		recs[0] = atkRec{seq: q, val: 1}
		return s.Recount(ctx, atkContribs(t, recs, 0))
	}
	listed := 0
	for _, p := range given {
		for range 2 {
			r := recount(p)
			switch {
			case r.Err != nil:
				t.Fatal(r.Err)
			case r.Class == RecountGap && r.Applied == 2: // both items of the record
				listed++
			case r.Class == RecountGap && r.Already == 2, r.Class == RecountForgotten && r.Applied == 0:
			default:
				t.Fatalf("recount: %+v", r)
			}
		}
	}
	if listed != MaxLedgerGaps {
		t.Fatalf("%d given-up records counted, want the %d of the ranges listed", listed, MaxLedgerGaps)
	}
	if n, _ = atkTotals(t, db, 0); n.Cmp(big.NewRat(int64(applied+listed), 1)) != 0 {
		t.Fatalf("count %s, want %d", n.RatString(), applied+listed)
	}
	for k, it := range db.items {
		if size := dynamoItemSize(it); size > 100*1024 {
			t.Errorf("item %v: %d bytes", k, size)
		}
	}
}
