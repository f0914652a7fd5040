//go:build integration

package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/sqsfake"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// local points the SDK's default chain at the emulators, as the runbook does, and creates the tables and stream.
type local struct {
	db            *dynamodb.Client
	kc            *kinesis.Client
	sqs           *sqsfake.Server
	s3            *s3.Client // a client of the S3 server (gofakes3) the command reaches through AWS_ENDPOINT_URL_S3
	table, errors string
	stream, arn   string
}

func newLocal(t *testing.T) *local {
	t.Helper()
	ctx := context.Background()
	dyn, kin := emulators.Dynalite(t), emulators.Kinesalite(t)
	srv, err := sqsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	backend := s3mem.New()
	if err := backend.CreateBucket("failures"); err != nil {
		t.Fatal(err)
	}
	s3srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3srv.Close)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": dyn, "AWS_ENDPOINT_URL_KINESIS": kin, "AWS_ENDPOINT_URL_SQS": srv.URL(), "AWS_ENDPOINT_URL_S3": s3srv.URL,
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": emulators.Region,
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE": "", "AWS_EC2_METADATA_DISABLED": "true",
		processor.EnvTableName: "", processor.EnvErrorTableName: "", processor.EnvConfigFile: "",
	} {
		t.Setenv(k, v)
	}
	l := &local{db: emulators.DynamoDBClient(dyn), kc: emulators.KinesisClient(kin), sqs: srv,
		s3: s3.NewFromConfig(emulators.AWSConfig(), func(o *s3.Options) {
			o.BaseEndpoint, o.UsePathStyle, o.DisableLogOutputChecksumValidationSkipped = aws.String(s3srv.URL), true, true
		}),
		table: emulators.UniqueName("data"), errors: emulators.UniqueName("errors"), stream: emulators.UniqueName("stream")}
	for _, n := range []string{l.table, l.errors} {
		if err := emulators.CreateTable(ctx, l.db, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := emulators.CreateStream(ctx, l.kc, l.stream, 1); err != nil {
		t.Fatal(err)
	}
	sum, err := l.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(l.stream)})
	if err != nil {
		t.Fatal(err)
	}
	l.arn = aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	return l
}

func (l *local) put(t *testing.T, payloads ...string) (seqs []string, shard string) {
	t.Helper()
	for _, p := range payloads {
		out, err := l.kc.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(l.stream), PartitionKey: aws.String("pk"), Data: []byte(p)})
		if err != nil {
			t.Fatal(err)
		}
		seqs, shard = append(seqs, aws.ToString(out.SequenceNumber)), aws.ToString(out.ShardId)
	}
	return seqs, shard
}

func (l *local) body(shard, start, end string, n int) string {
	return fmt.Sprintf(`{"requestContext":{"requestId":"r","functionArn":"arn:aws:lambda:us-east-1:000000000000:function:f","condition":"RetryAttemptsExhausted","approximateInvokeCount":2},"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2025-01-02T03:04:05.678Z","KinesisBatchInfo":{"shardId":%q,"startSequenceNumber":%q,"endSequenceNumber":%q,"approximateArrivalOfFirstRecord":"2025-01-02T03:04:00Z","approximateArrivalOfLastRecord":"2025-01-02T03:04:01Z","batchSize":%d,"streamArn":%q}}`,
		shard, start, end, n, l.arn)
}

func (l *local) count(t *testing.T, table string) int {
	t.Helper()
	out, err := l.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), Select: "COUNT"})
	if err != nil {
		t.Fatal(err)
	}
	return int(out.Count)
}

func runCmd(t *testing.T, clients clientsFunc, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if clients == nil {
		clients = defaultClients
	}
	code := run(context.Background(), args, &stdout, &stderr, clients)
	t.Logf("redrive %s -> %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}

func TestCommandDLQ(t *testing.T) {
	l := newLocal(t)
	seqs, shard := l.put(t, `{"n":0}`, `{"n":1}`, `{"n":2}`)
	url := l.sqs.CreateQueue("dlq")
	l.sqs.Send("dlq", l.body(shard, seqs[0], seqs[2], 3))

	// Dry run: reports, writes nothing, keeps the message.
	code, out, errOut := runCmd(t, nil, "dlq", "--queue-url", url, "--stream", l.arn, "--table", l.table, "--error-table", l.errors, "--dry-run", "--wait", "1s")
	if code != ExitOK || !strings.Contains(out, "1 would-recover") || !strings.Contains(out, "would write 3") || !strings.Contains(errOut, "records/s") {
		t.Fatalf("dry run: %d", code)
	}
	if n := l.count(t, l.table); n != 0 || len(l.sqs.Messages("dlq")) != 1 {
		t.Fatalf("dry run wrote %d items or removed the message", n)
	}

	// A range past retention next to it: exit 1, the range reported, its message kept.
	l.sqs.Send("dlq", l.body("shardId-000000000009", seqs[0], seqs[1], 2))
	code, out, _ = runCmd(t, nil, "dlq", "--queue-url", url, "--stream", l.arn, "--table", l.table, "--error-table", l.errors, "--rate", "100", "--wait", "1s")
	if code != ExitLeftover || !strings.Contains(out, "1 recovered, 1 expired; 1 removed") ||
		!strings.Contains(out, "LEFT expired sqs:") || !strings.Contains(out, "shard=shardId-000000000009 range="+seqs[0]+".."+seqs[1]) {
		t.Fatalf("run: %d", code)
	}
	if n := l.count(t, l.table); n != 3 {
		t.Errorf("%d items, want 3", n)
	}
	if msgs := l.sqs.Messages("dlq"); len(msgs) != 1 || !strings.Contains(msgs[0].Body, "shardId-000000000009") {
		t.Errorf("queue = %+v", msgs)
	}
}

func TestCommandErrors(t *testing.T) {
	l := newLocal(t)
	dir := t.TempDir()
	withSchema := filepath.Join(dir, "pipeline.json")
	if err := os.WriteFile(withSchema, []byte(`{"transform":{"schema":{"type":"object","required":["amount"]}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	fixed := filepath.Join(dir, "fixed.json")
	if err := os.WriteFile(fixed, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := processor.ParseConfig([]byte(`{"transform":{"schema":{"type":"object","required":["amount"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.New(l.db, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.Config, o.MetricsWriter = l.table, l.errors, cfg, io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	var recs []events.KinesisEventRecord
	for i, d := range []string{`{"amount":1}`, `{"total":2}`, `{"total":3}`} {
		seq := fmt.Sprint(500 + i)
		recs = append(recs, events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq, Kinesis: events.KinesisRecord{SequenceNumber: seq, PartitionKey: "pk", Data: []byte(d)}})
	}
	if _, err := p.Handle(context.Background(), events.KinesisEvent{Records: recs}); err != nil {
		t.Fatal(err)
	}
	if n := l.count(t, l.errors); n != 2 {
		t.Fatalf("%d error entries, want 2", n)
	}

	// Still the old schema: both fail again, exit 1.
	code, out, _ := runCmd(t, nil, "errors", "--table", l.table, "--error-table", l.errors, "--config", withSchema, "--reason", "amount", "--since", "1h")
	if code != ExitLeftover || !strings.Contains(out, "2 failed-again") || strings.Count(out, "LEFT failed-again error:shardId-000000000000:50") != 2 {
		t.Fatalf("old schema: %d", code)
	}
	// The fix: both land, their entries go.
	code, out, _ = runCmd(t, nil, "errors", "--table", l.table, "--error-table", l.errors, "--config", fixed, "--reason", "amount")
	if code != ExitOK || !strings.Contains(out, "2 recovered; 2 removed") {
		t.Fatalf("fixed: %d", code)
	}
	if l.count(t, l.errors) != 0 || l.count(t, l.table) != 3 {
		t.Errorf("tables: %d errors, %d items", l.count(t, l.errors), l.count(t, l.table))
	}
}

// putObject puts body into the local bucket under key.
func (l *local) putObject(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := l.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("failures"), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// assetZip is a Lambda code asset as the construct bundles it: bootstrap and the configuration file.
func assetZip(t *testing.T, config string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, content := range map[string]string{"bootstrap": "\x7fELF not really", processor.ConfigFileName: config} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, content); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCommandS3 runs the s3 mode as the stack output writes it, against an S3 server on the wire (through
// AWS_ENDPOINT_URL_S3, as an operator would point it at a local server): the mapping's prefix, the pinned stream,
// and the configuration read from the function's code asset. Objects in the documented format (payload as an
// escaped JSON string) are verified against the stream and deleted once stored. The SDK says nothing about the
// checksums the local server does not send.
func TestCommandS3(t *testing.T) {
	l := newLocal(t)
	seqs, shard := l.put(t, `{"n":0}`, `{"n":1}`)
	const uuid = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
	var recs []events.KinesisEventRecord
	for i, s := range seqs {
		recs = append(recs, events.KinesisEventRecord{EventID: shard + ":" + s, EventSource: "aws:kinesis", EventSourceArn: l.arn, AwsRegion: emulators.Region,
			Kinesis: events.KinesisRecord{SequenceNumber: s, PartitionKey: "pk", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}})
	}
	ev, err := json.Marshal(events.KinesisEvent{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(l.body(shard, seqs[0], seqs[1], 2)), &doc); err != nil {
		t.Fatal(err)
	}
	doc["payload"] = string(ev)
	obj, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	key := "aws/lambda/" + uuid + "/" + shard + "/2025/01/02/2025-01-02T03.04.05-x"
	l.putObject(t, key, obj)
	other := "aws/lambda/another-mapping/" + shard + "/2025/01/02/2025-01-02T03.04.05-y"
	l.putObject(t, other, []byte(`not this pipeline's`))
	// Items keyed by sequence number tell that the asset's configuration was used.
	l.putObject(t, "assets/0123abcd.zip", assetZip(t, `{"partitionKey":{"name":"id","type":"S","source":"$sequenceNumber"}}`))

	code, out, errOut := runCmd(t, nil, "s3", "--bucket", "failures", "--prefix", "aws/lambda/"+uuid+"/", "--stream", l.arn,
		"--table", l.table, "--error-table", l.errors, "--config", "s3://failures/assets/0123abcd.zip", "--delete", "--batch-size", "1")
	if code != ExitOK || !strings.Contains(out, "1 recovered; 1 removed") {
		t.Fatalf("s3: exit %d", code)
	}
	for _, s := range seqs {
		it, err := l.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(l.table),
			Key: map[string]dynamotypes.AttributeValue{"id": &dynamotypes.AttributeValueMemberS{Value: s}}})
		if err != nil || len(it.Item) == 0 {
			t.Errorf("no item keyed %s (%v): the asset's configuration was not used", s, err)
		}
	}
	list, err := l.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("failures")})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range list.Contents {
		left = append(left, aws.ToString(o.Key))
	}
	if want := []string{"assets/0123abcd.zip", other}; !reflect.DeepEqual(left, want) {
		t.Errorf("objects = %v, want %v", left, want)
	}
	if strings.Contains(errOut, "checksum") || strings.Contains(errOut, "SDK ") {
		t.Errorf("stderr has SDK log lines:\n%s", errOut)
	}
}
