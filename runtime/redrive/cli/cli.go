// Package cli is the redrive command (runtime/cmd/redrive): its flags, AWS clients and output. It is a package of its
// own so that the construct (package kinesispipeline) builds the stack outputs' commands from these flag names and,
// by importing it, keeps every module the command needs in a consumer's go.sum: `go run` of the command by import
// path, from a CDK app's module, then needs nothing `go mod tidy` did not record.
//
// See runtime/cmd/redrive for the command's usage, and package runtime/redrive for what it does and what it trusts.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// Exit statuses.
const (
	// ExitOK: everything chosen was recovered.
	ExitOK = 0
	// ExitLeftover: a source was left behind, or the run failed.
	ExitLeftover = 1
	// ExitUsage: bad flags or configuration.
	ExitUsage = 2
)

// Modes of the command (its first argument).
const (
	ModeDLQ    = "dlq"
	ModeS3     = "s3"
	ModeErrors = "errors"
)

// Flag names (without the leading dashes), shared with the construct's stack outputs.
const (
	FlagStream                   = "stream"
	FlagTable                    = "table"
	FlagErrorTable               = "error-table"
	FlagConfig                   = "config"
	FlagQueueURL                 = "queue-url"
	FlagBucket                   = "bucket"
	FlagPrefix                   = "prefix"
	FlagDryRun                   = "dry-run"
	FlagAllowOverwriteUnverified = "allow-overwrite-unverified"
	FlagAggregateTable           = "aggregate-table"
	FlagSkipAggregates           = "skip-aggregates"
	// FlagCountUnseen counts records of on-failure ranges the aggregate ledger never saw (dlq and s3 modes).
	FlagCountUnseen = "count-unseen"
	// FlagCountUnverified counts records whose payload the stream cannot vouch for (errors and s3 modes).
	FlagCountUnverified = "count-unverified"
)

// Main runs the command with args (the arguments after the program name) and returns its exit status. AWS access
// comes from the SDK's default configuration chain.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, defaultClients)
}

// clientOptions are the settings the AWS clients depend on.
type clientOptions struct {
	s3PathStyle  bool
	streamRegion string    // the pinned stream's region: the Kinesis client's region
	sdkLog       io.Writer // where the SDK's own log lines go, escaped
}

// RetryMaxAttempts is how many times the operator tools (kdp redrive, kdp replay) send a DynamoDB request that
// keeps failing with a retryable error (throttling, a server error, a reset connection) before they report it. The
// processor's client waits at most 250 ms between attempts, short for a Lambda deadline; a run from a terminal has
// no deadline and can be more patient than the SDK's default of 3 attempts.
const RetryMaxAttempts = 8

// clientsFunc makes the AWS clients; tests replace it.
type clientsFunc func(ctx context.Context, o clientOptions) (redrive.Clients, error)

// defaultClients makes clients from the SDK's default configuration chain.
func defaultClients(ctx context.Context, o clientOptions) (redrive.Clients, error) {
	var opts []func(*config.LoadOptions) error
	if o.sdkLog != nil {
		opts = append(opts, config.WithLogger(escapingLogger{o.sdkLog}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return redrive.Clients{}, fmt.Errorf("load AWS config: %w", err)
	}
	return redrive.Clients{
		DB: processor.NewDynamoDBClient(cfg, func(do *dynamodb.Options) { do.RetryMaxAttempts = RetryMaxAttempts }),
		Kinesis: kinesis.NewFromConfig(cfg, func(ko *kinesis.Options) {
			if o.streamRegion != "" {
				ko.Region = o.streamRegion
			}
		}),
		SQS: sqs.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(so *s3.Options) {
			so.UsePathStyle = o.s3PathStyle
			// S3-compatible servers (and objects written before checksums existed) send no checksum: the SDK then
			// skips validation, and says so on every GetObject unless told not to.
			so.DisableLogOutputChecksumValidationSkipped = true
		}),
	}, nil
}

// escapingLogger writes the SDK's log lines escaped: they can quote what a server answered.
type escapingLogger struct{ w io.Writer }

// Logf writes one escaped line.
func (l escapingLogger) Logf(c logging.Classification, format string, v ...any) {
	fmt.Fprintf(l.w, "SDK %s %s\n", c, redrive.Escape(fmt.Sprintf(format, v...)))
}

const usage = `usage:
  redrive dlq    --queue-url URL --stream ARN --table T [--error-table E] [--config C] [--aggregate-table A] [flags]
  redrive s3     --bucket B [--prefix aws/lambda/<mapping UUID>/] [--delete] --stream ARN --table T [--error-table E] [--config C] [--aggregate-table A] [flags]
  redrive errors --error-table E --table T [--stream ARN] [--reason TEXT] [--since TIME] [--until TIME] [--config C] [--aggregate-table A] [flags]
--config C is the pipeline's pipeline.json: a file, or s3://BUCKET/KEY (a .zip is the function's code asset)
--aggregate-table A is required when the configuration has aggregates (or --skip-aggregates: data only, left uncounted)
run "redrive <mode> -h" for a mode's flags`

// common holds the flags every mode has.
type common struct {
	stream, table, errorTable, configFile string
	aggregateTable                        string
	dryRun, verbose, allowOverwrite       bool
	skipAggregates, countUnseen           bool
	countUnverified                       bool
	rate                                  float64
	batchSize                             int
}

func (c *common) register(fs *flag.FlagSet, mode string) {
	streamUse := "the pipeline's stream ARN (required): a message or object naming another stream is left where it is"
	if mode == ModeErrors {
		streamUse = "the pipeline's stream ARN: each entry is checked against the record the stream still holds; without it, every entry is written insert-only"
	}
	fs.StringVar(&c.stream, FlagStream, "", streamUse)
	fs.StringVar(&c.table, FlagTable, os.Getenv(processor.EnvTableName), "the pipeline's data table (default $"+processor.EnvTableName+")")
	fs.StringVar(&c.errorTable, FlagErrorTable, os.Getenv(processor.EnvErrorTableName), "the pipeline's error table (default $"+processor.EnvErrorTableName+")")
	fs.StringVar(&c.configFile, FlagConfig, os.Getenv(processor.EnvConfigFile), "the pipeline's configuration, pipeline.json: a file, or s3://BUCKET/KEY (a .zip: the function's code asset, read for its pipeline.json) (default $"+processor.EnvConfigFile+"; none: the default configuration)")
	fs.StringVar(&c.aggregateTable, FlagAggregateTable, os.Getenv(processor.EnvAggregateTableName),
		"the pipeline's aggregate table (default $"+processor.EnvAggregateTableName+"); required when the configuration has aggregates: "+
			"each record stored is counted where the pipeline did not count it, exactly once")
	fs.BoolVar(&c.skipAggregates, FlagSkipAggregates, false,
		"store the records without counting them into the configuration's aggregates (data only): the records stored stay uncounted")
	if mode == ModeDLQ || mode == ModeS3 {
		fs.BoolVar(&c.countUnseen, FlagCountUnseen, false,
			"also count into the aggregates the records of these on-failure ranges that the aggregate ledger never saw delivered "+
				"(a batch given up while DynamoDB was unreachable for all its attempts); trusts the ranges: only when nothing but Lambda writes the "+
				"queue or bucket (without it those records are stored but stay uncounted)")
	}
	if mode == ModeErrors || mode == ModeS3 {
		fs.BoolVar(&c.countUnverified, FlagCountUnverified, false,
			"also count into the aggregates the records whose payload the stream cannot vouch for (error entries it does not confirm, "+
				"payload records past its retention); trusts their source: anyone able to write the error table or the bucket could forge "+
				"the values counted (without it those records are stored, left uncounted, and their sources kept)")
	}
	fs.BoolVar(&c.dryRun, FlagDryRun, false, "read and transform, but write, delete and send nothing; report what would happen")
	fs.Float64Var(&c.rate, "rate", 0, "most records processed (and read from the stream) per second (0: no limit)")
	fs.IntVar(&c.batchSize, "batch-size", redrive.DefaultBatchSize, "most records per processor call")
	fs.BoolVar(&c.verbose, "verbose", false, "log the processor's per-batch summaries too")
	fs.BoolVar(&c.allowOverwrite, FlagAllowOverwriteUnverified, false,
		"write records the stream cannot vouch for (S3 payloads past retention, unverified error entries) with conditional writes instead of insert-only. "+
			"RISK: a forged object or entry can then overwrite real items")
}

// run runs the command and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, newClients clientsFunc) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	mode, args := args[0], args[1:]
	fs := flag.NewFlagSet("redrive "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	var (
		dlqIn    redrive.DLQInput
		s3In     redrive.S3Input
		errIn    redrive.ErrorsInput
		since    string
		until    string
		copts    clientOptions
		required []string
	)
	switch mode {
	case ModeDLQ:
		c.register(fs, mode)
		fs.StringVar(&dlqIn.QueueURL, FlagQueueURL, "", "the on-failure destination queue's URL (required)")
		fs.IntVar(&dlqIn.MaxMessages, "max-messages", 0, "stop after this many messages (0: until the queue is drained)")
		fs.DurationVar(&dlqIn.VisibilityTimeout, "visibility-timeout", redrive.DefaultVisibilityTimeout, "how long received messages stay invisible (extended while processing)")
		fs.DurationVar(&dlqIn.WaitTime, "wait", redrive.DefaultWaitTime, "how long a receive waits for messages; an empty receive ends the run")
		required = []string{FlagQueueURL, FlagStream, FlagTable}
	case ModeS3:
		c.register(fs, mode)
		fs.StringVar(&s3In.Bucket, FlagBucket, "", "the on-failure destination bucket (required)")
		fs.StringVar(&s3In.Prefix, FlagPrefix, redrive.DefaultS3Prefix, "read only objects under this prefix (the mapping's: aws/lambda/<mapping UUID>/)")
		fs.BoolVar(&s3In.Delete, "delete", false, "delete each object once its records are stored (default: keep them)")
		fs.IntVar(&s3In.MaxObjects, "max-objects", 0, "stop after this many objects (0: all)")
		fs.BoolVar(&copts.s3PathStyle, "s3-path-style", false, "address the bucket in the path (for S3-compatible local servers)")
		required = []string{FlagBucket, FlagStream, FlagTable}
	case ModeErrors:
		c.register(fs, mode)
		fs.StringVar(&errIn.Reason, "reason", "", "only entries whose reason contains this text")
		fs.StringVar(&since, "since", "", "only entries that failed at or after this time: RFC 3339, or a duration ago (24h)")
		fs.StringVar(&until, "until", "", "only entries that failed before this time: RFC 3339, or a duration ago")
		fs.IntVar(&errIn.MaxEntries, "max-entries", 0, "stop after this many entries (0: all chosen)")
		required = []string{FlagErrorTable, FlagTable}
	default:
		fmt.Fprintf(stderr, "redrive: unknown mode %q\n%s\n", mode, usage)
		return ExitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "redrive %s: unexpected arguments %q\n", mode, fs.Args())
		return ExitUsage
	}
	now := time.Now()
	var problems []string
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			problems = append(problems, "--"+name+" is required")
		}
	}
	if c.countUnverified && c.stream == "" {
		// Without the pin every entry is unverified, even one the stream would refute.
		problems = append(problems, "--"+FlagCountUnverified+" needs --"+FlagStream+": the entries the stream still holds are verified against it, not counted on their word")
	}
	if c.stream != "" {
		ref, err := redrive.ParseStreamARN(c.stream)
		if err != nil {
			problems = append(problems, "--"+FlagStream+": "+err.Error())
		}
		// The stream is read in its own region, whatever the default configuration says: in another region it
		// would not be found, and a range not found reads as past retention (written insert-only, unverified).
		copts.streamRegion = ref.Region
	}
	var err error
	if errIn.Since, err = ParseTime(since, now); err != nil {
		problems = append(problems, "--since: "+err.Error())
	}
	if errIn.Until, err = ParseTime(until, now); err != nil {
		problems = append(problems, "--until: "+err.Error())
	}
	cfg := processor.DefaultConfig()
	fromS3 := strings.HasPrefix(c.configFile, "s3://")
	if c.configFile != "" && !fromS3 {
		if cfg, err = processor.ReadConfigFile(c.configFile); err != nil {
			problems = append(problems, fmt.Sprintf("--%s %s: %v", FlagConfig, c.configFile, err))
		}
	}
	if p := aggregatesProblem(cfg, c.aggregateTable, c.skipAggregates); !fromS3 && p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "redrive %s: %s\n", mode, redrive.Escape(strings.Join(problems, "; ")))
		return ExitUsage
	}

	copts.sdkLog = stderr
	clients, err := newClients(ctx, copts)
	if err != nil {
		fmt.Fprintf(stderr, "redrive %s: %s\n", mode, redrive.Escape(err.Error()))
		return ExitLeftover
	}
	if fromS3 {
		if cfg, err = configFromS3(ctx, clients.S3, c.configFile); err != nil {
			fmt.Fprintf(stderr, "redrive %s: --%s %s: %s\n", mode, FlagConfig, redrive.Escape(c.configFile), redrive.Escape(err.Error()))
			return ExitUsage
		}
		if p := aggregatesProblem(cfg, c.aggregateTable, c.skipAggregates); p != "" {
			fmt.Fprintf(stderr, "redrive %s: %s\n", mode, redrive.Escape(p))
			return ExitUsage
		}
	}
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelInfo
	}
	prog := newProgress(stderr, mode, c.dryRun)
	r, err := redrive.New(clients, func(o *redrive.Options) {
		o.TableName, o.ErrorTableName, o.Config, o.StreamARN = c.table, c.errorTable, cfg, c.stream
		o.DryRun, o.Rate, o.BatchSize, o.AllowOverwriteUnverified = c.dryRun, c.rate, c.batchSize, c.allowOverwrite
		o.AggregateTableName, o.SkipAggregates, o.CountUnseen = c.aggregateTable, c.skipAggregates, c.countUnseen
		o.CountUnverified = c.countUnverified
		// The text handler quotes (and so escapes) any value that is not plain printable text.
		o.Logger = slog.New(slog.NewTextHandler(prog.logWriter(), &slog.HandlerOptions{Level: level}))
		o.Progress = prog.update
		o.Result = func(res redrive.Result) {
			if res.Outcome != redrive.OutcomeRecovered && res.Outcome != redrive.OutcomeWouldRecover {
				prog.clear()
				fmt.Fprintln(stdout, formatResult(res))
			}
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "redrive %s: %s\n", mode, redrive.Escape(err.Error()))
		return ExitUsage
	}
	var sum redrive.Summary
	switch mode {
	case ModeDLQ:
		sum, err = r.DLQ(ctx, dlqIn)
	case ModeS3:
		sum, err = r.S3(ctx, s3In)
	case ModeErrors:
		sum, err = r.Errors(ctx, errIn)
	}
	prog.done(sum)
	fmt.Fprint(stdout, formatSummary(mode, sum))
	if err != nil {
		fmt.Fprintf(stderr, "redrive %s: %s\n", mode, redrive.Escape(err.Error()))
		return ExitLeftover
	}
	if sum.Unrecovered() > 0 {
		return ExitLeftover
	}
	return ExitOK
}

// aggregatesProblem says what is wrong with the aggregate flags for cfg ("" when nothing): a configuration with
// aggregates needs --aggregate-table, or --skip-aggregates. Shared with kdp replay.
func aggregatesProblem(cfg processor.Config, table string, skip bool) string {
	if redrive.CheckAggregates(cfg, table, skip) == nil {
		return ""
	}
	return fmt.Sprintf("--%s is required: the configuration has %d aggregates, and each record stored is counted where the pipeline did not count it "+
		"(or pass --%s to store the records without counting them: they stay uncounted)", FlagAggregateTable, len(cfg.Aggregates), FlagSkipAggregates)
}

// ParseTime reads a time flag: an RFC 3339 time, or a positive duration before now ("24h"); "" gives the zero
// time. kdp replay's --since and --until read the same way.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(-d), nil
}
