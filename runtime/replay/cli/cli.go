// Package cli is the replay command, `kdp replay` (runtime/cmd/kdp): its flags, AWS clients and output. It is a
// package of its own so that the construct (package kinesispipeline) builds the stack output's command from these
// flag names and, by importing it, keeps every module the command needs in a consumer's go.sum.
//
//	kdp replay --stream ARN --since TIME [--until TIME] --table T [--error-table E] [--config C]
//	           [--aggregate-table A | --skip-aggregates]
//	           [--dry-run] [--rate N] [--shard ID ...] [--batch-size N] [--concurrency N] [--verbose]
//
// See package runtime/replay for what it reads, what it writes and how it shares the stream.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
	redrivecli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive/cli"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// Exit statuses.
const (
	// ExitOK: everything in the window was processed.
	ExitOK = 0
	// ExitLeftover: something in the window was left (a shard not read to the window's end, a record not stored,
	// a window past the stream's retention), or the run failed.
	ExitLeftover = 1
	// ExitUsage: bad flags, configuration or shard ids.
	ExitUsage = 2
)

// Flag names (without the leading dashes), shared with the construct's stack output.
const (
	FlagStream     = "stream"
	FlagSince      = "since"
	FlagUntil      = "until"
	FlagTable      = "table"
	FlagErrorTable = "error-table"
	FlagConfig     = "config"
	FlagDryRun     = "dry-run"
	FlagRate       = "rate"
	FlagShard      = "shard"
	// FlagAggregateTable and FlagSkipAggregates are the redrive command's: the same names, the same meaning.
	FlagAggregateTable = redrivecli.FlagAggregateTable
	FlagSkipAggregates = redrivecli.FlagSkipAggregates
)

// Usage is the command's usage line.
const Usage = `usage: kdp replay --stream ARN --since TIME [--until TIME] --table T [--error-table E] [--config C]
                  [--aggregate-table A | --skip-aggregates]
                  [--dry-run] [--rate N] [--shard ID ...] [--batch-size N] [--concurrency N] [--verbose]
TIME is RFC 3339 (2024-09-13T21:00:00Z) or a duration ago (2h); --config C is the pipeline's pipeline.json: a file,
or s3://BUCKET/KEY (a .zip is the function's code asset); --aggregate-table A is required when the configuration has
aggregates (or --skip-aggregates: data only, records the pipeline did not count stay uncounted)`

// Main runs the command with args (the arguments after "replay") and returns its exit status. AWS access comes from
// the SDK's default configuration chain (AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3
// point it at local emulators); the stream and the tables are reached in the stream's region.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, defaultClients)
}

// clients are what the command talks to.
type clients struct {
	replay replay.Clients
	s3     redrive.S3
}

// clientsFunc makes the AWS clients; tests replace it.
type clientsFunc func(ctx context.Context, streamRegion string) (clients, error)

func defaultClients(ctx context.Context, streamRegion string) (clients, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return clients{}, fmt.Errorf("load AWS config: %w", err)
	}
	return clients{
		replay: replay.Clients{
			// The stream is read and the tables written in the stream's region, whatever the default configuration
			// says: the pipeline's function writes its tables in its own region, the stream's, and a table of the
			// same name in another region belongs to something else.
			DB: processor.NewDynamoDBClient(cfg, func(o *dynamodb.Options) {
				o.Region, o.RetryMaxAttempts = streamRegion, redrivecli.RetryMaxAttempts
			}),
			Kinesis: kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.Region = streamRegion }),
		},
		s3: s3.NewFromConfig(cfg, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true }),
	}, nil
}

// stringList is a repeatable flag.
type stringList []string

// String returns the values, comma-separated (flag.Value).
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set adds a value (a comma-separated list adds each).
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// flags are the command's parsed flags.
type flags struct {
	stream, since, until, table, errorTable, configFile string
	aggregateTable                                      string
	dryRun, verbose, skipAggregates                     bool
	rate                                                float64
	shards                                              stringList
	batchSize, concurrency                              int
}

// parse reads args; it returns the options (without clients) and the configuration source, or the problems.
func parse(args []string, stderr io.Writer, now time.Time) (flags, []func(*replay.Options), error) {
	var f flags
	fs := flag.NewFlagSet("kdp replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, Usage); fs.PrintDefaults() }
	fs.StringVar(&f.stream, FlagStream, "", "the pipeline's stream ARN (required)")
	fs.StringVar(&f.since, FlagSince, "", "the window's start (required): records that arrived at or after it; RFC 3339 or a duration ago (2h)")
	fs.StringVar(&f.until, FlagUntil, "", "the window's end: records that arrived after it are not replayed (default: now, the shards' tips)")
	fs.StringVar(&f.table, FlagTable, os.Getenv(processor.EnvTableName), "the pipeline's data table (required; default $"+processor.EnvTableName+")")
	fs.StringVar(&f.errorTable, FlagErrorTable, os.Getenv(processor.EnvErrorTableName), "the pipeline's error table (default $"+processor.EnvErrorTableName+")")
	fs.StringVar(&f.configFile, FlagConfig, os.Getenv(processor.EnvConfigFile), "the pipeline's configuration, pipeline.json: a file, or s3://BUCKET/KEY (a .zip: the function's code asset) (default $"+processor.EnvConfigFile+"; none: the default configuration)")
	fs.StringVar(&f.aggregateTable, FlagAggregateTable, os.Getenv(processor.EnvAggregateTableName),
		"the pipeline's aggregate table (default $"+processor.EnvAggregateTableName+"); required when the configuration has aggregates: "+
			"each record stored is counted where the pipeline did not count it, exactly once")
	fs.BoolVar(&f.skipAggregates, FlagSkipAggregates, false,
		"store the records without counting them into the configuration's aggregates (data only): records the pipeline did not count stay uncounted")
	fs.BoolVar(&f.dryRun, FlagDryRun, false, "read and transform, write nothing; say what would be written")
	fs.Float64Var(&f.rate, FlagRate, 0, "most records processed per second over all shards (0: no limit)")
	fs.Var(&f.shards, FlagShard, "replay only this shard (repeat, or comma-separated; default: every shard)")
	fs.IntVar(&f.batchSize, "batch-size", replay.DefaultBatchSize, "most records per processor call")
	fs.IntVar(&f.concurrency, "concurrency", replay.DefaultConcurrency, "most shards read at once")
	fs.BoolVar(&f.verbose, "verbose", false, "log the processor's per-batch summaries and superseded items too")
	if err := fs.Parse(args); err != nil {
		return f, nil, err
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	for _, name := range []string{FlagStream, FlagSince, FlagTable} {
		if fs.Lookup(name).Value.String() == "" {
			problems = append(problems, "--"+name+" is required")
		}
	}
	if f.stream != "" {
		if _, err := redrive.ParseStreamARN(f.stream); err != nil {
			problems = append(problems, "--"+FlagStream+": "+err.Error())
		}
	}
	since, err := redrivecli.ParseTime(f.since, now)
	if err != nil {
		problems = append(problems, "--"+FlagSince+": "+err.Error())
	}
	until, err := redrivecli.ParseTime(f.until, now)
	if err != nil {
		problems = append(problems, "--"+FlagUntil+": "+err.Error())
	}
	switch {
	case since.After(now):
		problems = append(problems, "--"+FlagSince+" is in the future")
	case !until.IsZero() && until.Before(since):
		problems = append(problems, "--"+FlagUntil+" is before --"+FlagSince)
	}
	switch {
	case math.IsNaN(f.rate) || math.IsInf(f.rate, 0):
		problems = append(problems, "--"+FlagRate+" is not a finite number")
	case f.rate < 0:
		problems = append(problems, "--"+FlagRate+" is negative")
	}
	if f.batchSize <= 0 {
		problems = append(problems, "--batch-size must be positive")
	}
	if f.concurrency <= 0 {
		problems = append(problems, "--concurrency must be positive")
	}
	for _, s := range f.shards {
		if !redrive.ValidShardID(s) {
			problems = append(problems, fmt.Sprintf("--%s %q is not a shard id (shardId- and 12 digits)", FlagShard, s))
		}
	}
	if len(problems) > 0 {
		return f, nil, problemsError(strings.Join(problems, "; "))
	}
	return f, []func(*replay.Options){func(o *replay.Options) {
		o.StreamARN, o.Since, o.Until = f.stream, since, until
		o.TableName, o.ErrorTableName = f.table, f.errorTable
		o.AggregateTableName, o.SkipAggregates = f.aggregateTable, f.skipAggregates
		o.DryRun, o.Rate, o.Shards = f.dryRun, f.rate, []string(f.shards)
		o.BatchSize, o.Concurrency = f.batchSize, f.concurrency
	}}, nil
}

// run runs the command and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, newClients clientsFunc) int {
	now := time.Now()
	f, optFns, err := parse(args, stderr, now)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		var pe problemsError
		if errors.As(err, &pe) { // otherwise the flag package printed its own problem
			fmt.Fprintf(stderr, "kdp replay: %s\n%s\n", redrive.Escape(err.Error()), Usage)
		}
		return ExitUsage
	}
	ref, _ := redrive.ParseStreamARN(f.stream)
	c, err := newClients(ctx, ref.Region)
	if err != nil {
		fmt.Fprintf(stderr, "kdp replay: %s\n", redrive.Escape(err.Error()))
		return ExitLeftover
	}
	cfg, err := redrivecli.LoadConfig(ctx, c.s3, f.configFile)
	if err != nil {
		fmt.Fprintf(stderr, "kdp replay: --%s %s: %s\n", FlagConfig, redrive.Escape(f.configFile), redrive.Escape(err.Error()))
		return ExitUsage
	}
	if p := redrivecli.AggregatesProblem(cfg, f.aggregateTable, f.skipAggregates); p != "" {
		fmt.Fprintf(stderr, "kdp replay: %s\n%s\n", redrive.Escape(p), Usage)
		return ExitUsage
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	prog := newProgress(stderr)
	r, err := replay.New(c.replay, append(optFns, func(o *replay.Options) {
		o.Config = cfg
		// The text handler quotes (and so escapes) any value that is not plain printable text.
		o.Logger = slog.New(slog.NewTextHandler(prog, &slog.HandlerOptions{Level: level}))
		o.Progress = prog.update
	})...)
	if err != nil {
		fmt.Fprintf(stderr, "kdp replay: %s\n", redrive.Escape(err.Error()))
		return ExitUsage
	}
	fmt.Fprintf(stderr, "kdp replay: reading %s with GetRecords: without enhanced fan-out, the replay shares each shard's 5 reads per second and 2 MiB per second with the live pipeline (it reads each shard at most twice a second; --%s caps records per second; throttled reads back off)\n",
		redrive.Escape(ref.Name), FlagRate)
	sum, err := r.Run(ctx)
	fmt.Fprint(stdout, formatSummary(sum))
	if err != nil {
		fmt.Fprintf(stderr, "kdp replay: %s\n", redrive.Escape(err.Error()))
		var ue *replay.UsageError
		if errors.As(err, &ue) {
			return ExitUsage
		}
		return ExitLeftover
	}
	if !sum.Complete() || sum.Records.Forgotten > 0 {
		return ExitLeftover
	}
	return ExitOK
}

// problemsError lists what is wrong with the flags.
type problemsError string

// Error returns the problems.
func (e problemsError) Error() string { return string(e) }
