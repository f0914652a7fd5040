//go:build integration

package selftest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/selftest"
)

// The self-test end to end on kinesalite and dynalite: the real processor behind the local event source mapping
// (internal/localrun), the self-test's own clients talking to the emulators directly. Outcomes are checked by reading
// dynalite, not the self-test's report alone.

// mappingState stands in for lambda:GetEventSourceMapping, answering from the local runner's counters as Lambda
// would summarize them.
type mappingState struct{ r *localrun.Runner }

func (m mappingState) GetEventSourceMapping(_ context.Context, in *lambda.GetEventSourceMappingInput, _ ...func(*lambda.Options)) (*lambda.GetEventSourceMappingOutput, error) {
	last := "OK"
	if s := m.r.Stats(); s.PartialFailures+s.FunctionErrors > 0 {
		last = "PROBLEM: Function call failed"
	}
	return &lambda.GetEventSourceMappingOutput{UUID: in.UUID, State: aws.String("Enabled"), LastProcessingResult: aws.String(last)}, nil
}

type pipeline struct {
	kc                *kinesis.Client
	db                *dynamodb.Client // the self-test's view of dynalite
	stream            string
	table, errorTable string
	runner            *localrun.Runner
}

// startPipeline creates a stream and two tables and runs the processor (cfg) behind the local mapping until the test
// ends. processorEndpoint is where the processor's DynamoDB client points ("" for dynalite itself).
func startPipeline(t *testing.T, ctx context.Context, kinesisEndpoint, dynamoEndpoint string, cfg processor.Config, processorEndpoint string) *pipeline {
	t.Helper()
	p := &pipeline{
		kc: emulators.KinesisClient(kinesisEndpoint), db: emulators.DynamoDBClient(dynamoEndpoint),
		stream: emulators.UniqueName("selftest"), table: emulators.UniqueName("data"), errorTable: emulators.UniqueName("errors"),
	}
	if err := emulators.CreateStream(ctx, p.kc, p.stream, 2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{p.table, p.errorTable} {
		if err := emulators.CreateTable(ctx, p.db, name); err != nil {
			t.Fatal(err)
		}
	}
	if processorEndpoint == "" {
		processorEndpoint = dynamoEndpoint
	}
	proc, err := processor.New(emulators.DynamoDBClient(processorEndpoint), func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.Config = p.table, p.errorTable, cfg
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	p.runner, err = localrun.New(p.kc, localrun.InProcess(proc.Handle), func(o *localrun.Options) {
		o.StreamName = p.stream
		o.PollInterval = 50 * time.Millisecond
		o.RetryDelay = 50 * time.Millisecond
		o.FunctionTimeout = 2 * time.Second
		o.ReportBatchItemFailures = true
		o.BisectBatchOnFunctionError = true
		o.MaximumRetryAttempts = -1
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.runner.Run(rctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// scan returns the ids of a table's items, read from dynalite.
func (p *pipeline) scan(t *testing.T, ctx context.Context, table string) []string {
	t.Helper()
	out, err := p.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, item := range out.Items {
		if s, ok := item["id"].(*types.AttributeValueMemberS); ok {
			ids = append(ids, s.Value)
		}
	}
	return ids
}

func (p *pipeline) options(cfg selftest.Config, timeout time.Duration) func(*selftest.Options) {
	return func(o *selftest.Options) {
		o.StreamName, o.TableName, o.ErrorTableName = p.stream, p.table, p.errorTable
		o.Config = cfg
		o.Timeout = timeout
		o.PollInterval = 100 * time.Millisecond
		o.Mappings, o.MappingUUID = mappingState{p.runner}, "local-mapping"
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
}

func TestSelfTestOnEmulators(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	kinesisEndpoint, dynamoEndpoint := emulators.Kinesalite(t), emulators.Dynalite(t)
	// The processor's writes go through a stand-in that drops every write request: the function cannot write.
	dropping := dynamostandin.New(dynamostandin.Options{Upstream: dynamoEndpoint, DropRate: 1,
		FaultOperations: []string{dynamostandin.OpBatchWriteItem, dynamostandin.OpPutItem}})
	t.Cleanup(dropping.Close)

	schema := processor.Config{Transform: &processor.TransformConfig{
		Schema: json.RawMessage(`{"type":"object","required":["amount"],"properties":{"amount":{"type":"number"}}}`)}}
	tests := []struct {
		name        string
		processor   processor.Config
		endpoint    string // the processor's DynamoDB endpoint: "" for dynalite, or the dropping stand-in
		cfg         selftest.Config
		timeout     time.Duration
		wantCause   selftest.Cause // "" for a pass
		wantStep    selftest.Step
		wantSeen    []string // substrings of the failure's evidence
		wantDeleted int      // canary items the report says were deleted
	}{
		{name: "working pipeline", cfg: selftest.Config{Malformed: true}, timeout: time.Minute, wantDeleted: 2},
		{name: "working pipeline with the user's canary", processor: schema,
			cfg: selftest.Config{Pipeline: schema, Record: `{"amount": 0, "note": "self-test"}`, Malformed: true}, timeout: time.Minute, wantDeleted: 2},
		{name: "function cannot write", endpoint: dropping.URL(), cfg: selftest.Config{Malformed: true}, timeout: 8 * time.Second,
			wantCause: selftest.CauseItemNotWritten, wantStep: selftest.StepWaitItem,
			wantSeen: []string{"no item with key {id=", "last processing result: PROBLEM: Function call failed"}},
		{name: "transform rejects the canary", processor: schema,
			cfg: selftest.Config{Pipeline: schema, Record: `{"amount": "zero"}`, Malformed: true}, timeout: time.Minute,
			wantCause: selftest.CauseCanaryRejected, wantStep: selftest.StepWaitItem, wantSeen: []string{"with reason: ", "amount"},
			wantDeleted: 2}, // the canary's error entry and the malformed canary's
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint := ""
			if tt.endpoint != "" {
				endpoint = tt.endpoint
			}
			p := startPipeline(t, ctx, kinesisEndpoint, dynamoEndpoint, tt.processor, endpoint)
			// A producer's record, written before the self-test: it must survive.
			if _, err := p.kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(p.stream), PartitionKey: aws.String("producer"),
				Data: []byte(`{"amount": 1}`)}); err != nil {
				t.Fatal(err)
			}

			report, err := selftest.Run(ctx, p.kc, p.db, p.options(tt.cfg, tt.timeout))
			if tt.wantCause == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			} else {
				t.Logf("failure: %v", err)
				var f *selftest.Failure
				if !errors.As(err, &f) {
					t.Fatalf("Run = %v, want a *Failure", err)
				}
				if f.Cause != tt.wantCause || f.Step != tt.wantStep {
					t.Errorf("failure at %s: %s, want %s: %s (%v)", f.Step, f.Cause, tt.wantStep, tt.wantCause, err)
				}
				for _, w := range tt.wantSeen {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("failure %q does not mention %q", err, w)
					}
				}
			}
			if report == nil || !strings.HasPrefix(report.Canary.PartitionKey, processor.SelfTestPartitionKeyPrefix) {
				t.Fatalf("report %+v", report)
			}
			if len(report.Deleted) != tt.wantDeleted || len(report.Left) != 0 {
				t.Errorf("deleted %q, left %q; want %d deleted", report.Deleted, report.Left, tt.wantDeleted)
			}
			// No canary item is left in dynalite.
			for _, table := range []string{p.table, p.errorTable} {
				for _, id := range p.scan(t, ctx, table) {
					if id == report.Canary.EventID || report.Malformed != nil && id == report.Malformed.EventID {
						t.Errorf("canary item %q left in %s", id, table)
					}
				}
			}
			if tt.endpoint != "" {
				return // the function cannot write: the producer's record is not stored either
			}
			// The producer's record is stored (processing it and the canary in any order) and was left alone.
			deadline := time.Now().Add(30 * time.Second)
			for len(p.scan(t, ctx, p.table)) != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("table holds %q, want the producer's item alone", p.scan(t, ctx, p.table))
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
