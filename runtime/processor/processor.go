package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// DB is the part of the DynamoDB API the processor uses. *dynamodb.Client satisfies it; tests use a fake.
type DB interface {
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// ItemReader is the read Options.InsertOnly needs besides DB: when an insert finds its key taken, the processor reads
// the item there to tell a rerun of the same record from another record's item. *dynamodb.Client satisfies it.
type ItemReader interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

var (
	_ DB         = (*dynamodb.Client)(nil)
	_ ItemReader = (*dynamodb.Client)(nil)
)

// Version is the processor version recorded in error items unless Options.Version says otherwise.
const Version = "0.1.0"

// DefaultMaxInFlight is the default number of BatchWriteItem requests in flight per batch.
const DefaultMaxInFlight = 8

// Options configure a Processor. New sets the defaults, applies the caller's functions, then checks the result.
type Options struct {
	// TableName is the data table's name. Required.
	TableName string
	// ErrorTableName is the error table's name. Default: "" (no error table: permanent failures are reported for
	// retry like transient ones, so the event source mapping's on-failure destination sees them).
	ErrorTableName string
	// Config is the static configuration: the data table's key schema and the error items' time to live.
	// Default: DefaultConfig(); empty fields get their defaults (Config.WithDefaults) and the result is validated.
	Config Config
	// Transform turns records into items. Default: DefaultTransform(Config).
	Transform Transform
	// Logger receives the batch summary (Info) and per-record failures (Warn). Payloads are never logged.
	// Default: a JSON handler on standard error.
	Logger *slog.Logger
	// MetricsWriter receives one CloudWatch Embedded Metric Format line per batch. Default: os.Stdout.
	MetricsWriter io.Writer
	// MaxInFlight bounds the BatchWriteItem requests in flight per batch. Default: DefaultMaxInFlight.
	MaxInFlight int
	// Now returns the current time, for the processed-at and failed-at attributes. Default: time.Now.
	Now func() time.Time
	// Version is the processor version recorded in error items. Default: the package's Version.
	Version string
	// ConditionalWrites makes every data item go to DynamoDB alone, with PutItem and a condition on its position
	// (AttrPosition; the record's position when the item's event-id key names it instead, see the package
	// documentation): the item is written only if the table holds no item with its key, or one without AttrPosition,
	// or one written from the same shard by a record not later than this one (in stream order: sequence number, then
	// sub-sequence number). An item written from another shard is never overwritten: sequence numbers are ordered
	// within a shard only, and after a reshard the child shards hold the newer records of a key. When the condition
	// fails, the item counts as stored (superseded), logged at Info. Within a batch the later record wins either
	// way; the condition extends that to records replayed from the past, as redrive does (from the error table after
	// a fix, or from the stream after a failure). It costs one request per item. Default: false.
	ConditionalWrites bool
	// InsertOnly makes every data item go to DynamoDB alone, with PutItem on the condition that the table holds no
	// item with its key (attribute_not_exists of the partition key). When the key is taken, the item there is read
	// (GetItem, strongly consistent: db must implement ItemReader, as *dynamodb.Client does): if it holds the
	// record's own position (AttrPosition, or, for an item without one under an event-id key, the position its key
	// names), the record was stored before (a rerun) and counts as stored; otherwise
	// the record is refused: not stored, reported in the response like a failed record, counted in
	// MetricRecordsRefused (not MetricRecordsFailed) and logged. For writes that must never replace anything, such
	// as redriving payloads that cannot be verified against the stream. Its items carry their position marked
	// unverified (UnverifiedPosition), so a later ConditionalWrites write of the key replaces them. It wins over
	// ConditionalWrites. It costs one request per item, two when the key is taken. Default: false.
	InsertOnly bool
	// AggregateTableName is the aggregate table's name, required when Config.Aggregates is not empty (db must then
	// implement ItemReader: aggregate items are read, then written on a condition). Default: "".
	AggregateTableName string
	// SkipAggregates leaves Config.Aggregates out: records are processed as without them (the contributions are
	// neither computed nor applied, and no aggregate table is needed): data items only, the records left uncounted
	// (kdp redrive and replay --skip-aggregates). A tool running records outside the event source mapping's order
	// must set this or RecountAggregates, never neither: applying its records in fence order could move a fence past
	// records the pipeline has not applied yet (see runtime/aggregate). Default: false.
	SkipAggregates bool
	// RecountAggregates runs the processor as a redrive or replay does: records come outside the event source
	// mapping's order, so fences are never moved; each stored record is counted only where the aggregate table's
	// ledger shows the pipeline did not count it (sent to the error table, given up by the mapping, or delivered
	// and not acknowledged), exactly once (see runtime/aggregate). It needs AggregateTableName like the pipeline.
	// SkipAggregates wins over it. Default: false.
	RecountAggregates bool
	// RecountUnseen, with RecountAggregates, also counts records the aggregate ledger never saw delivered, which
	// the caller vouches were given up by the event source mapping while none of their attempts reached the
	// aggregate table (aggregate.Store.CountUnseen: for a record the pipeline counted, it counts it twice). For
	// redrives of on-failure ranges whose source only Lambda writes. Default: false.
	RecountUnseen bool
	// Unverified says the records' payloads come from a source the stream did not vouch for (an error-table entry,
	// or a queue message or bucket object past the stream's retention): anyone able to write that source could have
	// forged their values. InsertOnly implies it. With RecountAggregates, the contributions of such records are
	// computed (a record whose contributions cannot be computed still goes to the error table) but never counted,
	// unless RecountUnverified: each stored record left uncounted so is counted in MetricAggregateUnverified.
	// Default: false.
	Unverified bool
	// RecountUnverified, with RecountAggregates, recounts unverified records (Unverified, InsertOnly) as verified
	// ones are, on the caller's word that their source was not forged. Default: false.
	RecountUnverified bool
}

// Processor processes batches of Kinesis records into DynamoDB. It is safe for concurrent use.
type Processor struct {
	db           DB
	opts         Options
	keys         []KeyAttribute // the data table's key attributes: partition key, then sort key
	errKeys      []KeyAttribute // the error table's
	functionName string
	metricsMu    sync.Mutex
	backoffBase  time.Duration // first retry waits up to this long; tests shorten it
	// defaultTransform: the transform is DefaultTransform(Config), which refuses payloads holding AttrPosition;
	// Handle checks that before the schema and filter run.
	defaultTransform bool
	aggs             *aggregates // nil without Config.Aggregates
}

// New returns a Processor that writes through db. It sets the defaults, applies optFns in order, then checks the
// options, reporting every problem at once.
func New(db DB, optFns ...func(*Options)) (*Processor, error) {
	o := Options{
		Config:        DefaultConfig(),
		Logger:        slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		MetricsWriter: os.Stdout,
		MaxInFlight:   DefaultMaxInFlight,
		Now:           time.Now,
		Version:       Version,
	}
	for _, fn := range optFns {
		if fn != nil {
			fn(&o)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if o.MetricsWriter == nil {
		o.MetricsWriter = os.Stdout
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = Version
	}
	o.Config = o.Config.WithDefaults()

	var errs []error
	if db == nil {
		errs = append(errs, errors.New("db is nil"))
	}
	if o.TableName == "" {
		errs = append(errs, errors.New("table name is empty"))
	}
	if o.ErrorTableName != "" && o.ErrorTableName == o.TableName {
		errs = append(errs, fmt.Errorf("error table name %q is the data table's name", o.ErrorTableName))
	}
	if o.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("max in flight: %d is negative", o.MaxInFlight))
	}
	if _, ok := db.(ItemReader); o.InsertOnly && db != nil && !ok {
		errs = append(errs, errors.New("insert only: db cannot read items (it needs a GetItem method: see ItemReader)"))
	}
	if err := o.Config.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("config: %w", err))
	}
	errs = append(errs, checkAggregateOptions(db, &o)...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new processor: %w", err)
	}
	defaultTransform := o.Transform == nil
	if defaultTransform {
		o.Transform = DefaultTransform(o.Config)
	}
	keys := []KeyAttribute{o.Config.PartitionKey}
	if o.Config.SortKey != nil {
		keys = append(keys, *o.Config.SortKey)
	}
	aggs, err := newAggregates(db, &o)
	if err != nil {
		return nil, fmt.Errorf("new processor: %w", err)
	}
	return &Processor{
		aggs:         aggs,
		db:           db,
		opts:         o,
		keys:         keys,
		errKeys:      []KeyAttribute{{Name: ErrorTablePartitionKey, Type: AttributeTypeString}},
		functionName: os.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
		backoffBase:  backoffBase,

		defaultTransform: defaultTransform,
	}, nil
}

// Options returns the processor's options, defaults filled in.
func (p *Processor) Options() Options { return p.opts }
