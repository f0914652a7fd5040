package redrive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/kinesisread"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// DB is the part of the DynamoDB API a Redriver uses: the processor's writes, and Scan, GetItem, BatchGetItem
// (payloads stored in parts) and DeleteItem on the error table. *dynamodb.Client satisfies it.
type DB interface {
	processor.DB
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Kinesis is the part of the Kinesis API a Redriver uses to read ranges back. *kinesis.Client satisfies it.
type Kinesis interface {
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// SQS is the part of the SQS API Redriver.DLQ uses. *sqs.Client satisfies it.
type SQS interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// S3 is the part of the S3 API Redriver.S3 uses. *s3.Client satisfies it.
type S3 interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var (
	_ DB      = (*dynamodb.Client)(nil)
	_ Kinesis = (*kinesis.Client)(nil)
	_ SQS     = (*sqs.Client)(nil)
	_ S3      = (*s3.Client)(nil)
)

// Clients are the AWS clients a Redriver uses. DB is always needed; Kinesis for DLQ (and S3 objects without a
// payload), SQS for DLQ, S3 for S3.
type Clients struct {
	DB      DB
	Kinesis Kinesis
	SQS     SQS
	S3      S3
}

// DefaultBatchSize is the default number of records handled per processor call.
const DefaultBatchSize = 100

// Options configure a Redriver. New sets the defaults, applies the caller's functions, then checks the result.
type Options struct {
	// TableName is the pipeline's data table. Required.
	TableName string
	// ErrorTableName is the pipeline's error table. Required for Errors; for DLQ and S3, records that fail
	// permanently go there, as in the pipeline. Default: "" (no error table: a permanent failure leaves its source
	// unrecovered).
	ErrorTableName string
	// StreamARN pins the pipeline's stream, "arn:<partition>:kinesis:<region>:<account>:stream/<name>". Required for
	// DLQ and S3: a message or object naming another stream (compared by partition, region, account and name) is
	// left where it is (OutcomeForeignStream), and every range is read from this stream. For Errors it is optional:
	// with it, each entry is checked against the record the stream still holds (see the package documentation);
	// without it, every entry is unverified. The pin is a comparison only: the stream need not exist any more.
	// Default: "".
	StreamARN string
	// AllowOverwriteUnverified writes records the stream cannot vouch for (S3 payload records past the stream's
	// retention, error-table entries not verified against the stream) with processor.Options.ConditionalWrites, as
	// verified records are, instead of processor.Options.InsertOnly. The risk: a forged object or entry can then
	// overwrite real items (items written from earlier records of the shard it claims, and items without a
	// position). Default: false, unverified records are only inserted where their key is free.
	AllowOverwriteUnverified bool
	// Config is the pipeline's static configuration (its pipeline.json). Default: processor.DefaultConfig().
	Config processor.Config
	// ProcessorOptions are applied to the processor's options after the table names and Config: set a custom
	// Transform here to redrive a pipeline built with one. Default: none.
	ProcessorOptions []func(*processor.Options)
	// AggregateTableName is the pipeline's aggregate table. Required when Config has aggregates, unless
	// SkipAggregates: each record stored is then counted into the aggregates where the pipeline did not count it
	// (sent to the error table, given up on by the event source mapping), exactly once, whatever ran before
	// (processor.Options.RecountAggregates; see package runtime/aggregate). Default: "".
	AggregateTableName string
	// SkipAggregates stores the records without counting them into Config's aggregates (data only,
	// processor.Options.SkipAggregates): the records it stores stay uncounted. A later replay of their window with
	// AggregateTableName counts them, while the stream holds them. Default: false.
	SkipAggregates bool
	// CountUnseen also counts records the aggregate ledger never saw delivered (processor.Options.RecountUnseen):
	// the records of a batch the event source mapping gave up on while the aggregate table was unreachable for all
	// its attempts (a DynamoDB outage), which no ledger item names. It trusts the on-failure source's ranges, so set
	// it only for the DLQ and S3 inputs, and only when nothing but Lambda writes the queue or bucket: a range forged
	// over records the pipeline counted would count them twice. Default: false: those records stay uncounted.
	CountUnseen bool
	// CountUnverified also counts into the aggregates the records whose payload the stream cannot vouch for (S3
	// payload records past the stream's retention, error-table entries not verified against it;
	// processor.Options.RecountUnverified), on the operator's word: anyone able to write the error table, the
	// bucket or the queue could forge a payload at a position the ledger says the pipeline did not count, and its
	// values would be counted. Default: false: those records are stored (insert-only) but stay uncounted, named in
	// RecordCounts.Unverified, and their sources are kept. It needs StreamARN.
	CountUnverified bool
	// DryRun reads and transforms but writes and deletes nothing. Default: false.
	DryRun bool
	// Rate is the most records processed per second; 0 means no limit. Default: 0.
	Rate float64
	// BatchSize is the most records handled per processor call. Default: DefaultBatchSize.
	BatchSize int
	// Logger receives the processor's logs (per-record failures at Warn, a summary per call at Info) and the
	// Redriver's notes about each source. Default: a logger that discards everything.
	Logger *slog.Logger
	// Progress, when set, is called with the running summary after each source. Default: nil.
	Progress func(Summary)
	// Result, when set, is called with each source's result as soon as it is known. Default: nil.
	Result func(Result)
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// Redriver re-processes failed records. Its methods are not safe for concurrent use.
type Redriver struct {
	c       Clients
	opts    Options
	pin     *StreamRef // Options.StreamARN parsed; nil without it
	run     *runner
	limiter kinesisread.Limiter
	sum     Summary
	began   time.Time
}

// New returns a Redriver. It sets the defaults, applies optFns in order, then checks the options and builds the
// processor (compiling the configuration's transform), reporting every problem at once.
func New(c Clients, optFns ...func(*Options)) (*Redriver, error) {
	o := Options{Config: processor.DefaultConfig(), BatchSize: DefaultBatchSize, Now: time.Now}
	for _, fn := range optFns {
		if fn != nil {
			fn(&o)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	var errs []error
	if c.DB == nil {
		errs = append(errs, errors.New("clients: DB is nil"))
	}
	if err := kinesisread.CheckRate(o.Rate); err != nil {
		errs = append(errs, err)
	}
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch size %d is negative", o.BatchSize))
	}
	if err := CheckAggregates(o.Config, o.AggregateTableName, o.SkipAggregates); err != nil {
		errs = append(errs, err)
	}
	if o.CountUnverified && o.StreamARN == "" {
		// Without the pin every error entry is unverified, even one the stream holds and would refute: counting them
		// all on their word would count a forged entry's values (in the window of its forged arrival time) beside
		// the real record's.
		errs = append(errs, errors.New("CountUnverified needs StreamARN: the entries the stream still holds must be verified against it, not counted on their word"))
	}
	var pin *StreamRef
	if o.StreamARN != "" {
		ref, err := ParseStreamARN(o.StreamARN)
		if err != nil {
			errs = append(errs, fmt.Errorf("stream: %w", err))
		}
		pin = &ref
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new redriver: %w", err)
	}
	r := &Redriver{c: c, opts: o, pin: pin, limiter: kinesisread.Limiter{Rate: o.Rate, Now: o.Now}}
	run, err := newRunner(c.DB, o)
	if err != nil {
		return nil, fmt.Errorf("new redriver: %w", err)
	}
	r.run = run
	return r, nil
}

// Outcome is what became of one source: a DLQ message, an S3 object or an error-table entry.
type Outcome string

// Outcomes. OutcomeRecovered and OutcomeWouldRecover leave nothing behind; every other outcome leaves its source
// where it was and counts as unrecovered.
const (
	// OutcomeRecovered: every record is stored (in the data table, skipped by the transform, or, for DLQ and S3, in
	// the error table) and the source was removed (an S3 object only with S3Input.Delete).
	OutcomeRecovered Outcome = "recovered"
	// OutcomeWouldRecover: dry run; every record would be stored and the source removed.
	OutcomeWouldRecover Outcome = "would-recover"
	// OutcomeExpired: the range cannot be read in full from the stream any more (past retention, stream or shard
	// gone); the records still readable were processed. The source is kept.
	OutcomeExpired Outcome = "expired"
	// OutcomeFailed: some record was not stored (a transient failure, throttling, or a permanent failure without an
	// error table), or the source could not be read or removed. The source is kept; run again.
	OutcomeFailed Outcome = "failed"
	// OutcomeFailedAgain: an error-table entry's record failed permanently again; the processor rewrote its entry
	// with the new reason.
	OutcomeFailedAgain Outcome = "failed-again"
	// OutcomeInvalid: the source cannot be re-processed as it is (not an invocation record, a truncated payload).
	// It is kept.
	OutcomeInvalid Outcome = "invalid"
	// OutcomeForeignStream: the source names another stream than the pinned one (Options.StreamARN), in its range
	// or in its payload's records. Nothing is read or written; the source is kept.
	OutcomeForeignStream Outcome = "foreign-stream"
	// OutcomePayloadDiffers: an S3 object's payload, or an error-table entry's, differs from the records the stream
	// holds for it (data, partition key or sequence numbers), or claims records the stream does not have where it
	// still holds the range. Nothing of the source is written; it is kept. Look at it: someone who can write the
	// bucket or the table may have forged it.
	OutcomePayloadDiffers Outcome = "payload-differs"
	// OutcomeRefused: an unverified record was written insert-only (processor.Options.InsertOnly) and its key holds
	// another record's item, which is left as it is. The source is kept. A rerun refuses it again; decide with the
	// item in front of you (AllowOverwriteUnverified writes it conditionally instead).
	OutcomeRefused Outcome = "refused"
)

// Result is what became of one source.
type Result struct {
	// Source names the source: "sqs:<message id>", "s3://<bucket>/<key>" or "error:<id>".
	Source string
	// Outcome is what became of it.
	Outcome Outcome
	// Reason says why, for every outcome but OutcomeRecovered and OutcomeWouldRecover.
	Reason string
	// ShardID, StartSequenceNumber and EndSequenceNumber name the records the source points at.
	ShardID, StartSequenceNumber, EndSequenceNumber string
	// Records counts what became of the source's records.
	Records RecordCounts
	// Removed reports whether the source was deleted.
	Removed bool
}

// RecordCounts counts records by what became of them, as the processor reports them (a KPL aggregate counts once
// per user record).
type RecordCounts struct {
	// Read counts Kinesis records read (from the stream, a payload or an error entry).
	Read int
	// Written counts records whose items are all stored in the data table.
	Written int
	// Skipped counts records the transform skipped.
	Skipped int
	// ToErrorTable counts records stored in the error table.
	ToErrorTable int
	// Failed counts records not stored anywhere.
	Failed int
	// Refused counts unverified records not stored because their key holds another record's item
	// (processor.MetricRecordsRefused).
	Refused int
	// Recounted counts records counted into the aggregates because the pipeline had not counted them
	// (processor.MetricAggregateRecounted); in a dry run, records that would be.
	Recounted int
	// Unseen counts records stored but not counted because the aggregate ledger never saw them delivered
	// (processor.MetricAggregateUnseen): in an on-failure range, records of a batch given up while none of its
	// attempts reached the aggregate table; Options.CountUnseen counts them.
	Unseen int
	// Unverified counts records stored but not counted into the aggregates because their payload was not
	// verified against the stream (processor.MetricAggregateUnverified); Options.CountUnverified counts them.
	Unverified int
	// Forgotten counts records stored but not counted because they lie before a give-up range the aggregate
	// ledger dropped (processor.MetricAggregateForgotten): they may be uncounted, and nothing counts them
	// (not even Options.CountUnseen); their sources are kept.
	Forgotten int
	// NoLedger counts records stored but not counted because the aggregate ledger holds no state for their shard
	// (processor.MetricAggregateNoLedger): the pipeline never ran the ledger there (every attempt of its batches
	// failed before reaching the aggregate table, or they predate the ledger), so nothing tells whether they were
	// counted, and nothing counts them (not even Options.CountUnseen); their sources are kept.
	NoLedger int
}

func (c *RecordCounts) add(o RecordCounts) {
	c.Read += o.Read
	c.Written += o.Written
	c.Skipped += o.Skipped
	c.ToErrorTable += o.ToErrorTable
	c.Failed += o.Failed
	c.Refused += o.Refused
	c.Recounted += o.Recounted
	c.Unseen += o.Unseen
	c.Unverified += o.Unverified
	c.Forgotten += o.Forgotten
	c.NoLedger += o.NoLedger
}

// Summary counts a run's sources by outcome and their records.
type Summary struct {
	// Sources counts sources by outcome.
	Sources map[Outcome]int
	// Records counts records.
	Records RecordCounts
	// Removed counts sources deleted.
	Removed int
	// Unrecoverable lists every source whose outcome is neither OutcomeRecovered nor OutcomeWouldRecover.
	Unrecoverable []Result
	// Elapsed is the time since the run began.
	Elapsed time.Duration
	// DryRun reports whether the run was a dry run.
	DryRun bool
	// Aggregates says what the run did with the configuration's aggregates.
	Aggregates AggregateMode
}

// Total returns the number of sources seen.
func (s Summary) Total() int {
	n := 0
	for _, v := range s.Sources {
		n += v
	}
	return n
}

// Unrecovered returns the number of sources left behind.
func (s Summary) Unrecovered() int { return len(s.Unrecoverable) }

// RecordsPerSecond returns the records read per second so far.
func (s Summary) RecordsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Records.Read) / s.Elapsed.Seconds()
}

func (s Summary) clone() Summary {
	c := s
	c.Sources = make(map[Outcome]int, len(s.Sources))
	for k, v := range s.Sources {
		c.Sources[k] = v
	}
	c.Unrecoverable = append([]Result(nil), s.Unrecoverable...)
	return c
}

// start resets the running summary.
func (r *Redriver) start() {
	r.began = r.opts.Now()
	r.sum = Summary{Sources: map[Outcome]int{}, DryRun: r.opts.DryRun, Aggregates: AggregateModeOf(r.opts.Config, r.opts.SkipAggregates)}
}

// record adds a source's result to the running summary and reports it.
func (r *Redriver) record(res Result) {
	if r.opts.DryRun && res.Outcome == OutcomeRecovered {
		res.Outcome = OutcomeWouldRecover
	}
	r.sum.Sources[res.Outcome]++
	r.sum.Records.add(res.Records)
	if res.Removed {
		r.sum.Removed++
	}
	if res.Outcome != OutcomeRecovered && res.Outcome != OutcomeWouldRecover {
		r.sum.Unrecoverable = append(r.sum.Unrecoverable, res)
		r.opts.Logger.Info("source left behind", "source", res.Source, "outcome", string(res.Outcome), "reason", res.Reason,
			"shardId", res.ShardID, "startSequenceNumber", res.StartSequenceNumber, "endSequenceNumber", res.EndSequenceNumber)
	}
	r.sum.Elapsed = r.opts.Now().Sub(r.began)
	if r.opts.Result != nil {
		r.opts.Result(res)
	}
	if r.opts.Progress != nil {
		r.opts.Progress(r.sum.clone())
	}
}

// finish returns the run's summary.
func (r *Redriver) finish() Summary {
	r.sum.Elapsed = r.opts.Now().Sub(r.began)
	return r.sum.clone()
}
