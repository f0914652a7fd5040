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
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// emfSum adds up metric name over the EMF lines of emf, and reports whether any line carried it.
func emfSum(t *testing.T, emf, name string) (int, bool) {
	t.Helper()
	n, seen := 0, false
	for _, m := range regexp.MustCompile(`"`+regexp.QuoteMeta(name)+`":(\d+)`).FindAllStringSubmatch(emf, -1) {
		v, err := strconv.Atoi(m[1])
		if err != nil {
			t.Fatal(err)
		}
		n, seen = n+v, true
	}
	return n, seen
}

// TestAggregatesRecountUnverified: the pipeline sends some records to the error table (a bug), so the ledger marks
// them; a recount of them (RecountAggregates, the bug fixed) whose payloads are unverified (Options.Unverified, or
// InsertOnly) stores them but counts nothing, however often it runs, and reports them in AggregateUnverified;
// RecountUnverified counts them once; a verified recount counts them once. Totals are read from the stand-in's
// aggregate items and compared with sums computed from the inputs.
func TestAggregatesRecountUnverified(t *testing.T) {
	tests := []struct {
		name                          string
		unverified, insertOnly, count bool
		counted                       bool // the redriven records end counted
	}{
		{name: "unverified", unverified: true},
		{name: "insert-only", insertOnly: true},
		{name: "insert-only and unverified", unverified: true, insertOnly: true},
		{name: "unverified, counted on the caller's word", unverified: true, count: true, counted: true},
		{name: "insert-only, counted on the caller's word", insertOnly: true, count: true, counted: true},
		{name: "verified", counted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dynamostandin.New(dynamostandin.Options{KeyAttributes: map[string][]string{aggTable: {"pk", "sk"}}})
			t.Cleanup(s.Close)
			client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(s.URL()) })
			inputs := aggInputs(rand.New(rand.NewPCG(11, 12)), 1, 12)
			poison := map[string]bool{}
			var redrive []aggInput
			for i, in := range inputs[0] {
				if in.counted && i%3 == 0 {
					poison[in.seq] = true
					redrive = append(redrive, in)
				}
			}
			if len(redrive) < 2 {
				t.Fatalf("only %d poisoned records", len(redrive))
			}
			// What the pipeline counts: every valid record but the poisoned ones.
			pipelineOnly := [][]aggInput{append([]aggInput(nil), inputs[0]...)}
			for i := range pipelineOnly[0] {
				if poison[pipelineOnly[0][i].seq] {
					pipelineOnly[0][i].counted = false
				}
			}
			pipeline, err := processor.New(client, func(o *processor.Options) {
				o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
				o.Config = aggConfig()
				o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
				o.MetricsWriter = io.Discard
				def := processor.DefaultTransform(o.Config)
				o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
					if poison[r.SequenceNumber] {
						return nil, processor.Permanent(errors.New("the bug"))
					}
					return def(ctx, r)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := pipeline.Handle(context.Background(), aggEvent(inputs[0])); err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("pipeline Handle: %v %v", resp, err)
			}
			if d := diffTotals(aggOracle(t, pipelineOnly), aggStored(t, s)); len(d) > 0 {
				t.Fatalf("after the pipeline: %d totals differ:\n%s", len(d), strings.Join(d, "\n"))
			}
			var metrics bytes.Buffer
			recounter, err := processor.New(client, func(o *processor.Options) {
				o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
				o.Config = aggConfig()
				o.RecountAggregates = true
				o.Unverified, o.InsertOnly, o.RecountUnverified = tt.unverified, tt.insertOnly, tt.count
				if tt.insertOnly {
					o.ConditionalWrites = true
				}
				o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
				o.MetricsWriter = &metrics
			})
			if err != nil {
				t.Fatal(err)
			}
			want := aggOracle(t, pipelineOnly)
			if tt.counted {
				want = aggOracle(t, inputs)
			}
			for round := range 2 {
				metrics.Reset()
				if resp, err := recounter.Handle(context.Background(), aggEvent(redrive)); err != nil || len(resp.BatchItemFailures) != 0 {
					t.Fatalf("round %d: recount Handle: %v %v", round, resp, err)
				}
				if d := diffTotals(want, aggStored(t, s)); len(d) > 0 {
					t.Fatalf("round %d: %d totals differ:\n%s", round, len(d), strings.Join(d, "\n"))
				}
				// Stored whatever the aggregates: every redriven record has its data item.
				data := s.Items(aggDataTable)
				for _, in := range redrive {
					found := false
					for _, it := range data {
						if id, _ := it["id"].(*types.AttributeValueMemberS); id != nil && id.Value == in.shard+":"+in.seq {
							found = true
						}
					}
					if !found {
						t.Errorf("round %d: record %s not stored", round, in.seq)
					}
				}
				wantUnverified, wantRecounted := len(redrive), 0
				switch {
				case tt.counted && round == 0:
					wantUnverified, wantRecounted = 0, len(redrive)
				case tt.counted:
					wantUnverified = 0
				}
				gotUnverified, ok := emfSum(t, metrics.String(), processor.MetricAggregateUnverified)
				gotRecounted, _ := emfSum(t, metrics.String(), processor.MetricAggregateRecounted)
				if !ok || gotUnverified != wantUnverified || gotRecounted != wantRecounted {
					t.Errorf("round %d: %s %d (emitted %v), %s %d; want %d, %d; metrics:\n%s", round,
						processor.MetricAggregateUnverified, gotUnverified, ok, processor.MetricAggregateRecounted, gotRecounted,
						wantUnverified, wantRecounted, metrics.String())
				}
			}
		})
	}
}

// TestAggregatesUnverifiedOutsideRecount: outside a recount (the pipeline's own mode) Options.Unverified changes
// nothing about counting, and no AggregateUnverified is emitted; with SkipAggregates nothing is counted either way.
func TestAggregatesUnverifiedOutsideRecount(t *testing.T) {
	tests := []struct {
		name string
		skip bool
	}{{name: "pipeline"}, {name: "skip aggregates", skip: true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dynamostandin.New(dynamostandin.Options{KeyAttributes: map[string][]string{aggTable: {"pk", "sk"}}})
			t.Cleanup(s.Close)
			client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(s.URL()) })
			inputs := aggInputs(rand.New(rand.NewPCG(13, 14)), 1, 10)
			var metrics bytes.Buffer
			p, err := processor.New(client, func(o *processor.Options) {
				o.TableName, o.ErrorTableName, o.AggregateTableName = aggDataTable, aggErrTable, aggTable
				o.Config = aggConfig()
				o.Unverified, o.SkipAggregates = true, tt.skip
				o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
				o.MetricsWriter = &metrics
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := p.Handle(context.Background(), aggEvent(inputs[0])); err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("Handle: %v %v", resp, err)
			}
			want := aggOracle(t, inputs)
			if tt.skip {
				want = nil
			}
			if d := diffTotals(want, aggStored(t, s)); len(d) > 0 {
				t.Errorf("%d totals differ:\n%s", len(d), strings.Join(d, "\n"))
			}
			if strings.Contains(metrics.String(), fmt.Sprintf("%q", processor.MetricAggregateUnverified)) {
				t.Errorf("metrics name %s outside a recount:\n%s", processor.MetricAggregateUnverified, metrics.String())
			}
		})
	}
}
