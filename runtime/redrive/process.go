package redrive

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/emfcount"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// runner runs batches through the processor and tells what became of their records: the counts come from the
// processor's metrics line (one per Handle call, on Options.MetricsWriter), the reasons of records sent to the error
// table from the error items the processor writes. Calls must not overlap.
//
// It holds two processors over the same tables and configuration. verified writes records the stream vouches for
// (read from it, or compared with it) with processor.Options.ConditionalWrites: a replayed record never overwrites
// the item of a later record of its shard. unverified writes records the stream cannot vouch for with
// processor.Options.InsertOnly: never over any existing item (with Options.AllowOverwriteUnverified, conditionally
// like verified).
type runner struct {
	verified, unverified *processor.Processor
	metrics              *emfcount.Capture
	db                   *recordingDB

	// With Options.CountUnseen: verified without it, for on-failure ranges the ledger shows are not of a batch it
	// missed (distrusted), and the ledger that tells (nil without CountUnseen).
	verifiedNoUnseen *processor.Processor
	ledger           *aggregate.Store
}

func newRunner(db DB, o Options) (*runner, error) {
	mc := &emfcount.Capture{}
	// verified: the stream vouches for the records' payload; unseen: count unseen records (Options.CountUnseen).
	build := func(insertOnly, verified, unseen bool) (*processor.Processor, *recordingDB, error) {
		var pdb processor.DB = db
		if o.DryRun {
			pdb = &dryRunDB{real: db, table: o.TableName, aggregateTable: o.AggregateTableName, keys: o.Config.KeyNames(), insertOnly: insertOnly}
		}
		rdb := &recordingDB{DB: pdb, errorTable: o.ErrorTableName}
		fns := make([]func(*processor.Options), 0, len(o.ProcessorOptions)+2)
		fns = append(fns, func(po *processor.Options) {
			po.TableName = o.TableName
			po.ErrorTableName = o.ErrorTableName
			po.Config = o.Config
			po.Logger = o.Logger
		})
		fns = append(fns, o.ProcessorOptions...)
		// Every redrive replays records from the past: set last, so no caller's option turns the conditions off.
		fns = append(fns, func(po *processor.Options) {
			po.MetricsWriter, po.ConditionalWrites, po.InsertOnly = mc, true, insertOnly
			// Out of stream order: never the pipeline's fenced counting (see runtime/aggregate), a recount or nothing.
			// Unseen records are counted on the word of the on-failure range: only with the stream's own payload.
			aggregateOptions(po, o.AggregateTableName, o.SkipAggregates, unseen)
			// Unverified payloads may be forged: counted only on the operator's word.
			po.Unverified, po.RecountUnverified = !verified, !verified && o.CountUnverified
		})
		p, err := processor.New(rdb, fns...)
		return p, rdb, err
	}
	verified, rdb, err := build(false, true, o.CountUnseen)
	if err != nil {
		return nil, err
	}
	unverified, urdb, err := build(!o.AllowOverwriteUnverified, false, false)
	if err != nil {
		return nil, err
	}
	urdb.shared = rdb // one record of error reasons for both
	run := &runner{verified: verified, unverified: unverified, metrics: mc, db: rdb}
	if o.CountUnseen && !o.SkipAggregates && o.AggregateTableName != "" && len(o.Config.Aggregates) > 0 {
		nrdb := (*recordingDB)(nil)
		if run.verifiedNoUnseen, nrdb, err = build(false, true, false); err != nil {
			return nil, err
		}
		nrdb.shared = rdb
		run.ledger = &aggregate.Store{DB: db, Table: o.AggregateTableName}
	}
	return run, nil
}

// distrustRange reports whether the unseen records of bi's range must not be counted on its word
// (Options.CountUnseen), and why: the ledger saw its first or its last record delivered (marked, in a give-up range
// or in flight), so a batch of the range reached the ledger and the range's unseen records are records the pipeline
// counted (the range reaches back before the checkpoint of the batch given up, or on past it: a range naming the
// batch first read, of which bisection gave up only a part), not records of a batch the ledger missed. A failed
// check distrusts the range too.
func (r *runner) distrustRange(ctx context.Context, bi KinesisBatchInfo) (bool, string) {
	if r.ledger == nil {
		return false, ""
	}
	for _, end := range []struct{ name, seq string }{{"last", bi.EndSequenceNumber}, {"first", bi.StartSequenceNumber}} {
		p, err := processor.EncodePosition(bi.ShardID, end.seq, 0)
		if err != nil {
			return true, fmt.Sprintf("--count-unseen not applied to this range: its %s record has no position: %v", end.name, err)
		}
		seen, err := r.ledger.Seen(ctx, bi.ShardID, p)
		switch {
		case err != nil:
			return true, fmt.Sprintf("--count-unseen not applied to this range: the aggregate ledger could not be read: %v", err)
		case seen:
			return true, "--count-unseen not applied to this range: the aggregate ledger saw its " + end.name + " record delivered, so the range " +
				"reaches over records the pipeline counted (it is not just a batch given up before it reached the ledger)"
		}
	}
	return false, ""
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
func (b batchResult) ok() bool {
	return b.counts.Failed == 0 && b.counts.Refused == 0 && b.reported == ""
}

// handle runs ev through the verified processor when verified, else through the unverified one.
func (r *runner) handle(ctx context.Context, ev events.KinesisEvent, verified bool) (batchResult, error) {
	return r.handleWith(ctx, ev, verified, false)
}

// handleWith is handle; distrust (verified records of a range distrustRange refused) runs them without
// Options.CountUnseen.
func (r *runner) handleWith(ctx context.Context, ev events.KinesisEvent, verified, distrust bool) (batchResult, error) {
	r.metrics.Reset()
	r.db.reset()
	p := r.unverified
	if verified {
		p = r.verified
	}
	if verified && distrust && r.verifiedNoUnseen != nil {
		p = r.verifiedNoUnseen
	}
	resp, err := p.Handle(ctx, ev)
	if err != nil {
		return batchResult{}, fmt.Errorf("handle batch: %w", err)
	}
	m, ok := r.metrics.Last()
	if !ok {
		return batchResult{}, fmt.Errorf("handle batch: the processor wrote no metrics line")
	}
	res := batchResult{
		counts: RecordCounts{
			Read: len(ev.Records), Written: m[processor.MetricRecordsWritten], Skipped: m[processor.MetricRecordsSkipped],
			ToErrorTable: m[processor.MetricRecordsToErrorTable], Failed: m[processor.MetricRecordsFailed],
			Refused: m[processor.MetricRecordsRefused], Recounted: r.metrics.Recounted(), Unseen: r.metrics.Unseen(),
			Unverified: r.metrics.Unverified(),
			Forgotten:  r.metrics.Forgotten(),
			NoLedger:   r.metrics.NoLedger(),
		},
		errorReasons: r.db.reasons(),
	}
	if len(resp.BatchItemFailures) > 0 {
		res.reported = resp.BatchItemFailures[0].ItemIdentifier
	}
	return res, nil
}

// recordingDB passes writes on and notes the reason of every error item written to the error table. It reads items
// through its DB too (processor.ItemReader, for insert-only writes).
type recordingDB struct {
	processor.DB
	errorTable string
	shared     *recordingDB // when set, reasons are noted there

	mu     sync.Mutex
	reason map[string]string
}

// GetItem reads through the DB, which must implement processor.ItemReader (every DB a runner is built on does).
func (d *recordingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	r, ok := d.DB.(processor.ItemReader)
	if !ok {
		return nil, fmt.Errorf("get item: %T cannot read items", d.DB)
	}
	return r.GetItem(ctx, in, optFns...)
}

func (d *recordingDB) note(item map[string]types.AttributeValue) {
	if d.shared != nil {
		d.shared.note(item)
		return
	}
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

// dryRunDB is the processor's DB in a dry run: it writes nothing and reads through to the real tables. A write to
// the data table by an insert-only processor is answered as DynamoDB would answer it (ConditionalCheckFailedException
// when the key holds an item), so that the processor tells a rerun from a refusal as it would for real; every other
// write is accepted (a conditional write that would fail counts as stored, superseded, just like one that succeeds).
// Writes to the aggregate table (a recount's) are accepted and counted, never sent: a dry run recounts nothing, it
// only reads the aggregate table to say what it would recount.
type dryRunDB struct {
	real           DB
	table          string
	aggregateTable string
	keys           []string
	insertOnly     bool

	mu              sync.Mutex
	aggregateWrites int // writes to the aggregate table accepted, not sent
}

// noteAggregateWrite counts a write to the aggregate table, if table is it.
func (d *dryRunDB) noteAggregateWrite(table *string) {
	if d.aggregateTable != "" && aws.ToString(table) == d.aggregateTable {
		d.mu.Lock()
		d.aggregateWrites++
		d.mu.Unlock()
	}
}

// BatchWriteItem accepts every item.
func (d *dryRunDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	for table, ws := range in.RequestItems {
		for range ws {
			d.noteAggregateWrite(&table)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// PutItem accepts the item, or, for an insert into the data table whose key holds an item, fails its condition.
func (d *dryRunDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	d.noteAggregateWrite(in.TableName)
	if !d.insertOnly || in.TableName == nil || *in.TableName != d.table || in.ConditionExpression == nil {
		return &dynamodb.PutItemOutput{}, nil
	}
	key := make(map[string]types.AttributeValue, len(d.keys))
	for _, k := range d.keys {
		if v, ok := in.Item[k]; ok {
			key[k] = v
		}
	}
	out, err := d.real.GetItem(ctx, &dynamodb.GetItemInput{TableName: in.TableName, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("dry run: read the item the insert would meet: %w", err)
	}
	if len(out.Item) > 0 {
		return nil, &types.ConditionalCheckFailedException{Message: aws.String("dry run: the key holds an item")}
	}
	return &dynamodb.PutItemOutput{}, nil
}

// GetItem reads from the real table.
func (d *dryRunDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return d.real.GetItem(ctx, in, optFns...)
}
