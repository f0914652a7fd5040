package aggregate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseNumber(t *testing.T) {
	tests := []struct {
		give    string
		want    string
		wantErr string
	}{
		{give: "0", want: "0"},
		{give: "-0.000", want: "0"},
		{give: "1.50", want: "1.5"},
		{give: "1.5E+3", want: "1500"},
		{give: "12e-2", want: "0.12"},
		{give: "-7", want: "-7"},
		{give: "100", want: "100"},
		{give: "1e100", want: "1E+100"},
		{give: "123456789012345678901234567890123456789", wantErr: "39 significant digits"},
		{give: "1e126", wantErr: "larger in magnitude"},
		{give: "1e-131", wantErr: "smaller in magnitude"},
		{give: "abc", wantErr: "not a decimal"},
		{give: "1.2.3", wantErr: "not a decimal"},
		{give: "", wantErr: "not a decimal"},
		{give: "1e", wantErr: "not a decimal"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			n, err := ParseNumber(tt.give)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseNumber(%q) error = %v, want %q", tt.give, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := n.String(); got != tt.want {
				t.Errorf("ParseNumber(%q) = %s, want %s", tt.give, got, tt.want)
			}
		})
	}
}

// ratOf parses a decimal string with math/big (the oracle: independent of Number's arithmetic).
func ratOf(t testing.TB, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("big.Rat cannot read %q", s)
	}
	return r
}

func TestAddCmpAgainstRat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a := fmt.Sprintf("%d.%03de%d", rng.IntN(2_000_000)-1_000_000, rng.IntN(1000), rng.IntN(20)-10)
		b := fmt.Sprintf("%de%d", rng.IntN(2_000_000)-1_000_000, rng.IntN(20)-10)
		x, err := ParseNumber(a)
		if err != nil {
			t.Fatal(a, err)
		}
		y, err := ParseNumber(b)
		if err != nil {
			t.Fatal(b, err)
		}
		want := new(big.Rat).Add(ratOf(t, a), ratOf(t, b))
		if got := ratOf(t, Add(x, y).String()); got.Cmp(want) != 0 {
			t.Fatalf("%s + %s = %s, want %s", a, b, Add(x, y), want.FloatString(30))
		}
		if got, want := Cmp(x, y), ratOf(t, a).Cmp(ratOf(t, b)); got != want {
			t.Fatalf("Cmp(%s, %s) = %d, want %d", a, b, got, want)
		}
	}
}

func TestWindowStart(t *testing.T) {
	tests := []struct {
		give   string
		window time.Duration
		want   string
	}{
		{"2024-09-13T23:06:55Z", time.Minute, "2024-09-13T23:06:00Z"},
		{"2024-09-13T23:06:55.999Z", time.Hour, "2024-09-13T23:00:00Z"},
		{"2024-09-13T23:06:55+02:00", 24 * time.Hour, "2024-09-13T00:00:00Z"},
		{"1969-12-31T23:59:59Z", time.Minute, "1969-12-31T23:59:00Z"},
		{"2024-09-13T23:07:00Z", 5 * time.Minute, "2024-09-13T23:05:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			in, err := time.Parse(time.RFC3339Nano, tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if got := WindowStart(in, tt.window).Format(time.RFC3339); got != tt.want {
				t.Errorf("WindowStart = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestKeyText(t *testing.T) {
	ws := time.Date(2024, 9, 13, 23, 6, 0, 0, time.UTC)
	gv := func(v any) any {
		g, err := GroupValue(v)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	tests := []struct {
		name  string
		group []any
		want  string
	}{
		{"byCategory", []any{gv("C")}, `byCategory#2024-09-13T23:06:00Z#["C"]`},
		{"n", []any{gv(json.Number("1.0")), gv(true), gv(nil)}, `n#2024-09-13T23:06:00Z#[1,true,null]`},
		{"n", []any{gv(json.Number("1"))}, `n#2024-09-13T23:06:00Z#[1]`},
		{"all", nil, `all#2024-09-13T23:06:00Z#[]`},
		{"esc", []any{gv("a\"<b>#")}, `esc#2024-09-13T23:06:00Z#["a\"<b>#"]`},
	}
	for _, tt := range tests {
		got, err := KeyText(tt.name, ws, tt.group)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("KeyText = %s, want %s", got, tt.want)
		}
	}
	if _, err := KeyText("long", ws, []any{strings.Repeat("x", 3000)}); err == nil {
		t.Error("KeyText accepted a 3000-byte group value")
	}
	if _, err := GroupValue(map[string]any{}); err == nil {
		t.Error("GroupValue accepted an object")
	}
}

var testMeasures = []Measure{{"n", KindCount}, {"total", KindSum}, {"lo", KindMin}, {"hi", KindMax}}

func pos(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("\x07shard-1"), seq) }

func contrib(ref int, seq uint64, group string, v string) Contribution {
	var n *Number
	if v != "" {
		n, _ = ParseNumber(v)
	}
	ws := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	key, _ := KeyText("agg", ws, []any{group})
	return Contribution{Aggregate: "agg", Key: key, WindowStart: ws, Group: []any{group}, Shard: "shard-1",
		Position: pos(seq), Values: []*Number{nil, n, n, n}, Ref: ref}
}

func TestApplyFence(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	total := func() map[string]string {
		tot, err := Totals(ctx, db, "agg", Query{Name: "agg", Measures: testMeasures, Group: []any{"a"}, Window: time.Hour,
			Time: time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for k, v := range tot.Values {
			out[k] = v.String()
		}
		return out
	}
	steps := []struct {
		name        string
		give        []Contribution
		wantApplied int
		wantAlready int
		want        map[string]string
	}{
		{"first batch", []Contribution{contrib(0, 1, "a", "1.5"), contrib(1, 2, "a", "-2")}, 2, 0,
			map[string]string{"n": "2", "total": "-0.5", "lo": "-2", "hi": "1.5"}},
		{"replay of the same batch", []Contribution{contrib(0, 1, "a", "1.5"), contrib(1, 2, "a", "-2")}, 0, 2,
			map[string]string{"n": "2", "total": "-0.5", "lo": "-2", "hi": "1.5"}},
		{"overlapping retry", []Contribution{contrib(1, 2, "a", "-2"), contrib(2, 3, "a", "10"), contrib(3, 4, "a", "")}, 2, 1,
			map[string]string{"n": "4", "total": "9.5", "lo": "-2", "hi": "10"}},
		{"out of order old record", []Contribution{contrib(0, 1, "a", "100")}, 0, 1,
			map[string]string{"n": "4", "total": "9.5", "lo": "-2", "hi": "10"}},
	}
	for _, st := range steps {
		res := s.Apply(ctx, st.give)
		if len(res) != 1 || res[0].Err != nil {
			t.Fatalf("%s: results %+v", st.name, res)
		}
		if res[0].Applied != st.wantApplied || res[0].Already != st.wantAlready {
			t.Errorf("%s: applied %d already %d, want %d %d", st.name, res[0].Applied, res[0].Already, st.wantApplied, st.wantAlready)
		}
		if got := total(); fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Errorf("%s: totals %v, want %v", st.name, got, st.want)
		}
	}
}

func TestApplyConflictAndFailure(t *testing.T) {
	ctx := context.Background()
	db := newFakeDB()
	s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
	// Another writer moves the fence between our read and our write, once: the write is refused, re-read, and only
	// what is after the new fence is applied.
	s.Apply(ctx, []Contribution{contrib(0, 1, "a", "1")})
	n := 0
	db.fault = func(op string) string {
		if op == "put" && n == 0 {
			n++
			db.fault = nil
			// The other writer applies record 2 first (the lock is held: write directly).
			other := &Store{DB: &unlocked{db}, Table: "agg", Measures: s.Measures}
			if r := other.Apply(ctx, []Contribution{contrib(1, 2, "a", "2")}); r[0].Err != nil {
				t.Error(r[0].Err)
			}
		}
		return ""
	}
	res := s.Apply(ctx, []Contribution{contrib(1, 2, "a", "2"), contrib(2, 3, "a", "3")})
	if res[0].Err != nil || res[0].Conflicts != 1 || res[0].Applied != 1 || res[0].Already != 1 {
		t.Fatalf("result %+v, want 1 conflict, 1 applied, 1 already", res[0])
	}
	// A request that keeps failing with a non-retryable error reports it.
	db.fault = func(string) string { return "before" }
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if res := s.Apply(cctx, []Contribution{contrib(3, 4, "a", "4")}); res[0].Err == nil {
		t.Fatal("Apply succeeded while every request was throttled")
	}
}

// unlocked lets a fault hook (running under fakeDB's lock) write.
type unlocked struct{ f *fakeDB }

func (u *unlocked) GetItem(ctx context.Context, in *dynamodbGetItemInput, o ...dynamodbOpt) (*dynamodbGetItemOutput, error) {
	it := u.f.items[keyOf(in.Key)]
	return &dynamodbGetItemOutput{Item: it}, nil
}

func (u *unlocked) PutItem(ctx context.Context, in *dynamodbPutItemInput, o ...dynamodbOpt) (*dynamodbPutItemOutput, error) {
	u.f.items[keyOf(in.Item)] = in.Item
	return &dynamodbPutItemOutput{}, nil
}
