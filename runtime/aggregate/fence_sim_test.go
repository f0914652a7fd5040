package aggregate

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The fencing and the ledger under a random schedule: a simulated event source mapping delivers each shard's
// records in order from its checkpoint, in batches of random size, halves a batch after a crash (bisect on error),
// moves the checkpoint to the reported record, and now and then gives up on a failing batch (the records go to the
// on-failure destination); the simulated processor runs the ledger's steps around Apply as the processor does,
// fails records transiently at random (the batch's contributions stop there, as Handle's do), sends "permanent"
// records to the error table until a fix is deployed at a random time, crashes at random points (before the
// ledger, in the middle of Apply, before or after EndBatch), and sees DynamoDB throttle reads and writes, or apply
// a write and then fail it (a timeout after the write). At random points, recounts run (Store.Recount, as redrive
// and replay with Options.RecountAggregates): redrives of error-tabled or given-up records once the fix is out,
// replays of random ranges (counted, in flight, or ahead of the pipeline), duplicates, crashes between items, and
// recounts interleaved between a pipeline write's read and its write. At the end every error-tabled and given-up
// record is redriven. The totals read back must equal those computed from the input with math/big, every record
// counted exactly once.

type simRecord struct {
	shard     string
	seq       uint64
	group     string
	window    int
	value     string // "" for none
	permanent bool   // goes to the error table until the fix is deployed
}

var simMeasures = map[string][]Measure{
	"agg": testMeasures,
	"all": {{"count", KindCount}, {"sum", KindSum}},
}

var simBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// contributions returns what record r (index ref) adds: one item per aggregate.
func (r simRecord) contributions(t testing.TB, ref int) []Contribution {
	var v *Number
	if r.value != "" {
		var err error
		if v, err = ParseNumber(r.value); err != nil {
			t.Fatal(err)
		}
	}
	ws := simBase.Add(time.Duration(r.window) * time.Minute)
	p := append([]byte{byte(len(r.shard))}, r.shard...)
	p = append(p, byte(r.seq>>8), byte(r.seq))
	k1, _ := KeyText("agg", ws, []any{r.group})
	k2, _ := KeyText("all", ws, nil)
	return []Contribution{
		{Aggregate: "agg", Key: k1, WindowStart: ws, Group: []any{r.group}, Shard: r.shard, Position: p, Values: []*Number{nil, v, v, v}, Ref: ref},
		{Aggregate: "all", Key: k2, WindowStart: ws, Shard: r.shard, Position: p, Values: []*Number{nil, v}, Ref: ref},
	}
}

type simConfig struct {
	shards, records int
	pData, pCrash   float64 // per record, per invocation
	pGetFault       float64
	pPutBefore      float64
	pPutAfter       float64
	pReplay         float64 // per invocation: a recount of a random range (replay) or of redrivable records
	pGiveUp         float64 // per failed invocation: the mapping gives up on the batch
	pFix            float64 // per invocation: the fix for the permanent records is deployed
	pInterleave     float64 // per pipeline item write: a recount runs between its read and its write
	maxBatch        int
	// consume: a redrive that stores a record consumes it (deletes its error entry or on-failure message), as kdp
	// redrive does: it is not redriven at the end.
	consume bool
	// pRace, per redrive recount: the pipeline takes a step between the recount's ledger reads and its item reads.
	pRace float64
	// pDuplicate, per step: the mapping first delivers again records it had acknowledged (at least once: a
	// worker resuming from a checkpoint it had passed, any earlier value of the checkpoint), then goes on.
	pDuplicate float64
	// setCap and buckets make the sets' archive small (Store.setCap, Store.buckets; 0: the defaults).
	setCap, buckets int
}

// interleaveDB runs a hook before each PutItem: another writer acting between a read and the write.
type interleaveDB struct {
	DB
	before func()
}

func (w *interleaveDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if w.before != nil {
		w.before()
	}
	return w.DB.PutItem(ctx, in, o...)
}

// raceDB runs a hook before each GetItem (with the key's pk).
type raceDB struct {
	DB
	before func(pk string)
}

func (w *raceDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if w.before != nil {
		w.before(in.Key["pk"].(*types.AttributeValueMemberS).Value)
	}
	return w.DB.GetItem(ctx, in, o...)
}

// simulate runs the schedule for seed and checks the totals: exact, or, when a shard's state reached
// MaxLedgerGaps (give-up ranges dropped: a documented residual), counts never above the input's. It reports
// whether the cap was reached.
func simulate(t testing.TB, seed uint64, cfg simConfig) (capped bool) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var recs [][]simRecord
	for s := range cfg.shards {
		var shard []simRecord
		for i := range cfg.records {
			r := simRecord{shard: fmt.Sprintf("shardId-%012d", s), seq: uint64(100 + i*3), group: string(rune('a' + rng.IntN(3))),
				window: rng.IntN(3), permanent: rng.Float64() < 0.05}
			if rng.IntN(10) > 0 {
				r.value = fmt.Sprintf("%d.%02d", rng.IntN(2000)-1000, rng.IntN(100))
			}
			shard = append(shard, r)
		}
		recs = append(recs, shard)
	}
	db := newFakeDB()
	db.fault = func(op string) string {
		x := rng.Float64()
		switch {
		case op == "get" && x < cfg.pGetFault:
			return "before"
		case op == "put" && x < cfg.pPutBefore:
			return "before"
		case op == "put" && x < cfg.pPutBefore+cfg.pPutAfter:
			return "after"
		}
		return ""
	}
	idb := &interleaveDB{DB: db}
	store := &Store{DB: idb, Table: "agg", Measures: simMeasures, BackoffBase: time.Nanosecond, MaxAttempts: 2, MaxInFlight: 1,
		setCap: cfg.setCap, buckets: cfg.buckets}
	recounter := &Store{DB: db, Table: "agg", Measures: simMeasures, BackoffBase: time.Nanosecond, MaxAttempts: 2, MaxInFlight: 1,
		setCap: cfg.setCap, buckets: cfg.buckets}
	ctx := context.Background()
	var racer *Store
	var raceShard int
	fixed := false
	redrivable := map[[2]int]bool{} // error-tabled or given up: {shard, index}

	// recount runs record (s, i) through a recount, as a redrive or replay processor storing it would; partial
	// recounts only some of its items (a crash between items).
	recount := func(st *Store, s, i int, partial bool) bool {
		r := recs[s][i]
		if r.permanent && !fixed {
			return false // the recount's processor sends it to the error table: nothing to count
		}
		cs := r.contributions(t, i)
		if partial {
			cs = cs[:rng.IntN(len(cs))]
		}
		return st.Recount(ctx, cs).Err == nil && !partial // an error leaves it for the next redrive
	}
	idb.before = func() {
		if cfg.pInterleave > 0 && rng.Float64() < cfg.pInterleave {
			s := rng.IntN(cfg.shards)
			recount(recounter, s, rng.IntN(len(recs[s])), false)
		}
	}

	// invoke processes one batch of shard s (records [from, to)) and returns how many records it acknowledges
	// (to-from for all), or -1 for a crash (nothing acknowledged, the response lost). began is set when the
	// ledger's first step went through.
	var began, inInvoke bool
	invoke := func(s, from, to int) int {
		inInvoke = true
		defer func() { inInvoke = false }()
		began = false
		batch := recs[s][from:to]
		crashAt := -1 // 0 before the ledger, 1 in Apply, 2 before EndBatch, 3 after EndBatch
		if rng.Float64() < cfg.pCrash {
			crashAt = rng.IntN(4)
		}
		if crashAt == 0 {
			return -1
		}
		first, last := batch[0].contributions(t, 0)[0].Position, batch[len(batch)-1].contributions(t, 0)[0].Position
		lb, err := store.BeginBatch(ctx, batch[0].shard, first, last)
		if err != nil {
			return 0 // every record fails before anything is written
		}
		began = true
		cut := len(batch) // the first record not stored nor error-tabled (a transient failure)
		for i := range batch {
			if rng.Float64() < cfg.pData {
				cut = i
				break
			}
		}
		var errored, failed [][]byte
		for i, r := range batch {
			p := r.contributions(t, i)[0].Position
			switch {
			case i == cut:
				failed = append(failed, p)
			case r.permanent && !fixed:
				errored = append(errored, p)
				redrivable[[2]int{s, from + i}] = true
			}
		}
		if err := store.MarkErrors(ctx, lb, errored, failed); err != nil {
			return 0
		}
		var stored [][]byte
		for i, r := range batch[:cut] {
			if !r.permanent || fixed {
				stored = append(stored, r.contributions(t, i)[0].Position)
			}
		}
		if err := store.LoadMarkers(ctx, lb, stored); err != nil {
			return 0
		}
		var cs []Contribution
		for i, r := range batch[:cut] {
			if r.permanent && !fixed {
				continue
			}
			for _, c := range r.contributions(t, i) {
				c.Ledgered = lb.Ledgered(c.Position)
				cs = append(cs, c)
			}
		}
		if crashAt == 1 {
			// Crash part-way: some items are updated, then the invocation dies.
			var some []Contribution
			keep := map[string]bool{}
			for _, c := range cs {
				k := c.Key + "|" + c.Shard
				if _, seen := keep[k]; !seen {
					keep[k] = rng.IntN(2) == 0
				}
				if keep[k] {
					some = append(some, c)
				}
			}
			store.Apply(ctx, some, lb.Gaps...)
			return -1
		}
		for _, res := range store.Apply(ctx, cs, lb.Gaps...) {
			if res.Err != nil {
				cut = min(cut, res.Refs[0])
			}
		}
		if crashAt == 2 {
			return -1
		}
		var firstFailed []byte
		if cut < len(batch) {
			firstFailed = batch[cut].contributions(t, cut)[0].Position
		}
		_ = store.EndBatch(ctx, lb, firstFailed) // a failure leaves a false give-up range: safe
		if crashAt == 3 {
			return -1
		}
		return cut
	}

	// recountSome runs the recounts of a random point: a replay of a random range of shard s (anywhere: counted,
	// in flight or ahead of the pipeline), or a redrive of redrivable records, some twice, some partly.
	recountSome := func(s int) {
		if rng.IntN(2) == 0 {
			a := rng.IntN(len(recs[s]))
			b := min(len(recs[s]), a+1+rng.IntN(cfg.maxBatch))
			for i := a; i < b; i++ {
				recount(recounter, s, i, rng.IntN(10) == 0)
			}
			return
		}
		for _, k := range sortedKeys(redrivable) {
			if k[0] == s && rng.IntN(3) == 0 {
				if cfg.pRace > 0 && rng.Float64() < cfg.pRace {
					raceShard = s
				}
				ok := recount(racer, s, k[1], rng.IntN(10) == 0)
				raceShard = -1
				if ok && cfg.consume {
					delete(redrivable, k)
				}
			}
		}
	}

	type mapping struct {
		checkpoint, size, steps int
		past                    []int // earlier checkpoints
	}
	maps := make([]mapping, cfg.shards)
	var step func(s int)
	// racer is the redrive's store when it races the pipeline: before its first item read, the pipeline of
	// raceShard takes a step (not while a pipeline invocation is under way).
	raceShard = -1
	racer = &Store{DB: &raceDB{DB: db, before: func(pk string) {
		if raceShard >= 0 && !inInvoke && pk[0] != '_' && maps[raceShard].size > 0 && maps[raceShard].checkpoint < len(recs[raceShard]) {
			s := raceShard
			raceShard = -1
			step(s)
		}
	}}, Table: "agg", Measures: simMeasures, BackoffBase: time.Nanosecond, MaxAttempts: 2, MaxInFlight: 1,
		setCap: cfg.setCap, buckets: cfg.buckets}
	step = func(s int) {
		m := &maps[s]
		checkpoint, size := m.checkpoint, m.size
		defer func() { m.checkpoint, m.size = checkpoint, size }()
		{
			m.steps++
			if m.steps > 100000 {
				t.Fatalf("seed %d: no progress on shard %d at %d", seed, s, checkpoint)
			}
			if n := len(m.past); cfg.pDuplicate > 0 && n > 0 && rng.Float64() < cfg.pDuplicate {
				if a := m.past[rng.IntN(n)]; a < checkpoint {
					invoke(s, a, min(checkpoint, a+1+rng.IntN(cfg.maxBatch)))
				}
			}
			if n := len(m.past); n == 0 || m.past[n-1] != checkpoint {
				m.past = append(m.past, checkpoint)
			}
			end := min(checkpoint+size, len(recs[s]))
			acked := invoke(s, checkpoint, end)
			switch {
			// The mapping gives up on a batch whose last attempt reached the ledger (one no attempt of which did is
			// the documented residual: its give-up is not detected).
			case acked < end-checkpoint && began && rng.Float64() < cfg.pGiveUp:
				// The mapping gives up: the unacknowledged records go to the on-failure destination.
				for i := checkpoint + max(acked, 0); i < end; i++ {
					redrivable[[2]int{s, i}] = true
				}
				checkpoint, size = end, 1+rng.IntN(cfg.maxBatch)
			case acked < 0: // bisect: retry the first half
				size = max(1, (end-checkpoint)/2)
			default:
				checkpoint += acked
				size = 1 + rng.IntN(cfg.maxBatch)
			}
			if !fixed && rng.Float64() < cfg.pFix {
				fixed = true
			}
			if rng.Float64() < cfg.pReplay {
				m.checkpoint, m.size = checkpoint, size
				recountSome(rng.IntN(cfg.shards))
				checkpoint, size = m.checkpoint, m.size
			}
		}
	}
	for s := range cfg.shards {
		maps[s].size = 1 + rng.IntN(cfg.maxBatch)
		for maps[s].checkpoint < len(recs[s]) {
			step(s)
		}
	}
	// The fix is out; every error-tabled and given-up record is redriven, faults and all, until each recount has
	// gone through once without an error (the redrive tool retries what fails).
	fixed = true
	for _, k := range sortedKeys(redrivable) {
		cs := recs[k[0]][k[1]].contributions(t, k[1])
		for try := 0; ; try++ {
			if try > 1000 {
				t.Fatalf("seed %d: recount of %v keeps failing", seed, k)
			}
			if r := recounter.Recount(ctx, cs); r.Err == nil {
				break
			}
		}
	}

	db.fault = nil
	for s := range cfg.shards {
		st, err := store.ReadShardState(ctx, recs[s][0].shard)
		if err != nil {
			t.Fatal(err)
		}
		capped = capped || len(st.Gaps) >= MaxLedgerGaps
	}
	// The oracle, straight from the input.
	type agg struct {
		n            int
		sum, lo, hi  *big.Rat
		hasV         bool
		allN         int
		allSum       *big.Rat
		allHasV      bool
		windowsUsedA bool
	}
	want := map[string]*agg{} // "agg|group|window" and "all||window"
	get := func(k string) *agg {
		if want[k] == nil {
			want[k] = &agg{sum: new(big.Rat), allSum: new(big.Rat)}
		}
		return want[k]
	}
	for _, shard := range recs {
		for _, r := range shard {
			// Every record counts: the permanent ones were redriven with the fix.
			a := get(fmt.Sprintf("agg|%s|%d", r.group, r.window))
			all := get(fmt.Sprintf("all||%d", r.window))
			a.n++
			all.n++
			if r.value == "" {
				continue
			}
			v := ratOf(t, r.value)
			a.sum.Add(a.sum, v)
			all.sum.Add(all.sum, v)
			if !a.hasV || v.Cmp(a.lo) < 0 {
				a.lo = v
			}
			if !a.hasV || v.Cmp(a.hi) > 0 {
				a.hi = v
			}
			a.hasV, all.hasV = true, true
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	db.fault = nil
	for _, k := range keys {
		w := want[k]
		var name, group string
		var window int
		fmt.Sscanf(k, "%3s", &name)
		q := Query{Name: name, Measures: simMeasures[name], Window: time.Minute}
		if name == "agg" {
			fmt.Sscanf(k[4:], "%1s|%d", &group, &window)
			q.Group = []any{group}
		} else {
			fmt.Sscanf(k[5:], "%d", &window)
		}
		q.Time = simBase.Add(time.Duration(window)*time.Minute + 30*time.Second)
		tot, err := Totals(ctx, db, "agg", q)
		if err != nil {
			t.Fatal(err)
		}
		check := func(m string, want *big.Rat, has bool) {
			got, ok := tot.Values[m]
			if capped { // only "never counted twice" holds: counts at most the input's
				if (m == "n" || m == "count") && ok && ratOf(t, got.String()).Cmp(want) > 0 {
					t.Errorf("seed %d: %s %s = %s, more than %s", seed, k, m, got, want.FloatString(0))
				}
				return
			}
			switch {
			case !has && ok:
				t.Errorf("seed %d: %s %s = %s, want none", seed, k, m, got)
			case has && !ok:
				t.Errorf("seed %d: %s %s missing, want %s", seed, k, m, want.FloatString(2))
			case has && ratOf(t, got.String()).Cmp(want) != 0:
				t.Errorf("seed %d: %s %s = %s, want %s", seed, k, m, got, want.FloatString(2))
			}
		}
		if name == "agg" {
			check("n", big.NewRat(int64(w.n), 1), true)
			check("total", w.sum, w.hasV)
			check("lo", w.lo, w.hasV)
			check("hi", w.hi, w.hasV)
		} else {
			check("count", big.NewRat(int64(w.n), 1), true)
			check("sum", w.sum, w.hasV)
		}
	}
	return capped
}

// sortedKeys returns m's keys in order (the schedule must not depend on map order).
func sortedKeys(m map[[2]int]bool) [][2]int {
	out := make([][2]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] || out[i][0] == out[j][0] && out[i][1] < out[j][1] })
	return out
}

func TestFenceSimulation(t *testing.T) {
	cfg := simConfig{shards: 2, records: 150, pData: 0.02, pCrash: 0.1, pGetFault: 0.1, pPutBefore: 0.15,
		pPutAfter: 0.15, pReplay: 0.2, pGiveUp: 0.3, pFix: 0.01, pInterleave: 0.05, maxBatch: 20}
	for seed := range uint64(40) {
		if simulate(t, seed, cfg) {
			t.Errorf("seed %d: a shard reached MaxLedgerGaps: the exact check did not run", seed)
		}
		if t.Failed() {
			return
		}
	}
}

// TestFenceSimulationArchive is the simulation with the sets' limit at 1 to 3 positions and 1 to 4 buckets: items
// archive all the time, between the pipeline's and the recounts' reads and writes.
func TestFenceSimulationArchive(t *testing.T) {
	cfg := simConfig{shards: 2, records: 150, pData: 0.02, pCrash: 0.1, pGetFault: 0.1, pPutBefore: 0.15,
		pPutAfter: 0.15, pReplay: 0.3, pGiveUp: 0.3, pFix: 0.01, pInterleave: 0.1, maxBatch: 20, pRace: 0.3,
		pDuplicate: 0.1}
	for seed := range uint64(60) {
		cfg.setCap, cfg.buckets, cfg.consume = 1+int(seed%3), 1+int(seed/3%4), seed%2 == 0
		if simulate(t, seed, cfg) {
			t.Errorf("seed %d: a shard reached MaxLedgerGaps: the exact check did not run", seed)
		}
		if t.Failed() {
			return
		}
	}
}

func FuzzFence(f *testing.F) {
	f.Add(uint64(1), uint8(50), uint8(10), uint8(30))
	f.Add(uint64(7), uint8(200), uint8(3), uint8(60))
	f.Fuzz(func(t *testing.T, seed uint64, n, maxBatch, faultPct uint8) {
		p := float64(faultPct%80) / 100
		simulate(t, seed, simConfig{shards: 2, records: 1 + int(n), pData: p / 10, pCrash: p / 3, pGetFault: p / 2,
			pPutBefore: p / 2, pPutAfter: p / 2, pReplay: 0.3, pGiveUp: p, pFix: 0.02, pInterleave: p / 4, maxBatch: 1 + int(maxBatch%50),
			setCap: int(seed % 4), buckets: 1 + int(seed/4%8)}) // setCap 0: the default limit (no archive)
	})
}
