package aggregate

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// The fencing under a random schedule: a simulated event source mapping delivers each shard's records in order from
// its checkpoint, in batches of random size, halves a batch after a crash (bisect on error), and moves the
// checkpoint to the reported record; the simulated processor fails records transiently at random (the batch's
// contributions stop there, as Handle's do), crashes after updating a random part of its items, and sees DynamoDB
// throttle reads and writes, or apply a write and then fail it (a timeout after the write). Old ranges are replayed
// at random (redrive and kdp replay of records already counted). The totals read back must equal those computed
// from the input with math/big, record by record.

type simRecord struct {
	shard     string
	seq       uint64
	group     string
	window    int
	value     string // "" for none
	permanent bool   // goes to the error table: not counted
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
	pReplay         float64 // per invocation
	maxBatch        int
}

// simulate runs the schedule for seed and returns the store's DB.
func simulate(t testing.TB, seed uint64, cfg simConfig) {
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
	store := &Store{DB: db, Table: "agg", Measures: simMeasures, BackoffBase: time.Nanosecond, MaxAttempts: 2, MaxInFlight: 1}
	ctx := context.Background()

	// invoke processes one batch and returns how many records it acknowledges (len(batch) for all), or -1 for a
	// crash (nothing acknowledged, the response lost).
	invoke := func(batch []simRecord) int {
		cut := len(batch)
		for i := range batch {
			if rng.Float64() < cfg.pData {
				cut = i
				break
			}
		}
		var cs []Contribution
		for i, r := range batch[:cut] {
			if !r.permanent {
				cs = append(cs, r.contributions(t, i)...)
			}
		}
		if rng.Float64() < cfg.pCrash {
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
			store.Apply(ctx, some)
			return -1
		}
		for _, res := range store.Apply(ctx, cs) {
			if res.Err != nil {
				cut = min(cut, res.Refs[0])
			}
		}
		return cut
	}

	for s := range cfg.shards {
		checkpoint, size := 0, 1+rng.IntN(cfg.maxBatch)
		for steps := 0; checkpoint < len(recs[s]); steps++ {
			if steps > 100000 {
				t.Fatalf("seed %d: no progress on shard %d at %d", seed, s, checkpoint)
			}
			end := min(checkpoint+size, len(recs[s]))
			acked := invoke(recs[s][checkpoint:end])
			switch {
			case acked < 0: // bisect: retry the first half
				size = max(1, (end-checkpoint)/2)
			default:
				checkpoint += acked
				size = 1 + rng.IntN(cfg.maxBatch)
			}
			if checkpoint > 0 && rng.Float64() < cfg.pReplay {
				a := rng.IntN(checkpoint)
				b := a + 1 + rng.IntN(checkpoint-a)
				invoke(recs[s][a:b]) // a replay or redrive of counted records: must change nothing
			}
		}
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
			if r.permanent {
				continue
			}
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
}

func TestFenceSimulation(t *testing.T) {
	cfg := simConfig{shards: 2, records: 150, pData: 0.02, pCrash: 0.1, pGetFault: 0.1, pPutBefore: 0.15,
		pPutAfter: 0.15, pReplay: 0.2, maxBatch: 20}
	for seed := range uint64(40) {
		simulate(t, seed, cfg)
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
			pPutBefore: p / 2, pPutAfter: p / 2, pReplay: 0.3, maxBatch: 1 + int(maxBatch%50)})
	})
}
