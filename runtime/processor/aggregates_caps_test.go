//go:build !kdp_noexpr

package processor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAggregatesLedgerCapRetries: a batch sends more records to the error table than the shard state can mark at
// once (a cap of 5 positions, processor.SetLedgerPositions). The processor must report the first record it could
// not mark, and the mapping (simulated: each delivery from the reported record) deliver the rest again until every
// error-tabled record has its marker; the data and error tables then hold each record once, and a redrive of
// the error-tabled records (the bug fixed, RecountAggregates) makes every aggregate equal what the inputs say.
func TestAggregatesLedgerCapRetries(t *testing.T) {
	const limit = 5
	s := dynamostandin.New(dynamostandin.Options{KeyAttributes: map[string][]string{aggTable: {"pk", "sk"}}})
	t.Cleanup(s.Close)
	client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	inputs := aggInputs(rand.New(rand.NewPCG(11, 12)), 1, 40)
	poison := map[string]bool{}
	var redrive []aggInput
	errorTabled, stored := 0, 0
	for i, in := range inputs[0] {
		switch {
		case !in.counted:
			errorTabled++
		case i%2 == 0:
			errorTabled++
			poison[in.seq] = true
			redrive = append(redrive, in)
		default:
			stored++
		}
	}
	if errorTabled <= 2*limit {
		t.Fatalf("only %d records go to the error table", errorTabled)
	}
	newProc := func(recount bool) *processor.Processor {
		p, err := processor.New(client, func(o *processor.Options) {
			o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
			o.Config = aggConfig()
			o.RecountAggregates = recount
			o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			o.MetricsWriter = io.Discard
			if !recount {
				def := processor.DefaultTransform(o.Config)
				o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
					if poison[r.SequenceNumber] {
						return nil, processor.Permanent(errors.New("the bug"))
					}
					return def(ctx, r)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		processor.SetLedgerPositions(p, limit)
		return p
	}
	pipeline := newProc(false)
	recs := inputs[0]
	deliveries := 0
	for len(recs) > 0 {
		if deliveries++; deliveries > len(inputs[0]) {
			t.Fatalf("no progress after %d deliveries", deliveries)
		}
		resp, err := pipeline.Handle(context.Background(), aggEvent(recs))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.BatchItemFailures) == 0 {
			break
		}
		at := -1
		for i, in := range recs {
			if in.seq == resp.BatchItemFailures[0].ItemIdentifier {
				at = i
			}
		}
		if at <= 0 {
			t.Fatalf("delivery %d reports %v: not a record after the batch's first", deliveries, resp.BatchItemFailures)
		}
		recs = recs[at:]
	}
	if deliveries < 2 {
		t.Errorf("%d records sent to the error table with a cap of %d went through in one delivery", errorTabled, limit)
	}
	markers := 0
	for _, it := range s.Items(aggTable) {
		if pk := it["pk"].(*types.AttributeValueMemberS).Value; strings.HasPrefix(pk, "_error#") {
			markers++
		}
	}
	if markers != errorTabled {
		t.Errorf("%d error markers, want one per record sent to the error table: %d", markers, errorTabled)
	}
	if n, m := len(s.Items(aggErrTable)), len(s.Items(aggDataTable)); n != errorTabled || m != stored {
		t.Errorf("error table %d items, data table %d: want %d and %d (each record once)", n, m, errorTabled, stored)
	}
	// The redrive of the poisoned records, the bug fixed: every aggregate equals the inputs', twice over.
	for round := range 2 {
		resp, err := newProc(true).Handle(context.Background(), aggEvent(redrive))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("redrive round %d: %v %v", round, resp, err)
		}
		if d := diffTotals(aggOracle(t, inputs), aggStored(t, s)); len(d) > 0 {
			t.Fatalf("round %d: %d totals differ:\n%s", round, len(d), strings.Join(d, "\n"))
		}
	}
}
