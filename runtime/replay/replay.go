package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/kinesisread"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// Kinesis is the part of the Kinesis API a Replayer uses. *kinesis.Client satisfies it.
type Kinesis interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// DB is the part of the DynamoDB API a Replayer uses: the processor's writes, and GetItem (a dry run reads the items
// a write would meet). *dynamodb.Client satisfies it.
type DB interface {
	processor.DB
	processor.ItemReader
}

var _ Kinesis = (*kinesis.Client)(nil)

// Clients are the AWS clients a Replayer uses.
type Clients struct {
	DB      DB
	Kinesis Kinesis
}

// Defaults.
const (
	DefaultBatchSize       = 100
	DefaultConcurrency     = 4
	DefaultReadInterval    = 500 * time.Millisecond
	DefaultIteratorTimeout = 5 * time.Second
)

// Options configure a Replayer. New sets the defaults, applies the caller's functions, then checks the result.
type Options struct {
	// StreamARN is the pipeline's stream, "arn:<partition>:kinesis:<region>:<account>:stream/<name>". Required.
	StreamARN string
	// Since is the window's start: records that arrived at or after it are replayed. Required; not in the future.
	Since time.Time
	// Until is the window's end: reading a shard stops at the first record that arrived after it. Default: the
	// time Run starts (the shards' tips then).
	Until time.Time
	// TableName is the pipeline's data table. Required.
	TableName string
	// ErrorTableName is the pipeline's error table: records that fail permanently go there, as in the pipeline.
	// Default: "" (no error table: a permanent failure counts as failed).
	ErrorTableName string
	// Config is the pipeline's static configuration (its pipeline.json). Default: processor.DefaultConfig().
	Config processor.Config
	// ProcessorOptions are applied to the processor's options after the table names and Config (a custom
	// Transform, for instance); conditional writes are forced on after them. Default: none.
	ProcessorOptions []func(*processor.Options)
	// AggregateTableName is the pipeline's aggregate table. Required when Config has aggregates, unless
	// SkipAggregates: each record stored is then counted into the aggregates where the pipeline did not count it
	// (sent to the error table, given up on by the event source mapping, or delivered and not acknowledged yet),
	// exactly once, whatever ran before (processor.Options.RecountAggregates; see package runtime/aggregate).
	// Default: "".
	AggregateTableName string
	// SkipAggregates stores the records without counting them into Config's aggregates (data only,
	// processor.Options.SkipAggregates): records the pipeline did not count stay uncounted. Default: false.
	SkipAggregates bool
	// Shards limits the replay to these shard ids, still parents before children among them. Default: every
	// shard of the stream.
	Shards []string
	// DryRun reads and transforms but writes nothing. Default: false.
	DryRun bool
	// Rate is the most records processed per second over all shards; 0 means no limit. Default: 0.
	Rate float64
	// BatchSize is the most records per processor call. Default: DefaultBatchSize.
	BatchSize int
	// Concurrency is the most shards read at once. Default: DefaultConcurrency.
	Concurrency int
	// ReadInterval is the least time between two GetRecords calls on one shard. Default: DefaultReadInterval
	// (2 reads per second, of the 5 a shard allows, the live event source mapping using about 1).
	ReadInterval time.Duration
	// IteratorTimeout bounds an AT_TIMESTAMP GetShardIterator before falling back to TRIM_HORIZON (see the
	// package documentation). Default: DefaultIteratorTimeout.
	IteratorTimeout time.Duration
	// Logger receives the processor's logs (per-record failures at Warn, superseded items at Info) and the
	// Replayer's notes. Default: discard.
	Logger *slog.Logger
	// Progress, when set, is called with a shard's state after each page it reads and when it ends. It may be
	// called from several goroutines at once. Default: nil.
	Progress func(ShardResult)
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// Counts count what became of records and items.
type Counts struct {
	// Read counts records of the window read from the stream.
	Read int
	// Stored counts records the processor stored: every item written or superseded.
	Stored int
	// Written counts items written to the data table (in a dry run: that would be written).
	Written int
	// Superseded counts items not written because the table holds the key's item from a later record (or from
	// another shard): the table keeps the newer version.
	Superseded int
	// Skipped counts records the transform skipped.
	Skipped int
	// ToErrorTable counts records sent to the error table.
	ToErrorTable int
	// Failed counts records not stored anywhere (a rerun replays them).
	Failed int
	// Recounted counts records counted into the aggregates because the pipeline had not counted them
	// (processor.MetricAggregateRecounted); in a dry run, records that would be.
	Recounted int
	// Forgotten counts records stored but not counted into the aggregates because they lie before a give-up range
	// the aggregate ledger dropped (processor.MetricAggregateForgotten): nothing tells whether the pipeline counted
	// them, and no rerun counts them. kdp replay exits 1 when there are any.
	Forgotten int
}

func (c *Counts) add(o Counts) {
	c.Read += o.Read
	c.Stored += o.Stored
	c.Written += o.Written
	c.Superseded += o.Superseded
	c.Skipped += o.Skipped
	c.ToErrorTable += o.ToErrorTable
	c.Failed += o.Failed
	c.Recounted += o.Recounted
	c.Forgotten += o.Forgotten
}

// ShardState is where a shard's replay is.
type ShardState string

// Shard states.
const (
	ShardWaiting ShardState = "waiting" // waits for its parents
	ShardReading ShardState = "reading" // being read
	ShardDone    ShardState = "done"    // read to the window's end, every record processed
	ShardFailed  ShardState = "failed"  // reading stopped on an error, or records were not stored
	ShardSkipped ShardState = "skipped" // not started: a parent did not complete
	ShardStopped ShardState = "stopped" // interrupted (the context ended)
)

// ShardResult is what became of one shard.
type ShardResult struct {
	// ShardID is the shard.
	ShardID string
	// Parents are its parent shards in the list (one after a split, two after a merge).
	Parents []string
	// State is where it is.
	State ShardState
	// Reason says why, for ShardFailed, ShardSkipped and ShardStopped.
	Reason string
	// Start says how reading started: "AT_TIMESTAMP", or "TRIM_HORIZON" after the fallback.
	Start string
	// End says why reading stopped: a record after the window, the shard's end, or its tip.
	End string
	// FirstSequenceNumber and LastSequenceNumber are the first and last records of the window read;
	// LastArrival is the last one's arrival time: the shard's position.
	FirstSequenceNumber, LastSequenceNumber string
	// LastArrival is the arrival time of the record at LastSequenceNumber.
	LastArrival time.Time
	// Records counts the shard's records.
	Records Counts
	// Elapsed is the time since the shard started.
	Elapsed time.Duration
}

// RecordsPerSecond returns the shard's records read per second.
func (r ShardResult) RecordsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Records.Read) / r.Elapsed.Seconds()
}

// Summary is a run's outcome.
type Summary struct {
	// Stream is the stream's name.
	Stream string
	// Since and Until are the window.
	Since, Until time.Time
	// Shards are the shards, parents before children.
	Shards []ShardResult
	// Records sums the shards' counts.
	Records Counts
	// PastRetention, when not empty, says that the window starts before the stream's retention: records that
	// arrived before the trim horizon are gone.
	PastRetention string
	// DryRun reports whether nothing was written.
	DryRun bool
	// Aggregates says what the run did with the configuration's aggregates.
	Aggregates redrive.AggregateMode
	// Elapsed is the run's time.
	Elapsed time.Duration
}

// Complete reports whether everything in the window was processed: every shard done, no record failed, and the
// window within the stream's retention.
func (s Summary) Complete() bool {
	if s.PastRetention != "" || s.Records.Failed > 0 {
		return false
	}
	for _, sh := range s.Shards {
		if sh.State != ShardDone {
			return false
		}
	}
	return true
}

// UsageError is an error in what the caller asked for (not the stream's or the tables' state): an option, or a
// shard the stream does not have.
type UsageError struct{ Err error }

// Error returns the problem.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the problem.
func (e *UsageError) Unwrap() error { return e.Err }

// Replayer replays a window of a stream. Run may be called more than once, not concurrently.
type Replayer struct {
	c       Clients
	opts    Options
	ref     redrive.StreamRef
	limiter *kinesisread.Limiter
}

// New returns a Replayer. It sets the defaults, applies optFns in order, then checks the options and builds a
// processor once to check the configuration, reporting every problem at once (as a *UsageError).
func New(c Clients, optFns ...func(*Options)) (*Replayer, error) {
	o := Options{Config: processor.DefaultConfig()}
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
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ReadInterval == 0 {
		o.ReadInterval = DefaultReadInterval
	}
	if o.IteratorTimeout == 0 {
		o.IteratorTimeout = DefaultIteratorTimeout
	}
	var errs []error
	if c.DB == nil {
		errs = append(errs, errors.New("clients: DB is nil"))
	}
	if c.Kinesis == nil {
		errs = append(errs, errors.New("clients: Kinesis is nil"))
	}
	ref, err := redrive.ParseStreamARN(o.StreamARN)
	if err != nil {
		errs = append(errs, fmt.Errorf("stream: %w", err))
	}
	now := o.Now()
	switch {
	case o.Since.IsZero():
		errs = append(errs, errors.New("since is required"))
	case o.Since.After(now):
		errs = append(errs, fmt.Errorf("since %s is in the future", o.Since.Format(time.RFC3339)))
	}
	if !o.Until.IsZero() && !o.Since.IsZero() && o.Until.Before(o.Since) {
		errs = append(errs, fmt.Errorf("until %s is before since %s", o.Until.Format(time.RFC3339), o.Since.Format(time.RFC3339)))
	}
	if o.TableName == "" {
		errs = append(errs, errors.New("table name is required"))
	}
	if err := kinesisread.CheckRate(o.Rate); err != nil {
		errs = append(errs, err)
	}
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch size %d is negative", o.BatchSize))
	}
	if o.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency %d is negative", o.Concurrency))
	}
	if err := redrive.CheckAggregates(o.Config, o.AggregateTableName, o.SkipAggregates); err != nil {
		errs = append(errs, err)
	}
	for _, s := range o.Shards {
		if !redrive.ValidShardID(s) {
			errs = append(errs, fmt.Errorf("shard %q is not a shard id (shardId- and 12 digits)", s))
		}
	}
	r := &Replayer{c: c, opts: o, ref: ref, limiter: &kinesisread.Limiter{Rate: o.Rate, Now: o.Now}}
	if len(errs) == 0 {
		if _, err := r.newShardProcessor(nil); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, &UsageError{fmt.Errorf("new replayer: %w", err)}
	}
	return r, nil
}

// Run replays the window. It returns the summary, and an error when the shards cannot be listed (a *UsageError for
// a chosen shard the stream does not have). A shard that fails does not stop the others; the summary says what
// became of each.
func (r *Replayer) Run(ctx context.Context) (Summary, error) {
	began := r.opts.Now()
	until := r.opts.Until
	if until.IsZero() {
		until = began
	}
	sum := Summary{Stream: r.ref.Name, Since: r.opts.Since, Until: until, DryRun: r.opts.DryRun, Aggregates: redrive.AggregateModeOf(r.opts.Config, r.opts.SkipAggregates)}
	var desc *kinesis.DescribeStreamSummaryOutput
	err := r.throttled(ctx, func() error {
		var err error
		desc, err = r.c.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(r.ref.Name), StreamARN: aws.String(r.ref.ARN)})
		return err
	})
	if err != nil {
		return sum, fmt.Errorf("describe stream %s: %w", r.ref.Name, err)
	}
	if d := desc.StreamDescriptionSummary; d != nil && d.RetentionPeriodHours != nil {
		retention := time.Duration(*d.RetentionPeriodHours) * time.Hour
		if horizon := began.Add(-retention); r.opts.Since.Before(horizon) {
			sum.PastRetention = fmt.Sprintf("the window starts at %s, before the stream's retention of %v (records that arrived before %s are gone): what the stream still holds is replayed",
				r.opts.Since.UTC().Format(time.RFC3339), retention, horizon.UTC().Format(time.RFC3339))
		}
	}
	listed, err := r.listShards(ctx)
	if err != nil {
		return sum, err
	}
	shards, err := plan(listed, r.opts.Shards)
	if err != nil {
		return sum, err
	}
	results := make([]ShardResult, len(shards))
	done := make([]chan struct{}, len(shards))
	index := map[string]int{}
	for i, s := range shards {
		done[i] = make(chan struct{})
		index[s.ID] = i
		results[i] = ShardResult{ShardID: s.ID, Parents: s.parents(), State: ShardWaiting}
	}
	sem := make(chan struct{}, max(1, r.opts.Concurrency))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			res := &results[i]
			for _, p := range res.Parents {
				select {
				case <-done[index[p]]:
				case <-ctx.Done():
					res.State, res.Reason = ShardStopped, "interrupted while waiting for parent shard "+p
					return
				}
				if ps := results[index[p]].State; ps != ShardDone {
					res.State, res.Reason = ShardSkipped, fmt.Sprintf("parent shard %s did not complete (%s): its child waits, so a key's older records never land after its newer ones; run again", p, ps)
					r.report(*res)
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				res.State, res.Reason = ShardStopped, "interrupted before it started"
				return
			}
			defer func() { <-sem }()
			r.replayShard(ctx, s, until, res)
		}()
	}
	wg.Wait()
	for _, res := range results {
		sum.Records.add(res.Records)
	}
	sum.Shards = results
	sum.Elapsed = r.opts.Now().Sub(began)
	return sum, nil
}

func (r *Replayer) report(res ShardResult) {
	if r.opts.Progress != nil {
		r.opts.Progress(res)
	}
}

// listShards lists the stream's shards. On AWS, the FROM_TIMESTAMP filter leaves out shards closed before the
// window; kinesalite ignores the filter and lists them all (they are then read and hold nothing in the window).
func (r *Replayer) listShards(ctx context.Context) ([]Shard, error) {
	var out []Shard
	in := &kinesis.ListShardsInput{
		StreamName:  aws.String(r.ref.Name),
		StreamARN:   aws.String(r.ref.ARN), // both, as in every other call: the ARN names the account and region
		ShardFilter: &ktypes.ShardFilter{Type: ktypes.ShardFilterTypeFromTimestamp, Timestamp: aws.Time(r.opts.Since)},
	}
	for pages := 0; pages < 10000; pages++ {
		var page *kinesis.ListShardsOutput
		err := r.throttled(ctx, func() error {
			var err error
			page, err = r.c.Kinesis.ListShards(ctx, in)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", r.ref.Name, err)
		}
		for _, s := range page.Shards {
			sh := Shard{ID: aws.ToString(s.ShardId), Parent: aws.ToString(s.ParentShardId), AdjacentParent: aws.ToString(s.AdjacentParentShardId)}
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				sh.Closed = true
			}
			out = append(out, sh)
		}
		if page.NextToken == nil {
			return out, nil
		}
		// A request with NextToken names no stream.
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
	return nil, fmt.Errorf("list shards of %s: too many pages", r.ref.Name)
}
