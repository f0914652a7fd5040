//go:build integration

package aggregate

import (
	"context"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
)

// TestIntegrationArchive runs the set's archive on dynalite, with the set's limit at 8 and 4 buckets: 80 marked
// records (ten times the limit) are redriven into one item per group by three redrives at once, in chunks of
// random sizes and orders, beside the pipeline's duplicate delivery of them (Ledgered). Every record counts once
// (Totals against sums computed from the input), the item holds its set as a list within the limit and a
// watermark, and a further redrive changes nothing.
func TestIntegrationArchive(t *testing.T) {
	endpoint := emulators.Dynalite(t)
	client := emulators.DynamoDBClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	table := emulators.UniqueName("archive")
	if err := emulators.CreateAggregateTable(ctx, client, table); err != nil {
		t.Fatal(err)
	}
	const n, limit = 80, 8
	store := func() *Store {
		return &Store{DB: client, Table: table, Measures: map[string][]Measure{"agg": testMeasures}, BackoffBase: time.Millisecond,
			MaxAttempts: 50, setCap: limit, buckets: 4}
	}
	markAll(t, store(), n)
	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, rng := store(), rand.New(rand.NewPCG(uint64(w), 9))
			for _, lo := range rng.Perm(n / 10) {
				var recs [][]Contribution
				for q := uint64(lo*10 + 1); q <= uint64(lo*10+10); q++ {
					recs = append(recs, ledgerContrib(q))
				}
				for i, r := range s.RecountBatch(ctx, recs).Records {
					if r.Err != nil {
						errs <- r.Err.Error()
					} else if r.Class != RecountMarked {
						errs <- "record " + uitoa(uint64(lo*10+1+i)) + " is " + r.Class.String()
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the pipeline delivers 1..n again, stored now
		defer wg.Done()
		s := store()
		for lo := uint64(1); lo <= n; lo += 20 {
			b, err := s.BeginBatch(ctx, "shard-1", pos(lo), pos(lo+19))
			if err != nil {
				errs <- err.Error()
				return
			}
			var stored [][]byte
			for q := lo; q < lo+20; q++ {
				stored = append(stored, pos(q))
			}
			if err := s.MarkErrors(ctx, b, nil, nil); err != nil {
				errs <- err.Error()
				return
			}
			if err := s.LoadMarkers(ctx, b, stored); err != nil {
				errs <- err.Error()
				return
			}
			var cs []Contribution
			for q := lo; q < lo+20; q++ {
				for _, c := range ledgerContrib(q) {
					if c.Ledgered = b.Ledgered(c.Position); !c.Ledgered {
						errs <- "record " + uitoa(q) + " not Ledgered"
					}
					cs = append(cs, c)
				}
			}
			for _, r := range s.Apply(ctx, cs, b.Gaps...) {
				if r.Err != nil {
					errs <- r.Err.Error()
				}
			}
			if err := s.EndBatch(ctx, b, nil); err != nil {
				errs <- err.Error()
			}
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	check := func(stage string) {
		t.Helper()
		wantN, wantSum := oracle(seqRange(1, n+1))
		for _, g := range []string{"a", "b"} {
			tot, err := Totals(ctx, client, table, Query{Name: "agg", Measures: testMeasures, Group: []any{g}, Window: time.Hour,
				Time: time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			gotN, _ := new(big.Rat).SetString(tot.Values["n"].String())
			gotSum, _ := new(big.Rat).SetString(tot.Values["total"].String())
			if gotN.Cmp(wantN) != 0 || gotSum.Cmp(wantSum) != 0 {
				t.Errorf("%s: group %s: count %s sum %s, want %s and %s", stage, g, gotN.RatString(), gotSum.RatString(), wantN.RatString(), wantSum.RatString())
			}
			key, _ := KeyText("agg", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), []any{g})
			out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
				Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: key}, "sk": &types.AttributeValueMemberS{Value: "shard-1"}}})
			if err != nil {
				t.Fatal(err)
			}
			set, isL := out.Item["_kset"].(*types.AttributeValueMemberL)
			_, hasW := out.Item["_karch"].(*types.AttributeValueMemberB)
			if !isL || len(set.Value) > limit || !hasW {
				t.Errorf("%s: group %s: _kset %T (want a list of at most %d), watermark %v", stage, g, out.Item["_kset"], limit, hasW)
			}
		}
	}
	check("after the redrives")
	if counted, full, failed := recountChunks(t, store(), rand.New(rand.NewPCG(5, 6)), n, 15); counted+full+failed != 0 {
		t.Errorf("a further redrive: %d counted, %d full, %d failed, want none", counted, full, failed)
	}
	check("after a further redrive")
}
