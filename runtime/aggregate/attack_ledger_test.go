package aggregate

import (
	"context"
	"encoding/binary"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Adversarial tests of the ledger (issue 19: exactly once under redrive and replay). Every expected total is
// computed here from the input with math/big, and every outcome is read from the aggregate items in the fake table
// (their measure attributes), never through the package's bookkeeping.

// hookDB runs before(op, pk) ahead of each request it passes to the fake (outside the fake's lock), and enforces
// DynamoDB's item size limit (400 KB) on writes, as DynamoDB does with a ValidationException.
type hookDB struct {
	*fakeDB
	before func(op, pk string)
}

func (h *hookDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if h.before != nil {
		h.before("get", in.Key["pk"].(*types.AttributeValueMemberS).Value)
	}
	return h.fakeDB.GetItem(ctx, in, o...)
}

func (h *hookDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if h.before != nil {
		h.before("put", in.Item["pk"].(*types.AttributeValueMemberS).Value)
	}
	if n := dynamoItemSize(in.Item); n > 400*1024 {
		return nil, validation("Item size has exceeded the maximum allowed size (%d bytes)", n)
	}
	return h.fakeDB.PutItem(ctx, in, o...)
}

// dynamoItemSize is an item's size as DynamoDB documents it: attribute names plus values (strings and binaries
// their length, numbers about one byte per two digits plus one, sets the sum of their members, maps and lists
// three bytes plus one per element plus their contents).
func dynamoItemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value)
	case *types.AttributeValueMemberN:
		return len(x.Value)/2 + 1
	case *types.AttributeValueMemberB:
		return len(x.Value)
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range x.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range x.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range x.Value {
			n += 1 + valueSize(e)
		}
		return n
	}
	return 1
}

// itemTotals sums the count ("n") and sum ("total") measures of group g's items over all shards, reading the
// fake's items directly.
func itemTotals(t *testing.T, db *fakeDB, g string) (*big.Rat, *big.Rat) {
	t.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	n, sum := new(big.Rat), new(big.Rat)
	for k, it := range db.items {
		if !strings.HasPrefix(k[0], "agg#") || !strings.HasSuffix(k[0], `#["`+g+`"]`) {
			continue
		}
		for attr, acc := range map[string]*big.Rat{"n": n, "total": sum} {
			var s string
			switch v := it[attr].(type) {
			case *types.AttributeValueMemberN:
				s = v.Value
			case *types.AttributeValueMemberS:
				s = v.Value
			case nil:
				continue
			}
			r, ok := new(big.Rat).SetString(s)
			if !ok {
				t.Fatalf("item %v: %s = %q", k, attr, s)
			}
			acc.Add(acc, r)
		}
	}
	return n, sum
}

// oracle returns the count and sum of the records seqs (each record's value is its sequence number).
func oracle(seqs []uint64) (*big.Rat, *big.Rat) {
	n, sum := new(big.Rat), new(big.Rat)
	for _, q := range seqs {
		n.Add(n, big.NewRat(1, 1))
		sum.Add(sum, new(big.Rat).SetInt(new(big.Int).SetUint64(q)))
	}
	return n, sum
}

func checkTotals(t *testing.T, db *fakeDB, g string, counted []uint64) {
	t.Helper()
	wn, ws := oracle(counted)
	gn, gs := itemTotals(t, db, g)
	if gn.Cmp(wn) != 0 || gs.Cmp(ws) != 0 {
		t.Errorf("group %s: count %s sum %s, want count %s sum %s (each of %d records once)", g,
			gn.RatString(), gs.RatString(), wn.RatString(), ws.RatString(), len(counted))
	}
}

func seqRange(a, b uint64) []uint64 {
	var out []uint64
	for q := a; q <= b; q++ {
		out = append(out, q)
	}
	return out
}

// TestAttackLedgerRedriveBeforeMarker: the pipeline sends record 3 of its batch 1..5 to the error table (the bug);
// an operator redrives the error table with the fix while the pipeline is between its error write and MarkErrors.
// The redrive reads the shard state (3 is in flight) and the marker (none yet); then the pipeline marks 3, applies
// 1, 2, 4, 5 (the fence moves past 3) and acknowledges the batch; then the redrive reads the items. The redrive
// deletes the error entry once the record is stored, so this recount is the record's only chance: it must count 3.
func TestAttackLedgerRedriveBeforeMarker(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	pipeline := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	b, err := pipeline.BeginBatch(ctx, "shard-1", pos(1), pos(5))
	if err != nil {
		t.Fatal(err)
	}
	// The data writes happened: 1, 2, 4, 5 stored, 3 in the error table. The redrive starts now.
	var once sync.Once
	runPipeline := func() {
		if err := pipeline.MarkErrors(ctx, b, [][]byte{pos(3)}, nil); err != nil {
			t.Error(err)
			return
		}
		var cs []Contribution
		for _, q := range []uint64{1, 2, 4, 5} {
			for _, c := range ledgerContrib(q) {
				c.Ledgered = b.Ledgered(c.Position)
				cs = append(cs, c)
			}
		}
		for _, r := range pipeline.Apply(ctx, cs, b.Gaps...) {
			if r.Err != nil {
				t.Error(r.Err)
			}
		}
		if err := pipeline.EndBatch(ctx, b, nil); err != nil {
			t.Error(err)
		}
	}
	hooked := &hookDB{fakeDB: fake, before: func(op, pk string) {
		if op == "get" && strings.HasPrefix(pk, "agg#") {
			once.Do(runPipeline) // after the state and marker reads, before the item reads
		}
	}}
	redrive := &Store{DB: hooked, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond, MaxInFlight: 1}
	r := redrive.Recount(ctx, ledgerContrib(3))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	t.Logf("recount of 3: class %v, applied %d, already %d", r.Class, r.Applied, r.Already)
	// No second chance: the record was stored without error, so kdp redrive deletes its error entry.
	for _, g := range []string{"a", "b"} {
		checkTotals(t, fake, g, seqRange(1, 5))
	}
}

// TestAttackLedgerDuplicateRecordInOneBatch: a delivery holding the same record twice (same shard, sequence and
// sub-sequence number) is applied in fence order in one Apply: the record must count once.
func TestAttackLedgerDuplicateRecordInOneBatch(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	s := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	b, err := s.BeginBatch(ctx, "shard-1", pos(1), pos(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkErrors(ctx, b, nil, nil); err != nil {
		t.Fatal(err)
	}
	var cs []Contribution
	for _, q := range []uint64{1, 2, 2, 3} {
		cs = append(cs, ledgerContrib(q)...)
	}
	for _, r := range s.Apply(ctx, cs, b.Gaps...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for _, g := range []string{"a", "b"} {
		checkTotals(t, fake, g, seqRange(1, 3))
	}
}

// realPos is a position the size of the processor's (EncodePosition of a 56-digit Kinesis sequence number of
// shard "shardId-000000000000": about 50 bytes).
func realPos(seq uint64) []byte {
	const shard = "shardId-000000000000"
	mag := new(big.Int).SetUint64(seq)
	base, _ := new(big.Int).SetString("49590338271490256608559692538361571095921575989136588898", 10)
	mag.Add(mag, base)
	m := mag.Bytes()
	out := append([]byte{byte(len(shard))}, shard...)
	out = append(out, byte(len(m)))
	out = append(out, m...)
	return append(out, 0, 0, 0, 0)
}

func realContrib(seq uint64) Contribution {
	c := contrib(int(seq), seq, "a", uitoa(seq))
	c.Shard, c.Position = "shardId-000000000000", realPos(seq)
	return c
}

// TestAttackLedgerLargeGapRedrive: the mapping gives up on a batch of 10,000 records (a long DynamoDB outage,
// every attempt reached BeginBatch and failed later); all fall in one group and window (an hourly count). The
// redrive of the on-failure range recounts them in batches of 100 as kdp redrive does. No item (nor the shard
// state) may outgrow DynamoDB's 400 KB (hookDB refuses such a write), or the item could no longer be written, by the
// pipeline either: the recount counts every one of them into the item, each once, the item's set staying within
// MaxRecountedPositions (the rest archived); a second run changes nothing, and the pipeline still writes to the
// item.
func TestAttackLedgerLargeGapRedrive(t *testing.T) {
	const n = 10000
	const shard = "shardId-000000000000"
	ctx := context.Background()
	fake := newFakeDB()
	db := &hookDB{fakeDB: fake}
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	b, err := s.BeginBatch(ctx, shard, realPos(1), realPos(n))
	if err != nil {
		t.Fatal(err)
	}
	var failed [][]byte
	for q := uint64(1); q <= n; q++ {
		failed = append(failed, realPos(q))
	}
	if err := s.MarkErrors(ctx, b, nil, failed); err != nil {
		t.Fatalf("MarkErrors with %d failed records: %v", n, err)
	}
	if err := s.EndBatch(ctx, b, realPos(1)); err != nil {
		t.Fatal(err)
	}
	// The mapping gives up; the next batch (record n+1) is stored and counted.
	b2, err := s.BeginBatch(ctx, shard, realPos(n+1), realPos(n+1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkErrors(ctx, b2, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Apply(ctx, []Contribution{realContrib(n + 1)}, b2.Gaps...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if err := s.EndBatch(ctx, b2, nil); err != nil {
		t.Fatal(err)
	}
	for run := 0; run < 2; run++ {
		full, other := 0, 0
		for lo := uint64(1); lo <= n; lo += 100 {
			var recs [][]Contribution
			for q := lo; q < lo+100 && q <= n; q++ {
				recs = append(recs, []Contribution{realContrib(q)})
			}
			for _, r := range s.RecountBatch(ctx, recs).Records {
				switch {
				case errors.Is(r.Err, ErrItemFull):
					full++
				case r.Err != nil:
					other++
					t.Errorf("run %d: %v", run, r.Err)
				}
			}
		}
		if full != 0 || other != 0 {
			t.Errorf("run %d: %d records reported full and %d otherwise failed, want none", run, full, other)
		}
		checkTotals(t, fake, "a", seqRange(1, n+1))
		fake.mu.Lock()
		for k, it := range fake.items {
			if strings.HasPrefix(k[0], "agg#") {
				if l, ok := it["_kset"].(*types.AttributeValueMemberL); !ok || len(l.Value) > MaxRecountedPositions {
					t.Errorf("run %d: item %v: _kset is %T, want a list of at most %d", run, k, it["_kset"], MaxRecountedPositions)
				}
			}
		}
		fake.mu.Unlock()
	}
	// The pipeline's next record still fits the item.
	b3, err := s.BeginBatch(ctx, shard, realPos(n+2), realPos(n+2))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkErrors(ctx, b3, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Apply(ctx, []Contribution{realContrib(n + 2)}, b3.Gaps...) {
		if r.Err != nil {
			t.Fatalf("the pipeline cannot write the item after the recounts: %v", r.Err)
		}
	}
	checkTotals(t, fake, "a", seqRange(1, n+2))
}

// TestAttackLedgerManyErrorsStateSize: a delivery of 10,000 records all sent to the error table (with ~50-byte
// positions): the shard state stays under 400 KB (MaxLedgerPositions), the records beyond the cap are reported
// unmarked (Batch.Unmarked: the processor fails them for retry), and the marked records redriven with the fix
// count once; the unmarked ones count nothing (never twice) until a delivery marks them.
func TestAttackLedgerManyErrorsStateSize(t *testing.T) {
	const n = 10000
	const shard = "shardId-000000000000"
	ctx := context.Background()
	fake := newFakeDB()
	s := &Store{DB: &hookDB{fakeDB: fake}, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond, MaxInFlight: 16}
	b, err := s.BeginBatch(ctx, shard, realPos(1), realPos(n))
	if err != nil {
		t.Fatal(err)
	}
	var errored [][]byte
	for q := uint64(1); q <= n; q++ {
		errored = append(errored, realPos(q))
	}
	if err := s.MarkErrors(ctx, b, errored, nil); err != nil {
		t.Fatalf("MarkErrors with %d error-tabled records: %v", n, err)
	}
	if err := s.EndBatch(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	bySeq := map[string]uint64{}
	for q := uint64(1); q <= n; q++ {
		bySeq[string(realPos(q))] = q
	}
	fake.mu.Lock()
	var marked []uint64 // read from the marker items
	for k, it := range fake.items {
		if strings.HasPrefix(k[0], ErrorMarkerPrefix) {
			marked = append(marked, bySeq[string(it[AttrMarkerPosition].(*types.AttributeValueMemberB).Value)])
		}
	}
	fake.mu.Unlock()
	markers := len(marked)
	if markers == 0 || markers > MaxLedgerPositions {
		t.Fatalf("%d markers, want 1..%d", markers, MaxLedgerPositions)
	}
	if len(b.Unmarked) != n-markers || len(b.Unmarked) > 0 && bySeq[string(b.Unmarked[0])] != uint64(markers)+1 {
		t.Fatalf("%d records reported unmarked, want the %d after the first %d marked", len(b.Unmarked), n-markers, markers)
	}
	var counted []uint64
	full := 0
	for lo := uint64(1); lo <= n; lo += 100 {
		var recs [][]Contribution
		for q := lo; q < lo+100 && q <= n; q++ {
			recs = append(recs, []Contribution{realContrib(q)})
		}
		for i, r := range s.RecountBatch(ctx, recs).Records {
			switch {
			case errors.Is(r.Err, ErrItemFull): // all fall into one item: its set archives what passes its limit
				full++
			case r.Err != nil:
				t.Fatalf("recount %d: %v", lo+uint64(i), r.Err)
			case r.Class == RecountMarked:
				counted = append(counted, lo+uint64(i))
			}
		}
	}
	if len(counted) != markers || full != 0 {
		t.Errorf("%d records recounted as marked and %d reported full, want %d and 0", len(counted), full, markers)
	}
	checkTotals(t, fake, "a", counted)
}

// TestAttackLedgerDroppedGapCountUnseen: record 1 of a batch is counted into group a's item, then its write to
// group b's item fails (so record 1 is reported for retry), and the mapping gives up on it: a give-up range starts
// at 1. More than MaxLedgerGaps later give-ups push that range out of the shard state. A DLQ redrive with
// --count-unseen (Store.CountUnseen) of record 1's on-failure range must still not count it a second time in
// group a: the ledger saw that batch (it is not unseen), it only forgot the range.
func TestAttackLedgerDroppedGapCountUnseen(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	s := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	b, err := s.BeginBatch(ctx, "shard-1", pos(1), pos(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkErrors(ctx, b, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Apply(ctx, ledgerContrib(1)[:1], b.Gaps...) { // group a only: b's write "failed"
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if err := s.EndBatch(ctx, b, pos(1)); err != nil {
		t.Fatal(err)
	}
	// MaxLedgerGaps+1 more give-ups, each of a one-record batch that fails transiently every time.
	q := uint64(10)
	for range MaxLedgerGaps + 1 {
		b, err := s.BeginBatch(ctx, "shard-1", pos(q), pos(q))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkErrors(ctx, b, nil, [][]byte{pos(q)}); err != nil {
			t.Fatal(err)
		}
		if err := s.EndBatch(ctx, b, pos(q)); err != nil {
			t.Fatal(err)
		}
		q += 10
	}
	// Then a batch goes through.
	b, err = s.BeginBatch(ctx, "shard-1", pos(q), pos(q))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkErrors(ctx, b, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.EndBatch(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	redrive := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond, CountUnseen: true}
	r := redrive.Recount(ctx, ledgerContrib(1))
	t.Logf("recount of 1: class %v, applied %d, already %d, err %v", r.Class, r.Applied, r.Already, r.Err)
	checkTotals(t, fake, "a", []uint64{1})
	if n, _ := itemTotals(t, fake, "b"); n.Cmp(big.NewRat(1, 1)) > 0 {
		t.Errorf("group b: count %s, want at most 1", n.RatString())
	}
}

// TestAttackLedgerDLQRedriveRacesNextBatch: the pipeline counts record 1 of its batch 1..3, record 2 fails every
// time and the mapping gives up on 2..3 (the on-failure destination). A DLQ redrive recounts 2 right away: it
// reads the shard state (2 is in flight: no later batch has begun) and no marker; then the pipeline's next batch
// 4..5 begins (the give-up range [2, 4) is recorded), is counted (the fences move past 2) and acknowledged; then
// the redrive reads the items. It deletes the message once the records are stored, so this recount is record 2's
// only chance; then it recounts 3. Every record must count once.
func TestAttackLedgerDLQRedriveRacesNextBatch(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	pipeline := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	deliver := func(first, last uint64, stored []uint64, failed []uint64, firstFail uint64) {
		b, err := pipeline.BeginBatch(ctx, "shard-1", pos(first), pos(last))
		if err != nil {
			t.Error(err)
			return
		}
		var fs [][]byte
		for _, q := range failed {
			fs = append(fs, pos(q))
		}
		if err := pipeline.MarkErrors(ctx, b, nil, fs); err != nil {
			t.Error(err)
			return
		}
		var cs []Contribution
		for _, q := range stored {
			cs = append(cs, ledgerContrib(q)...)
		}
		for _, r := range pipeline.Apply(ctx, cs, b.Gaps...) {
			if r.Err != nil {
				t.Error(r.Err)
			}
		}
		var ff []byte
		if firstFail != 0 {
			ff = pos(firstFail)
		}
		if err := pipeline.EndBatch(ctx, b, ff); err != nil {
			t.Error(err)
		}
	}
	// 1 counted, 2 fails, 3 stored after the cut (not counted); then a retry from 2 fails again: given up.
	deliver(1, 3, []uint64{1}, []uint64{2}, 2)
	deliver(2, 3, nil, []uint64{2}, 2)
	var once sync.Once
	hooked := &hookDB{fakeDB: fake, before: func(op, pk string) {
		if op == "get" && strings.HasPrefix(pk, "agg#") {
			once.Do(func() { deliver(4, 5, []uint64{4, 5}, nil, 0) })
		}
	}}
	redrive := &Store{DB: hooked, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond, MaxInFlight: 1}
	for _, q := range []uint64{2, 3} {
		r := redrive.Recount(ctx, ledgerContrib(q))
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		t.Logf("recount of %d: class %v, applied %d, already %d", q, r.Class, r.Applied, r.Already)
	}
	for _, g := range []string{"a", "b"} {
		checkTotals(t, fake, g, seqRange(1, 5))
	}
}

// TestAttackLedgerWriterWithOtherMeasures: a deployment adds a measure ("hi", the maximum) while a writer with the
// previous configuration still runs (a redrive or replay started before it, or the pipeline's old version retrying
// a batch): the old writer's recount of a record in flight must not erase the new measure from the item (the item
// is written whole), or the window's maximum silently forgets every record counted before.
func TestAttackLedgerWriterWithOtherMeasures(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	full := []Measure{{"n", KindCount}, {"total", KindSum}, {"hi", KindMax}}
	pipeline := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": full}, BackoffBase: time.Microsecond}
	old := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": full[:2]}, BackoffBase: time.Microsecond}
	mk := func(seq uint64, measures int) Contribution {
		c := contrib(int(seq), seq, "a", uitoa(seq))
		c.Values = c.Values[:measures] // count, sum (, max)
		c.Values[2%measures] = c.Values[1]
		return c
	}
	b, err := pipeline.BeginBatch(ctx, "shard-1", pos(1), pos(5))
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.MarkErrors(ctx, b, nil, [][]byte{pos(4)}); err != nil {
		t.Fatal(err)
	}
	// 1..3 counted; 4 failed, 5 stored after the cut; the response reports 4.
	for _, r := range pipeline.Apply(ctx, []Contribution{mk(1, 3), mk(2, 3), mk(3, 3)}, b.Gaps...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if err := pipeline.EndBatch(ctx, b, pos(4)); err != nil {
		t.Fatal(err)
	}
	// The old writer recounts 5 (in flight).
	if r := old.Recount(ctx, []Contribution{mk(5, 2)}); r.Err != nil || r.Applied != 1 {
		t.Fatalf("recount of 5: %+v", r)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	for k, it := range fake.items {
		if !strings.HasPrefix(k[0], "agg#") {
			continue
		}
		hi, ok := it["hi"].(*types.AttributeValueMemberN)
		if !ok || hi.Value != "3" {
			t.Errorf("item %v: hi = %v, want 3 (the maximum of records 1..3, which the new configuration counted)", k, it["hi"])
		}
	}
}

// TestAttackLedgerSimRedriveRaces runs the fence simulation with redrives that consume what they store (kdp
// redrive deletes the error entry or on-failure message once the record is stored: no final redrive heals a
// recount that counted nothing) and that race the pipeline (it takes a step between a recount's ledger reads and
// its item reads). Every record must count exactly once.
func TestAttackLedgerSimRedriveRaces(t *testing.T) {
	cfg := simConfig{shards: 2, records: 150, pData: 0.05, pCrash: 0.1, pGetFault: 0.05, pPutBefore: 0.1,
		pPutAfter: 0.1, pReplay: 0.4, pGiveUp: 0.4, pFix: 0.01, pInterleave: 0.05, maxBatch: 20, consume: true, pRace: 0.5}
	for seed := range uint64(60) {
		simulate(t, seed, cfg)
		if t.Failed() {
			return
		}
	}
}

// oldItem writes group g's item as the format before the ledger did: measures and _kfence only, records 1..k
// counted (value = sequence number).
func oldItem(fake *fakeDB, g string, k uint64) {
	c := contrib(0, 1, g, "1")
	n, sum := oracle(seqRange(1, k))
	fake.items[[2]string{c.Key, "shard-1"}] = map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: c.Key}, "sk": &types.AttributeValueMemberS{Value: "shard-1"},
		AttrAggregate: &types.AttributeValueMemberS{Value: "agg"}, AttrWindowStart: &types.AttributeValueMemberS{Value: "2024-01-01T00:00:00Z"},
		AttrGroup: &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: g}}},
		"n":       &types.AttributeValueMemberN{Value: n.RatString()}, "total": &types.AttributeValueMemberN{Value: sum.RatString()},
		"lo": &types.AttributeValueMemberN{Value: "1"}, "hi": &types.AttributeValueMemberN{Value: uitoa(k)},
		AttrFence: &types.AttributeValueMemberB{Value: pos(k)},
	}
}

// TestAttackLedgerOldFormatGapAndRedrives: items of the previous format (only _kfence, records 1..3 counted) meet
// the ledger: the first ledgered batch 4..6 counts 4, fails 5 (6 stored after the cut) and is given up; the next
// batch 7..8 is counted; then 5 and 6 are redriven by four redrives at once, twice over, and records 2 and 4 are
// replayed (counted: nothing). Every record counts once.
func TestAttackLedgerOldFormatGapAndRedrives(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	oldItem(fake, "a", 3)
	oldItem(fake, "b", 3)
	s := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	deliver := func(first, last uint64, stored, failed []uint64, firstFail uint64) {
		t.Helper()
		b, err := s.BeginBatch(ctx, "shard-1", pos(first), pos(last))
		if err != nil {
			t.Fatal(err)
		}
		var fs [][]byte
		for _, q := range failed {
			fs = append(fs, pos(q))
		}
		if err := s.MarkErrors(ctx, b, nil, fs); err != nil {
			t.Fatal(err)
		}
		var cs []Contribution
		for _, q := range stored {
			cs = append(cs, ledgerContrib(q)...)
		}
		for _, r := range s.Apply(ctx, cs, b.Gaps...) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		var ff []byte
		if firstFail != 0 {
			ff = pos(firstFail)
		}
		if err := s.EndBatch(ctx, b, ff); err != nil {
			t.Fatal(err)
		}
	}
	deliver(4, 6, []uint64{4}, []uint64{5}, 5)
	deliver(5, 6, nil, []uint64{5}, 5) // given up after this attempt
	deliver(7, 8, []uint64{7, 8}, nil, 0)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond,
				CountUnseen: w%2 == 0}
			for range 2 {
				for _, res := range r.RecountBatch(ctx, [][]Contribution{ledgerContrib(5), ledgerContrib(6)}).Records {
					if res.Err != nil {
						t.Error(res.Err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, q := range []uint64{2, 4} {
		if r := s.Recount(ctx, ledgerContrib(q)); r.Err != nil || r.Applied != 0 {
			t.Errorf("replay of %d: %+v", q, r)
		}
	}
	for _, g := range []string{"a", "b"} {
		checkTotals(t, fake, g, seqRange(1, 8))
	}
}

// shardContrib is record seq of shard's contribution to group g (value seq).
func shardContrib(shard string, seq uint64, g string) Contribution {
	c := contrib(int(seq), seq, g, uitoa(seq))
	c.Shard = shard
	c.Position = binary.BigEndian.AppendUint64(append([]byte{byte(len(shard))}, shard...), seq)
	return c
}

// TestAttackLedgerReshard: a parent shard's last batch (records 1..3) counts 1, fails 2 and is given up, and the
// shard is closed (no later batch ever detects the give-up); its children take over, one of them with the same
// sequence numbers. A redrive of the parent's 2 and 3, twice, and a replay of the children's records count each
// record once, in its own shard's item.
func TestAttackLedgerReshard(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	s := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	parent, child1, child2 := "shardId-000000000000", "shardId-000000000001", "shardId-000000000002"
	deliver := func(shard string, seqs []uint64, stored int, failAt uint64) {
		t.Helper()
		first := shardContrib(shard, seqs[0], "a").Position
		last := shardContrib(shard, seqs[len(seqs)-1], "a").Position
		b, err := s.BeginBatch(ctx, shard, first, last)
		if err != nil {
			t.Fatal(err)
		}
		var failed [][]byte
		var ff []byte
		if failAt != 0 {
			ff = shardContrib(shard, failAt, "a").Position
			failed = [][]byte{ff}
		}
		if err := s.MarkErrors(ctx, b, nil, failed); err != nil {
			t.Fatal(err)
		}
		var cs []Contribution
		for _, q := range seqs[:stored] {
			cs = append(cs, shardContrib(shard, q, "a"))
		}
		for _, r := range s.Apply(ctx, cs, b.Gaps...) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if err := s.EndBatch(ctx, b, ff); err != nil {
			t.Fatal(err)
		}
	}
	deliver(parent, []uint64{1, 2, 3}, 1, 2)
	deliver(parent, []uint64{2, 3}, 0, 2) // given up; the parent is closed
	deliver(child1, []uint64{1, 2, 3}, 3, 0)
	deliver(child2, []uint64{10, 11}, 2, 0)
	for range 2 {
		for _, q := range []uint64{2, 3} {
			if r := s.Recount(ctx, []Contribution{shardContrib(parent, q, "a")}); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		for _, c := range []Contribution{shardContrib(child1, 1, "a"), shardContrib(child1, 3, "a"), shardContrib(child2, 11, "a")} {
			if r := s.Recount(ctx, []Contribution{c}); r.Err != nil || r.Applied != 0 {
				t.Fatalf("replay of a counted child record: %+v", r)
			}
		}
	}
	// Parent 1, 2, 3; child1 1, 2, 3; child2 10, 11.
	checkTotals(t, fake, "a", []uint64{1, 2, 3, 1, 2, 3, 10, 11})
}

// TestAttackLedgerDuplicateOldBatchAfterFix: the mapping delivers at least once: after batch 1..3 (record 2 sent to
// the error table by a bug, marked; it alone feeds group "z") and batch 4..5 were acknowledged, the fix is deployed
// and the mapping delivers 1..3 again (a duplicate, e.g. after a lease moved). Record 2 is now stored; then the
// operator redrives its error entry. Record 2 must count once in group z.
func TestAttackLedgerDuplicateOldBatchAfterFix(t *testing.T) {
	ctx := context.Background()
	fake := newFakeDB()
	s := &Store{DB: fake, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	contribOf := func(q uint64) Contribution {
		g := "a"
		if q == 2 {
			g = "z"
		}
		return contrib(int(q), q, g, uitoa(q))
	}
	deliver := func(first, last uint64, errored []uint64) {
		t.Helper()
		b, err := s.BeginBatch(ctx, "shard-1", pos(first), pos(last))
		if err != nil {
			t.Fatal(err)
		}
		var es [][]byte
		for _, q := range errored {
			es = append(es, pos(q))
		}
		if err := s.MarkErrors(ctx, b, es, nil); err != nil {
			t.Fatal(err)
		}
		var stored [][]byte
		for q := first; q <= last; q++ {
			if len(errored) == 0 || q != errored[0] {
				stored = append(stored, pos(q))
			}
		}
		if err := s.LoadMarkers(ctx, b, stored); err != nil { // the processor's step after MarkErrors
			t.Fatal(err)
		}
		var cs []Contribution
		for q := first; q <= last; q++ {
			if len(errored) > 0 && q == errored[0] {
				continue
			}
			c := contribOf(q)
			c.Ledgered = b.Ledgered(c.Position)
			cs = append(cs, c)
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
	deliver(1, 3, []uint64{2})
	deliver(4, 5, nil)
	deliver(1, 3, nil) // the duplicate, with the fix
	if r := s.Recount(ctx, []Contribution{contribOf(2)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	checkTotals(t, fake, "z", []uint64{2})
	checkTotals(t, fake, "a", []uint64{1, 3, 4, 5})
}

// barrierDB holds each error-marker write until two are in flight at once (or gives up after a while and lets
// it through), recording whether that ever happened.
type barrierDB struct {
	*fakeDB
	mu       sync.Mutex
	inFlight int
	met      chan struct{}
	metOnce  sync.Once
}

func (b *barrierDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if strings.HasPrefix(in.Item["pk"].(*types.AttributeValueMemberS).Value, ErrorMarkerPrefix) {
		b.mu.Lock()
		b.inFlight++
		if b.inFlight >= 2 {
			b.metOnce.Do(func() { close(b.met) })
		}
		b.mu.Unlock()
		select {
		case <-b.met:
		case <-time.After(2 * time.Second): // a sequential writer: let it through, the test fails on met
		}
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}
	return b.fakeDB.PutItem(ctx, in, o...)
}

// TestAttackLedgerMarkersInParallel: a delivery sending thousands of records to the error table (a bad deployment,
// batches of up to 10,000) writes one marker each before Apply, within the invocation's time (1 minute by
// default). Written one after the other at a few milliseconds each they take most of it, the invocation runs out of
// time, the batch is retried and writes them all again, every time: the shard never moves. The markers must be
// written several at a time (as the aggregate items are, Store.MaxInFlight).
func TestAttackLedgerMarkersInParallel(t *testing.T) {
	ctx := context.Background()
	db := &barrierDB{fakeDB: newFakeDB(), met: make(chan struct{})}
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	b, err := s.BeginBatch(ctx, "shard-1", pos(1), pos(4))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkErrors(ctx, b, [][]byte{pos(1), pos(2), pos(3), pos(4)}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-db.met:
	default:
		t.Error("the error markers were written one at a time")
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	n := 0
	for k := range db.items {
		if strings.HasPrefix(k[0], ErrorMarkerPrefix) {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d markers, want 4", n)
	}
}

// TestAttackLedgerSimDuplicates runs the fence simulation with duplicate deliveries of acknowledged ranges (the
// mapping delivers at least once), a fix deployed part-way, and consuming, racing redrives. Every record must
// count exactly once.
func TestAttackLedgerSimDuplicates(t *testing.T) {
	cfg := simConfig{shards: 2, records: 120, pData: 0.05, pCrash: 0.1, pGetFault: 0.05, pPutBefore: 0.1,
		pPutAfter: 0.1, pReplay: 0.4, pGiveUp: 0.3, pFix: 0.03, pInterleave: 0.05, maxBatch: 15, consume: true, pRace: 0.5,
		pDuplicate: 0.2}
	for seed := range uint64(60) {
		simulate(t, seed, cfg)
		if t.Failed() {
			return
		}
	}
}
