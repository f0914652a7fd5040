package aggregate

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// Tests of the set's archive (archive.go) with the limits made small: every expectation is computed from the input
// (checkTotals sums the fake's aggregate items against the records' own values), and the layout is read from the
// fake's raw items.

// markAll runs the pipeline over records 1..n of shard-1, all sent to the error table (each marked), then over
// record n+1, stored and counted in fence order.
func markAll(t *testing.T, s *Store, n uint64) {
	t.Helper()
	ctx := context.Background()
	b, err := s.BeginBatch(ctx, "shard-1", pos(1), pos(n))
	if err != nil {
		t.Fatal(err)
	}
	var errored [][]byte
	for q := uint64(1); q <= n; q++ {
		errored = append(errored, pos(q))
	}
	if err := s.MarkErrors(ctx, b, errored, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.EndBatch(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	b, err = s.BeginBatch(ctx, "shard-1", pos(n+1), pos(n+1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkErrors(ctx, b, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Apply(ctx, ledgerContrib(n+1), b.Gaps...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if err := s.EndBatch(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
}

// recountChunks recounts records 1..n in RecountBatch calls of random sizes (up to max), returning how many were
// counted somewhere, reported full, or failed otherwise.
func recountChunks(t *testing.T, s *Store, rng *rand.Rand, n uint64, maxChunk int) (counted, full, failed int) {
	t.Helper()
	for lo := uint64(1); lo <= n; {
		hi := min(n, lo+uint64(rng.IntN(maxChunk)))
		var recs [][]Contribution
		for q := lo; q <= hi; q++ {
			recs = append(recs, ledgerContrib(q))
		}
		for _, r := range s.RecountBatch(context.Background(), recs).Records {
			switch {
			case errors.Is(r.Err, ErrItemFull):
				full++
			case r.Err != nil:
				failed++
			case r.Applied > 0:
				counted++
			}
		}
		lo = hi + 1
	}
	return counted, full, failed
}

// rawLayout reads, from the fake's raw items, the positions of group g's aggregate item's set and of its archive
// buckets, and the item's watermark.
func rawLayout(t *testing.T, db *fakeDB, g string) (set, archived map[string]bool, watermark []byte) {
	t.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	set, archived = map[string]bool{}, map[string]bool{}
	itemKey := `agg#2024-01-01T00:00:00Z#["` + g + `"]`
	want := ArchiveKey(itemKey, "shard-1", pos(1))[AttrPartitionKey].(*types.AttributeValueMemberS).Value
	for k, it := range db.items {
		var ps [][]byte
		switch {
		case k[0] == itemKey:
			switch v := it["_kset"].(type) {
			case *types.AttributeValueMemberBS:
				ps = v.Value
			case *types.AttributeValueMemberL:
				for _, e := range v.Value {
					ps = append(ps, e.(*types.AttributeValueMemberB).Value)
				}
			}
			for _, p := range ps {
				set[string(p)] = true
			}
			if w, ok := it["_karch"].(*types.AttributeValueMemberB); ok {
				watermark = w.Value
			}
		case k[0] == want:
			if !strings.HasPrefix(k[1], "shard-1#") || it["item"].(*types.AttributeValueMemberS).Value != itemKey {
				t.Errorf("bucket %v of item %q: sort key or owner wrong", k, itemKey)
			}
			for _, p := range it["_kset"].(*types.AttributeValueMemberBS).Value {
				archived[string(p)] = true
			}
		}
	}
	return set, archived, watermark
}

// checkLayout checks the archive's invariant for records 1..n (all counted out of fence order in both groups):
// each is in the item's set or archived at or below the watermark, the set holds at most limit positions, and
// nothing else is in either.
func checkLayout(t *testing.T, db *fakeDB, n uint64, limit int) {
	t.Helper()
	for _, g := range []string{"a", "b"} {
		set, archived, w := rawLayout(t, db, g)
		if len(set) > limit {
			t.Errorf("group %s: the set holds %d positions, more than %d", g, len(set), limit)
		}
		for q := uint64(1); q <= n; q++ {
			p := pos(q)
			inArch := archived[string(p)] && w != nil && string(p) <= string(w)
			if !set[string(p)] && !inArch {
				t.Errorf("group %s: record %d neither in the set nor archived at or below the watermark", g, q)
			}
			delete(set, string(p))
			delete(archived, string(p))
		}
		if len(set)+len(archived) > 0 {
			t.Errorf("group %s: %d positions of records not counted out of order in the set or archive", g, len(set)+len(archived))
		}
	}
}

// limitDB records the largest set written to an aggregate item.
type limitDB struct {
	DB
	largest int
}

func (l *limitDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if strings.HasPrefix(in.Item["pk"].(*types.AttributeValueMemberS).Value, "agg#") {
		n := 0
		switch v := in.Item["_kset"].(type) {
		case *types.AttributeValueMemberBS:
			n = len(v.Value)
		case *types.AttributeValueMemberL:
			n = len(v.Value)
		}
		l.largest = max(l.largest, n)
	}
	return l.DB.PutItem(ctx, in, o...)
}

// TestArchiveRecountManyIntoOneItem: ten times the set's limit of marked records are redriven into one item (two:
// groups a and b), in batches of random sizes (some larger than the limit): each counts once, the set stays within
// its limit in every write, and running the redrive again changes nothing.
func TestArchiveRecountManyIntoOneItem(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		setCap, buckets, maxN int
	}{
		{"256 buckets", 8, 0, 3},
		{"4 buckets", 8, 4, 5},
		{"chunks over the limit", 8, 2, 30},
		{"limit 1", 1, 3, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := uint64(10 * tc.setCap)
			db := newFakeDB()
			ldb := &limitDB{DB: db}
			s := &Store{DB: ldb, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond,
				MaxInFlight: 1, setCap: tc.setCap, buckets: tc.buckets}
			markAll(t, s, n)
			rng := rand.New(rand.NewPCG(1, 2))
			for run := 0; run < 2; run++ {
				counted, full, failed := recountChunks(t, s, rng, n, tc.maxN)
				if want := int(n) * (1 - run); counted != want || full != 0 || failed != 0 {
					t.Errorf("run %d: %d counted, %d full, %d failed, want %d, 0, 0", run, counted, full, failed, want)
				}
				checkTotals(t, db, "a", seqRange(1, n+1))
				checkTotals(t, db, "b", seqRange(1, n+1))
				checkLayout(t, db, n, tc.setCap)
			}
			if ldb.largest > tc.setCap {
				t.Errorf("a write left %d positions in a set, more than %d", ldb.largest, tc.setCap)
			}
		})
	}
}

// TestArchiveBucketFull: when the buckets are full too, a recount reports ErrItemFull for what does not fit (its
// source kept) and counts nothing twice: the capacity is the set's limit plus the buckets' (4 plus one bucket of 6
// here), and a second run changes nothing.
func TestArchiveBucketFull(t *testing.T) {
	const n = 20
	db := newFakeDB()
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond,
		setCap: 4, buckets: 1, bucketCap: 6}
	markAll(t, s, n)
	ctx := context.Background()
	for run := 0; run < 2; run++ {
		var counted []uint64
		full := 0
		for q := uint64(1); q <= n; q++ {
			r := s.Recount(ctx, ledgerContrib(q))
			switch {
			case errors.Is(r.Err, ErrItemFull):
				full++
			case r.Err != nil:
				t.Fatalf("run %d: record %d: %v", run, q, r.Err)
			case run == 0 && r.Applied != 2, run == 1 && r.Applied != 0:
				t.Errorf("run %d: record %d counted into %d items", run, q, r.Applied)
			}
			if r.Err == nil {
				counted = append(counted, q)
			}
		}
		if len(counted) != 10 || full != 10 {
			t.Errorf("run %d: %d counted and %d full, want 10 and 10 (4 in the set, 6 in the bucket)", run, len(counted), full)
		}
		checkTotals(t, db, "a", append(seqRange(1, 10), n+1))
		checkTotals(t, db, "b", append(seqRange(1, 10), n+1))
	}
}

// crashDB fails (as a crash would: the request is not retried) the first write of an aggregate item that comes
// after a write of an archive bucket, once armed; after, when set, the write is done first (the answer lost).
type crashDB struct {
	DB
	armed, after, bucketWritten, crashed bool
}

func (c *crashDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	pk := in.Item["pk"].(*types.AttributeValueMemberS).Value
	if c.armed && strings.HasPrefix(pk, ArchivePrefix) {
		c.bucketWritten = true
	}
	if c.armed && c.bucketWritten && !c.crashed && strings.HasPrefix(pk, "agg#") {
		c.crashed = true
		if c.after {
			if _, err := c.DB.PutItem(ctx, in, o...); err != nil {
				return nil, err
			}
		}
		return nil, &smithy.GenericAPIError{Code: "Crash", Message: "the invocation died", Fault: smithy.FaultClient}
	}
	return c.DB.PutItem(ctx, in, o...)
}

// TestArchiveCrashBetweenBucketAndItem: a redrive dies after it moved positions to their buckets and before (or
// just after, its answer lost) the item's write; the pipeline and the redrive run again: every record counts once.
func TestArchiveCrashBetweenBucketAndItem(t *testing.T) {
	for _, after := range []bool{false, true} {
		const n = 40
		db := newFakeDB()
		cdb := &crashDB{DB: db, after: after}
		s := &Store{DB: cdb, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond,
			MaxInFlight: 1, setCap: 6, buckets: 3}
		markAll(t, s, n)
		ctx := context.Background()
		for q := uint64(1); q <= 6; q++ { // the set is full
			if r := s.Recount(ctx, ledgerContrib(q)); r.Err != nil || r.Applied != 2 {
				t.Fatalf("record %d: %+v", q, r)
			}
		}
		cdb.armed = true
		r := s.Recount(ctx, ledgerContrib(7))
		if !cdb.crashed || r.Err == nil {
			t.Fatalf("after=%v: no crash (%+v)", after, r)
		}
		if after {
			checkTotals(t, db, "a", append(seqRange(1, 7), n+1)) // the write was done
		} else {
			checkTotals(t, db, "a", append(seqRange(1, 6), n+1)) // nothing applied yet
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for run := 0; run < 2; run++ {
			if _, full, failed := recountChunks(t, s, rng, n, 9); full != 0 || failed != 0 {
				t.Fatalf("after=%v run %d: %d full, %d failed", after, run, full, failed)
			}
			checkTotals(t, db, "a", seqRange(1, n+1))
			checkTotals(t, db, "b", seqRange(1, n+1))
			checkLayout(t, db, n, 6)
		}
	}
}

// TestArchiveInterleaved: the pipeline (a duplicate delivery of the marked records, now stored: Ledgered
// contributions, archiving too) and a redrive of the same records run into each other: between any read and write
// of one (bucket writes included), the other takes a step, with throttling and writes whose answer is lost. Every
// record counts once, and again once after both have run to the end.
func TestArchiveInterleaved(t *testing.T) {
	for seed := range uint64(30) {
		const n = 60
		rng := rand.New(rand.NewPCG(seed, 7))
		db := newFakeDB()
		pdb := &interleaveDB{DB: db}
		rdb := &interleaveDB{DB: &raceDB{DB: db}}
		cfg := func(d DB) *Store {
			return &Store{DB: d, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Nanosecond,
				MaxInFlight: 1, MaxAttempts: 3, setCap: 1 + int(seed%5), buckets: 1 + int(seed%7)}
		}
		pipe, redrive := cfg(pdb), cfg(rdb)
		markAll(t, pipe, n)
		ctx := context.Background()
		chunk := func() (uint64, uint64) {
			lo := 1 + uint64(rng.IntN(n))
			return lo, min(n, lo+uint64(rng.IntN(12)))
		}
		// The pipeline's duplicate delivery of lo..hi, stored now: the marked records are Ledgered.
		deliver := func(lo, hi uint64) {
			b, err := pipe.BeginBatch(ctx, "shard-1", pos(lo), pos(hi))
			if err != nil {
				return
			}
			var stored [][]byte
			var cs []Contribution
			for q := lo; q <= hi; q++ {
				stored = append(stored, pos(q))
			}
			if pipe.MarkErrors(ctx, b, nil, nil) != nil || pipe.LoadMarkers(ctx, b, stored) != nil {
				_ = pipe.EndBatch(ctx, b, pos(lo))
				return
			}
			for q := lo; q <= hi; q++ {
				for _, c := range ledgerContrib(q) {
					c.Ledgered = b.Ledgered(c.Position) // (not when an earlier delivery's EndBatch failed: then the fence skips it)
					cs = append(cs, c)
				}
			}
			pipe.Apply(ctx, cs, b.Gaps...)
			_ = pipe.EndBatch(ctx, b, nil)
		}
		recount := func(lo, hi uint64) {
			var recs [][]Contribution
			for q := lo; q <= hi; q++ {
				recs = append(recs, ledgerContrib(q))
			}
			redrive.RecountBatch(ctx, recs)
		}
		busy := false
		step := func(f func(lo, hi uint64)) {
			if !busy && rng.IntN(3) == 0 {
				busy = true
				f(chunk())
				busy = false
			}
		}
		pdb.before = func() { step(recount) }
		rdb.before = func() { step(deliver) }
		rdb.DB.(*raceDB).before = func(string) { step(deliver) }
		db.fault = func(op string) string {
			switch x := rng.Float64(); {
			case x < 0.05:
				return "before"
			case x < 0.1 && op == "put":
				return "after"
			}
			return ""
		}
		for range 20 {
			if rng.IntN(2) == 0 {
				deliver(chunk())
			} else {
				recount(chunk())
			}
		}
		checkNoMore := func(stage string) {
			a, _ := itemTotals(t, db, "a")
			b, _ := itemTotals(t, db, "b")
			if a.Num().Int64() > n+1 || b.Num().Int64() > n+1 {
				t.Fatalf("seed %d %s: counts %s and %s, more than the %d records", seed, stage, a, b, n+1)
			}
		}
		checkNoMore("interleaved")
		// Both run to the end (faults still on: each retried until it goes through).
		pdb.before, rdb.before, rdb.DB.(*raceDB).before = nil, nil, nil
		for q := uint64(1); q <= n; q++ {
			for try := 0; ; try++ {
				if try > 100 {
					t.Fatalf("seed %d: recount of %d keeps failing", seed, q)
				}
				if r := redrive.Recount(ctx, ledgerContrib(q)); r.Err == nil {
					break
				}
			}
		}
		db.fault = nil
		deliver(1, n)
		checkTotals(t, db, "a", seqRange(1, n+1))
		checkTotals(t, db, "b", seqRange(1, n+1))
		checkLayout(t, db, n, 1+int(seed%5))
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
}

// TestArchivePipelineLedgered: the pipeline's own additions archive too. Records 1..40 are delivered, the odd ones
// sent to the error table (marked), the even ones counted; the mapping then delivers 1..60 again with the fix: the
// odd records are Ledgered (twenty additions to a set whose limit is 4, so the write is split in rounds, each
// archiving first), the even ones at or before the fence, 41..60 new, in fence order after them. Every record
// counts once, the set stays within its limit, and the same delivery once more changes nothing.
func TestArchivePipelineLedgered(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	ldb := &limitDB{DB: db}
	s := &Store{DB: ldb, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond,
		MaxInFlight: 1, setCap: 4, buckets: 3}
	deliver := func(last uint64, fixed bool) []Result {
		t.Helper()
		b, err := s.BeginBatch(ctx, "shard-1", pos(1), pos(last))
		if err != nil {
			t.Fatal(err)
		}
		var errored, stored [][]byte
		for q := uint64(1); q <= last; q++ {
			if q%2 == 1 && !fixed {
				errored = append(errored, pos(q))
			} else {
				stored = append(stored, pos(q))
			}
		}
		if err := s.MarkErrors(ctx, b, errored, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.LoadMarkers(ctx, b, stored); err != nil {
			t.Fatal(err)
		}
		var cs []Contribution
		for _, p := range stored {
			for _, c := range ledgerContrib(uint64(p[len(p)-1])) {
				c.Ledgered = b.Ledgered(c.Position)
				cs = append(cs, c)
			}
		}
		res := s.Apply(ctx, cs, b.Gaps...)
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if err := s.EndBatch(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
		return res
	}
	var even []uint64
	for q := uint64(2); q <= 40; q += 2 {
		even = append(even, q)
	}
	deliver(40, false)
	checkTotals(t, db, "a", even)
	for round := 0; round < 2; round++ {
		res := deliver(60, true)
		checkTotals(t, db, "a", seqRange(1, 60))
		checkTotals(t, db, "b", seqRange(1, 60))
		for _, r := range res {
			if round == 0 && (r.Applied != 40 || r.Writes < 5) || round == 1 && r.Applied != 0 {
				t.Errorf("delivery %d: item %q: %d applied in %d writes, want %d (in at least 5 writes: 20 additions, 4 a write)",
					round, r.Key, r.Applied, r.Writes, 40*(1-round))
			}
		}
		for _, g := range []string{"a", "b"} {
			set, archived, w := rawLayout(t, db, g)
			if len(set) > 4 || w == nil {
				t.Errorf("group %s: %d positions in the set, watermark %v", g, len(set), w)
			}
			for q := uint64(1); q <= 40; q += 2 {
				if p := string(pos(q)); !set[p] && !(archived[p] && p <= string(w)) {
					t.Errorf("group %s: record %d neither in the set nor archived", g, q)
				}
			}
		}
	}
	if ldb.largest > 4 {
		t.Errorf("a write left %d positions in a set, more than 4", ldb.largest)
	}
}
