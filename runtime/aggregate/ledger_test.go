package aggregate

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ledgerStep is one step of a ledger scenario, run against the wire-faithful fake.
type ledgerStep struct {
	// pipeline delivers a batch: seqs first..last; stored and errored list the records stored and sent to the
	// error table (the others fail); the mapping then acknowledges up to the first failure (end runs EndBatch).
	pipeline   bool
	first      uint64
	last       uint64
	stored     []uint64
	errored    []uint64
	partial    int  // apply only the first partial contributions' items (a crash in Apply; 0: all)
	end        bool // run EndBatch (the response is decided)
	firstFail  uint64
	recount    []uint64 // records recounted (redrive, replay), in order
	recountErr bool
	unseen     bool     // the recounts run with Store.CountUnseen
	batch      []uint64 // records recounted together, in one RecountBatch call
}

// value of record seq in the scenarios: seq itself, so sums say which records counted.
func ledgerContrib(seq uint64) []Contribution {
	return []Contribution{contrib(int(seq), seq, "a", itoa(seq)), contribB(int(seq), seq)}
}

func itoa(n uint64) string { return strings.TrimSpace(strings.Repeat(" ", 0) + uitoa(n)) }

func uitoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// contribB is record seq's contribution to a second item (group "b"), so a record spans two items.
func contribB(ref int, seq uint64) Contribution {
	c := contrib(ref, seq, "b", uitoa(seq))
	return c
}

func runLedger(t *testing.T, steps []ledgerStep) (*fakeDB, *Store, []RecountResult) {
	t.Helper()
	ctx := context.Background()
	db := newFakeDB()
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond, MaxInFlight: 1}
	var recounts []RecountResult
	for i, st := range steps {
		if st.pipeline {
			var errored [][]byte
			for _, q := range st.errored {
				errored = append(errored, pos(q))
			}
			var failed [][]byte
			for q := st.first; q <= st.last; q++ {
				if !slices.Contains(st.stored, q) && !slices.Contains(st.errored, q) {
					failed = append(failed, pos(q))
				}
			}
			b, err := s.BeginBatch(ctx, "shard-1", pos(st.first), pos(st.last))
			if err != nil {
				t.Fatalf("step %d: BeginBatch: %v", i, err)
			}
			if err := s.MarkErrors(ctx, b, errored, failed); err != nil {
				t.Fatalf("step %d: MarkErrors: %v", i, err)
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
		s.CountUnseen = st.unseen
		if len(st.batch) > 0 {
			var records [][]Contribution
			for _, q := range st.batch {
				records = append(records, ledgerContrib(q))
			}
			res := s.RecountBatch(ctx, records)
			for j, r := range res.Records {
				if r.Err != nil {
					t.Fatalf("step %d: RecountBatch record %d: %v", i, st.batch[j], r.Err)
				}
				recounts = append(recounts, r)
			}
			// One write per item the batch counts into (groups a and b), however many records share them.
			if applied := slices.ContainsFunc(res.Records, RecountResult.Counted); applied && res.Writes != 2 {
				t.Errorf("step %d: RecountBatch wrote %d items, want 2 (one per item)", i, res.Writes)
			}
		}
		for _, q := range st.recount {
			r := s.Recount(ctx, ledgerContrib(q))
			if r.Err != nil {
				t.Fatalf("step %d: Recount(%d): %v", i, q, r.Err)
			}
			recounts = append(recounts, r)
		}
	}
	return db, s, recounts
}

// groupTotal reads group g's count and sum.
func groupTotal(t *testing.T, db *fakeDB, g string) (string, string) {
	t.Helper()
	tot, err := Totals(context.Background(), db, "agg", Query{Name: "agg", Measures: testMeasures, Group: []any{g}, Window: time.Hour,
		Time: time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	n, sum := "0", "0"
	if v := tot.Values["n"]; v != nil {
		n = v.String()
	}
	if v := tot.Values["total"]; v != nil {
		sum = v.String()
	}
	return n, sum
}

// TestLedgerScenarios: each scenario's totals (count and sum of the records' values, which are their sequence
// numbers) are computed by hand from which records must count once.
func TestLedgerScenarios(t *testing.T) {
	tests := []struct {
		name    string
		steps   []ledgerStep
		wantN   string // per group (both groups get every record)
		wantSum string
		classes string // the recounts' classes, in order
	}{
		{
			name: "error-tabled record recounted once, twice changes nothing",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 3, stored: []uint64{1, 3}, errored: []uint64{2}, end: true},
				{recount: []uint64{2, 2, 1}},
			},
			wantN: "3", wantSum: "6", classes: "marked marked counted",
		},
		{
			name: "error-tabled, then stored by a redelivery after a fix (ledgered), then recounted: once",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 4, stored: []uint64{1}, errored: []uint64{2}, end: true, firstFail: 3},
				{pipeline: true, first: 3, last: 4, stored: []uint64{3, 4}, end: true},
				// The mapping redelivers 1..4 (the response lost after EndBatch) with the fix deployed: 2 is stored.
				{pipeline: true, first: 1, last: 4, stored: []uint64{1, 2, 3, 4}, end: true},
				{recount: []uint64{2}},
			},
			wantN: "4", wantSum: "10", classes: "marked",
		},
		{
			name: "error-tabled, response lost after the batch, redelivered with a fix: once",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 2, stored: []uint64{1}, errored: []uint64{2}, end: true},
				{pipeline: true, first: 1, last: 2, stored: []uint64{1, 2}, end: true},
				{recount: []uint64{2}},
			},
			wantN: "2", wantSum: "3", classes: "marked",
		},
		{
			name: "failed on its first delivery, error-tabled on the next: marked, recounted once",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 3, stored: []uint64{1}, end: true, firstFail: 2},
				{pipeline: true, first: 2, last: 3, stored: []uint64{3}, errored: []uint64{2}, end: true},
				{recount: []uint64{2, 2}},
			},
			wantN: "3", wantSum: "6", classes: "marked marked",
		},
		{
			name: "a fixed redelivery counts a marked record behind the fence, through the set",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 3, stored: []uint64{1, 3}, errored: []uint64{2}, end: true},
				{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, end: true},
			},
			wantN: "3", wantSum: "6",
		},
		{
			name: "stored and counted, then error-tabled by a redelivery (the verdict changed): no marker, once",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 2, stored: []uint64{1, 2}, end: true},
				{pipeline: true, first: 1, last: 2, stored: []uint64{1}, errored: []uint64{2}, end: true},
				{recount: []uint64{2}},
			},
			wantN: "2", wantSum: "3", classes: "gap",
		},
		{
			// Record 2's aggregate write fails, so 3 (stored) is not counted (contiguity); a deployment then sends 3
			// to the error table in the retry: no marker (a delivery stored it), so only its one-record range tells
			// that the item's fence passed it uncounted.
			name: "stored but not counted, then error-tabled by the retry (the verdict changed): counted once on redrive",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, partial: 2, end: true, firstFail: 2},
				{pipeline: true, first: 2, last: 3, stored: []uint64{2}, errored: []uint64{3}, end: true},
				{recount: []uint64{3}},
				{recount: []uint64{3}},
			},
			wantN: "3", wantSum: "6", classes: "gap gap",
		},
		{
			name: "recount first, then the fixed redelivery: once",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 2, stored: []uint64{1}, errored: []uint64{2}, end: true, firstFail: 2},
				{recount: []uint64{2}},
				{pipeline: true, first: 2, last: 2, stored: []uint64{2}, end: true},
			},
			wantN: "2", wantSum: "3", classes: "marked",
		},
		{
			name: "given-up batch, partly applied, recounted once",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 2, stored: []uint64{1, 2}, end: true},
				// 3..5: the first item of record 3 is applied, then the invocation dies; the mapping gives up.
				{pipeline: true, first: 3, last: 5, stored: []uint64{3, 4, 5}, partial: 1},
				{pipeline: true, first: 6, last: 7, stored: []uint64{6, 7}, end: true},
				{recount: []uint64{3, 4, 5, 3, 4, 5, 6}},
			},
			wantN: "7", wantSum: "28", classes: "gap gap gap gap gap gap counted",
		},
		{
			name: "given-up range recounted before the pipeline crosses it",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 3, stored: []uint64{1, 2, 3}, end: true, firstFail: 2, partial: 2},
				// Lambda gives up on 2..3; the next batch begins at 4 but its aggregates are not written yet.
				{pipeline: true, first: 4, last: 4, stored: []uint64{4}, partial: -1},
				{recount: []uint64{2, 3}},
				{pipeline: true, first: 4, last: 5, stored: []uint64{4, 5}, end: true},
				{recount: []uint64{2, 3}},
			},
			wantN: "5", wantSum: "15", classes: "gap gap gap gap",
		},
		{
			name: "in-flight record recounted, the pipeline's retry does not count it again",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 3, stored: []uint64{1}, end: true, firstFail: 2},
				{recount: []uint64{2, 3, 1}},
				{pipeline: true, first: 2, last: 3, stored: []uint64{2, 3}, end: true},
				{recount: []uint64{2, 3}},
			},
			wantN: "3", wantSum: "6", classes: "in-flight in-flight counted counted counted",
		},
		{
			name: "a record not reached by the pipeline is not counted by a recount",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 1, stored: []uint64{1}, end: true},
				{recount: []uint64{5}},
			},
			wantN: "1", wantSum: "1", classes: "counted",
		},
		{
			name: "given up before the ledger saw it: uncounted by default, once with CountUnseen",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 2, stored: []uint64{1, 2}, end: true},
				// 3..4: every attempt died before BeginBatch (DynamoDB unreachable); the mapping gave up.
				{pipeline: true, first: 5, last: 6, stored: []uint64{5, 6}, end: true},
				{recount: []uint64{3, 4}},
				{recount: []uint64{3, 4, 3}, unseen: true},
				{recount: []uint64{4}},
			},
			wantN: "6", wantSum: "21", classes: "counted counted unseen unseen unseen counted",
		},
		{
			name: "CountUnseen does not count a record the pipeline has not reached",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 2, stored: []uint64{1, 2}, end: true},
				{recount: []uint64{7}, unseen: true},
			},
			wantN: "2", wantSum: "3", classes: "counted",
		},
		{
			// The reason the flag is the operator's: the ledger cannot tell such a record from one the pipeline
			// counted, so a range forged over counted records counts them again.
			name: "CountUnseen trusts its caller: a counted record recounted with it counts twice",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 2, stored: []uint64{1, 2}, end: true},
				{recount: []uint64{2}, unseen: true},
			},
			wantN: "3", wantSum: "5", classes: "unseen",
		},
		{
			name: "a batch of recounts shares one write per item, and a second batch changes nothing",
			steps: []ledgerStep{
				{pipeline: true, first: 1, last: 6, stored: []uint64{1}, errored: []uint64{2, 3, 4, 5, 6}, end: true},
				{batch: []uint64{2, 3, 4, 5, 6}},
				{batch: []uint64{2, 3, 4, 5, 6}},
			},
			wantN: "6", wantSum: "21", classes: "marked marked marked marked marked marked marked marked marked marked",
		},
		{
			name:    "no ledger: nothing counted",
			steps:   []ledgerStep{{recount: []uint64{1}}},
			wantN:   "0",
			wantSum: "0", classes: "no-ledger",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.steps {
				if tt.steps[i].partial < 0 { // nothing applied
					tt.steps[i].stored = nil
					tt.steps[i].partial = 0
				}
			}
			db, _, rs := runLedger(t, tt.steps)
			var classes []string
			for _, r := range rs {
				classes = append(classes, r.Class.String())
			}
			if got := strings.Join(classes, " "); got != tt.classes {
				t.Errorf("classes %q, want %q", got, tt.classes)
			}
			for _, g := range []string{"a", "b"} {
				n, sum := groupTotal(t, db, g)
				if n != tt.wantN || sum != tt.wantSum {
					t.Errorf("group %s: count %s sum %s, want %s %s", g, n, sum, tt.wantN, tt.wantSum)
				}
			}
		})
	}
}

// TestLedgerOldFormatItem: an item written before versions (only _kfence) is updated with the old fence as its
// condition, and a recount-made item (no _kfence) is read by Apply.
func TestLedgerOldFormatItem(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	c1 := contrib(0, 1, "a", "5")
	db.items[[2]string{c1.Key, "shard-1"}] = map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: c1.Key}, "sk": &types.AttributeValueMemberS{Value: "shard-1"},
		"n": &types.AttributeValueMemberN{Value: "1"}, "total": &types.AttributeValueMemberN{Value: "5"},
		"lo": &types.AttributeValueMemberN{Value: "5"}, "hi": &types.AttributeValueMemberN{Value: "5"},
		AttrFence: &types.AttributeValueMemberB{Value: pos(1)},
	}
	if r := s.Apply(ctx, []Contribution{c1, contrib(1, 2, "a", "7")}); r[0].Err != nil || r[0].Applied != 1 || r[0].Already != 1 {
		t.Fatalf("Apply on an old item: %+v", r[0])
	}
	// A recount-made item of group b: no fence; the pipeline then applies record 3 and the recount's record 2
	// stays counted once.
	if _, err := s.BeginBatch(ctx, "shard-1", pos(2), pos(3)); err != nil {
		t.Fatal(err)
	}
	if r := s.Recount(ctx, []Contribution{contrib(0, 2, "b", "7")}); r.Err != nil || r.Applied != 1 {
		t.Fatalf("Recount: %+v", r)
	}
	kb := contrib(0, 2, "b", "7").Key
	if _, ok := db.items[[2]string{kb, "shard-1"}][AttrFence]; ok {
		t.Fatal("a recount wrote a fence")
	}
	if r := s.Apply(ctx, []Contribution{contrib(0, 2, "b", "7"), contrib(1, 3, "b", "1")}); r[0].Err != nil || r[0].Applied != 1 {
		t.Fatalf("Apply on a recount-made item: %+v", r[0])
	}
	for g, want := range map[string][2]string{"a": {"2", "12"}, "b": {"2", "8"}} {
		if n, sum := groupTotal(t, db, g); n != want[0] || sum != want[1] {
			t.Errorf("group %s: %s %s, want %v", g, n, sum, want)
		}
	}
}

// TestFakeWire: the fake answers as DynamoDB does for what the ledger sends (the properties the package relies
// on: refused conditions, placeholders, sets).
func TestFakeWire(t *testing.T) {
	ctx := context.Background()
	key := func(extra map[string]types.AttributeValue) map[string]types.AttributeValue {
		m := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}, "sk": &types.AttributeValueMemberS{Value: "s"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	ver := func(n string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"_kver": &types.AttributeValueMemberN{Value: n}}
	}
	tests := []struct {
		name     string
		existing map[string]types.AttributeValue
		item     map[string]types.AttributeValue
		cond     string
		names    map[string]string
		values   map[string]types.AttributeValue
		wantCode string // "" for success
	}{
		{"new item", nil, key(nil), "attribute_not_exists(#pk)", map[string]string{"#pk": "pk"}, nil, ""},
		{"exists", key(nil), key(nil), "attribute_not_exists(#pk)", map[string]string{"#pk": "pk"}, nil, "ConditionalCheckFailedException"},
		{"version equal numerically", key(ver("3")), key(nil), "#v = :v", map[string]string{"#v": "_kver"},
			map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: "3.0"}}, ""},
		{"version differs", key(ver("4")), key(nil), "#v = :v", map[string]string{"#v": "_kver"},
			map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: "3"}}, "ConditionalCheckFailedException"},
		{"old format", key(map[string]types.AttributeValue{"_kfence": &types.AttributeValueMemberB{Value: []byte{1}}}), key(nil),
			"attribute_not_exists(#v) AND #f = :f", map[string]string{"#v": "_kver", "#f": "_kfence"},
			map[string]types.AttributeValue{":f": &types.AttributeValueMemberB{Value: []byte{1}}}, ""},
		{"old format with a version", key(map[string]types.AttributeValue{"_kfence": &types.AttributeValueMemberB{Value: []byte{1}}, "_kver": &types.AttributeValueMemberN{Value: "1"}}), key(nil),
			"attribute_not_exists(#v) AND #f = :f", map[string]string{"#v": "_kver", "#f": "_kfence"},
			map[string]types.AttributeValue{":f": &types.AttributeValueMemberB{Value: []byte{1}}}, "ConditionalCheckFailedException"},
		{"unused name", nil, key(nil), "attribute_not_exists(#pk)", map[string]string{"#pk": "pk", "#x": "x"}, nil, "ValidationException"},
		{"undefined value", key(nil), key(nil), "#v = :v", map[string]string{"#v": "_kver"}, nil, "ValidationException"},
		{"empty set", nil, key(map[string]types.AttributeValue{"_kset": &types.AttributeValueMemberBS{}}), "", nil, nil, "ValidationException"},
		{"duplicate in set", nil, key(map[string]types.AttributeValue{"_kset": &types.AttributeValueMemberBS{Value: [][]byte{{1}, {1}}}}), "", nil, nil, "ValidationException"},
		{"null false", nil, key(map[string]types.AttributeValue{"_kgaps": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"x": &types.AttributeValueMemberNULL{Value: false}}}}), "", nil, nil, "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newFakeDB()
			if tt.existing != nil {
				db.items[[2]string{"k", "s"}] = tt.existing
			}
			in := &dynamodb.PutItemInput{TableName: aws.String("agg"), Item: tt.item, ExpressionAttributeNames: tt.names, ExpressionAttributeValues: tt.values}
			if tt.cond != "" {
				in.ConditionExpression = aws.String(tt.cond)
			}
			_, err := db.PutItem(ctx, in)
			code := ""
			if err != nil {
				code = err.(interface{ ErrorCode() string }).ErrorCode()
			}
			if code != tt.wantCode {
				t.Errorf("error %v, want %q", err, tt.wantCode)
			}
		})
	}
}
