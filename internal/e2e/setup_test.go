//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// binaries are the host builds of the default processor and aws-lambda-rie, made once by TestMain.
var binaries struct {
	bootstrap, rie string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The builds have their own, generous limit: a cold build of both (empty build cache, a busy machine) takes
	// minutes, and no test's time limit covers it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	fmt.Fprintln(os.Stderr, "e2e: building bootstrap (./runtime/cmd/processor) and aws-lambda-rie for this machine")
	start := time.Now()
	root, err := emulators.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if binaries.bootstrap, err = localrun.BuildBootstrap(ctx, root, "./runtime/cmd/processor", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if binaries.rie, err = localrun.BuildRIE(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built in %v\n", time.Since(start).Round(time.Second))
	return m.Run()
}

// pipeline is the local pipeline of one test: a stream, a data table, an error table and the stand-in in front of
// dynalite that the processor writes through.
type pipeline struct {
	kc       *kinesis.Client
	db       *dynamodb.Client // straight to dynalite, for checks
	standin  *dynamostandin.Server
	stream   string
	table    string
	errTable string
	config   processor.Config
	shards   []ktypes.Shard
}

// newPipeline creates the stream (shards shards), the data table keyed as cfg says and the error table, and starts
// the stand-in with faults.
func newPipeline(t *testing.T, ctx context.Context, shards int32, cfg processor.Config, faults dynamostandin.Options) *pipeline {
	t.Helper()
	cfg = cfg.WithDefaults()
	p := &pipeline{
		kc:       emulators.KinesisClient(emulators.Kinesalite(t)),
		stream:   emulators.UniqueName(t.Name()),
		table:    emulators.UniqueName(t.Name() + "-data"),
		errTable: emulators.UniqueName(t.Name() + "-errors"),
		config:   cfg,
	}
	ddb := emulators.Dynalite(t)
	p.db = emulators.DynamoDBClient(ddb)
	if err := emulators.CreateStream(ctx, p.kc, p.stream, shards); err != nil {
		t.Fatal(err)
	}
	out, err := p.kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(p.stream)})
	if err != nil {
		t.Fatal(err)
	}
	p.shards = out.Shards
	if err := emulators.CreateKeyedTable(ctx, p.db, p.table, cfg.PartitionKey.Name, types.ScalarAttributeType(cfg.PartitionKey.Type)); err != nil {
		t.Fatal(err)
	}
	if err := emulators.CreateTable(ctx, p.db, p.errTable); err != nil {
		t.Fatal(err)
	}
	faults.Upstream = ddb
	p.standin = dynamostandin.New(faults)
	t.Cleanup(p.standin.Close)
	return p
}

// processor returns the default processor writing through the stand-in, quiet.
func (p *pipeline) processor(t *testing.T) *processor.Processor {
	t.Helper()
	db := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.standin.URL()) })
	proc, err := processor.New(db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.Config = p.table, p.errTable, p.config
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

// rie starts the real bootstrap under aws-lambda-rie, configured like the construct configures the function.
func (p *pipeline) rie(t *testing.T, ctx context.Context, timeout time.Duration, log io.Writer) *localrun.RIE {
	t.Helper()
	dir := t.TempDir()
	cfgJSON, err := p.config.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, processor.ConfigFileName)
	if err := os.WriteFile(cfgPath, cfgJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := localrun.StartRIE(ctx, localrun.RIEOptions{
		RIE:       binaries.rie,
		Bootstrap: binaries.bootstrap,
		Timeout:   timeout,
		Output:    log,
		Env: []string{
			processor.EnvTableName + "=" + p.table,
			processor.EnvErrorTableName + "=" + p.errTable,
			processor.EnvConfigFile + "=" + cfgPath,
			"AWS_REGION=" + emulators.Region,
			"AWS_ACCESS_KEY_ID=AKIDEMULATOR",
			"AWS_SECRET_ACCESS_KEY=emulator-secret",
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_ENDPOINT_URL_DYNAMODB=" + p.standin.URL(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// runner returns a runner over the pipeline's stream with the construct's mapping settings, polling fast.
func (p *pipeline) runner(t *testing.T, inv localrun.Invoker, optFns ...func(*localrun.Options)) *localrun.Runner {
	t.Helper()
	fns := append([]func(*localrun.Options){func(o *localrun.Options) {
		o.StreamName = p.stream
		o.BatchSize = 100
		o.ReportBatchItemFailures = true
		o.MaximumRetryAttempts = 10
		o.MaximumRecordAge = 6 * time.Hour
		o.BisectBatchOnFunctionError = true
		o.PollInterval = 20 * time.Millisecond
		o.RetryDelay = 10 * time.Millisecond
		o.FunctionTimeout = 60 * time.Second
	}}, optFns...)
	r, err := localrun.New(p.kc, inv, fns...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// entry is one record to put.
type entry struct {
	partitionKey string
	data         []byte
}

// put puts entries in order, 500 per PutRecords.
func (p *pipeline) put(t *testing.T, ctx context.Context, entries []entry) {
	t.Helper()
	for start := 0; start < len(entries); start += 500 {
		var reqs []ktypes.PutRecordsRequestEntry
		for _, e := range entries[start:min(start+500, len(entries))] {
			reqs = append(reqs, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(e.partitionKey), Data: e.data})
		}
		out, err := p.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: reqs})
		if err != nil {
			t.Fatal(err)
		}
		if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
			t.Fatalf("%d records failed to put", n)
		}
	}
}

// scan returns every item of table, keyed by the string value of key.
func (p *pipeline) scan(t *testing.T, ctx context.Context, table, key string) (map[string]map[string]types.AttributeValue, int) {
	t.Helper()
	items := map[string]map[string]types.AttributeValue{}
	total := 0
	pager := dynamodb.NewScanPaginator(p.db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for pages := 0; pager.HasMorePages() && pages < 10000; pages++ {
		out, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			s, ok := it[key].(*types.AttributeValueMemberS)
			if !ok {
				t.Fatalf("item without string %s: %v", key, it)
			}
			items[s.Value] = it
			total++
		}
	}
	return items, total
}

// drain runs r.Drain with a bound.
func drain(t *testing.T, ctx context.Context, r *localrun.Runner, bound time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := r.Drain(ctx); err != nil {
		t.Fatalf("%v (stats %+v)", err, r.Stats())
	}
}

func str(av types.AttributeValue) string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberB:
		return string(v.Value)
	default:
		return fmt.Sprintf("%T", av)
	}
}

// figures is one line of the reliability table.
type figures struct {
	Test           string `json:"test"`
	Records        int    `json:"records"`
	FaultsInjected int64  `json:"faultsInjected"`
	Lost           int    `json:"lost"`
	Duplicated     int    `json:"duplicated"`
	Seconds        float64
}

// report logs f and appends it to $E2E_FIGURES when set (the README's reliability table is made from it).
func report(t *testing.T, f figures) {
	t.Helper()
	b, _ := json.Marshal(f)
	t.Logf("FIGURES %s", b)
	if path := os.Getenv("E2E_FIGURES"); path != "" {
		fh, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		fmt.Fprintln(fh, string(b))
	}
}

func faultsInjected(s dynamostandin.Stats) int64 {
	return s.Throttled + s.PartialBatches + s.Dropped + s.ValidationErrors
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
