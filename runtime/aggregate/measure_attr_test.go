package aggregate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestApplySumBeyondDynamoDBNumbers: a sum that DynamoDB's numbers cannot hold (more than 38 significant digits, or
// beyond 9.99E+125) is written as a string (S) holding the exact decimal, is read back by the next Apply (which adds
// to it exactly, and writes a number again when the sum fits), and Totals combines N and S items exactly.
func TestApplySumBeyondDynamoDBNumbers(t *testing.T) {
	tests := []struct {
		name    string
		values  []string // one batch each, in order
		wantS   bool     // the item's sum is a string after the last batch
		wantSum string   // the exact sum (math/big's reading, see ratOf)
	}{
		{"40 digits", []string{"12345678901234567890", "0.12345678901234567890"}, true, "12345678901234567890.1234567890123456789"},
		{"39 digits of nines plus one", []string{"99999999999999999999999999999999999999", "2"}, true, "100000000000000000000000000000000000001"},
		{"beyond 9.99E+125", []string{"9E+125", "9E+125"}, true, "18" + strings.Repeat("0", 125)},
		{"widest span", []string{"1E+125", "1E-130"}, true, "1" + strings.Repeat("0", 125) + "." + strings.Repeat("0", 129) + "1"},
		{"back to a number", []string{"12345678901234567890", "0.1", "-0.1"}, false, "12345678901234567890"},
		{"fits", []string{"0.1", "0.2"}, false, "0.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := newFakeDB()
			s := &Store{DB: db, Table: "agg", Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Microsecond}
			for i, v := range tt.values {
				if res := s.Apply(ctx, []Contribution{contrib(i, uint64(i+1), "a", v)}); len(res) != 1 || res[0].Err != nil || res[0].Applied != 1 {
					t.Fatalf("batch %d (%s): %+v", i, v, res)
				}
			}
			if len(db.items) != 1 {
				t.Fatalf("%d items, want 1", len(db.items))
			}
			for _, it := range db.items {
				_, isS := it["total"].(*types.AttributeValueMemberS)
				if isS != tt.wantS {
					t.Errorf("total is a %T, want a string: %v", it["total"], tt.wantS)
				}
				for _, m := range []string{"n", "lo", "hi"} {
					if _, ok := it[m].(*types.AttributeValueMemberN); !ok {
						t.Errorf("%s is a %T, want a number", m, it[m])
					}
				}
			}
			tot, err := Totals(ctx, db, "agg", Query{Name: "agg", Measures: testMeasures, Group: []any{"a"}, Window: time.Hour,
				Time: time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			got := ratOf(t, tot.Values["total"].String())
			if got.Cmp(ratOf(t, tt.wantSum)) != 0 {
				t.Errorf("Totals total = %s, want %s", tot.Values["total"], tt.wantSum)
			}
		})
	}
}

// TestTotalsCombinesNumbersAndStrings: Totals adds per-shard items whose sums are numbers (N) and exact decimals in
// strings (S), and refuses a measure of any other type or a string that is not a decimal.
func TestTotalsCombinesNumbersAndStrings(t *testing.T) {
	ctx := context.Background()
	ws := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	key, err := KeyText("agg", ws, []any{"a"})
	if err != nil {
		t.Fatal(err)
	}
	measures := []Measure{{"total", KindSum}}
	item := func(shard string, total types.AttributeValue) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{AttrPartitionKey: &types.AttributeValueMemberS{Value: key},
			AttrSortKey: &types.AttributeValueMemberS{Value: shard}, "total": total}
	}
	tests := []struct {
		name    string
		items   []map[string]types.AttributeValue
		want    string
		wantErr string
	}{
		{"N and S", []map[string]types.AttributeValue{
			item("s1", &types.AttributeValueMemberS{Value: "123456789012345678901234567890123456789.5"}),
			item("s2", &types.AttributeValueMemberN{Value: "0.5"}),
			item("s3", &types.AttributeValueMemberS{Value: "1E+200"}),
		}, "1" + strings.Repeat("0", 161) + "123456789012345678901234567890123456790", ""},
		{"not a decimal", []map[string]types.AttributeValue{item("s1", &types.AttributeValueMemberS{Value: "many"})}, "", `"many"`},
		{"a boolean", []map[string]types.AttributeValue{item("s1", &types.AttributeValueMemberBOOL{Value: true})}, "", "not a number (N) or an exact decimal (S)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newFakeDB()
			for _, it := range tt.items {
				db.items[keyOf(it)] = it
			}
			tot, err := Totals(ctx, db, "agg", Query{Name: "agg", Measures: measures, Group: []any{"a"}, Window: time.Hour, Time: ws})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Totals error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ratOf(t, tot.Values["total"].String()); got.Cmp(ratOf(t, tt.want)) != 0 {
				t.Errorf("total = %s, want %s", tot.Values["total"], tt.want)
			}
		})
	}
}
