//go:build integration && !kdp_noexpr

package processor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackAggIntegrationEdges runs numbers at DynamoDB's edges and group values at the 2048-byte partition key limit
// (multi-byte characters) through the processor into dynalite, which checks numbers and key sizes as DynamoDB does,
// and reads the aggregate items back with a Scan: sums exact, the 2048-byte key stored, the 2049-byte one in the
// error table.
func TestAttackAggIntegrationEdges(t *testing.T) {
	endpoint := emulators.Dynalite(t)
	db := emulators.DynamoDBClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data, errs, aggs := emulators.UniqueName("atkdata"), emulators.UniqueName("atkerr"), emulators.UniqueName("atkagg")
	for _, name := range []string{data, errs} {
		if err := emulators.CreateTable(ctx, db, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := emulators.CreateAggregateTable(ctx, db, aggs); err != nil {
		t.Fatal(err)
	}
	p, err := processor.New(db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName = data, errs, aggs
		o.Config = processor.DefaultConfig()
		o.Config.Aggregates = []processor.AggregateConfig{{Name: "x", WindowSeconds: 86400, GroupBy: []processor.AggregateValue{{Path: "g"}},
			Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}, {Name: "s", Kind: "sum", Path: "v"},
				{Name: "lo", Kind: "min", Path: "v"}, {Name: "hi", Kind: "max", Path: "v"}}}}
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	// pk = `x#2024-03-01T00:00:00Z#["<g>"]`: 27 bytes around g.
	g2048 := strings.Repeat("é", 1010) + "a"
	g2049 := strings.Repeat("é", 1011)
	vals := map[string][]string{
		"edge":  {"9.9999999999999999999999999999999999999E+125", "-9.9999999999999999999999999999999999998E+125", "-0.0"},
		"tiny":  {"1E-130", "2E-130", "-9.9999999999999999999999999999999999999E-93"},
		"big":   {"12345678901234567890123456789012345678", "-12345678901234567890123456789012345677", "0.000001"},
		g2048:   {"1", "2"},
		"small": {"1.5E-100", "-2.5E-100", "0"},
	}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var recs []attackRec
	seq := 10
	for _, g := range []string{"edge", "tiny", "big", g2048, "small"} {
		for _, v := range vals[g] {
			recs = append(recs, attackRec{seq: fmt.Sprint(seq), payload: fmt.Sprintf(`{"g":%q,"v":%s}`, g, v), arrival: at})
			seq++
		}
	}
	recs = append(recs, attackRec{seq: "99", payload: fmt.Sprintf(`{"g":%q,"v":1}`, g2049), arrival: at})
	if resp := mustHandle(t, p, recs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", resp.BatchItemFailures)
	}
	got := map[string]map[string]string{}
	out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(aggs), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range out.Items {
		if strings.HasPrefix(it["pk"].(*types.AttributeValueMemberS).Value, "_") {
			continue // the ledger's shard state and error markers
		}
		m := map[string]string{}
		for _, name := range []string{"n", "s", "lo", "hi"} {
			if n, ok := it[name].(*types.AttributeValueMemberN); ok {
				m[name] = n.Value
			}
		}
		got[it["pk"].(*types.AttributeValueMemberS).Value] = m
	}
	if len(got) != len(vals) {
		t.Errorf("%d aggregate items, want %d", len(got), len(vals))
	}
	for g, vs := range vals {
		key := `x#2024-03-01T00:00:00Z#["` + g + `"]`
		if g == g2048 && len(key) != 2048 {
			t.Fatalf("test key is %d bytes", len(key))
		}
		sum, lo, hi := new(big.Rat), rat(t, vs[0]), rat(t, vs[0])
		for _, v := range vs {
			r := rat(t, v)
			sum.Add(sum, r)
			if r.Cmp(lo) < 0 {
				lo = r
			}
			if r.Cmp(hi) > 0 {
				hi = r
			}
		}
		m := got[key]
		for name, w := range map[string]*big.Rat{"n": big.NewRat(int64(len(vs)), 1), "s": sum, "lo": lo, "hi": hi} {
			r, ok := new(big.Rat).SetString(m[name])
			if !ok || r.Cmp(w) != 0 {
				t.Errorf("group of %d bytes: %s = %q, want %s", len(g), name, m[name], w.String())
			}
		}
	}
	e, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(errs), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: attackShard + ":99"}}})
	if err != nil || len(e.Item) == 0 {
		t.Errorf("the 2049-byte group's record is not in the error table: %v", err)
	}
}
