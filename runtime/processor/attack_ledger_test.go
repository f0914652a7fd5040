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

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackLedgerDuplicateDeliveryAfterFix: the event source mapping delivers at least once. A bug sends record
// 11 to the error table (it is marked); the next batch (record 12, a bad payload) is acknowledged; the fix is
// deployed; the mapping then delivers records 0..11 again (a duplicate), which the fixed pipeline stores; then the
// operator redrives record 11's error entry. Every valid record must count once (totals from the inputs, read from
// the aggregate items).
func TestAttackLedgerDuplicateDeliveryAfterFix(t *testing.T) {
	s := dynamostandin.New(dynamostandin.Options{KeyAttributes: map[string][]string{aggTable: {"pk", "sk"}}})
	t.Cleanup(s.Close)
	client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	inputs := aggInputs(rand.New(rand.NewPCG(3, 4)), 1, 13)
	shard := inputs[0]
	shard[11].counted = true
	shard[12].payload, shard[12].counted = "not json", false
	poison := shard[11].seq
	newProc := func(buggy, recount bool) *processor.Processor {
		p, err := processor.New(client, func(o *processor.Options) {
			o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
			o.Config = aggConfig()
			o.RecountAggregates = recount
			o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			o.MetricsWriter = io.Discard
			if buggy {
				def := processor.DefaultTransform(o.Config)
				o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
					if r.SequenceNumber == poison {
						return nil, processor.Permanent(errors.New("the bug"))
					}
					return def(ctx, r)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	handle := func(p *processor.Processor, recs []aggInput) {
		t.Helper()
		if resp, err := p.Handle(context.Background(), aggEvent(recs)); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle: %v %v", resp, err)
		}
	}
	buggy, fixed, redrive := newProc(true, false), newProc(false, false), newProc(false, true)
	handle(buggy, shard[:12])
	handle(buggy, shard[12:])
	handle(fixed, shard[:12]) // the duplicate delivery
	handle(redrive, shard[11:12])
	if d := diffTotals(aggOracle(t, inputs), aggStored(t, s)); len(d) > 0 {
		t.Fatalf("%d totals differ:\n%s", len(d), strings.Join(d, "\n"))
	}
}
