//go:build integration

package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// unverifiedConfig counts records and sums their "v" per "cat" and minute of arrival.
const unverifiedConfig = `{"aggregates":[{"name":"perCategory","windowSeconds":60,"groupBy":[{"path":"cat"}],` +
	`"measures":[{"name":"n","kind":"count"},{"name":"total","kind":"sum","path":"v"}]}]}`

// aggregateSums reads the aggregate table's items (not the ledger's, whose partition keys start with '_') and adds
// up each measure per partition key ("<aggregate>#<window start>#<group as JSON>"), over the items of every shard.
func aggregateSums(t *testing.T, db *dynamodb.Client, table string) map[string]map[string]string {
	t.Helper()
	sums := map[string]map[string]*big.Rat{}
	var start map[string]dynamotypes.AttributeValue
	for {
		out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			pk := it["pk"].(*dynamotypes.AttributeValueMemberS).Value
			if strings.HasPrefix(pk, "_") {
				continue
			}
			if sums[pk] == nil {
				sums[pk] = map[string]*big.Rat{}
			}
			for _, m := range []string{"n", "total"} {
				var text string
				switch v := it[m].(type) {
				case *dynamotypes.AttributeValueMemberN:
					text = v.Value
				case *dynamotypes.AttributeValueMemberS:
					text = v.Value
				default:
					continue
				}
				r, ok := new(big.Rat).SetString(text)
				if !ok {
					t.Fatalf("%s %s = %q", pk, m, text)
				}
				if sums[pk][m] == nil {
					sums[pk][m] = new(big.Rat)
				}
				sums[pk][m].Add(sums[pk][m], r)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	got := map[string]map[string]string{}
	for pk, ms := range sums {
		got[pk] = map[string]string{}
		for m, v := range ms {
			got[pk][m] = v.RatString()
		}
	}
	return got
}

// TestCommandErrorsUnverifiedNotCounted: the pipeline (with aggregates) sent a record to the error table, so the
// aggregate ledger marks its position as not counted. Its shard is gone from the stream (closed and past retention),
// so its entry cannot be verified; someone able to write the error table replaces the entry's payload with forged
// values. kdp redrive errors stores the record insert-only but counts nothing into the aggregates, keeps the entry,
// names the record in its summary and exits 1, run after run; with --count-unverified it counts it once (on the
// operator's word), and a second such run, with the entry written again, adds nothing. The aggregates are read back
// from the table and compared with sums computed here from the payloads.
func TestCommandErrorsUnverifiedNotCounted(t *testing.T) {
	l := newLocal(t)
	ctx := context.Background()
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, l.db, agg); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, unverifiedConfig)
	cfg, err := processor.ParseConfig([]byte(unverifiedConfig))
	if err != nil {
		t.Fatal(err)
	}

	// The pipeline's batch, of a shard the stream no longer has; record 1 meets a bug (permanent failure).
	const shard = "shardId-000000000009"
	arrival := time.Date(2025, 1, 2, 3, 4, 10, 0, time.UTC)
	type rec struct {
		seq  string
		cat  string
		v    int64
		bug  bool
		data string
	}
	recs := []rec{{seq: "49600000000000001000", cat: "a", v: 1}, {seq: "49600000000000001007", cat: "a", v: 20, bug: true}, {seq: "49600000000000001014", cat: "a", v: 300}}
	var ev events.KinesisEvent
	for i := range recs {
		recs[i].data = fmt.Sprintf(`{"cat":%q,"v":%d}`, recs[i].cat, recs[i].v)
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: shard + ":" + recs[i].seq, EventSource: "aws:kinesis", EventSourceArn: l.arn,
			AwsRegion: emulators.Region, Kinesis: events.KinesisRecord{SequenceNumber: recs[i].seq, PartitionKey: "pk", Data: []byte(recs[i].data),
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: arrival.Add(time.Duration(i) * time.Second)}}})
	}
	pipeline, err := processor.New(l.db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName, o.Config = l.table, l.errors, agg, cfg
		o.Logger, o.MetricsWriter = slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard
		def := processor.DefaultTransform(cfg)
		o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
			for _, x := range recs {
				if x.bug && x.seq == r.SequenceNumber {
					return nil, processor.Permanent(errors.New("the bug"))
				}
			}
			return def(ctx, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := pipeline.Handle(ctx, ev); err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("pipeline: %+v %v", resp, err)
	}

	// The oracle: sums of the payloads' values, per category and minute of arrival.
	pk := `perCategory#` + arrival.Truncate(time.Minute).Format(time.RFC3339) + `#["a"]`
	want := func(forged int64, counted bool) map[string]map[string]string {
		n, total := int64(0), int64(0)
		for _, x := range recs {
			if !x.bug {
				n, total = n+1, total+x.v
			}
		}
		if counted {
			n, total = n+1, total+forged
		}
		return map[string]map[string]string{pk: {"n": strconv.FormatInt(n, 10), "total": strconv.FormatInt(total, 10)}}
	}
	check := func(step string, w map[string]map[string]string) {
		t.Helper()
		got := aggregateSums(t, l.db, agg)
		if gj, wj := mustMarshal(t, got), mustMarshal(t, w); gj != wj {
			t.Fatalf("%s: aggregates %s, want %s", step, gj, wj)
		}
	}
	check("after the pipeline", want(0, false))
	// The ledger marks the record as sent to the error table (an _error# marker): a recount would count it.
	if !hasMarker(t, l.db, agg) {
		t.Fatal("no error marker in the aggregate table: the test does not reach the marked case")
	}

	// The forger rewrites the entry's payload (keeping it consistent: size and SHA-256).
	const forged = int64(1000000)
	id := shard + ":" + recs[1].seq
	forge := func() {
		t.Helper()
		out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.errors), ConsistentRead: aws.Bool(true),
			Key: map[string]dynamotypes.AttributeValue{processor.ErrorTablePartitionKey: &dynamotypes.AttributeValueMemberS{Value: id}}})
		if err != nil {
			t.Fatal(err)
		}
		item := out.Item
		if item == nil { // deleted by a redrive: write it again as the pipeline did, with the forged payload
			item = entryOf(id, shard, recs[1].seq, arrival.Add(time.Second))
		}
		payload := []byte(fmt.Sprintf(`{"cat":"a","v":%d}`, forged))
		sum := sha256.Sum256(payload)
		item[processor.ErrorAttrPayload] = &dynamotypes.AttributeValueMemberB{Value: payload}
		item[processor.ErrorAttrPayloadEncoding] = &dynamotypes.AttributeValueMemberS{Value: processor.PayloadEncodingRaw}
		item[processor.ErrorAttrPayloadSize] = &dynamotypes.AttributeValueMemberN{Value: strconv.Itoa(len(payload))}
		item[processor.ErrorAttrPayloadSHA256] = &dynamotypes.AttributeValueMemberS{Value: hex.EncodeToString(sum[:])}
		if _, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(l.errors), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	forge()
	entryKept := func() bool {
		out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.errors), ConsistentRead: aws.Bool(true),
			Key: map[string]dynamotypes.AttributeValue{processor.ErrorTablePartitionKey: &dynamotypes.AttributeValueMemberS{Value: id}}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item != nil
	}
	args := []string{ModeErrors, "--stream", l.arn, "--table", l.table, "--error-table", l.errors, "--config", cfgPath, "--aggregate-table", agg}

	// Default: stored insert-only, never counted, the entry kept, exit 1; the same on a rerun.
	for round := range 2 {
		code, out, _ := runCmd(t, nil, args...)
		step := fmt.Sprintf("default run %d", round)
		if code != ExitLeftover {
			t.Errorf("%s: exit %d, want %d", step, code, ExitLeftover)
		}
		if !strings.Contains(out, "left uncounted: payload not verified against the stream") || !strings.Contains(out, "--"+FlagCountUnverified) {
			t.Errorf("%s: the output does not name the record left uncounted:\n%s", step, out)
		}
		if !entryKept() {
			t.Errorf("%s: the entry was deleted", step)
		}
		check(step, want(forged, false))
		data, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.table), ConsistentRead: aws.Bool(true),
			Key: map[string]dynamotypes.AttributeValue{"id": &dynamotypes.AttributeValueMemberS{Value: id}}})
		if err != nil {
			t.Fatal(err)
		}
		pos, _ := data.Item[processor.AttrPosition].(*dynamotypes.AttributeValueMemberB)
		if pos == nil || !processor.PositionUnverified(pos.Value) {
			t.Errorf("%s: data item %v, want it stored with an unverified position", step, data.Item)
		}
	}

	// On the operator's word: counted once, the entry deleted; the entry written again and redriven adds nothing.
	for round := range 2 {
		code, out, _ := runCmd(t, nil, append(args, "--"+FlagCountUnverified)...)
		step := fmt.Sprintf("--%s run %d", FlagCountUnverified, round)
		wantRecounted := "1 records recounted"
		if round == 1 {
			wantRecounted = "0 records recounted"
		}
		if code != ExitOK || !strings.Contains(out, wantRecounted) || strings.Contains(out, "left uncounted") {
			t.Errorf("%s: exit %d, want %d, %q and nothing left uncounted:\n%s", step, code, ExitOK, wantRecounted, out)
		}
		if entryKept() {
			t.Errorf("%s: the entry was kept", step)
		}
		check(step, want(forged, true))
		forge()
	}
}

// hasMarker reports whether the aggregate table holds an error marker (partition key "_error#...").
func hasMarker(t *testing.T, db *dynamodb.Client, table string) bool {
	t.Helper()
	out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range out.Items {
		if strings.HasPrefix(it["pk"].(*dynamotypes.AttributeValueMemberS).Value, "_error#") {
			return true
		}
	}
	return false
}

// entryOf is an error-table entry for the record at shard and seq, as anyone able to write the table could put it.
func entryOf(id, shard, seq string, arrival time.Time) map[string]dynamotypes.AttributeValue {
	return map[string]dynamotypes.AttributeValue{
		processor.ErrorTablePartitionKey:  &dynamotypes.AttributeValueMemberS{Value: id},
		processor.ErrorAttrShardID:        &dynamotypes.AttributeValueMemberS{Value: shard},
		processor.ErrorAttrSequenceNumber: &dynamotypes.AttributeValueMemberS{Value: seq},
		processor.ErrorAttrPartitionKey:   &dynamotypes.AttributeValueMemberS{Value: "pk"},
		processor.ErrorAttrReason:         &dynamotypes.AttributeValueMemberS{Value: "forged"},
		processor.ErrorAttrFailedAt:       &dynamotypes.AttributeValueMemberS{Value: "2025-01-02T03:05:00Z"},
		processor.ErrorAttrArrivalTime:    &dynamotypes.AttributeValueMemberS{Value: arrival.Format(time.RFC3339Nano)},
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
