//go:build !kdp_noexpr

package processor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// aggItems returns the stand-in's aggregate items: the aggregate table without the ledger's items (shard states
// and error markers, whose partition keys start with '_').
func aggItems(s *dynamostandin.Server) map[string]dynamostandin.Item {
	out := map[string]dynamostandin.Item{}
	for k, it := range s.Items(aggTable) {
		if pk, _ := it["pk"].(*types.AttributeValueMemberS); pk != nil && !strings.HasPrefix(pk.Value, "_") {
			out[k] = it
		}
	}
	return out
}

// TestAggregatesRecountMode: records the pipeline sends to the error table (a bug) get error markers and the shard a
// state item; a processor with RecountAggregates (the bug fixed) counts them once, writes no ledger state and
// emits AggregateRecounted; running it again counts nothing; SkipAggregates wins over RecountAggregates.
func TestAggregatesRecountMode(t *testing.T) {
	s := dynamostandin.New(dynamostandin.Options{KeyAttributes: map[string][]string{aggTable: {"pk", "sk"}}})
	t.Cleanup(s.Close)
	client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	inputs := aggInputs(rand.New(rand.NewPCG(7, 8)), 1, 12)
	poison := map[string]bool{}
	var redrive []aggInput
	errorTabled := 0 // poisoned, and the inputs' own bad payloads
	for i, in := range inputs[0] {
		if !in.counted || i%3 == 0 {
			errorTabled++
		}
		if in.counted && i%3 == 0 {
			poison[in.seq] = true
			redrive = append(redrive, in)
		}
	}
	if len(poison) < 2 {
		t.Fatalf("only %d poisoned records", len(poison))
	}
	newProc := func(recount, skip bool, metrics io.Writer) *processor.Processor {
		p, err := processor.New(client, func(o *processor.Options) {
			o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
			o.Config = aggConfig()
			o.RecountAggregates, o.SkipAggregates = recount, skip
			o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			o.MetricsWriter = metrics
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
		return p
	}
	handle := func(p *processor.Processor, recs []aggInput) {
		t.Helper()
		if resp, err := p.Handle(context.Background(), aggEvent(recs)); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle: %v %v", resp, err)
		}
	}
	ledger := func() (state string, markers int) {
		for _, it := range s.Items(aggTable) {
			pk := it["pk"].(*types.AttributeValueMemberS).Value
			switch {
			case pk == "_shard":
				state = fmt.Sprint(it["_kver"], it["pending"], it["delivered"])
			case strings.HasPrefix(pk, "_error#"):
				markers++
			}
		}
		return state, markers
	}
	handle(newProc(false, false, io.Discard), inputs[0])
	state, markers := ledger()
	if state == "" || markers != errorTabled {
		t.Fatalf("after the pipeline: state %q, %d markers, want a state and %d", state, markers, errorTabled)
	}
	before := len(aggItems(s))

	// SkipAggregates wins: nothing counted, no aggregate metrics.
	var metrics bytes.Buffer
	handle(newProc(true, true, &metrics), redrive)
	if strings.Contains(metrics.String(), "Aggregate") || fmt.Sprint(aggStored(t, s)) == fmt.Sprint(aggOracle(t, inputs)) || len(aggItems(s)) != before {
		t.Fatalf("SkipAggregates with RecountAggregates counted: %s", metrics.String())
	}
	for round := range 2 {
		metrics.Reset()
		handle(newProc(true, false, &metrics), redrive)
		if d := diffTotals(aggOracle(t, inputs), aggStored(t, s)); len(d) > 0 {
			t.Fatalf("round %d: %d totals differ:\n%s", round, len(d), strings.Join(d, "\n"))
		}
		want := fmt.Sprintf(`"%s":%d`, processor.MetricAggregateRecounted, len(redrive))
		if round == 1 {
			want = fmt.Sprintf(`"%s":0`, processor.MetricAggregateRecounted)
		}
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("round %d: metrics %s, want %s", round, metrics.String(), want)
		}
		if st, m := ledger(); st != state || m != markers {
			t.Errorf("round %d: the recount changed the ledger: state %q, %d markers; was %q, %d", round, st, m, state, markers)
		}
	}
}
