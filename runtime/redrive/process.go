package redrive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// runner runs batches through a processor (with processor.Options.ConditionalWrites) and tells what became of their records: the counts come from the
// processor's metrics line (one per Handle call, on Options.MetricsWriter), the reasons of records sent to the error
// table from the error items the processor writes. Calls must not overlap.
type runner struct {
	p       *processor.Processor
	metrics *metricsCapture
	db      *recordingDB
}

func newRunner(db DB, o Options) (*runner, error) {
	var pdb processor.DB = db
	if o.DryRun {
		pdb = discardDB{}
	}
	rdb := &recordingDB{DB: pdb, errorTable: o.ErrorTableName}
	mc := &metricsCapture{}
	fns := make([]func(*processor.Options), 0, len(o.ProcessorOptions)+2)
	fns = append(fns, func(po *processor.Options) {
		po.TableName = o.TableName
		po.ErrorTableName = o.ErrorTableName
		po.Config = o.Config
		po.Logger = o.Logger
	})
	fns = append(fns, o.ProcessorOptions...)
	// Every redrive replays records from the past: a record's item never overwrites one written from a later record
	// of the same key (a failed condition counts as stored). Set last, so no caller's option turns it off.
	fns = append(fns, func(po *processor.Options) { po.MetricsWriter, po.ConditionalWrites = mc, true })
	p, err := processor.New(rdb, fns...)
	if err != nil {
		return nil, err
	}
	return &runner{p: p, metrics: mc, db: rdb}, nil
}

// batchResult is what became of one batch.
type batchResult struct {
	counts RecordCounts
	// errorReasons maps the event id of each record sent to the error table to its reason.
	errorReasons map[string]string
	// reported is the sequence number the processor reported as the batch item failure, "" for none.
	reported string
}

// ok reports whether every record is stored somewhere (data table, skipped, error table).
func (b batchResult) ok() bool { return b.counts.Failed == 0 && b.reported == "" }

// handle runs ev through the processor.
func (r *runner) handle(ctx context.Context, ev events.KinesisEvent) (batchResult, error) {
	r.metrics.reset()
	r.db.reset()
	resp, err := r.p.Handle(ctx, ev)
	if err != nil {
		return batchResult{}, fmt.Errorf("handle batch: %w", err)
	}
	m, ok := r.metrics.last()
	if !ok {
		return batchResult{}, fmt.Errorf("handle batch: the processor wrote no metrics line")
	}
	res := batchResult{
		counts: RecordCounts{
			Read: len(ev.Records), Written: m[processor.MetricRecordsWritten], Skipped: m[processor.MetricRecordsSkipped],
			ToErrorTable: m[processor.MetricRecordsToErrorTable], Failed: m[processor.MetricRecordsFailed],
		},
		errorReasons: r.db.reasons(),
	}
	if len(resp.BatchItemFailures) > 0 {
		res.reported = resp.BatchItemFailures[0].ItemIdentifier
	}
	return res, nil
}

// metricsCapture keeps the counts of the processor's last Embedded Metric Format line.
type metricsCapture struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	count map[string]int
}

// Write keeps the processor's metric lines.
func (m *metricsCapture) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf.Write(p)
	for {
		line, err := m.buf.ReadBytes('\n')
		if err != nil { // no full line yet: keep the rest
			rest := append([]byte(nil), line...)
			m.buf.Reset()
			m.buf.Write(rest)
			break
		}
		var v map[string]any
		if json.Unmarshal(line, &v) != nil {
			continue
		}
		c := map[string]int{}
		for _, name := range []string{processor.MetricRecordsWritten, processor.MetricRecordsSkipped,
			processor.MetricRecordsToErrorTable, processor.MetricRecordsFailed} {
			if f, ok := v[name].(float64); ok {
				c[name] = int(f)
			}
		}
		m.count = c
	}
	return len(p), nil
}

func (m *metricsCapture) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf.Reset()
	m.count = nil
}

func (m *metricsCapture) last() (map[string]int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count, m.count != nil
}

// recordingDB passes writes on and notes the reason of every error item written to the error table.
type recordingDB struct {
	processor.DB
	errorTable string

	mu     sync.Mutex
	reason map[string]string
}

func (d *recordingDB) note(item map[string]types.AttributeValue) {
	id, _ := item[processor.ErrorTablePartitionKey].(*types.AttributeValueMemberS)
	reason, _ := item[processor.ErrorAttrReason].(*types.AttributeValueMemberS)
	if id == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reason == nil {
		d.reason = map[string]string{}
	}
	if reason != nil {
		d.reason[id.Value] = reason.Value
	} else {
		d.reason[id.Value] = ""
	}
}

func (d *recordingDB) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reason = nil
}

func (d *recordingDB) reasons() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]string, len(d.reason))
	for k, v := range d.reason {
		out[k] = v
	}
	return out
}

// BatchWriteItem notes the error items, then writes.
func (d *recordingDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if d.errorTable != "" {
		for _, w := range in.RequestItems[d.errorTable] {
			if w.PutRequest != nil {
				d.note(w.PutRequest.Item)
			}
		}
	}
	return d.DB.BatchWriteItem(ctx, in, optFns...)
}

// PutItem notes an error item, then writes.
func (d *recordingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if d.errorTable != "" && in.TableName != nil && *in.TableName == d.errorTable {
		d.note(in.Item)
	}
	return d.DB.PutItem(ctx, in, optFns...)
}

// discardDB accepts every write and stores nothing: the processor's DB in a dry run.
type discardDB struct{}

// BatchWriteItem accepts every item.
func (discardDB) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// PutItem accepts the item.
func (discardDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}
