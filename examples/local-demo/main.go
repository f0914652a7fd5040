// Command local-demo runs the whole pipeline on this machine, without AWS: it starts kinesalite and dynalite on
// 127.0.0.1 (from the repository's node_modules), creates the stream and the two tables the construct creates with
// its defaults, runs the default processor behind a local event source mapping (internal/localrun), puts sample
// records and a few malformed ones, prints what landed in the table and in the error table, then stops everything
// it started.
//
//	make local                     # or: go run ./examples/local-demo (after npm ci)
//	go run ./examples/local-demo -rie   # the real bootstrap under aws-lambda-rie instead of in process
//	go run ./examples/local-demo -keep -fail-writes -config examples/local-demo/pipeline.json
//
// The last form is the test bed of the "When records fail" runbook (docs/runbook.md):
//
//   - -config runs the processor with a configuration file (pipeline.json, as in the function's asset); the one in
//     this directory has a JSON Schema that wrongly rejects negative values, pipeline-fixed.json is its fix.
//   - -fail-writes puts a DynamoDB stand-in (internal/dynamostandin) in front of dynalite that drops every write of
//     the processor, and gives the event source mapping 1 retry attempt and a 3 s function timeout, so it gives the
//     batches up quickly and sends their on-failure records to an SQS queue (internal/sqsfake), as AWS's mapping
//     sends them to its SQS on-failure destination.
//   - -keep leaves kinesalite, dynalite and the SQS fake running until interrupted (Ctrl-C or SIGTERM) and prints the
//     export lines that point the AWS SDK (and so the redrive command) at them, with the queue URL (QUEUE_URL) and
//     the stream's ARN (STREAM_ARN, which the redrive command pins with --stream).
//
// With -keep or -fail-writes the on-failure records go to the SQS fake; otherwise they are only counted. Whatever the
// flags, everything the demo started is stopped when it exits.
//
// It needs Go, Node.js and the npm packages of package.json (`npm ci`); -rie also builds aws-lambda-rie, which needs
// the Go module proxy the first time.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/sqsfake"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// Names of what the demo creates. The emulators are fresh on every run, so fixed names are safe.
const (
	streamName     = "local-pipeline"
	tableName      = "local-pipeline-data"
	errorTableName = "local-pipeline-errors"
	queueName      = "local-pipeline-dlq"
)

// Credentials the demo's clients use and -keep prints; the emulators accept any.
const (
	accessKeyID     = "AKIDEMULATOR"
	secretAccessKey = "emulator-secret"
)

// samples are the records the demo puts: the README's sample record, more like it, and malformed ones.
var samples = []struct {
	partitionKey string
	data         string
}{
	{"sensor-c", `{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`},
	{"sensor-a", `{"Timestamp": "2024-09-13T23:06:56.102345Z", "Value": 12, "Category": "A"}`},
	{"sensor-b", `{"Timestamp": "2024-09-13T23:06:56.733012Z", "Value": 47.5, "Category": "B"}`},
	{"sensor-c", `{"Timestamp": "2024-09-13T23:06:57.001200Z", "Value": 90, "Category": "C", "Tags": ["hot", "peak"]}`},
	{"sensor-a", `{"Timestamp": "2024-09-13T23:06:58.450000Z", "Value": 3, "Category": "A", "Location": {"Site": "north", "Rack": 4}}`},
	{"sensor-b", `{"Timestamp": "2024-09-13T23:06:59.999999Z", "Value": -7, "Category": "B"}`},
	{"broken-1", `{"Timestamp": "2024-09-13T23:07:00Z", "Value": `},
	{"broken-2", `not json at all`},
	{"broken-3", `[81, "C"]`},
}

// options are the demo's flags.
type options struct {
	rie        bool   // invoke the real bootstrap under aws-lambda-rie
	keep       bool   // leave the emulators and the SQS fake running until ctx ends
	failWrites bool   // drop every write of the processor; 1 retry attempt, 3 s function timeout
	configFile string // the processor's configuration file; "" for the default configuration
}

func main() {
	var o options
	flag.BoolVar(&o.rie, "rie", false, "invoke the real bootstrap under aws-lambda-rie instead of the processor in process")
	flag.BoolVar(&o.keep, "keep", false, "leave kinesalite, dynalite and an SQS fake running until Ctrl-C or SIGTERM, and print how to reach them")
	flag.BoolVar(&o.failWrites, "fail-writes", false, "drop every write of the processor, so the batches go to the on-failure queue")
	flag.StringVar(&o.configFile, "config", "", "the processor's configuration file, pipeline.json (default: the default configuration)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "local-demo:", err)
		stop()
		os.Exit(1)
	}
}

// run is the demo; everything it starts is stopped before it returns. With o.keep it returns when ctx ends.
func run(ctx context.Context, out io.Writer, o options) error {
	cfg := processor.DefaultConfig()
	if o.configFile != "" {
		var err error
		if cfg, err = processor.ReadConfigFile(o.configFile); err != nil {
			return fmt.Errorf("-config %s: %w", o.configFile, err)
		}
	}
	keepCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	root, err := emulators.ModuleRoot()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Starting kinesalite and dynalite on 127.0.0.1 ...")
	kin, err := emulators.StartKinesalite(ctx, root)
	if err != nil {
		return err
	}
	defer kin.Stop()
	ddb, err := emulators.StartDynalite(ctx, root)
	if err != nil {
		return err
	}
	defer ddb.Stop()
	fmt.Fprintf(out, "  kinesalite %s\n  dynalite   %s\n", kin.Endpoint, ddb.Endpoint)

	// The on-failure destination: an SQS queue (the fake) when the records are meant to be redriven, else counted.
	var sink localrun.Sink = &localrun.MemorySink{}
	var queue *sqsfake.Server
	var queueURL string
	if o.keep || o.failWrites {
		if queue, err = sqsfake.New(); err != nil {
			return err
		}
		defer queue.Close()
		queueURL = queue.CreateQueue(queueName)
		sc := sqs.NewFromConfig(emulators.AWSConfig(), func(so *sqs.Options) { so.BaseEndpoint = aws.String(queue.URL()) })
		sink = localrun.SQSSink{Client: sc, QueueURL: queueURL}
		fmt.Fprintf(out, "  sqs fake   %s\n", queue.URL())
	}

	kc := emulators.KinesisClient(kin.Endpoint)
	db := emulators.DynamoDBClient(ddb.Endpoint)
	// What the construct creates with its defaults: a stream, a data table and an error table keyed by "id" (S).
	if err := emulators.CreateStream(ctx, kc, streamName, 2); err != nil {
		return err
	}
	for _, t := range []string{tableName, errorTableName} {
		if err := emulators.CreateTable(ctx, db, t); err != nil {
			return err
		}
	}
	summary, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(streamName)})
	if err != nil {
		return fmt.Errorf("describe stream: %w", err)
	}
	streamARN := aws.ToString(summary.StreamDescriptionSummary.StreamARN)
	fmt.Fprintf(out, "Created stream %s (2 shards), tables %s and %s\n", streamName, tableName, errorTableName)

	// The processor writes to dynalite, or with -fail-writes through a stand-in that drops every write.
	writeEndpoint := ddb.Endpoint
	if o.failWrites {
		standin := dynamostandin.New(dynamostandin.Options{Upstream: ddb.Endpoint, DropRate: 1,
			FaultOperations: []string{dynamostandin.OpBatchWriteItem, dynamostandin.OpPutItem}})
		defer standin.Close()
		writeEndpoint = standin.URL()
		fmt.Fprintln(out, "Failing writes: every write of the processor is dropped")
	}
	inv, closeInvoker, err := invoker(ctx, writeEndpoint, o, cfg)
	if err != nil {
		return err
	}
	defer closeInvoker()

	var entries []ktypes.PutRecordsRequestEntry
	for _, s := range samples {
		entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(s.partitionKey), Data: []byte(s.data)})
	}
	if _, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(streamName), Records: entries}); err != nil {
		return fmt.Errorf("put records: %w", err)
	}
	fmt.Fprintf(out, "Put %d records (%d malformed)\n", len(samples), 3)

	// The construct's event source mapping: batches of 100, TRIM_HORIZON, partial batch responses, 10 retries,
	// records expire after 6 hours. -fail-writes gives batches up after 1 retry of at most 3 s.
	r, err := localrun.New(kc, inv, func(lo *localrun.Options) {
		lo.StreamName = streamName
		lo.BatchSize = 100
		lo.StartingPosition = localrun.TrimHorizon
		lo.ReportBatchItemFailures = true
		lo.BisectBatchOnFunctionError = true
		lo.MaximumRetryAttempts = 10
		lo.MaximumRecordAge = 6 * time.Hour
		lo.OnFailure = sink
		lo.PollInterval = 100 * time.Millisecond
		if o.failWrites {
			lo.MaximumRetryAttempts = 1
			lo.FunctionTimeout = 3 * time.Second
		}
	})
	if err != nil {
		return err
	}
	for _, w := range r.Warnings() {
		fmt.Fprintln(out, "warning: local event source mapping:", w)
	}
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer dcancel()
	if err := r.Drain(dctx); err != nil {
		return err
	}
	st := r.Stats()
	fmt.Fprintf(out, "Event source mapping: %d invocations, %d records acknowledged, %d given up (on-failure destination: %d messages)\n\n",
		st.Invocations, st.RecordsAcknowledged, st.RecordsGivenUp, st.FailureRecords)

	if err := printTable(ctx, out, db, tableName, []string{"id", "Timestamp", "Value", "Category"}, true); err != nil {
		return err
	}
	fmt.Fprintln(out)
	errColumns := []string{"id", processor.ErrorAttrPartitionKey, processor.ErrorAttrReason, processor.ErrorAttrPayload}
	if err := printTable(ctx, out, db, errorTableName, errColumns, false); err != nil {
		return err
	}
	if o.keep {
		printKeep(out, kin.Endpoint, ddb.Endpoint, queue.URL(), queueURL, streamARN)
		<-keepCtx.Done()
	}
	fmt.Fprintln(out, "\nStopping the emulators.")
	return nil
}

// printKeep prints how to reach what -keep leaves running: one "export NAME=VALUE" line per variable (the runbook's
// local section and its test read them), then the names to use. STREAM_ARN is what the redrive command pins with
// --stream.
func printKeep(out io.Writer, kinesisEndpoint, dynamoEndpoint, sqsEndpoint, queueURL, streamARN string) {
	fmt.Fprintln(out, "\nLeft running until Ctrl-C (or SIGTERM). In another shell, paste these lines, then follow")
	fmt.Fprintln(out, "\"Try it locally\" in docs/runbook.md:")
	fmt.Fprintln(out)
	for _, kv := range [][2]string{
		{"AWS_ENDPOINT_URL_KINESIS", kinesisEndpoint},
		{"AWS_ENDPOINT_URL_DYNAMODB", dynamoEndpoint},
		{"AWS_ENDPOINT_URL_SQS", sqsEndpoint},
		{"AWS_REGION", emulators.Region},
		{"AWS_ACCESS_KEY_ID", accessKeyID},
		{"AWS_SECRET_ACCESS_KEY", secretAccessKey},
		{"AWS_EC2_METADATA_DISABLED", "true"},
		{"QUEUE_URL", queueURL},
		{"STREAM_ARN", streamARN},
	} {
		fmt.Fprintf(out, "export %s=%s\n", kv[0], kv[1])
	}
	fmt.Fprintf(out, "\nStream %s, table %s, error table %s, on-failure queue %s\n", streamName, tableName, errorTableName, queueURL)
}

// invoker returns the processor to run: in process, or the real bootstrap under aws-lambda-rie.
func invoker(ctx context.Context, dynamoEndpoint string, o options, cfg processor.Config) (localrun.Invoker, func(), error) {
	if !o.rie {
		db := processor.NewDynamoDBClient(emulators.AWSConfig(), func(do *dynamodb.Options) {
			do.BaseEndpoint = aws.String(dynamoEndpoint)
			if o.failWrites {
				do.RetryMaxAttempts = 1 // the processor's own retries are what the demo shows
			}
		})
		p, err := processor.New(db, func(po *processor.Options) {
			po.TableName, po.ErrorTableName, po.Config = tableName, errorTableName, cfg
			po.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			po.MetricsWriter = io.Discard
		})
		if err != nil {
			return nil, nil, err
		}
		return localrun.InProcess(p.Handle), func() {}, nil
	}
	dir, err := os.MkdirTemp("", "local-demo-")
	if err != nil {
		return nil, nil, fmt.Errorf("temp dir: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	root, err := emulators.ModuleRoot()
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	bootstrap, err := localrun.BuildBootstrap(ctx, root, "./runtime/cmd/processor", dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	rieBin, err := localrun.BuildRIE(ctx, dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	env := []string{
		processor.EnvTableName + "=" + tableName,
		processor.EnvErrorTableName + "=" + errorTableName,
		"AWS_REGION=" + emulators.Region,
		"AWS_ACCESS_KEY_ID=" + accessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + secretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_DYNAMODB=" + dynamoEndpoint,
	}
	timeout := 60 * time.Second
	if o.failWrites {
		timeout = 3 * time.Second // as the runner's FunctionTimeout
	}
	if o.configFile != "" {
		abs, err := filepath.Abs(o.configFile)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("-config: %w", err)
		}
		env = append(env, processor.EnvConfigFile+"="+abs)
	}
	e, err := localrun.StartRIE(ctx, localrun.RIEOptions{RIE: rieBin, Bootstrap: bootstrap, Timeout: timeout, Env: env})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return e, func() { _ = e.Close(); cleanup() }, nil
}

// printTable prints every item of table, sorted by id: the columns given, then (with others) the other attributes
// except the processor's metadata.
func printTable(ctx context.Context, out io.Writer, db *dynamodb.Client, table string, columns []string, others bool) error {
	var items []map[string]types.AttributeValue
	pager := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for pages := 0; pager.HasMorePages() && pages < 100; pages++ {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("scan %s: %w", table, err)
		}
		items = append(items, page.Items...)
	}
	sort.Slice(items, func(i, j int) bool { return show(items[i]["id"]) < show(items[j]["id"]) })
	fmt.Fprintf(out, "%s: %d items\n", table, len(items))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := strings.Join(columns, "\t")
	if others {
		header += "\tother attributes"
	}
	fmt.Fprintln(tw, header)
	for _, it := range items {
		var cells []string
		for _, c := range columns {
			cells = append(cells, show(it[c]))
		}
		var other []string
		for k, v := range it {
			if others && !contains(columns, k) && !strings.HasPrefix(k, "_") {
				other = append(other, k+"="+show(v))
			}
		}
		sort.Strings(other)
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t"+strings.Join(other, " "))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print %s: %w", table, err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// show renders an attribute value compactly; event ids are shortened to shard:…last 6 digits.
func show(av types.AttributeValue) string {
	switch v := av.(type) {
	case nil:
		return "-"
	case *types.AttributeValueMemberS:
		if shard, seq, ok := strings.Cut(v.Value, ":"); ok && strings.HasPrefix(shard, "shardId-") && len(seq) > 12 {
			return strings.TrimPrefix(shard, "shardId-00000000") + ":…" + seq[len(seq)-6:]
		}
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberB:
		return string(v.Value)
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprint(v.Value)
	case *types.AttributeValueMemberL:
		parts := make([]string, len(v.Value))
		for i, e := range v.Value {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case *types.AttributeValueMemberM:
		keys := make([]string, 0, len(v.Value))
		for k := range v.Value {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + show(v.Value[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case *types.AttributeValueMemberNULL:
		return "null"
	default:
		return fmt.Sprintf("%T", av)
	}
}
