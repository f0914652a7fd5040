// Package emulators starts the npm emulators the tests use, dynalite (DynamoDB) and kinesalite (Kinesis), from the
// repository's node_modules on 127.0.0.1, and prepares them for the real aws-sdk-go-v2 clients.
//
// The emulators are pinned in the repository's package.json; install them once with `npm ci` at the module root.
// A missing node or emulator fails the test with that fix: it never skips.
package emulators

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Environment variables that point the helpers at an emulator started elsewhere (for example by .ci/run) instead of
// starting one per test. Tests sharing such a server must use unique table and stream names (see UniqueName).
const (
	EnvDynamoDBEndpoint = "PIPELINE_TEST_DYNAMODB_ENDPOINT"
	EnvKinesisEndpoint  = "PIPELINE_TEST_KINESIS_ENDPOINT"
)

// Region is the region the helpers' AWS config uses. The emulators accept any.
const Region = "us-east-1"

// startupTimeout bounds how long an emulator may take to listen and answer.
const startupTimeout = 30 * time.Second

// server is the node program that starts an emulator package on 127.0.0.1 with a free port, prints the port as
// JSON, and exits when its standard input closes (so it never outlives the test process). kinesalite's CLI binds
// every interface and dynalite's cannot take port 0, hence this instead of their CLIs. Both emulators throw from a
// request's error listener when a client goes away mid-request (Ctrl-C on kdp redrive against kdp local's
// emulators, a reset connection), which would end the process: that error (ECONNRESET, "aborted") is logged and the
// emulator goes on; any other uncaught exception still ends it.
const server = `
process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.message === 'aborted')) {
    console.error('client went away mid-request: ' + err.message);
    return;
  }
  console.error(err && err.stack || err);
  process.exit(1);
});
const [pkgDir, optsJSON] = process.argv.slice(1);
const srv = require(pkgDir)(JSON.parse(optsJSON));
srv.on('error', (err) => { console.error(err && err.stack || err); process.exit(1); });
srv.listen(0, '127.0.0.1', () => { console.log(JSON.stringify({ port: srv.address().port })); });
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
`

// Dynalite starts dynalite (tables become ACTIVE at once) and returns its endpoint, "http://127.0.0.1:<port>", for
// the SDK's BaseEndpoint. It stops on t.Cleanup. With $PIPELINE_TEST_DYNAMODB_ENDPOINT set, it returns that instead.
func Dynalite(t testing.TB) string {
	t.Helper()
	if ep := os.Getenv(EnvDynamoDBEndpoint); ep != "" {
		return ep
	}
	return startForTest(t, StartDynalite)
}

// Kinesalite starts kinesalite (streams become ACTIVE at once) and returns its endpoint, "http://127.0.0.1:<port>".
// It stops on t.Cleanup. Name streams by StreamName in requests: kinesalite does not resolve StreamARN alone. With
// $PIPELINE_TEST_KINESIS_ENDPOINT set, it returns that instead.
func Kinesalite(t testing.TB) string {
	t.Helper()
	if ep := os.Getenv(EnvKinesisEndpoint); ep != "" {
		return ep
	}
	return startForTest(t, StartKinesalite)
}

// startForTest starts an emulator from the module root above the working directory, stops it on t.Cleanup and
// fails the test with the fix when it cannot start.
func startForTest(t testing.TB, start func(ctx context.Context, root string) (*Emulator, error)) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*startupTimeout)
	defer cancel()
	e, err := start(ctx, root)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(e.Stop)
	return e.Endpoint
}

// Emulator is a running emulator process, listening on 127.0.0.1. It exits when Stop is called or when the process
// that started it exits (its standard input closes).
type Emulator struct {
	// Name is the npm package that runs: "dynalite" or "kinesalite".
	Name string
	// Endpoint is the emulator's base URL, "http://127.0.0.1:<port>", for the SDK's BaseEndpoint.
	Endpoint string

	stop   func()
	stderr *LockedBuffer
}

// Stop stops the emulator and waits (at most a few seconds, then kills it) until it has exited. It is safe to call
// more than once.
func (e *Emulator) Stop() { e.stop() }

// Stderr returns what the emulator wrote to its standard error so far.
func (e *Emulator) Stderr() string { return e.stderr.String() }

// StartDynalite starts dynalite from root's node_modules (root is the directory of package.json, normally
// ModuleRoot) on a free port of 127.0.0.1, with tables that become ACTIVE at once, and waits until it answers.
// Call Stop when done.
func StartDynalite(ctx context.Context, root string) (*Emulator, error) {
	return start(ctx, root, "dynalite", map[string]any{"createTableMs": 0, "deleteTableMs": 0, "updateTableMs": 0},
		"DynamoDB_20120810.ListTables", "application/x-amz-json-1.0")
}

// StartKinesalite starts kinesalite from root's node_modules on a free port of 127.0.0.1, with streams that become
// ACTIVE at once, and waits until it answers. Call Stop when done.
func StartKinesalite(ctx context.Context, root string) (*Emulator, error) {
	return start(ctx, root, "kinesalite", map[string]any{"createStreamMs": 0, "deleteStreamMs": 0, "updateStreamMs": 0, "shardLimit": 100},
		"Kinesis_20131202.ListStreams", "application/x-amz-json-1.1")
}

// ModuleRoot returns the directory of the go.mod enclosing the working directory, where package.json and
// node_modules live.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// start runs the emulator package name and waits until it answers target.
func start(ctx context.Context, root, name string, opts map[string]any, target, contentType string) (*Emulator, error) {
	fix := fmt.Sprintf("run `npm ci` in %s (package.json pins the emulators)", root)
	if _, err := os.Stat(filepath.Join(root, "node_modules", ".bin", name)); err != nil {
		return nil, fmt.Errorf("start %s: %s is not installed (%w): %s", name, name, err, fix)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("start %s: node is not on PATH (%w): install Node.js 20 or later, then %s", name, err, fix)
	}
	optsJSON, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("start %s: encode options: %w", name, err)
	}
	cmd := exec.Command(node, "-e", server, filepath.Join(root, "node_modules", name), string(optsJSON))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	stderr := &LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w: %s", name, err, fix)
	}
	exited := make(chan struct{})
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = stdin.Close() // the program exits when its standard input closes
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	ports := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var msg struct {
				Port int `json:"port"`
			}
			if json.Unmarshal(sc.Bytes(), &msg) == nil && msg.Port > 0 {
				ports <- msg.Port
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()

	var port int
	timer := time.NewTimer(startupTimeout)
	defer timer.Stop()
	select {
	case port = <-ports:
	case <-exited:
		return nil, fmt.Errorf("start %s: exited before listening: %s\n%s", name, cmd.ProcessState, stderr)
	case <-timer.C:
		stop()
		return nil, fmt.Errorf("start %s: not listening after %v\n%s", name, startupTimeout, stderr)
	case <-ctx.Done():
		stop()
		return nil, fmt.Errorf("start %s: %w", name, ctx.Err())
	}
	e := &Emulator{Name: name, Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), stop: stop, stderr: stderr}
	wctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	if err := waitAnswering(wctx, e.Endpoint, target, contentType); err != nil {
		stop()
		return nil, fmt.Errorf("start %s: %w\n%s", name, err, stderr)
	}
	return e, nil
}

// waitAnswering polls endpoint with a request for target until it gets any HTTP response.
func waitAnswering(ctx context.Context, endpoint, target, contentType string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader("{}"))
		if err != nil {
			return fmt.Errorf("wait for %s: %w", endpoint, err)
		}
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", contentType)
		res, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last error: %w)", endpoint, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// LockedBuffer is a bytes.Buffer safe for one writer and readers in other goroutines: it collects an emulator's
// standard error for failure messages, and a command's output in tests.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p, safe for concurrent use.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Bytes returns a copy of what was written so far.
func (b *LockedBuffer) Bytes() []byte { return []byte(b.String()) }

// AWSConfig returns an AWS config for the emulators: Region and static credentials. Point a client at an emulator
// with its BaseEndpoint option.
func AWSConfig() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEMULATOR", "emulator-secret", ""),
	}
}

// DynamoDBClient returns a DynamoDB client for endpoint built from AWSConfig.
func DynamoDBClient(endpoint string) *dynamodb.Client {
	return dynamodb.NewFromConfig(AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// TableAPI is the part of the DynamoDB client CreateTable needs.
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

var _ TableAPI = (*dynamodb.Client)(nil)

// CreateTable creates a PAY_PER_REQUEST table keyed by "id" (S), the data and error tables' default key, and waits
// until it is ACTIVE.
func CreateTable(ctx context.Context, db TableAPI, name string) error {
	return CreateKeyedTable(ctx, db, name, "id", types.ScalarAttributeTypeS)
}

// CreateKeyedTable creates a PAY_PER_REQUEST table whose partition key is the attribute key of type typ, as the
// construct does for a mapped partition key, and waits until it is ACTIVE.
func CreateKeyedTable(ctx context.Context, db TableAPI, name, key string, typ types.ScalarAttributeType) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(key), AttributeType: typ}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(key), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	return nil
}

// CreateAggregateTable creates a PAY_PER_REQUEST table keyed as the construct keys the aggregate table
// (partition key pk, sort key sk, both strings) and waits until it is ACTIVE.
func CreateAggregateTable(ctx context.Context, db TableAPI, name string) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange}},
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	return nil
}

// KinesisClient returns a Kinesis client for endpoint built from AWSConfig. With kinesalite, name streams by
// StreamName in every request.
func KinesisClient(endpoint string) *kinesis.Client {
	return kinesis.NewFromConfig(AWSConfig(), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// StreamAPI is the part of the Kinesis client CreateStream needs.
type StreamAPI interface {
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ StreamAPI = (*kinesis.Client)(nil)

// CreateStream creates a provisioned stream with shards shards and waits (at most a minute) until it is ACTIVE.
func CreateStream(ctx context.Context, kc StreamAPI, name string, shards int32) error {
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("describe stream %s: %w", name, err)
		}
		if out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for stream %s: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// UniqueName returns a table or stream name derived from prefix that no other call returns, valid for both
// DynamoDB and Kinesis (letters, digits, '-', '_', '.'; at most 128 characters).
func UniqueName(prefix string) string {
	var b strings.Builder
	for _, r := range prefix {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := b.String()
	if len(name) > 90 {
		name = name[:90]
	}
	return fmt.Sprintf("%s-%d-%08x", name, time.Now().UnixNano(), rand.Uint32())
}
