//go:build integration

package selftest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/selftest"
)

// scriptedStream is a Kinesis stream whose PutRecord answers come from a script (shard and sequence number), and
// whose records reach the real processor (on dynalite) in batches of at least minBatch, as a mapping would deliver
// them. It lets a test forge PutRecord answers and control what is processed together.
type scriptedStream struct {
	mu       sync.Mutex
	position func(n int, pk string) (shard, seq string) // the n-th put's answer (n from 0)
	puts     int
	pending  []events.KinesisEventRecord
	minBatch int
	process  bool // false: the mapping is stuck, nothing is processed
}

func (s *scriptedStream) PutRecord(_ context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	shard, seq := s.position(s.puts, aws.ToString(in.PartitionKey))
	s.puts++
	s.pending = append(s.pending, attackRecord(shard, seq, aws.ToString(in.PartitionKey), in.Data))
	return &kinesis.PutRecordOutput{ShardId: aws.String(shard), SequenceNumber: aws.String(seq)}, nil
}

func attackRecord(shard, seq, pk string, data []byte) events.KinesisEventRecord {
	return events.KinesisEventRecord{EventID: shard + ":" + seq, EventSource: "aws:kinesis", EventName: "aws:kinesis:record",
		Kinesis: events.KinesisRecord{PartitionKey: pk, SequenceNumber: seq, Data: data,
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Now()}}}
}

// deliver hands pending records to h until ctx ends.
func (s *scriptedStream) deliver(ctx context.Context, t *testing.T, h func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error)) {
	for ctx.Err() == nil {
		s.mu.Lock()
		var batch []events.KinesisEventRecord
		if s.process && len(s.pending) >= s.minBatch {
			batch, s.pending = s.pending, nil
		}
		s.mu.Unlock()
		if len(batch) > 0 {
			if resp, err := h(ctx, events.KinesisEvent{Records: batch}); err != nil || len(resp.BatchItemFailures) > 0 {
				t.Errorf("processor: %+v, %v", resp, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type attackBed struct {
	db                *dynamodb.Client
	table, errorTable string
	proc              *processor.Processor
}

func newAttackBed(t *testing.T, ctx context.Context, endpoint string, cfg processor.Config, keyName string) *attackBed {
	t.Helper()
	b := &attackBed{db: emulators.DynamoDBClient(endpoint), table: emulators.UniqueName("data"), errorTable: emulators.UniqueName("errors")}
	if err := emulators.CreateKeyedTable(ctx, b.db, b.table, keyName, types.ScalarAttributeTypeS); err != nil {
		t.Fatal(err)
	}
	if err := emulators.CreateTable(ctx, b.db, b.errorTable); err != nil {
		t.Fatal(err)
	}
	var err error
	b.proc, err = processor.New(emulators.DynamoDBClient(endpoint), func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.Config = b.table, b.errorTable, cfg
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *attackBed) get(t *testing.T, ctx context.Context, keyName, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := b.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(b.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{keyName: &types.AttributeValueMemberS{Value: key}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func (b *attackBed) options(cfg selftest.Config, timeout time.Duration) func(*selftest.Options) {
	return func(o *selftest.Options) {
		o.StreamName, o.TableName, o.ErrorTableName = "stream", b.table, b.errorTable
		o.Config, o.Timeout, o.PollInterval = cfg, timeout, 50*time.Millisecond
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
}

// TestAttackSelfTestSequenceCollisionAcrossShards: the item key is the sequence number, which is unique in a shard
// only. A real record of shard 0 wrote the item under sequence number S; the canary lands on shard 1 with the same
// S and is never processed. The self-test must fail and leave the real item alone.
func TestAttackSelfTestSequenceCollisionAcrossShards(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := emulators.Dynalite(t)
	cfg := processor.Config{PartitionKey: processor.KeyAttribute{Name: "seq", Type: processor.AttributeTypeString, Source: processor.SourceSequenceNumber}}
	b := newAttackBed(t, ctx, endpoint, cfg, "seq")
	const seq = "49650000000000000000000000000000000000000000000000000001"
	// The real record, processed by the real processor.
	if resp, err := b.proc.Handle(ctx, events.KinesisEvent{Records: []events.KinesisEventRecord{
		attackRecord("shardId-000000000000", seq, "customer-7", []byte(`{"order": "real"}`))}}); err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("Handle: %+v, %v", resp, err)
	}
	before := b.get(t, ctx, "seq", seq)
	if before == nil {
		t.Fatal("the real item was not written")
	}
	ks := &scriptedStream{position: func(int, string) (string, string) { return "shardId-000000000001", seq }}
	report, err := selftest.Run(ctx, ks, b.db, b.options(selftest.Config{Pipeline: cfg}, 2*time.Second))
	var f *selftest.Failure
	if !errors.As(err, &f) || f.Cause != selftest.CauseItemNotWritten {
		t.Errorf("Run = %v, want %s", err, selftest.CauseItemNotWritten)
	}
	if after := b.get(t, ctx, "seq", seq); after == nil {
		t.Errorf("the real item was deleted (report: deleted %q)", report.Deleted)
	}
}

// TestAttackSelfTestForgedPositionOfARealRecord: PutRecord's answer names the position of a record the pipeline
// already processed (a forged or broken answer; Kinesis never reuses one). Under the default event-id key the real
// item has no _kpos. The self-test must not take the real item for the canary's, and must not delete it.
func TestAttackSelfTestForgedPositionOfARealRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := emulators.Dynalite(t)
	cfg := processor.DefaultConfig()
	b := newAttackBed(t, ctx, endpoint, cfg, "id")
	const shard, seq = "shardId-000000000000", "49650000000000000000000000000000000000000000000000000077"
	if resp, err := b.proc.Handle(ctx, events.KinesisEvent{Records: []events.KinesisEventRecord{
		attackRecord(shard, seq, "customer-7", []byte(`{"order": "real"}`))}}); err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("Handle: %+v, %v", resp, err)
	}
	if b.get(t, ctx, "id", shard+":"+seq) == nil {
		t.Fatal("the real item was not written")
	}
	ks := &scriptedStream{position: func(int, string) (string, string) { return shard, seq }} // stuck: never processed
	report, err := selftest.Run(ctx, ks, b.db, b.options(selftest.Config{Pipeline: cfg}, 2*time.Second))
	if err == nil {
		t.Errorf("Run passed on the real record's item (report %+v)", report)
	}
	if b.get(t, ctx, "id", shard+":"+seq) == nil {
		t.Errorf("the real item was deleted (report: deleted %q)", report.Deleted)
	}
}

// TestAttackSelfTestConcurrentRuns: a scheduled run overlaps a deployment's run; the mapping hands both canaries to
// the processor in one batch. Both runs must pass and the table must hold no canary item afterwards.
func TestAttackSelfTestConcurrentRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := emulators.Dynalite(t)
	business := processor.Config{PartitionKey: processor.KeyAttribute{Name: "orderId", Type: processor.AttributeTypeString, Source: "orderId"}}
	tests := []struct {
		name    string
		cfg     processor.Config
		keyName string
		st      selftest.Config
	}{
		{"default event-id key, derived canary", processor.DefaultConfig(), "id", selftest.Config{Pipeline: processor.DefaultConfig(), Malformed: true}},
		{"business key, the user's canary keyed by the run's nonce", business, "orderId",
			selftest.Config{Pipeline: business, Record: `{"orderId": "kdp-selftest-$nonce"}`, Malformed: true}},
		{"business key, the user's key keyed by the run's nonce", business, "orderId",
			selftest.Config{Pipeline: business, Record: `{"orderId": "kdp-selftest-$nonce", "note": "$nonce"}`,
				Key: map[string]any{"orderId": "kdp-selftest-$nonce"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newAttackBed(t, ctx, endpoint, tt.cfg, tt.keyName)
			perRun := 1
			if tt.st.Malformed {
				perRun = 2
			}
			ks := &scriptedStream{minBatch: 2 * perRun, process: true, position: func(n int, _ string) (string, string) {
				return "shardId-000000000000", "4965000000000000000000000000000000000000000000000000" + strconv.Itoa(1000+n)
			}}
			dctx, dcancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); ks.deliver(dctx, t, b.proc.Handle) }()
			defer func() { dcancel(); <-done }()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = selftest.Run(ctx, ks, b.db, b.options(tt.st, 5*time.Second))
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("run %d: %v", i, err)
				}
			}
			out, err := b.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(b.table), ConsistentRead: aws.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Items) != 0 {
				t.Errorf("%d canary items left in the table", len(out.Items))
			}
		})
	}
}

// TestAttackSelfTestDerivedCanaryThroughTransforms: the derived canary under the event-id key passes, and is
// cleaned up, through the real processor whatever the transform does with its marker field (kept, included,
// dropped, renamed): the marker is required only where the item carries it.
func TestAttackSelfTestDerivedCanaryThroughTransforms(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := emulators.Dynalite(t)
	with := func(tr processor.TransformConfig) processor.Config {
		c := processor.DefaultConfig()
		c.Transform = &tr
		return c
	}
	for _, tt := range []struct {
		name string
		cfg  processor.Config
	}{
		{"no transform", processor.DefaultConfig()},
		{"include with the marker", with(processor.TransformConfig{Include: []string{selftest.MarkerField}})},
		{"include without the marker", with(processor.TransformConfig{Include: []string{"other"}})},
		{"exclude the marker", with(processor.TransformConfig{Exclude: []string{selftest.MarkerField}})},
		{"rename the marker", with(processor.TransformConfig{Rename: map[string]string{selftest.MarkerField: "m"}})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newAttackBed(t, ctx, endpoint, tt.cfg, "id")
			ks := &scriptedStream{minBatch: 1, process: true, position: func(n int, _ string) (string, string) {
				return "shardId-000000000000", "4965000000000000000000000000000000000000000000000000" + strconv.Itoa(2000+n)
			}}
			dctx, dcancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); ks.deliver(dctx, t, b.proc.Handle) }()
			defer func() { dcancel(); <-done }()
			if _, err := selftest.Run(ctx, ks, b.db, b.options(selftest.Config{Pipeline: tt.cfg, Malformed: true}, 5*time.Second)); err != nil {
				t.Fatalf("Run: %v", err)
			}
			out, err := b.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(b.table), ConsistentRead: aws.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Items) != 0 {
				t.Errorf("canary items left: %v", out.Items)
			}
		})
	}
}
