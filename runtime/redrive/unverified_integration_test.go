//go:build integration

package redrive_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// sumsByKey reads the aggregate table's items (not the ledger's: partition keys starting with '_') and adds up the
// measures n and total per partition key over every shard's item, as exact decimals.
func sumsByKey(t *testing.T, db *dynamodb.Client, table string) string {
	t.Helper()
	sums := map[string]map[string]*big.Rat{}
	out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.LastEvaluatedKey) > 0 {
		t.Fatal("the aggregate table holds more than one page")
	}
	for _, it := range out.Items {
		pk := it["pk"].(*types.AttributeValueMemberS).Value
		if strings.HasPrefix(pk, "_") {
			continue
		}
		for _, m := range []string{"n", "total"} {
			var text string
			switch v := it[m].(type) {
			case *types.AttributeValueMemberN:
				text = v.Value
			case *types.AttributeValueMemberS:
				text = v.Value
			default:
				continue
			}
			r, ok := new(big.Rat).SetString(text)
			if !ok {
				t.Fatalf("%s %s = %q", pk, m, text)
			}
			if sums[pk] == nil {
				sums[pk] = map[string]*big.Rat{}
			}
			if sums[pk][m] == nil {
				sums[pk][m] = new(big.Rat)
			}
			sums[pk][m].Add(sums[pk][m], r)
		}
	}
	var parts []string
	for _, pk := range keys(sums) {
		parts = append(parts, fmt.Sprintf("%s n=%s total=%s", pk, sums[pk]["n"].RatString(), sums[pk]["total"].RatString()))
	}
	return strings.Join(parts, "; ")
}

// TestS3UnverifiedPayloadNotCounted: the event source mapping gave up on two records (the aggregate ledger records a
// give-up range over them, so a recount would count them), and the stream no longer holds them (past retention). The
// failure bucket's object for them carries forged values. A redrive stores them insert-only but counts nothing,
// keeps the object and reports them (RecordCounts.Unverified, OutcomeFailed), run after run (also with
// AllowOverwriteUnverified, which changes how the data is written, not what is trusted); with CountUnverified
// they are counted once, and the object put back and redriven again adds nothing. The aggregates are read back from
// the table and compared with sums computed here from the payloads.
func TestS3UnverifiedPayloadNotCounted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	cfg, err := processor.ParseConfig([]byte(`{"aggregates":[{"name":"perCategory","windowSeconds":60,"groupBy":[{"path":"cat"}],` +
		`"measures":[{"name":"n","kind":"count"},{"name":"total","kind":"sum","path":"v"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, shard := e.put(t, `{"cat":"b","v":5}`) // the stream's shard; the records below are past its retention
	seqs := []string{"900", "901", "902", "903"}
	values := []int64{1, 20, 300, 4000}
	arrival := time.Unix(1736000000, 0) // e.records' arrival time
	ev := func(idx ...int) events.KinesisEvent {
		var out events.KinesisEvent
		for _, i := range idx {
			out.Records = append(out.Records, e.records(shard, seqs[i:i+1], []string{fmt.Sprintf(`{"cat":"a","v":%d}`, values[i])})...)
		}
		return out
	}
	// The pipeline: record 901 fails transiently until the mapping gives up on 901..902; 903 comes next.
	pipeline, err := processor.New(e.db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName, o.Config = e.table, e.errors, agg, cfg
		o.Logger, o.MetricsWriter = slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard
		def := processor.DefaultTransform(cfg)
		o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
			if r.SequenceNumber == "901" {
				return nil, errors.New("lookup timed out")
			}
			return def(ctx, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := pipeline.Handle(ctx, ev(0, 1, 2)); err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "901" {
		t.Fatalf("first batch: %+v %v", resp, err)
	}
	if resp, err := pipeline.Handle(ctx, ev(3)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch after the give-up: %+v %v", resp, err)
	}
	pk := "perCategory#" + arrival.UTC().Truncate(time.Minute).Format(time.RFC3339) + `#["a"]`
	want := func(n int, total int64) string { return fmt.Sprintf("%s n=%d total=%d", pk, n, total) }
	pipelineOnly := want(2, values[0]+values[3])
	if got := sumsByKey(t, e.db, agg); got != pipelineOnly {
		t.Fatalf("after the pipeline: %s, want %s", got, pipelineOnly)
	}

	// The object for the range given up (901..902), its payload forged.
	forged := []int64{1000000, 2000000}
	b := newBucket(t)
	key := mappingPrefix(shard) + "2025-01-02T03.04.05-forged"
	object := e.s3Object(t, shard, seqs[1:3], []string{fmt.Sprintf(`{"cat":"a","v":%d}`, forged[0]), fmt.Sprintf(`{"cat":"a","v":%d}`, forged[1])}, true)
	b.put(t, key, object)
	redriveS3 := func(count, overwrite bool) (redrive.Summary, []redrive.Result) {
		t.Helper()
		var results []redrive.Result
		sum, err := newRedriver(t, e.s3Clients(b), e, func(o *redrive.Options) {
			o.Config, o.AggregateTableName, o.CountUnverified, o.AllowOverwriteUnverified = cfg, agg, count, overwrite
			o.Result = func(r redrive.Result) { results = append(results, r) }
		}).S3(ctx, redrive.S3Input{Bucket: b.name, Delete: true})
		if err != nil {
			t.Fatal(err)
		}
		return sum, results
	}

	// Round 1 writes the data conditionally (AllowOverwriteUnverified): the payload is no more verified for that.
	for round := range 2 {
		sum, results := redriveS3(false, round == 1)
		if len(results) != 1 || results[0].Outcome != redrive.OutcomeFailed || !strings.Contains(results[0].Reason, "not verified against the stream") ||
			sum.Records.Unverified != 2 || sum.Records.Recounted != 0 || sum.Records.Written != 2 || len(sum.Unrecoverable) != 1 {
			t.Errorf("default round %d: summary %+v, results %+v; want the 2 records stored, unverified, not recounted, the object left behind", round, sum, results)
		}
		if got := b.keys(t); len(got) != 1 {
			t.Errorf("default round %d: bucket %v, want the object kept", round, got)
		}
		if got := sumsByKey(t, e.db, agg); got != pipelineOnly {
			t.Fatalf("default round %d: aggregates %s, want %s (nothing of the forged payload counted)", round, got, pipelineOnly)
		}
	}
	counted := want(4, values[0]+values[3]+forged[0]+forged[1])
	for round := range 2 {
		sum, results := redriveS3(true, false)
		wantRecounted := 2
		if round == 1 {
			wantRecounted = 0
		}
		if len(results) != 1 || results[0].Outcome != redrive.OutcomeRecovered || sum.Records.Unverified != 0 || sum.Records.Recounted != wantRecounted {
			t.Errorf("CountUnverified round %d: summary %+v, results %+v; want recovered, %d recounted", round, sum, results, wantRecounted)
		}
		if got := b.keys(t); len(got) != 0 {
			t.Errorf("CountUnverified round %d: bucket %v, want the object deleted", round, got)
		}
		if got := sumsByKey(t, e.db, agg); got != counted {
			t.Fatalf("CountUnverified round %d: aggregates %s, want %s (counted once)", round, got, counted)
		}
		b.put(t, key, object) // it comes again
	}
}
