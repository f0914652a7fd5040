package aggregate

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// An independent schedule (not the fence simulation's): one shard of KPL aggregates whose positions are encoded as
// the processor encodes them (shard, sequence-number magnitude, 4-byte sub-sequence number), with sequence numbers
// crossing magnitude-length boundaries and sub-sequence numbers past 0xff; a shard state that holds only a few
// positions (LedgerPositions), so deliveries are cut and their records failed for retry; a small set archive; a
// mapping that rewinds its checkpoint to any earlier value (at least once) and delivers stale duplicates beside it;
// give-ups, crashes, lost answers. Every record must end counted exactly once (totals computed from the input with
// math/big) once the error-tabled and given-up records are redriven.

type atkRec struct {
	seq   *big.Int
	sub   int
	start int // index of the record's KPL aggregate's first user record
	group int
	val   int64
	perm  bool
}

type atkCfg struct {
	aggs, maxSubs, maxBatch          int
	seq0                             string
	ledgerPositions, setCap, buckets int
	pPerm, pFail, pCrash             float64
	pGet, pPutBefore, pPutAfter      float64
	pRewind, pDup, pGiveUp, pFix     float64
	pReplay, pInterleave             float64
	// pOldState, per step: the shard state is rewritten as a writer older than AttrBegun writes it (without it).
	pOldState float64
}

var atkMeasures = map[string][]Measure{"a": {{"count", KindCount}, {"sum", KindSum}}, "b": {{"count", KindCount}, {"sum", KindSum}}}

const atkShard = "shardId-000000000007"

func atkPos(seq *big.Int, sub int) []byte {
	p := append([]byte{byte(len(atkShard))}, atkShard...)
	m := seq.Bytes()
	p = append(p, byte(len(m)))
	p = append(p, m...)
	return binary.BigEndian.AppendUint32(p, uint32(sub))
}

func atkContribs(t testing.TB, recs []atkRec, i int) []Contribution {
	r := recs[i]
	ws := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	k, err := KeyText("a", ws, []any{strconv.Itoa(r.group)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseNumber(strconv.FormatInt(r.val, 10))
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := KeyText("b", ws, nil)
	return []Contribution{{Aggregate: "a", Key: k, WindowStart: ws, Group: []any{strconv.Itoa(r.group)}, Shard: atkShard,
		Position: atkPos(r.seq, r.sub), Values: []*Number{nil, v}, Ref: i},
		{Aggregate: "b", Key: kb, WindowStart: ws, Shard: atkShard, Position: atkPos(r.seq, r.sub), Values: []*Number{nil, v}, Ref: i}}
}

// atkTotals reads every aggregate item of group g straight from the fake table and adds its measures.
func atkTotals(t testing.TB, db *fakeDB, g int) (n, sum *big.Rat) {
	ws := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	k, _ := KeyText("a", ws, []any{strconv.Itoa(g)})
	if g < 0 {
		k, _ = KeyText("b", ws, nil)
	}
	n, sum = new(big.Rat), new(big.Rat)
	db.mu.Lock()
	defer db.mu.Unlock()
	for key, it := range db.items {
		if key[0] != k {
			continue
		}
		for name, acc := range map[string]*big.Rat{"count": n, "sum": sum} {
			var s string
			switch v := it[name].(type) {
			case *types.AttributeValueMemberN:
				s = v.Value
			case *types.AttributeValueMemberS:
				s = v.Value
			case nil:
				continue
			}
			x, ok := new(big.Rat).SetString(s)
			if !ok {
				t.Fatalf("item %v: %s %q", key, name, s)
			}
			acc.Add(acc, x)
		}
	}
	return n, sum
}

func atkSimulate(t testing.TB, seed uint64, cfg atkCfg) {
	rng := rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1))
	recs := atkRecords(rng, cfg)
	db := newFakeDB()
	faults := true
	db.fault = func(op string) string {
		if !faults {
			return ""
		}
		x := rng.Float64()
		switch {
		case op == "get" && x < cfg.pGet:
			return "before"
		case op == "put" && x < cfg.pPutBefore:
			return "before"
		case op == "put" && x < cfg.pPutBefore+cfg.pPutAfter:
			return "after"
		}
		return ""
	}
	hook := &interleaveDB{DB: db}
	mk := func(d DB) *Store {
		return &Store{DB: d, Table: "agg", Measures: atkMeasures, BackoffBase: time.Nanosecond, MaxAttempts: 2, MaxInFlight: 1,
			LedgerPositions: cfg.ledgerPositions, setCap: cfg.setCap, buckets: cfg.buckets}
	}
	pipe, rec := mk(hook), mk(db)
	ctx := context.Background()
	fixed := false
	redrive := map[int]bool{}
	recount := func(i int) {
		if recs[i].perm && !fixed {
			return
		}
		rec.Recount(ctx, atkContribs(t, recs, i))
	}
	hook.before = func() {
		if rng.Float64() < cfg.pInterleave {
			recount(rng.IntN(len(recs)))
		}
	}
	var stats [4]int
	defer func() {
		n := 0
		for k := range db.items {
			if strings.HasPrefix(k[0], ArchivePrefix) {
				n++
			}
		}
		t.Logf("seed %d: cut %d rewound %d gaps %d buckets %d redrive %d", seed, stats[0], stats[1], stats[2], n, len(redrive))
	}()
	pos := func(i int) []byte { return atkPos(recs[i].seq, recs[i].sub) }
	appliedBy := map[[2]int][]string{} // {record, item a/b} -> who
	trace := func(who string, rs []Result) {
		for _, r := range rs {
			it := 0
			if strings.Contains(r.Key, "b#") {
				it = 1
			}
			for _, ref := range r.AppliedRefs {
				appliedBy[[2]int{ref, it}] = append(appliedBy[[2]int{ref, it}], who)
			}
		}
	}
	defer func() {
		if t.Failed() {
			for k, v := range appliedBy {
				if len(v) > 1 {
					t.Logf("record %d (seq %s sub %d) item %d applied by %v", k[0], recs[k[0]].seq, recs[k[0]].sub, k[1], v)
				}
			}
		}
	}()

	// invoke delivers records [from, to) and returns how many it acknowledges, -1 on a crash; began reports that
	// BeginBatch went through.
	invoke := func(from, to int) (acked int, began bool) {
		crash := -1
		if rng.Float64() < cfg.pCrash {
			crash = rng.IntN(4)
		}
		if crash == 0 {
			return -1, false
		}
		lb, err := pipe.BeginBatch(ctx, atkShard, pos(from), pos(to-1))
		if err != nil {
			return 0, false
		}
		bad := map[int]bool{}
		var errored, failed [][]byte
		for i := from; i < to; i++ {
			switch {
			case recs[i].perm && !fixed:
				errored = append(errored, pos(i))
				redrive[i] = true
			case rng.Float64() < cfg.pFail:
				failed = append(failed, pos(i))
				bad[i] = true
			}
		}
		if err := pipe.MarkErrors(ctx, lb, errored, failed); err != nil {
			return 0, true
		}
		un := positionSet(lb.Unmarked)
		if len(lb.Unmarked) > 0 {
			stats[0]++
		}
		if lb.rewound {
			stats[1]++
		}
		if len(lb.Gaps) > 0 {
			stats[2]++
		}
		var stored [][]byte
		for i := from; i < to; i++ {
			if un[string(pos(i))] {
				bad[i] = true
			}
			if !bad[i] && !(recs[i].perm && !fixed) {
				stored = append(stored, pos(i))
			}
		}
		if err := pipe.LoadMarkers(ctx, lb, stored); err != nil {
			return 0, true
		}
		firstBad := to
		for i := from; i < to; i++ {
			if bad[i] {
				firstBad = i
				break
			}
		}
		var cs []Contribution
		for i := from; i < firstBad; i++ {
			if recs[i].perm && !fixed {
				continue
			}
			for _, c := range atkContribs(t, recs, i) {
				c.Ledgered = lb.Ledgered(c.Position)
				cs = append(cs, c)
			}
		}
		if crash == 1 && len(cs) > 0 {
			// A crash part-way: each item's write (all its contributions) happened or not.
			keep := map[string]bool{}
			var some []Contribution
			for _, c := range cs {
				if _, ok := keep[c.Key]; !ok {
					keep[c.Key] = rng.IntN(2) == 0
				}
				if keep[c.Key] {
					some = append(some, c)
				}
			}
			pipe.Apply(ctx, some, lb.Gaps...)
			return -1, true
		}
		rs := pipe.Apply(ctx, cs, lb.Gaps...)
		trace(fmt.Sprintf("pipe[%d,%d) rewound=%v", from, to, lb.rewound), rs)
		for _, r := range rs {
			if r.Err != nil {
				for _, ref := range r.Refs {
					firstBad = min(firstBad, ref)
				}
			}
		}
		if crash == 2 {
			return -1, true
		}
		var firstFailed []byte
		if firstBad < to {
			firstBad = recs[firstBad].start // Lambda retries a KPL aggregate whole
			firstFailed = atkPos(recs[firstBad].seq, 0)
		}
		_ = pipe.EndBatch(ctx, lb, firstFailed)
		if crash == 3 {
			return -1, true
		}
		return firstBad - from, true
	}
	// batchEnd extends a batch to the end of its last KPL aggregate.
	batchEnd := func(from, size int) int {
		end := min(from+size, len(recs))
		for end < len(recs) && recs[end].start != end {
			end++
		}
		return end
	}
	checkpoint, size, attempts, steps := 0, 1+rng.IntN(cfg.maxBatch), 0, 0
	past := []int{0}
	for checkpoint < len(recs) {
		if steps++; steps > 20000 {
			t.Fatalf("seed %d: no progress at record %d of %d", seed, checkpoint, len(recs))
		}
		if rng.Float64() < cfg.pDup && len(past) > 1 {
			// A stale worker: a delivery from an earlier checkpoint, its response ignored.
			a := past[rng.IntN(len(past))]
			invoke(a, batchEnd(a, 1+rng.IntN(cfg.maxBatch)))
		}
		if rng.Float64() < cfg.pRewind && len(past) > 1 {
			// The mapping resumes from an earlier checkpoint (at least once) and goes on from there.
			checkpoint, attempts = past[rng.IntN(len(past))], 0
		}
		end := batchEnd(checkpoint, size)
		acked, began := invoke(checkpoint, end)
		switch {
		case acked == end-checkpoint:
			checkpoint, size, attempts = end, 1+rng.IntN(cfg.maxBatch), 0
		case began && attempts >= 2 && rng.Float64() < cfg.pGiveUp:
			from := checkpoint + max(acked, 0)
			for i := from; i < end; i++ {
				redrive[i] = true
			}
			checkpoint, size, attempts = end, 1+rng.IntN(cfg.maxBatch), 0
		case acked < 0:
			size, attempts = max(1, (end-checkpoint)/2), attempts+1
		default:
			if acked > 0 {
				attempts = 0
			} else {
				attempts++
			}
			checkpoint += acked
		}
		if past[len(past)-1] != checkpoint {
			past = append(past, checkpoint)
		}
		if !fixed && rng.Float64() < cfg.pFix {
			fixed = true
		}
		if rng.Float64() < cfg.pOldState {
			db.mu.Lock()
			if st := db.items[[2]string{ShardStatePartitionKey, atkShard}]; st != nil {
				delete(st, AttrBegun)
			}
			db.mu.Unlock()
		}
		if rng.Float64() < cfg.pReplay {
			a := rng.IntN(len(recs))
			for i := a; i < min(len(recs), a+1+rng.IntN(cfg.maxBatch)); i++ {
				recount(i)
			}
		}
	}
	fixed = true
	atkRedriveAndCheck(t, ctx, seed, rec, db, recs, redrive, func() { faults = false })
}

func TestAtkLedgerSimCapsArchiveRewinds(t *testing.T) {
	base := atkCfg{aggs: 60, maxSubs: 4, maxBatch: 12, pPerm: 0.15, pFail: 0.05, pCrash: 0.1, pGet: 0.05,
		pPutBefore: 0.05, pPutAfter: 0.1, pRewind: 0.1, pDup: 0.3, pGiveUp: 0.3, pFix: 0.01, pReplay: 0.2,
		pInterleave: 0.05}
	seqs := []string{"250", "65530", "18446744073709551610", "49590338271490256608559692538361571095921575989136588898"}
	n := 200
	if testing.Short() {
		n = 40
	}
	for seed := range uint64(n) {
		cfg := base
		cfg.seq0 = seqs[seed%4]
		cfg.ledgerPositions = 1 + int(seed/4%5)
		cfg.setCap, cfg.buckets = 1+int(seed%3), 1+int(seed/3%4)
		if seed%7 == 0 {
			cfg.maxSubs = 300 // sub-sequence numbers past 0xff
			cfg.pPerm = 0.01
			cfg.aggs = 20
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) { atkSimulate(t, seed, cfg) })
	}
}

func TestAtkLedgerSimHeavy(t *testing.T) {
	base := atkCfg{aggs: 50, maxSubs: 3, maxBatch: 8, pPerm: 0.3, pFail: 0.1, pCrash: 0.15, pGet: 0.1,
		pPutBefore: 0.1, pPutAfter: 0.2, pRewind: 0.25, pDup: 0.6, pGiveUp: 0.5, pFix: 0.005, pReplay: 0.3,
		pInterleave: 0.2}
	seqs := []string{"255", "65535", "1", "49590338271490256608559692538361571095921575989136588898"}
	// 300 seeds in the default run (about 20 s), plus the ones that failed before the fixes of this schedule's
	// findings; KDP_SIM_SEEDS=n runs the first n instead (the review ran 1,000 and more).
	seeds := []uint64{336, 339, 429, 912}
	n := uint64(300)
	if v, err := strconv.ParseUint(os.Getenv("KDP_SIM_SEEDS"), 10, 64); err == nil && v > 0 {
		n = v
	}
	for seed := range n {
		seeds = append(seeds, seed)
	}
	for _, seed := range seeds {
		cfg := base
		cfg.seq0 = seqs[seed%4]
		cfg.ledgerPositions = 1 + int(seed/4%3)
		cfg.setCap, cfg.buckets = 1+int(seed%2), 1+int(seed/2%3)
		if seed%3 == 0 {
			cfg.pOldState = 0.3
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) { atkSimulate(t, 1000+seed, cfg) })
	}
}

// atkRecords makes the schedule's records: cfg.aggs aggregates of 1 to cfg.maxSubs user records (KPL), sequence
// numbers from cfg.seq0 with gaps, two groups, values of up to a million either way, cfg.pPerm of them sent to
// the error table until the fix.
func atkRecords(rng *rand.Rand, cfg atkCfg) []atkRec {
	seq, _ := new(big.Int).SetString(cfg.seq0, 10)
	var recs []atkRec
	for range cfg.aggs {
		subs := 1
		if rng.IntN(3) == 0 {
			subs = 1 + rng.IntN(cfg.maxSubs)
		}
		start := len(recs)
		for sub := range subs {
			recs = append(recs, atkRec{seq: new(big.Int).Set(seq), sub: sub, start: start, group: rng.IntN(2),
				val: rng.Int64N(2_000_001) - 1_000_000, perm: rng.Float64() < cfg.pPerm})
		}
		seq.Add(seq, big.NewInt(1+rng.Int64N(3)))
	}
	return recs
}

// atkRedriveAndCheck redrives every record in redrive (the fix is out) until its recount goes through, then, with
// the faults turned off (noFaults), checks each group's totals and the grand total against the input.
func atkRedriveAndCheck(t testing.TB, ctx context.Context, seed uint64, rec *Store, db *fakeDB, recs []atkRec,
	redrive map[int]bool, noFaults func()) {
	for i := range recs {
		if !redrive[i] {
			continue
		}
		for try := 0; ; try++ {
			r := rec.Recount(ctx, atkContribs(t, recs, i))
			if r.Err == nil {
				if r.Class == RecountForgotten {
					t.Fatalf("seed %d: record %d forgotten", seed, i)
				}
				break
			}
			if try > 500 {
				t.Fatalf("seed %d: recount of record %d keeps failing: %v", seed, i, r.Err)
			}
		}
	}
	noFaults()
	for g := -1; g < 2; g++ {
		wantN, wantSum := new(big.Rat), new(big.Rat)
		for _, r := range recs {
			if r.group == g || g < 0 {
				wantN.Add(wantN, big.NewRat(1, 1))
				wantSum.Add(wantSum, new(big.Rat).SetInt64(r.val))
			}
		}
		n, sum := atkTotals(t, db, g)
		if n.Cmp(wantN) != 0 || sum.Cmp(wantSum) != 0 {
			t.Errorf("seed %d: group %d: count %s sum %s, want %s and %s", seed, g, n.RatString(), sum.RatString(),
				wantN.RatString(), wantSum.RatString())
		}
	}
}
