package aggregate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// The schedule of atk_ledger_sim_test.go with real concurrency: the mapping's worker, a stale worker delivering
// earlier ranges again (at least once) and a redrive of the given-up records run in goroutines at once against
// the wire-faithful fake (lost answers, throttles), so their requests interleave at every GetItem and PutItem.
// The fix for the records sent to the error table comes at the end (a verdict that changes while two deliveries
// of a record run at once is the documented residual), then every error-tabled and given-up record is redriven.
// Every record must count exactly once (totals from the input with math/big).
func atkConcurrent(t *testing.T, seed uint64, cfg atkCfg) {
	rng := rand.New(rand.NewPCG(seed, seed^0xabcdef))
	recs := atkRecords(rng, cfg)
	db := newFakeDB()
	frng := rand.New(rand.NewPCG(seed, 77)) // used under the fake's lock only
	faults := true
	db.fault = func(op string) string {
		if !faults {
			return ""
		}
		x := frng.Float64()
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
	mk := func() *Store {
		return &Store{DB: db, Table: "agg", Measures: atkMeasures, BackoffBase: time.Microsecond, MaxAttempts: 3, MaxInFlight: 2,
			LedgerPositions: cfg.ledgerPositions, setCap: cfg.setCap, buckets: cfg.buckets}
	}
	ctx := context.Background()
	var mu sync.Mutex
	redrive := map[int]bool{}
	past := []int{0}
	pos := func(i int) []byte { return atkPos(recs[i].seq, recs[i].sub) }

	invoke := func(pipe *Store, rng *rand.Rand, from, to int) (acked int, began bool) {
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
			case recs[i].perm:
				errored = append(errored, pos(i))
				mu.Lock()
				redrive[i] = true
				mu.Unlock()
			case rng.Float64() < cfg.pFail:
				failed = append(failed, pos(i))
				bad[i] = true
			}
		}
		if err := pipe.MarkErrors(ctx, lb, errored, failed); err != nil {
			return 0, true
		}
		un := positionSet(lb.Unmarked)
		var stored [][]byte
		for i := from; i < to; i++ {
			if un[string(pos(i))] {
				bad[i] = true
			}
			if !bad[i] && !recs[i].perm {
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
			if recs[i].perm {
				continue
			}
			for _, c := range atkContribs(t, recs, i) {
				c.Ledgered = lb.Ledgered(c.Position)
				cs = append(cs, c)
			}
		}
		if crash == 1 && len(cs) > 0 {
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
		for _, r := range pipe.Apply(ctx, cs, lb.Gaps...) {
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
			firstBad = recs[firstBad].start
			firstFailed = atkPos(recs[firstBad].seq, 0)
		}
		_ = pipe.EndBatch(ctx, lb, firstFailed)
		if crash == 3 {
			return -1, true
		}
		return firstBad - from, true
	}
	batchEnd := func(from, size int) int {
		end := min(from+size, len(recs))
		for end < len(recs) && recs[end].start != end {
			end++
		}
		return end
	}
	done := make(chan struct{})
	var stale, recounts, steps int
	defer func() { t.Logf("seed %d: %d steps, %d stale deliveries, %d recounts", seed, steps, stale, recounts) }()
	var wg sync.WaitGroup
	// The stale worker.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng, pipe := rand.New(rand.NewPCG(seed, 1)), mk()
		for {
			select {
			case <-done:
				return
			default:
			}
			mu.Lock()
			a := past[rng.IntN(len(past))]
			mu.Unlock()
			invoke(pipe, rng, a, batchEnd(a, 1+rng.IntN(cfg.maxBatch)))
			stale++
		}
	}()
	// The redrive of given-up records (those sent to the error table wait for the fix).
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng, rec := rand.New(rand.NewPCG(seed, 2)), mk()
		for {
			select {
			case <-done:
				return
			default:
			}
			i := rng.IntN(len(recs))
			mu.Lock()
			ok := redrive[i] && !recs[i].perm
			mu.Unlock()
			if ok || rng.IntN(4) == 0 { // and replays of any record
				if !recs[i].perm {
					rec.Recount(ctx, atkContribs(t, recs, i))
					recounts++
				}
			}
			time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
		}
	}()
	pipe := mk()
	var checkpoint, size, attempts int
	checkpoint, size, attempts, steps = 0, 1+rng.IntN(cfg.maxBatch), 0, 0
	for checkpoint < len(recs) {
		if steps++; steps > 20000 {
			close(done)
			wg.Wait()
			t.Fatalf("seed %d: no progress at record %d of %d", seed, checkpoint, len(recs))
		}
		if rng.Float64() < cfg.pRewind {
			mu.Lock()
			checkpoint, attempts = past[rng.IntN(len(past))], 0
			mu.Unlock()
		}
		end := batchEnd(checkpoint, size)
		acked, began := invoke(pipe, rng, checkpoint, end)
		switch {
		case acked == end-checkpoint:
			checkpoint, size, attempts = end, 1+rng.IntN(cfg.maxBatch), 0
		case began && attempts >= 2 && rng.Float64() < cfg.pGiveUp:
			mu.Lock()
			for i := checkpoint + max(acked, 0); i < end; i++ {
				redrive[i] = true
			}
			mu.Unlock()
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
		if rng.Float64() < cfg.pOldState {
			db.mu.Lock() // an older version's write of the state: no begun
			if st := db.items[[2]string{ShardStatePartitionKey, atkShard}]; st != nil {
				delete(st, AttrBegun)
			}
			db.mu.Unlock()
		}
		mu.Lock()
		if past[len(past)-1] != checkpoint {
			past = append(past, checkpoint)
		}
		mu.Unlock()
	}
	close(done)
	wg.Wait()
	// The fix is out: every error-tabled and given-up record is redriven until its recount goes through.
	atkRedriveAndCheck(t, ctx, seed, mk(), db, recs, redrive, func() { faults = false })
}

func TestAtkLedgerConcurrent(t *testing.T) {
	base := atkCfg{aggs: 80, maxSubs: 3, maxBatch: 8, pPerm: 0.2, pFail: 0.08, pCrash: 0.1, pGet: 0.05,
		pPutBefore: 0.05, pPutAfter: 0.1, pRewind: 0.1, pGiveUp: 0.4}
	seqs := []string{"255", "65534", "49590338271490256608559692538361571095921575989136588898"}
	n := 150
	if testing.Short() {
		n = 30
	}
	for seed := range uint64(n) {
		cfg := base
		cfg.seq0 = seqs[seed%3]
		cfg.ledgerPositions = 1 + int(seed/3%4)
		cfg.setCap, cfg.buckets = 1+int(seed%2), 1+int(seed/2%3)
		if seed%2 == 1 {
			cfg.pOldState = 0.2
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) { atkConcurrent(t, seed, cfg) })
	}
}
