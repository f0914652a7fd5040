// Package kdplocal is `kdp local`: it runs a pipeline of a synthesized CDK stack on this machine, without AWS and
// without Docker. It reads the stack's template from the cloud assembly (cdk.out), creates on kinesalite and dynalite
// the stream (its shard count) and the tables (their keys) the template defines, the on-failure destination (an SQS
// fake, or a bucket on a local S3 server, internal/s3local), runs the function from its code asset behind the local event
// source mapping of internal/localrun configured as the template's mapping, puts the given records, waits until the
// mapping has handled them, and prints what landed in the table, the error table and the on-failure destination.
//
// The function: the default processor (the asset's bootstrap records its main package in its Go build information)
// runs in process with the asset's pipeline.json and the template's table names; any other main package (a
// ProcessorEntry) runs under aws-lambda-rie, from the asset's bootstrap when it was built for this host, else built
// for the host from the CDK app's module (--app-dir) with the package path and build tags its bootstrap records.
//
// Hosts: Linux and macOS (WSL2 on Windows); internal/localrun uses Unix process groups for aws-lambda-rie.
//
// Not emulated (printed as warnings): on-demand streams (created with the shard count or 1), stream encryption,
// TTL (dynalite has no UpdateTimeToLive), SNS destinations (kept in memory), and what internal/localrun lists.
package kdplocal

import (
	"bufio"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/s3local"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/sqsfake"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// Exit statuses of Main.
const (
	ExitOK    = 0 // every record is accounted for
	ExitLost  = 1 // a record was lost, or the run failed
	ExitUsage = 2 // bad flags, or a stack or pipeline kdp local cannot run
)

// DefaultProcessorPackage is the default processor's main package, as its bootstrap records it.
const DefaultProcessorPackage = "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/processor"

// Options are the flags of kdp local.
type Options struct {
	CDKOut    string // the cloud assembly directory
	Stack     string // the stack's name
	Pipeline  string // the pipeline's construct path; "" when the stack has one
	Records   string // the NDJSON file of records; "-" or "" for stdin
	AppDir    string // the CDK app's module directory, to build a ProcessorEntry for the host; default: the working directory
	Emulators string // the directory whose node_modules holds dynalite and kinesalite
	Keep      bool   // leave the emulators running until ctx ends
	JSON      bool   // print one JSON object
	RIE       bool   // run the default processor under aws-lambda-rie too
	Timeout   time.Duration
}

// Result is what --json prints.
type Result struct {
	Table      []json.RawMessage `json:"table"`
	ErrorTable []json.RawMessage `json:"errorTable"`
	OnFailure  []json.RawMessage `json:"onFailure"`
	Lost       int64             `json:"lost"`
	// Aggregates holds the aggregate table's items, when the pipeline has Aggregates.
	Aggregates []json.RawMessage `json:"aggregates,omitempty"`
}

// Main runs `kdp local` with args (after "local") and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kdp local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.CDKOut, "cdk-out", "cdk.out", "the cloud assembly directory `cdk synth` wrote")
	fs.StringVar(&o.Stack, "stack", "", "the stack to run (required)")
	fs.StringVar(&o.Pipeline, "pipeline", "", "the pipeline's construct path, e.g. Ingest/Pipeline (when the stack has several)")
	fs.StringVar(&o.Records, "records", "-", "NDJSON records, one a line: {\"data\": <JSON>, \"partitionKey\": \"...\"} or \"dataBase64\"; - for standard input")
	fs.StringVar(&o.AppDir, "app-dir", "", "the CDK app's module directory, where a ProcessorEntry is built for this host (default: the working directory)")
	fs.StringVar(&o.Emulators, "emulators", "", "a directory whose node_modules holds dynalite and kinesalite (default: the app directory, the module root, then the user's cache folder, where they are installed with npm on first use)")
	fs.BoolVar(&o.Keep, "keep", false, "leave the emulators running until Ctrl-C, and print how to reach them")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON object {table, errorTable, onFailure, lost}")
	fs.BoolVar(&o.RIE, "rie", false, "run the default processor under aws-lambda-rie instead of in process")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long to wait for the mapping to handle the records")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if o.Stack == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "kdp local: --stack is required and no arguments are taken")
		fs.Usage()
		return ExitUsage
	}
	res, err := Run(ctx, o, stdin, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kdp local:", strings.ReplaceAll(err.Error(), "\n", " "))
		var ue *usageError
		if errors.As(err, &ue) {
			return ExitUsage
		}
		return ExitLost
	}
	if res.Lost > 0 {
		return ExitLost
	}
	return ExitOK
}

// inputRecord is one line of --records.
type inputRecord struct {
	Data         json.RawMessage `json:"data"`
	DataBase64   *string         `json:"dataBase64"`
	PartitionKey string          `json:"partitionKey"`
}

// readRecords parses NDJSON records.
func readRecords(r io.Reader) ([]ktypes.PutRecordsRequestEntry, error) {
	var out []ktypes.PutRecordsRequestEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 12<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var in inputRecord
		if err := json.Unmarshal([]byte(line), &in); err != nil {
			return nil, &usageError{fmt.Sprintf("records line %d: not a JSON object: %v", n, err)}
		}
		var data []byte
		switch {
		case in.DataBase64 != nil && in.Data != nil:
			return nil, &usageError{fmt.Sprintf("records line %d: give data or dataBase64, not both", n)}
		case in.DataBase64 != nil:
			b, err := base64.StdEncoding.DecodeString(*in.DataBase64)
			if err != nil {
				return nil, &usageError{fmt.Sprintf("records line %d: dataBase64: %v", n, err)}
			}
			data = b
		case in.Data != nil:
			data = in.Data
		default:
			return nil, &usageError{fmt.Sprintf("records line %d: no data or dataBase64", n)}
		}
		pk := in.PartitionKey
		if pk == "" {
			pk = fmt.Sprintf("record-%d", n)
		}
		out = append(out, ktypes.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(pk)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	return out, nil
}

// Run runs the pipeline o names and prints the outcome to stdout (warnings to stderr).
func Run(ctx context.Context, o Options, stdin io.Reader, stdout, stderr io.Writer) (*Result, error) {
	st, err := loadStack(o.CDKOut, o.Stack)
	if err != nil {
		return nil, err
	}
	ps, err := st.pipelines()
	if err != nil {
		return nil, err
	}
	p, err := choose(o.Stack, ps, o.Pipeline)
	if err != nil {
		return nil, err
	}
	bootstrap := filepath.Join(p.assetDir, "bootstrap")
	if _, err := os.Stat(bootstrap); err != nil {
		return nil, &usageError{fmt.Sprintf("pipeline %s: its asset %s has no bootstrap: bundling was skipped (aws:cdk:bundling-stacks?); synth again with bundling", p.path, p.assetDir)}
	}
	bi, err := buildinfo.ReadFile(bootstrap)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("pipeline %s: %s is not a Go binary with build information (%v)", p.path, bootstrap, err)}
	}
	var in io.Reader = stdin
	if o.Records != "" && o.Records != "-" {
		f, err := os.Open(o.Records)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("--records: %v", err)}
		}
		defer f.Close()
		in = f
	}
	entries, err := readRecords(in)
	if err != nil {
		return nil, err
	}
	warn := func(format string, a ...any) { fmt.Fprintf(stderr, "kdp local: warning: "+format+"\n", a...) }
	if p.onDemand {
		warn("stream %s is on-demand; kinesalite has none: created with %d shard(s)", p.streamID, p.shards)
	}
	if p.encrypted {
		warn("stream encryption is not emulated")
	}
	for _, t := range []*table{&p.table, p.errorTable} {
		if t != nil && t.ttl != "" {
			warn("table %s: TTL on %s is not applied (dynalite has no UpdateTimeToLive)", t.logicalID, t.ttl)
		}
	}

	root, err := emulatorRoot(ctx, o, stderr)
	if err != nil {
		return nil, err
	}
	keepCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout+3*time.Minute)
	defer cancel()
	kin, err := emulators.StartKinesalite(ctx, root)
	if err != nil {
		return nil, err
	}
	defer kin.Stop()
	ddb, err := emulators.StartDynalite(ctx, root)
	if err != nil {
		return nil, err
	}
	defer ddb.Stop()
	kc := emulators.KinesisClient(kin.Endpoint)
	db := emulators.DynamoDBClient(ddb.Endpoint)
	if err := emulators.CreateStream(ctx, kc, p.streamID, p.shards); err != nil {
		return nil, err
	}
	for _, t := range []*table{&p.table, p.errorTable, p.aggTable} {
		if t != nil {
			if err := createTable(ctx, db, t); err != nil {
				return nil, err
			}
		}
	}

	streamARN := fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", emulators.Region, pseudoParameters["AWS::AccountId"], p.streamID)
	dest, err := onFailure(ctx, p, streamARN, warn)
	if err != nil {
		return nil, err
	}
	defer dest.close()

	env, err := functionEnv(p, warn)
	if err != nil {
		return nil, err
	}
	inv, closeInv, err := invoker(ctx, o, p, bi, env, ddb.Endpoint, warn)
	if err != nil {
		return nil, err
	}
	defer closeInv()

	r, err := localrun.New(kc, inv, func(lo *localrun.Options) {
		lo.StreamName = p.streamID
		lo.StreamARN = streamARN
		lo.OnFailure = dest.sink
		lo.PollInterval = 100 * time.Millisecond
		configureMapping(lo, p, warn)
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: event source mapping: %w", p.path, err)
	}
	for _, w := range r.Warnings() {
		warn("event source mapping: %s", w)
	}
	putAt := time.Now().Add(-time.Second) // kinesalite stamps arrival times in whole milliseconds
	for i := 0; i < len(entries); i += 500 {
		chunk := entries[i:min(i+500, len(entries))]
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.streamID), Records: chunk})
		if err != nil {
			return nil, fmt.Errorf("put records: %w", err)
		}
		if n := aws.ToInt32(out.FailedRecordCount); n > 0 {
			return nil, fmt.Errorf("put records: kinesalite refused %d records", n)
		}
	}
	dctx, dcancel := context.WithTimeout(ctx, o.Timeout)
	defer dcancel()
	if err := r.Drain(dctx); err != nil {
		return nil, fmt.Errorf("wait for the event source mapping: %w", err)
	}
	stats := r.Stats()

	res := &Result{Table: []json.RawMessage{}, ErrorTable: []json.RawMessage{}, OnFailure: []json.RawMessage{}}
	if res.Table, err = scan(ctx, db, p.table.logicalID); err != nil {
		return nil, err
	}
	if p.errorTable != nil {
		if res.ErrorTable, err = scan(ctx, db, p.errorTable.logicalID); err != nil {
			return nil, err
		}
	}
	if res.OnFailure, err = dest.read(ctx); err != nil {
		return nil, err
	}
	if p.aggTable != nil {
		// The aggregate items only: the ledger's own items (shard states, error markers) are bookkeeping.
		if res.Aggregates, err = scanWhere(ctx, db, p.aggTable.logicalID, func(it map[string]types.AttributeValue) bool {
			return !aggregate.IsLedgerItem(it)
		}); err != nil {
			return nil, err
		}
	}
	// Accounted for: acknowledged by the function (stored in a table), dropped by a filter, or given up on into an
	// on-failure destination. Counted from the mapping's accounting, never by matching items to records.
	accounted := stats.RecordsAcknowledged + stats.RecordsFiltered
	if p.onFailureTyp != "" {
		accounted += stats.RecordsGivenUp
	}
	res.Lost = max(int64(len(entries))-accounted, 0)

	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return nil, fmt.Errorf("print result: %w", err)
		}
	} else {
		fmt.Fprintf(stdout, "Pipeline %s: put %d records; %d invocations, %d acknowledged, %d filtered, %d given up, %d lost\n",
			p.path, len(entries), stats.Invocations, stats.RecordsAcknowledged, stats.RecordsFiltered, stats.RecordsGivenUp, res.Lost)
		printList(stdout, "table "+p.table.logicalID, res.Table)
		if p.aggTable != nil {
			printList(stdout, "aggregate table "+p.aggTable.logicalID, res.Aggregates)
		}
		if p.errorTable != nil {
			printList(stdout, "error table "+p.errorTable.logicalID, res.ErrorTable)
		}
		printList(stdout, "on-failure destination "+p.onFailureID, res.OnFailure)
	}
	if o.Keep {
		fmt.Fprintf(stderr, "Left running until Ctrl-C:\nexport AWS_ENDPOINT_URL_KINESIS=%s\nexport AWS_ENDPOINT_URL_DYNAMODB=%s\nexport AWS_REGION=%s AWS_ACCESS_KEY_ID=AKIDEMULATOR AWS_SECRET_ACCESS_KEY=emulator-secret\n",
			kin.Endpoint, ddb.Endpoint, emulators.Region)
		for _, l := range dest.keep {
			fmt.Fprintln(stderr, l)
		}
		fmt.Fprintf(stderr, "Replay the records put above through the processor again (with the exports above):\n  %s\n",
			replayCommand(p, streamARN, putAt))
		<-keepCtx.Done()
	}
	return res, nil
}

// replayCommand is the kdp replay command for the records put into the local stream since since: the pipeline's
// tables and, when the asset holds one, its configuration.
func replayCommand(p *pipeline, streamARN string, since time.Time) string {
	cmd := fmt.Sprintf("kdp replay --stream %s --since %s --table %s", streamARN, since.UTC().Format(time.RFC3339), p.table.logicalID)
	return cmd + commandTables(p)
}

// redriveS3Command is the kdp redrive command for the objects under prefix in the local on-failure bucket.
func redriveS3Command(p *pipeline, bucket, prefix, streamARN string) string {
	cmd := fmt.Sprintf("kdp redrive s3 --bucket %s --prefix %s --stream %s --table %s", bucket, prefix, streamARN, p.table.logicalID)
	return cmd + commandTables(p)
}

// commandTables are the flags of the printed commands after --table: the error table, the configuration when the
// asset holds one, and the aggregate table with Aggregates (the records the commands store are recounted there).
func commandTables(p *pipeline) string {
	var flags string
	if p.errorTable != nil {
		flags += " --error-table " + p.errorTable.logicalID
	}
	if cfg := filepath.Join(p.assetDir, processor.ConfigFileName); fileExists(cfg) {
		flags += " --config " + cfg
	}
	if p.aggTable != nil {
		flags += " --aggregate-table " + p.aggTable.logicalID
	}
	return flags
}

func printList(w io.Writer, title string, items []json.RawMessage) {
	fmt.Fprintf(w, "\n%s: %d\n", title, len(items))
	for _, it := range items {
		fmt.Fprintf(w, "  %s\n", it)
	}
}

// emulatorRoot finds a directory whose node_modules holds both emulators: --emulators alone when given, else the app
// directory, the module root above the working directory and the user's cache folder, where the pinned versions are
// installed on first use.
func emulatorRoot(ctx context.Context, o Options, log io.Writer) (string, error) {
	if o.Emulators != "" {
		return findOrInstallEmulators(ctx, []string{o.Emulators}, "", false, log)
	}
	candidates := []string{appDir(o)}
	if root, err := emulators.ModuleRoot(); err == nil && root != candidates[0] {
		candidates = append(candidates, root)
	}
	cache := ""
	if dir, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(dir, filepath.FromSlash(emulatorCacheSubdir))
	}
	return findOrInstallEmulators(ctx, candidates, cache, true, log)
}

func appDir(o Options) string {
	if o.AppDir != "" {
		return o.AppDir
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "."
}

func createTable(ctx context.Context, db *dynamodb.Client, t *table) error {
	in := &dynamodb.CreateTableInput{TableName: aws.String(t.logicalID), BillingMode: types.BillingModePayPerRequest}
	for _, k := range t.keys {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(k.name), AttributeType: types.ScalarAttributeType(k.typ)})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(k.name), KeyType: types.KeyType(k.keyType)})
	}
	if _, err := db.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("create table %s: %w", t.logicalID, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.logicalID)}, time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", t.logicalID, err)
	}
	return nil
}

// destination is the pipeline's on-failure destination locally.
type destination struct {
	sink  localrun.Sink                                    // what the mapping sends to; nil for none
	read  func(context.Context) ([]json.RawMessage, error) // what it holds, read back
	close func()
	keep  []string // what --keep prints to reach it
}

// onFailure starts the pipeline's on-failure destination: an SQS fake for a queue, a bucket on a local S3 server
// (internal/s3local) for a bucket, memory otherwise.
func onFailure(ctx context.Context, p *pipeline, streamARN string, warn func(string, ...any)) (*destination, error) {
	none := func(context.Context) ([]json.RawMessage, error) { return []json.RawMessage{}, nil }
	switch p.onFailureTyp {
	case "":
		warn("pipeline %s has no on-failure destination: records given up on are lost", p.path)
		return &destination{read: none, close: func() {}}, nil
	case "AWS::SQS::Queue":
		srv, err := sqsfake.New()
		if err != nil {
			return nil, err
		}
		url := srv.CreateQueue(p.onFailureID)
		sc := sqs.NewFromConfig(emulators.AWSConfig(), func(so *sqs.Options) { so.BaseEndpoint = aws.String(srv.URL()) })
		read := func(context.Context) ([]json.RawMessage, error) {
			out := []json.RawMessage{}
			for _, m := range srv.Messages(p.onFailureID) {
				out = append(out, json.RawMessage(m.Body))
			}
			return out, nil
		}
		return &destination{sink: localrun.SQSSink{Client: sc, QueueURL: url}, read: read, close: srv.Close}, nil
	case "AWS::S3::Bucket":
		bucket := strings.ToLower(p.onFailureID)
		srv, err := s3local.New(bucket)
		if err != nil {
			return nil, fmt.Errorf("on-failure destination %s: %w", p.onFailureID, err)
		}
		client := s3.NewFromConfig(emulators.AWSConfig(), func(so *s3.Options) {
			so.BaseEndpoint = aws.String(srv.URL())
			so.UsePathStyle = true
		})
		uuid := newUUID()
		prefix := "aws/lambda/" + uuid + "/"
		read := func(ctx context.Context) ([]json.RawMessage, error) { return readObjects(ctx, client, bucket, prefix) }
		redrive := redriveS3Command(p, bucket, prefix, streamARN)
		keep := []string{
			"export AWS_ENDPOINT_URL_S3=" + srv.URL(),
			fmt.Sprintf("On-failure bucket %s (a local S3 server at %s):", bucket, srv.URL()),
			fmt.Sprintf("  aws s3 ls --endpoint-url %s --recursive s3://%s/", srv.URL(), bucket),
			"Redrive its objects (their payloads run through the processor into the local tables; with the exports above):",
			"  " + redrive,
		}
		closeSrv := func() { _ = srv.Close() }
		return &destination{sink: localrun.S3Sink{Client: client, Bucket: bucket, MappingUUID: uuid}, read: read, close: closeSrv, keep: keep}, nil
	default:
		warn("on-failure destination %s (%s) is kept in memory", p.onFailureID, p.onFailureTyp)
		mem := &localrun.MemorySink{}
		read := func(context.Context) ([]json.RawMessage, error) {
			out := []json.RawMessage{}
			for _, r := range mem.Records() {
				b, err := json.Marshal(r)
				if err != nil {
					return nil, fmt.Errorf("encode on-failure record: %w", err)
				}
				out = append(out, b)
			}
			return out, nil
		}
		return &destination{sink: mem, read: read, close: func() {}}, nil
	}
}

// readObjects reads back, through the S3 API, the objects under prefix, in key order.
func readObjects(ctx context.Context, client *s3.Client, bucket, prefix string) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list on-failure objects s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			get, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return nil, fmt.Errorf("get on-failure object s3://%s/%s: %w", bucket, aws.ToString(o.Key), err)
			}
			b, err := io.ReadAll(get.Body)
			_ = get.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("read on-failure object s3://%s/%s: %w", bucket, aws.ToString(o.Key), err)
			}
			out = append(out, json.RawMessage(b))
		}
	}
	return out, nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// pseudoParameters are the values of CloudFormation's pseudo parameters locally.
var pseudoParameters = map[string]string{
	"AWS::Region":    emulators.Region,
	"AWS::AccountId": "000000000000",
	"AWS::Partition": "aws",
	"AWS::URLSuffix": "amazonaws.com",
}

// functionEnv resolves the function's environment from the template: strings as they are, references to the
// pipeline's tables as their local names.
func functionEnv(p *pipeline, warn func(string, ...any)) (map[string]string, error) {
	vars, _ := dig(p.function, "Environment", "Variables").(map[string]any)
	env := map[string]string{}
	for k, v := range vars {
		if s, ok := v.(string); ok {
			env[k] = s
			continue
		}
		id, ok := refOf(v)
		if ok && (id == p.table.logicalID || (p.errorTable != nil && id == p.errorTable.logicalID) || (p.aggTable != nil && id == p.aggTable.logicalID)) {
			env[k] = id
			continue
		}
		if pseudo, ok := pseudoParameters[id]; ok && dig(v, "Ref") != nil {
			env[k] = pseudo
			continue
		}
		warn("function variable %s is not resolved locally (left unset)", k)
	}
	return env, nil
}

// configureMapping copies the template's event source mapping into lo.
func configureMapping(lo *localrun.Options, p *pipeline, warn func(string, ...any)) {
	m := p.mapping
	num := func(k string) (int, bool) {
		f, ok := m[k].(float64)
		return int(f), ok
	}
	if n, ok := num("BatchSize"); ok {
		lo.BatchSize = n
	}
	if n, ok := num("MaximumBatchingWindowInSeconds"); ok {
		lo.MaximumBatchingWindow = time.Duration(n) * time.Second
	}
	if s, ok := m["StartingPosition"].(string); ok {
		lo.StartingPosition = localrun.StartingPosition(s)
		if lo.StartingPosition == localrun.Latest {
			warn("starting position LATEST: records put before the mapping first reads a shard are skipped; kdp local reads from TRIM_HORIZON instead")
			lo.StartingPosition = localrun.TrimHorizon
		}
	}
	if n, ok := num("StartingPositionTimestamp"); ok {
		lo.StartingPositionTimestamp = time.Unix(int64(n), 0)
	}
	lo.MaximumRetryAttempts = -1 // CloudFormation's default: retry until the record expires
	if n, ok := num("MaximumRetryAttempts"); ok {
		lo.MaximumRetryAttempts = n
	}
	if n, ok := num("MaximumRecordAgeInSeconds"); ok && n > 0 {
		lo.MaximumRecordAge = time.Duration(n) * time.Second
	}
	if b, ok := m["BisectBatchOnFunctionError"].(bool); ok {
		lo.BisectBatchOnFunctionError = b
	}
	if rt, ok := m["FunctionResponseTypes"].([]any); ok {
		for _, t := range rt {
			if t == "ReportBatchItemFailures" {
				lo.ReportBatchItemFailures = true
			}
		}
	}
	if n, ok := num("ParallelizationFactor"); ok {
		lo.ParallelizationFactor = n
	}
	if n, ok := num("TumblingWindowInSeconds"); ok {
		lo.TumblingWindow = time.Duration(n) * time.Second
	}
	if filters, ok := dig(m, "FilterCriteria", "Filters").([]any); ok {
		for _, f := range filters {
			if pat, ok := dig(f, "Pattern").(string); ok {
				lo.FilterPatterns = append(lo.FilterPatterns, pat)
			}
		}
	}
	if t, ok := p.function["Timeout"].(float64); ok {
		lo.FunctionTimeout = time.Duration(t) * time.Second
	}
}

// invoker runs the function: the default processor in process, anything else under aws-lambda-rie.
func invoker(ctx context.Context, o Options, p *pipeline, bi *buildinfo.BuildInfo, env map[string]string, dynamoEndpoint string, warn func(string, ...any)) (localrun.Invoker, func(), error) {
	configFile := filepath.Join(p.assetDir, processor.ConfigFileName)
	if _, err := os.Stat(configFile); err != nil {
		configFile = ""
	}
	if bi.Path == DefaultProcessorPackage && !o.RIE {
		if asset, self := moduleVersion(bi), ownModuleVersion(); asset != self {
			warn("the asset's processor is module version %s, this command %s: the processor runs as this command's version (--rie runs the asset's own code)", asset, self)
		}
		cfg := processor.DefaultConfig()
		if configFile != "" {
			var err error
			if cfg, err = processor.ReadConfigFile(configFile); err != nil {
				return nil, nil, fmt.Errorf("pipeline %s: %w", p.path, err)
			}
		}
		db := processor.NewDynamoDBClient(emulators.AWSConfig(), func(do *dynamodb.Options) { do.BaseEndpoint = aws.String(dynamoEndpoint) })
		proc, err := processor.New(db, func(po *processor.Options) {
			po.TableName, po.ErrorTableName, po.Config = env[processor.EnvTableName], env[processor.EnvErrorTableName], cfg
			po.AggregateTableName = env[processor.EnvAggregateTableName]
			po.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			po.MetricsWriter = io.Discard
		})
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline %s: processor: %w", p.path, err)
		}
		return localrun.InProcess(proc.Handle), func() {}, nil
	}
	dir, err := os.MkdirTemp("", "kdp-local-")
	if err != nil {
		return nil, nil, fmt.Errorf("temp dir: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	bootstrap := filepath.Join(p.assetDir, "bootstrap")
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != goruntime.GOOS || settings["GOARCH"] != goruntime.GOARCH {
		if bootstrap, err = buildForHost(ctx, appDir(o), bi.Path, settings["-tags"], dir); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("pipeline %s: the asset is %s/%s, this host %s/%s: %w", p.path, settings["GOOS"], settings["GOARCH"], goruntime.GOOS, goruntime.GOARCH, err)
		}
	}
	rie, err := localrun.BuildRIE(ctx, dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	vars := []string{"AWS_REGION=" + emulators.Region, "AWS_ACCESS_KEY_ID=AKIDEMULATOR", "AWS_SECRET_ACCESS_KEY=emulator-secret",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_DYNAMODB=" + dynamoEndpoint}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vars = append(vars, k+"="+env[k])
	}
	if configFile != "" {
		abs, _ := filepath.Abs(configFile)
		vars = append(vars, processor.EnvConfigFile+"="+abs)
	}
	timeout := 60 * time.Second
	if t, ok := p.function["Timeout"].(float64); ok {
		timeout = time.Duration(t) * time.Second
	}
	e, err := localrun.StartRIE(ctx, localrun.RIEOptions{RIE: rie, Bootstrap: bootstrap, Timeout: timeout, Env: vars})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return e, func() { _ = e.Close(); cleanup() }, nil
}

// buildForHost builds pkg for this host in moduleDir with the build tags its bootstrap records.
func buildForHost(ctx context.Context, moduleDir, pkg, tags, dir string) (string, error) {
	out := filepath.Join(dir, "bootstrap")
	if tags == "" {
		tags = "lambda.norpc"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-tags", tags, "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0", "GOOS="+goruntime.GOOS, "GOARCH="+goruntime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s in %s (pass --app-dir, the CDK app's module): %w: %s", pkg, moduleDir, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// scan returns every item of table in attribute-value JSON, as the AWS CLI prints them, sorted.
func scan(ctx context.Context, db *dynamodb.Client, table string) ([]json.RawMessage, error) {
	return scanWhere(ctx, db, table, nil)
}

// scanWhere is scan keeping only the items keep accepts (all when keep is nil).
func scanWhere(ctx context.Context, db *dynamodb.Client, table string, keep func(map[string]types.AttributeValue) bool) ([]json.RawMessage, error) {
	var out []string
	pager := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", table, err)
		}
		for _, it := range page.Items {
			if keep != nil && !keep(it) {
				continue
			}
			b, err := json.Marshal(itemJSON(it))
			if err != nil {
				return nil, fmt.Errorf("encode item of %s: %w", table, err)
			}
			out = append(out, string(b))
		}
	}
	sort.Strings(out)
	res := make([]json.RawMessage, 0, len(out))
	for _, s := range out {
		res = append(res, json.RawMessage(s))
	}
	return res, nil
}

func itemJSON(it map[string]types.AttributeValue) map[string]any {
	m := make(map[string]any, len(it))
	for k, v := range it {
		m[k] = avJSON(v)
	}
	return m
}

// avJSON renders an attribute value as the AWS CLI does: {"S": ...}, {"N": "..."}, {"B": base64}, ...
func avJSON(av types.AttributeValue) any {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return map[string]any{"S": v.Value}
	case *types.AttributeValueMemberN:
		return map[string]any{"N": v.Value}
	case *types.AttributeValueMemberB:
		return map[string]any{"B": v.Value} // []byte marshals as base64
	case *types.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": v.Value}
	case *types.AttributeValueMemberNULL:
		return map[string]any{"NULL": v.Value}
	case *types.AttributeValueMemberSS:
		return map[string]any{"SS": v.Value}
	case *types.AttributeValueMemberNS:
		return map[string]any{"NS": v.Value}
	case *types.AttributeValueMemberBS:
		return map[string]any{"BS": v.Value}
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			l[i] = avJSON(e)
		}
		return map[string]any{"L": l}
	case *types.AttributeValueMemberM:
		return map[string]any{"M": itemJSON(v.Value)}
	default:
		return nil
	}
}

// modulePath is this module's path.
const modulePath = "github.com/cdk-constructs-go/kinesis-dynamo-pipeline"

// moduleVersion returns the version of this module bi was built with.
func moduleVersion(bi *buildinfo.BuildInfo) string {
	if bi.Main.Path == modulePath {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

// ownModuleVersion returns the version of this module the running command was built with.
func ownModuleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	return moduleVersion(bi)
}
