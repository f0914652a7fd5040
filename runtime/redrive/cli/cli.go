// Command redrive brings the records a Kinesis-to-DynamoDB pipeline failed on back into its table, through the same
// processor code and configuration as the pipeline (see package runtime/redrive):
//
//	redrive dlq    --queue-url URL --table T [--error-table E] [--config pipeline.json] [flags]
//	redrive s3     --bucket B [--prefix aws/lambda/] [--delete] --table T [--error-table E] [flags]
//	redrive errors --error-table E --table T [--reason TEXT] [--since TIME] [--until TIME] [flags]
//
// Common flags: --dry-run (read and transform, write and delete nothing), --rate N (records per second), --batch-size
// N, --verbose (the processor's per-batch logs). --table, --error-table and --config default to
// $PIPELINE_TABLE_NAME, $PIPELINE_ERROR_TABLE_NAME and $PIPELINE_CONFIG_FILE; without a config file the processor's
// default configuration is used. Give the pipeline's own pipeline.json (in its Lambda asset) when it has one.
//
// AWS access comes from the SDK's default chain: environment, shared config and credentials files (AWS_PROFILE),
// SSO, instance roles; AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB and
// AWS_ENDPOINT_URL_S3 point it at local emulators.
//
// IAM actions the command needs (the construct's GrantRedrive gives them):
//
//	every mode: dynamodb:PutItem and dynamodb:BatchWriteItem on the data table (replays write conditionally, one
//	            PutItem per item; items without the sequence-number attribute go in batches) and on the error table
//	            (records that fail again)
//	dlq:        sqs:ReceiveMessage, sqs:ChangeMessageVisibility, sqs:DeleteMessage on the queue;
//	            kinesis:GetShardIterator, kinesis:GetRecords on the stream
//	s3:         s3:ListBucket on the bucket, s3:GetObject on its objects (s3:DeleteObject with --delete);
//	            kinesis:GetShardIterator, kinesis:GetRecords on the stream (objects without a payload, or whose
//	            payload does not cover their range)
//	errors:     dynamodb:Scan, dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:DeleteItem on the error table
//
// Progress (counts and rate) goes to standard error, rewritten in place on a terminal and as plain lines otherwise;
// every source left behind (with its shard and sequence numbers and the reason) and the summary go to standard
// output. The exit status is 0 when everything was recovered, 1 when anything was left behind or the run failed, 2
// for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// Exit statuses.
const (
	exitOK       = 0
	exitLeftover = 1
	exitUsage    = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, defaultClients)
	stop()
	os.Exit(code)
}

// clientOptions are the settings the AWS clients depend on.
type clientOptions struct {
	s3PathStyle bool
}

// clientsFunc makes the AWS clients; tests replace it.
type clientsFunc func(ctx context.Context, o clientOptions) (redrive.Clients, error)

// defaultClients makes clients from the SDK's default configuration chain.
func defaultClients(ctx context.Context, o clientOptions) (redrive.Clients, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return redrive.Clients{}, fmt.Errorf("load AWS config: %w", err)
	}
	return redrive.Clients{
		DB:      processor.NewDynamoDBClient(cfg),
		Kinesis: kinesis.NewFromConfig(cfg),
		SQS:     sqs.NewFromConfig(cfg),
		S3:      s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = o.s3PathStyle }),
	}, nil
}

const usage = `usage:
  redrive dlq    --queue-url URL --table T [--error-table E] [--config pipeline.json] [flags]
  redrive s3     --bucket B [--prefix aws/lambda/] [--delete] --table T [--error-table E] [flags]
  redrive errors --error-table E --table T [--reason TEXT] [--since TIME] [--until TIME] [flags]
run "redrive <mode> -h" for a mode's flags`

// common holds the flags every mode has.
type common struct {
	table, errorTable, configFile string
	dryRun, verbose               bool
	rate                          float64
	batchSize                     int
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.table, "table", os.Getenv(processor.EnvTableName), "the pipeline's data table (default $"+processor.EnvTableName+")")
	fs.StringVar(&c.errorTable, "error-table", os.Getenv(processor.EnvErrorTableName), "the pipeline's error table (default $"+processor.EnvErrorTableName+")")
	fs.StringVar(&c.configFile, "config", os.Getenv(processor.EnvConfigFile), "the pipeline's configuration file, pipeline.json (default $"+processor.EnvConfigFile+"; none: the default configuration)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "read and transform, but write, delete and send nothing; report what would happen")
	fs.Float64Var(&c.rate, "rate", 0, "most records processed per second (0: no limit)")
	fs.IntVar(&c.batchSize, "batch-size", redrive.DefaultBatchSize, "most records per processor call")
	fs.BoolVar(&c.verbose, "verbose", false, "log the processor's per-batch summaries too")
}

// run runs the command and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, newClients clientsFunc) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	mode, args := args[0], args[1:]
	fs := flag.NewFlagSet("redrive "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
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
	case "dlq":
		fs.StringVar(&dlqIn.QueueURL, "queue-url", "", "the on-failure destination queue's URL (required)")
		fs.IntVar(&dlqIn.MaxMessages, "max-messages", 0, "stop after this many messages (0: until the queue is drained)")
		fs.DurationVar(&dlqIn.VisibilityTimeout, "visibility-timeout", redrive.DefaultVisibilityTimeout, "how long received messages stay invisible (extended while processing)")
		fs.DurationVar(&dlqIn.WaitTime, "wait", redrive.DefaultWaitTime, "how long a receive waits for messages; an empty receive ends the run")
		required = []string{"queue-url", "table"}
	case "s3":
		fs.StringVar(&s3In.Bucket, "bucket", "", "the on-failure destination bucket (required)")
		fs.StringVar(&s3In.Prefix, "prefix", redrive.DefaultS3Prefix, "read only objects under this prefix")
		fs.BoolVar(&s3In.Delete, "delete", false, "delete each object once its records are stored (default: keep them)")
		fs.IntVar(&s3In.MaxObjects, "max-objects", 0, "stop after this many objects (0: all)")
		fs.BoolVar(&copts.s3PathStyle, "s3-path-style", false, "address the bucket in the path (for S3-compatible local servers)")
		required = []string{"bucket", "table"}
	case "errors":
		fs.StringVar(&errIn.Reason, "reason", "", "only entries whose reason contains this text")
		fs.StringVar(&since, "since", "", "only entries that failed at or after this time: RFC 3339, or a duration ago (24h)")
		fs.StringVar(&until, "until", "", "only entries that failed before this time: RFC 3339, or a duration ago")
		fs.IntVar(&errIn.MaxEntries, "max-entries", 0, "stop after this many entries (0: all chosen)")
		required = []string{"error-table", "table"}
	default:
		fmt.Fprintf(stderr, "redrive: unknown mode %q\n%s\n", mode, usage)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "redrive %s: unexpected arguments %q\n", mode, fs.Args())
		return exitUsage
	}
	now := time.Now()
	var problems []string
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			problems = append(problems, "--"+name+" is required")
		}
	}
	var err error
	if errIn.Since, err = parseTime(since, now); err != nil {
		problems = append(problems, "--since: "+err.Error())
	}
	if errIn.Until, err = parseTime(until, now); err != nil {
		problems = append(problems, "--until: "+err.Error())
	}
	cfg := processor.DefaultConfig()
	if c.configFile != "" {
		if cfg, err = processor.ReadConfigFile(c.configFile); err != nil {
			problems = append(problems, fmt.Sprintf("--config %s: %v", c.configFile, err))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "redrive %s: %s\n", mode, strings.Join(problems, "; "))
		return exitUsage
	}

	clients, err := newClients(ctx, copts)
	if err != nil {
		fmt.Fprintf(stderr, "redrive %s: %v\n", mode, err)
		return exitLeftover
	}
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelInfo
	}
	prog := newProgress(stderr, mode, c.dryRun)
	r, err := redrive.New(clients, func(o *redrive.Options) {
		o.TableName, o.ErrorTableName, o.Config = c.table, c.errorTable, cfg
		o.DryRun, o.Rate, o.BatchSize = c.dryRun, c.rate, c.batchSize
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
		fmt.Fprintf(stderr, "redrive %s: %v\n", mode, err)
		return exitUsage
	}
	var sum redrive.Summary
	switch mode {
	case "dlq":
		sum, err = r.DLQ(ctx, dlqIn)
	case "s3":
		sum, err = r.S3(ctx, s3In)
	case "errors":
		sum, err = r.Errors(ctx, errIn)
	}
	prog.done(sum)
	fmt.Fprint(stdout, formatSummary(mode, sum))
	if err != nil {
		fmt.Fprintf(stderr, "redrive %s: %v\n", mode, err)
		return exitLeftover
	}
	if sum.Unrecovered() > 0 {
		return exitLeftover
	}
	return exitOK
}

// parseTime reads an RFC 3339 time, or a duration before now ("24h"); "" gives the zero time.
func parseTime(s string, now time.Time) (time.Time, error) {
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

// formatResult describes a source left behind on one line.
func formatResult(res redrive.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "LEFT %s %s", res.Outcome, res.Source)
	if res.ShardID != "" {
		fmt.Fprintf(&b, " shard=%s", res.ShardID)
	}
	if res.StartSequenceNumber != "" {
		if res.StartSequenceNumber == res.EndSequenceNumber {
			fmt.Fprintf(&b, " sequence=%s", res.StartSequenceNumber)
		} else {
			fmt.Fprintf(&b, " range=%s..%s", res.StartSequenceNumber, res.EndSequenceNumber)
		}
	}
	fmt.Fprintf(&b, ": %s", res.Reason)
	return b.String()
}

// outcomeOrder is the order outcomes are listed in.
var outcomeOrder = []redrive.Outcome{redrive.OutcomeRecovered, redrive.OutcomeWouldRecover, redrive.OutcomeExpired,
	redrive.OutcomeFailed, redrive.OutcomeFailedAgain, redrive.OutcomeInvalid}

func formatCounts(s redrive.Summary) string {
	var parts []string
	for _, o := range outcomeOrder {
		if n := s.Sources[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	var extra []string
	for o, n := range s.Sources {
		if n > 0 && !containsOutcome(outcomeOrder, o) {
			extra = append(extra, fmt.Sprintf("%d %s", n, o))
		}
	}
	sort.Strings(extra)
	parts = append(parts, extra...)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func containsOutcome(list []redrive.Outcome, o redrive.Outcome) bool {
	for _, v := range list {
		if v == o {
			return true
		}
	}
	return false
}

func formatRecords(c redrive.RecordCounts) string {
	return fmt.Sprintf("%d read, %d written, %d skipped, %d to the error table, %d failed", c.Read, c.Written, c.Skipped, c.ToErrorTable, c.Failed)
}

// formatSummary is the end-of-run summary.
func formatSummary(mode string, s redrive.Summary) string {
	var b strings.Builder
	dry := ""
	if s.DryRun {
		dry = " (dry run: nothing written or deleted)"
	}
	fmt.Fprintf(&b, "redrive %s summary%s\n", mode, dry)
	fmt.Fprintf(&b, "  sources: %d: %s; %d removed\n", s.Total(), formatCounts(s), s.Removed)
	fmt.Fprintf(&b, "  records: %s\n", formatRecords(s.Records))
	fmt.Fprintf(&b, "  time:    %s, %.1f records/s\n", s.Elapsed.Round(time.Millisecond), s.RecordsPerSecond())
	if n := s.Unrecovered(); n > 0 {
		fmt.Fprintf(&b, "  left behind: %d (lines starting with LEFT above)\n", n)
	} else {
		fmt.Fprintf(&b, "  left behind: none\n")
	}
	return b.String()
}

// progress shows running counts on standard error: one line rewritten in place on a terminal, plain lines at most
// every few seconds otherwise.
type progress struct {
	mu       sync.Mutex // log lines come from other goroutines too
	w        io.Writer
	mode     string
	terminal bool
	every    time.Duration
	last     time.Time
	shown    bool // a line is on the terminal, not yet ended
}

func newProgress(w io.Writer, mode string, dryRun bool) *progress {
	p := &progress{w: w, mode: mode, every: 5 * time.Second}
	if dryRun {
		p.mode += " (dry run)"
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *progress) line(s redrive.Summary) string {
	return fmt.Sprintf("redrive %s: %d sources (%s) · records: %s · %.1f records/s · %s",
		p.mode, s.Total(), formatCounts(s), formatRecords(s.Records), s.RecordsPerSecond(), s.Elapsed.Round(100*time.Millisecond))
}

func (p *progress) update(s redrive.Summary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line(s))
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, p.line(s))
}

// clear ends the line in place so other output starts on a clean line.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *progress) clearLocked() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progress) done(s redrive.Summary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintln(p.w, p.line(s))
}

// logWriter returns a writer for log lines that clears the progress line first.
func (p *progress) logWriter() io.Writer { return logWriter{p} }

type logWriter struct{ p *progress }

// Write logs b as one line.
func (l logWriter) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	l.p.clearLocked()
	return l.p.w.Write(b)
}
