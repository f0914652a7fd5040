package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/emfcount"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// shardProcessor is one shard's processor: its own metrics and write counts, so shards replayed side by side never
// mix their counts. Calls must not overlap.
type shardProcessor struct {
	p       *processor.Processor
	metrics *emfcount.Capture
	db      *countingDB
}

// newShardProcessor builds the pipeline's processor over the tables, with conditional writes forced on, for a shard
// that descends from the shards ancestors (see countingDB: their items are older than any of its records).
func (r *Replayer) newShardProcessor(ancestors []string) (*shardProcessor, error) {
	o := r.opts
	var older [][]byte
	for _, a := range ancestors {
		if p, err := processor.PositionShardPrefix(a); err == nil {
			older = append(older, p)
		}
	}
	var base DB = r.c.DB
	keys := o.Config.KeyNames()
	if o.DryRun {
		base = &dryRunDB{real: r.c.DB, table: o.TableName, aggregateTable: o.AggregateTableName, keys: keys, older: older}
	}
	cdb := &countingDB{DB: base, table: o.TableName, keys: keys, older: older, retry: !o.DryRun}
	mc := &emfcount.Capture{}
	fns := make([]func(*processor.Options), 0, len(o.ProcessorOptions)+2)
	fns = append(fns, func(po *processor.Options) {
		po.TableName, po.ErrorTableName, po.Config, po.Logger = o.TableName, o.ErrorTableName, o.Config, o.Logger
	})
	fns = append(fns, o.ProcessorOptions...)
	// A replay writes records from the past: set last, so no caller's option turns the condition off.
	fns = append(fns, func(po *processor.Options) {
		po.MetricsWriter, po.ConditionalWrites, po.InsertOnly = mc, true, false
		// A window out of the mapping's order: never the pipeline's fenced counting (see runtime/aggregate), a
		// recount or nothing.
		po.AggregateTableName = o.AggregateTableName
		po.SkipAggregates, po.RecountAggregates = o.SkipAggregates, !o.SkipAggregates
		// Every record comes from the stream (GetRecords): verified, counted like the pipeline's own.
		po.Unverified = false
	})
	p, err := processor.New(cdb, fns...)
	if err != nil {
		return nil, err
	}
	return &shardProcessor{p: p, metrics: mc, db: cdb}, nil
}

// handle runs recs through the processor and counts what became of them. An error means the processor could not
// run the batch at all (its records count as failed).
func (sp *shardProcessor) handle(ctx context.Context, recs []events.KinesisEventRecord) (Counts, error) {
	sp.metrics.Reset()
	sp.db.reset()
	c := Counts{Read: len(recs)}
	_, err := sp.p.Handle(ctx, events.KinesisEvent{Records: recs})
	if err != nil {
		c.Failed = len(recs)
		return c, fmt.Errorf("handle batch: %w", err)
	}
	m, ok := sp.metrics.Last()
	if !ok {
		c.Failed = len(recs)
		return c, errors.New("handle batch: the processor wrote no metrics line")
	}
	c.Stored, c.Skipped = m[processor.MetricRecordsWritten], m[processor.MetricRecordsSkipped]
	c.ToErrorTable, c.Failed = m[processor.MetricRecordsToErrorTable], m[processor.MetricRecordsFailed]+m[processor.MetricRecordsRefused]
	c.Written, c.Superseded = sp.db.counts()
	c.Recounted = sp.metrics.Recounted()
	c.Forgotten = sp.metrics.Forgotten()
	return c, nil
}

// countingDB counts the data table's conditional writes: written, or superseded (the condition failed).
//
// It also corrects the processor's condition for a shard born of a reshard. The condition never overwrites an item
// written from another shard, but an item written from an ancestor shard (older) is always older than any record of
// its descendants: a parent's records all arrived before it closed, a child's after it opened. So when the
// condition fails (retry set), the item there is read; if it comes from an ancestor (older), the write is made again
// on the condition that the item is still that one. Without this, replaying a resharded stream into a table that
// does not hold the children's items (a rebuild, or items the live pipeline failed to write) left every key with a
// record in both a parent and a child at the parent's older version.
type countingDB struct {
	DB
	table string
	keys  []string // the data table's key attribute names
	older [][]byte // position prefixes of the shard's ancestors
	retry bool     // replace an ancestor's item (not in a dry run: dryRunDB predicts it)

	mu                  sync.Mutex
	written, superseded int
}

// PutItem writes and counts a data item's outcome.
func (d *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := d.DB.PutItem(ctx, in, optFns...)
	if d.retry && len(d.older) > 0 && aws.ToString(in.TableName) == d.table && in.ConditionExpression != nil && conditionFailed(err) {
		if o, ok, e := d.replaceOlder(ctx, in, optFns...); ok {
			out, err = o, e
		}
	}
	if aws.ToString(in.TableName) == d.table {
		d.mu.Lock()
		switch {
		case err == nil:
			d.written++
		case conditionFailed(err):
			d.superseded++
		}
		d.mu.Unlock()
	}
	return out, err
}

// replaceOlder writes in's item again if the item at its key was written from one of the shard's ancestors, on the
// condition that it is still that item. ok is false when the item there is not an ancestor's (the first answer
// stands).
func (d *countingDB) replaceOlder(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (out *dynamodb.PutItemOutput, ok bool, err error) {
	key := make(map[string]types.AttributeValue, len(d.keys))
	for _, k := range d.keys {
		v, found := in.Item[k]
		if !found {
			return nil, false, nil
		}
		key[k] = v
	}
	got, err := d.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: in.TableName, Key: key, ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String("#p"), ExpressionAttributeNames: map[string]string{"#p": processor.AttrPosition}})
	if err != nil {
		return nil, true, fmt.Errorf("read the item a conditional write met: %w", err)
	}
	stored := position(got.Item)
	if !fromOlder(stored, d.older) {
		return nil, false, nil
	}
	again := *in
	again.ConditionExpression = aws.String("#p = :seen")
	again.ExpressionAttributeNames = map[string]string{"#p": processor.AttrPosition}
	again.ExpressionAttributeValues = map[string]types.AttributeValue{":seen": &types.AttributeValueMemberB{Value: stored}}
	out, err = d.DB.PutItem(ctx, &again, optFns...)
	return out, true, err
}

// fromOlder reports whether position stored was written from a shard whose position prefix is in older.
func fromOlder(stored []byte, older [][]byte) bool {
	for _, p := range older {
		if len(stored) > len(p) && bytes.HasPrefix(stored, p) {
			return true
		}
	}
	return false
}

func (d *countingDB) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.written, d.superseded = 0, 0
}

func (d *countingDB) counts() (written, superseded int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.written, d.superseded
}

func conditionFailed(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ConditionalCheckFailedException"
}

// dryRunDB is the processor's DB in a dry run: it writes nothing and reads through to the real table. A conditional
// write to the data table is answered as DynamoDB would answer it: the item there (read strongly consistent) is
// compared with the written record's position (the condition's :p) by the rule of processor.Options.ConditionalWrites (no item, no
// position, an unverified position, or a position of the same shard not later than this one: written; else the
// condition fails). Every other write is accepted. Writes to the aggregate table (a recount's) are accepted and
// counted, never sent: a dry run recounts nothing, it only reads the aggregate table to say what it would recount.
type dryRunDB struct {
	real           DB
	table          string
	aggregateTable string
	keys           []string
	older          [][]byte // position prefixes of the shard's ancestors: their items are replaced (see countingDB)

	mu              sync.Mutex
	aggregateWrites int // writes to the aggregate table accepted, not sent
}

// noteAggregateWrite counts a write to the aggregate table, if table is it.
func (d *dryRunDB) noteAggregateWrite(table string) {
	if d.aggregateTable != "" && table == d.aggregateTable {
		d.mu.Lock()
		d.aggregateWrites++
		d.mu.Unlock()
	}
}

// BatchWriteItem accepts every item.
func (d *dryRunDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	for table, ws := range in.RequestItems {
		for range ws {
			d.noteAggregateWrite(table)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// PutItem predicts a data item's conditional write; it accepts anything else.
func (d *dryRunDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	d.noteAggregateWrite(aws.ToString(in.TableName))
	if aws.ToString(in.TableName) != d.table || in.ConditionExpression == nil {
		return &dynamodb.PutItemOutput{}, nil
	}
	key := make(map[string]types.AttributeValue, len(d.keys))
	for _, k := range d.keys {
		key[k] = in.Item[k]
	}
	out, err := d.real.GetItem(ctx, &dynamodb.GetItemInput{TableName: in.TableName, Key: key, ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String("#p"), ExpressionAttributeNames: map[string]string{"#p": processor.AttrPosition}})
	if err != nil {
		return nil, fmt.Errorf("dry run: read the item the write would meet: %w", err)
	}
	// The record's position is the condition's :p: under an event-id key the item itself carries none (its key names
	// it, see processor.PositionFromEventID).
	pos := position(in.Item)
	if b, ok := in.ExpressionAttributeValues[":p"].(*types.AttributeValueMemberB); ok && b != nil {
		pos = b.Value
	}
	if stored := position(out.Item); !fromOlder(stored, d.older) && !wouldWrite(stored, pos) {
		return nil, &types.ConditionalCheckFailedException{Message: aws.String("dry run: the table holds a later record's item")}
	}
	return &dynamodb.PutItemOutput{}, nil
}

// GetItem reads from the real table.
func (d *dryRunDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return d.real.GetItem(ctx, in, optFns...)
}

func position(item map[string]types.AttributeValue) []byte {
	if b, ok := item[processor.AttrPosition].(*types.AttributeValueMemberB); ok {
		return b.Value
	}
	return nil
}

// wouldWrite tells whether a conditional write of an item at position pos replaces the item at position stored
// (nil: no item, or one without a position): see processor.Options.ConditionalWrites.
func wouldWrite(stored, pos []byte) bool {
	if len(stored) == 0 || processor.PositionUnverified(stored) { // no position, or an unverified one
		return true
	}
	if len(pos) == 0 || len(pos) < 1+int(pos[0]) {
		return false
	}
	prefix := pos[:1+int(pos[0])]
	return bytes.HasPrefix(stored, prefix) && bytes.Compare(stored, pos) <= 0
}
