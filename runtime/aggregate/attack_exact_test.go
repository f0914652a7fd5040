package aggregate

import (
	"context"
	"encoding/binary"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestAttackExactSumsAcrossShards: two shards' items of one group, sums crossing DynamoDB's 38 digits (stored as S)
// and coming back (negative values: N again), minima and maxima at the 38-digit edge: after every batch each item's
// sum is N exactly when 38 digits hold it, min, max and count are always N, and Totals equals the sums, minimum
// and maximum math/big computes from the applied values.
func TestAttackExactSumsAcrossShards(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	nines := "99999999999999999999999999999999999999" // 38 digits
	steps := []struct {
		shard string
		v     string
	}{
		{"shard-1", nines},
		{"shard-2", "-" + nines},
		{"shard-1", "1"},
		{"shard-2", "-0.5"},
		{"shard-1", "0.00000000000000000000000000000000000001"},
		{"shard-1", "-1"},
		{"shard-1", "-0.00000000000000000000000000000000000001"},
		{"shard-2", "0.5"},
		{"shard-2", "9.9999999999999999999999999999999999999E+125"},
		{"shard-2", "-9.9999999999999999999999999999999999999E+125"},
	}
	sums := map[string]*big.Rat{}
	var lo, hi *big.Rat
	seq := map[string]uint64{}
	kinds := map[bool]int{} // steps whose sum needs a string, and not
	defer func() {
		if kinds[true] < 4 || kinds[false] < 4 {
			t.Errorf("steps with a string sum %d, with a number %d: the steps do not cross 38 digits both ways", kinds[true], kinds[false])
		}
	}()
	for i, st := range steps {
		seq[st.shard]++
		n, err := ParseNumber(st.v)
		if err != nil {
			t.Fatal(err)
		}
		ws := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		key, _ := KeyText("agg", ws, []any{"a"})
		c := Contribution{Aggregate: "agg", Key: key, WindowStart: ws, Group: []any{"a"}, Shard: st.shard,
			Position: binary.BigEndian.AppendUint64(append([]byte{byte(len(st.shard))}, st.shard...), seq[st.shard]),
			Values:   []*Number{nil, n, n, n}, Ref: i}
		if res := s.Apply(ctx, []Contribution{c}); len(res) != 1 || res[0].Err != nil || res[0].Applied != 1 {
			t.Fatalf("step %d: %+v", i, res)
		}
		v := ratOf(t, st.v)
		if sums[st.shard] == nil {
			sums[st.shard] = new(big.Rat)
		}
		sums[st.shard].Add(sums[st.shard], v)
		if lo == nil || v.Cmp(lo) < 0 {
			lo = v
		}
		if hi == nil || v.Cmp(hi) > 0 {
			hi = v
		}
		it := db.items[[2]string{key, st.shard}]
		_, isS := it["total"].(*types.AttributeValueMemberS)
		wantS := !fitsDynamoDB(sums[st.shard])
		kinds[wantS]++
		if isS != wantS {
			t.Errorf("step %d (%s %s): the sum %s is a %T, want a string: %v", i, st.shard, st.v, sums[st.shard].FloatString(40), it["total"], wantS)
		}
		for _, m := range []string{"n", "lo", "hi"} {
			if _, ok := it[m].(*types.AttributeValueMemberN); !ok {
				t.Errorf("step %d: %s is a %T, want N", i, m, it[m])
			}
		}
		tot, err := Totals(ctx, db, "agg", Query{Name: "agg", Measures: testMeasures, Group: []any{"a"}, Window: time.Hour, Time: ws})
		if err != nil {
			t.Fatalf("step %d: Totals: %v", i, err)
		}
		want := new(big.Rat)
		for _, r := range sums {
			want.Add(want, r)
		}
		if got := ratOf(t, tot.Values["total"].String()); got.Cmp(want) != 0 {
			t.Errorf("step %d: total %s, want %s", i, tot.Values["total"], want.FloatString(40))
		}
		if ratOf(t, tot.Values["lo"].String()).Cmp(lo) != 0 || ratOf(t, tot.Values["hi"].String()).Cmp(hi) != 0 {
			t.Errorf("step %d: lo %s hi %s, want %s %s", i, tot.Values["lo"], tot.Values["hi"], lo.FloatString(2), hi.FloatString(2))
		}
		if ratOf(t, tot.Values["n"].String()).Cmp(big.NewRat(int64(i+1), 1)) != 0 || tot.Shards != len(sums) {
			t.Errorf("step %d: n %s over %d shards, want %d over %d", i, tot.Values["n"], tot.Shards, i+1, len(sums))
		}
	}
}

// fitsDynamoDB reports whether DynamoDB's numbers hold r exactly (38 significant digits, magnitude 1E-130 to
// 9.99...E+125), reading its decimal digits (r must have a finite decimal form of at most 300 fractional digits).
func fitsDynamoDB(r *big.Rat) bool {
	text := strings.TrimPrefix(r.FloatString(300), "-")
	whole, frac, _ := strings.Cut(text, ".")
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		return true // zero
	}
	lead := len(strings.TrimLeft(whole, "0")) - 1 // the exponent of the leading digit
	if lead < 0 {
		lead = -(len(frac) - len(strings.TrimLeft(frac, "0")) + 1)
	}
	return len(strings.TrimRight(digits, "0")) <= 38 && lead <= 125 && lead >= -130
}
