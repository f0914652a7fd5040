package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

func noClients(context.Context, clientOptions) (redrive.Clients, error) {
	return redrive.Clients{}, errors.New("no clients in this test")
}

func TestUsage(t *testing.T) {
	const arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
	tests := []struct {
		give []string
		want int
		msg  string
	}{
		{give: nil, want: ExitUsage, msg: "usage:"},
		{give: []string{"help"}, want: ExitOK, msg: "usage:"},
		{give: []string{"replay"}, want: ExitUsage, msg: `unknown mode "replay"`},
		{give: []string{"dlq"}, want: ExitUsage, msg: "--queue-url is required; --stream is required; --table is required"},
		{give: []string{"dlq", "--queue-url", "u", "--table", "t"}, want: ExitUsage, msg: "--stream is required"},
		{give: []string{"s3", "--table", "t", "--stream", arn}, want: ExitUsage, msg: "--bucket is required"},
		{give: []string{"s3", "--table", "t", "--bucket", "b"}, want: ExitUsage, msg: "--stream is required"},
		{give: []string{"dlq", "--queue-url", "u", "--table", "t", "--stream", "orders"}, want: ExitUsage, msg: `--stream: stream ARN "orders"`},
		{give: []string{"errors", "--table", "t"}, want: ExitUsage, msg: "--error-table is required"},
		{give: []string{"errors", "--table", "t", "--error-table", "e", "--since", "yesterday"}, want: ExitUsage, msg: `--since: "yesterday" is neither`},
		{give: []string{"dlq", "--queue-url", "u", "--table", "t", "--stream", arn, "--config", "/nonexistent/pipeline.json"}, want: ExitUsage, msg: "--config /nonexistent/pipeline.json"},
		{give: []string{"dlq", "--queue-url", "u", "--table", "t", "--stream", arn, "extra"}, want: ExitUsage, msg: "unexpected arguments"},
		{give: []string{"dlq", "--queue-url", "u", "--table", "t", "--stream", arn}, want: ExitLeftover, msg: "no clients in this test"},
		{give: []string{"errors", "--table", "t", "--error-table", "e"}, want: ExitLeftover, msg: "no clients in this test"},
		{give: []string{"s3", "-h"}, want: ExitOK, msg: "RISK: a forged object or entry can then overwrite real items"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			t.Setenv("PIPELINE_TABLE_NAME", "")
			t.Setenv("PIPELINE_ERROR_TABLE_NAME", "")
			t.Setenv("PIPELINE_CONFIG_FILE", "")
			var out, errOut bytes.Buffer
			if got := run(context.Background(), tt.give, &out, &errOut, noClients); got != tt.want {
				t.Errorf("exit = %d, want %d; stderr:\n%s", got, tt.want, errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.msg) {
				t.Errorf("stderr = %q, want it to contain %q", errOut.String(), tt.msg)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		give    string
		want    time.Time
		wantErr bool
	}{
		{give: "", want: time.Time{}},
		{give: "2025-01-01T00:00:00Z", want: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{give: "2025-01-01T01:00:00.5+01:00", want: time.Date(2025, 1, 1, 0, 0, 0, 5e8, time.UTC)},
		{give: "24h", want: now.Add(-24 * time.Hour)},
		{give: "-1h", wantErr: true},
		{give: "yesterday", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.give, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v (error %v)", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFormat(t *testing.T) {
	res := redrive.Result{Source: "sqs:m1", Outcome: redrive.OutcomeExpired, ShardID: "shardId-000000000000",
		StartSequenceNumber: "1", EndSequenceNumber: "9", Reason: "gone"}
	if got, want := formatResult(res), "LEFT expired sqs:m1 shard=shardId-000000000000 range=1..9: gone"; got != want {
		t.Errorf("formatResult = %q, want %q", got, want)
	}
	res.EndSequenceNumber = "1"
	if got, want := formatResult(res), "LEFT expired sqs:m1 shard=shardId-000000000000 sequence=1: gone"; got != want {
		t.Errorf("formatResult = %q, want %q", got, want)
	}
	sum := redrive.Summary{Sources: map[redrive.Outcome]int{redrive.OutcomeRecovered: 2, redrive.OutcomeExpired: 1}, Removed: 2,
		Records: redrive.RecordCounts{Read: 10, Written: 9, ToErrorTable: 1}, Elapsed: 2 * time.Second, Unrecoverable: []redrive.Result{res}}
	got := formatSummary("dlq", sum)
	for _, want := range []string{"sources: 3: 2 recovered, 1 expired; 2 removed", "10 read, 9 written, 0 skipped, 1 to the error table, 0 failed, 0 refused", "5.0 records/s", "left behind: 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	// A dry run says what it would do.
	sum.DryRun = true
	sum.Sources = map[redrive.Outcome]int{redrive.OutcomeWouldRecover: 2, redrive.OutcomeRefused: 1}
	sum.Records.Refused = 1
	got = formatSummary("s3", sum)
	for _, want := range []string{"(dry run: nothing written or deleted)", "2 would-recover, 1 refused; 2 would be removed", "10 read, would write 9, would skip 0, would send 1 to the error table, 0 failed, would refuse 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("dry-run summary %q lacks %q", got, want)
		}
	}
	if _, records, _ := strings.Cut(got, "records:"); strings.Contains(records, " written") {
		t.Errorf("dry-run summary %q counts records as written", got)
	}
}

// evil is text an attacker who can write the queue, the bucket or the error table would put in every field that gets
// printed: a screen clear, a cursor home, a carriage return and a line feed to start a fake summary, a bidirectional
// override, a C1 control and a byte that is not UTF-8.
const evil = "\x1b[2J\x1b[H\r\nredrive dlq summary\n  left behind: none\u202e\u0085\xff"

// checkPrintable fails if out holds a control character other than LF, an escape sequence, a C1 control, a
// bidirectional control or invalid UTF-8.
func checkPrintable(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s holds invalid UTF-8: %q", what, out)
	}
	for _, r := range out {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || unicode.Is(unicode.Cf, r) {
			t.Errorf("%s holds %U: %q", what, r, out)
			return
		}
	}
}

// TestFormatResultEscapes: each printed field of a source left behind is escaped.
func TestFormatResultEscapes(t *testing.T) {
	base := redrive.Result{Source: "sqs:m1", Outcome: redrive.OutcomeFailed, ShardID: "shardId-000000000000",
		StartSequenceNumber: "1", EndSequenceNumber: "9", Reason: "gone"}
	tests := []struct {
		field string
		set   func(*redrive.Result)
	}{
		{"source", func(r *redrive.Result) { r.Source = "sqs:" + evil }},
		{"shard", func(r *redrive.Result) { r.ShardID = evil }},
		{"start", func(r *redrive.Result) { r.StartSequenceNumber = evil }},
		{"end", func(r *redrive.Result) { r.EndSequenceNumber = evil }},
		{"single sequence", func(r *redrive.Result) { r.StartSequenceNumber, r.EndSequenceNumber = evil, evil }},
		{"reason", func(r *redrive.Result) { r.Reason = evil }},
		{"outcome", func(r *redrive.Result) { r.Outcome = redrive.Outcome(evil) }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			res := base
			tt.set(&res)
			got := formatResult(res)
			checkPrintable(t, "formatResult", got+"\n")
			if strings.Contains(got, "\n") || !strings.Contains(got, `\x1b[2J\x1b[H\r\nredrive dlq summary\n  left behind: none\u202e\u0085\xff`) {
				t.Errorf("formatResult = %q, want the %s escaped on one line", got, tt.field)
			}
		})
	}
}

// escSQS holds one message, received once.
type escSQS struct {
	id, body string
	done     bool
}

func (q *escSQS) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if q.done {
		return &sqs.ReceiveMessageOutput{}, nil
	}
	q.done = true
	return &sqs.ReceiveMessageOutput{Messages: []sqstypes.Message{{MessageId: aws.String(q.id), ReceiptHandle: aws.String("h"), Body: aws.String(q.body)}}}, nil
}

func (q *escSQS) DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	return nil, errors.New("escSQS: nothing may be deleted")
}

func (q *escSQS) ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

// escDB is an error table holding entries; it writes nothing.
type escDB struct {
	entries []map[string]types.AttributeValue
}

func (d *escDB) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return nil, errors.New("escDB: nothing may be written")
}

func (d *escDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, errors.New("escDB: nothing may be written")
}

func (d *escDB) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return &dynamodb.ScanOutput{Items: d.entries}, nil
}

func (d *escDB) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{}, nil
}

func (d *escDB) BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return &dynamodb.BatchGetItemOutput{}, nil
}

func (d *escDB) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return nil, errors.New("escDB: nothing may be deleted")
}

// TestRunEscapesUntrustedText: a queue message and an error entry whose every printed field carries escape
// sequences, bidirectional overrides, C1 controls and invalid UTF-8 come out escaped on standard output and standard
// error (plain output, verbose logs included); the only summary is the real one.
func TestRunEscapesUntrustedText(t *testing.T) {
	const pinned = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
	body, err := json.Marshal(map[string]any{
		"requestContext": map[string]any{"requestId": evil, "functionArn": evil, "condition": evil},
		"version":        "1.0",
		"KinesisBatchInfo": map[string]any{"shardId": evil, "startSequenceNumber": "1", "endSequenceNumber": "2", "batchSize": 2,
			"streamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/" + strings.ReplaceAll(evil, "/", "")},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A message with a canonical shard id gets as far as the pin: its stream ARN is printed, escaped.
	foreign, err := json.Marshal(map[string]any{
		"requestContext": map[string]any{"requestId": evil, "functionArn": evil, "condition": evil},
		"version":        "1.0",
		"KinesisBatchInfo": map[string]any{"shardId": "shardId-000000000000", "startSequenceNumber": "1", "endSequenceNumber": "2", "batchSize": 2,
			"streamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/" + strings.ReplaceAll(evil, "/", "")},
	})
	if err != nil {
		t.Fatal(err)
	}
	entry := map[string]types.AttributeValue{
		processor.ErrorTablePartitionKey:   &types.AttributeValueMemberS{Value: evil + ":1"},
		processor.ErrorAttrShardID:         &types.AttributeValueMemberS{Value: evil},
		processor.ErrorAttrSequenceNumber:  &types.AttributeValueMemberS{Value: evil},
		processor.ErrorAttrReason:          &types.AttributeValueMemberS{Value: evil},
		processor.ErrorAttrPayloadEncoding: &types.AttributeValueMemberS{Value: evil},
		processor.ErrorAttrPayload:         &types.AttributeValueMemberB{Value: []byte(evil)},
	}
	tests := []struct {
		name    string
		args    []string
		clients redrive.Clients
		want    []string // escaped text expected on standard output
	}{
		{"dlq message with a hostile shard id", []string{"dlq", "--queue-url", "q", "--table", "t", "--stream", pinned, "--verbose"},
			redrive.Clients{DB: &escDB{}, SQS: &escSQS{id: evil, body: string(body)}},
			[]string{"LEFT invalid sqs:\\x1b[2J\\x1b[H\\r\\nredrive dlq summary\\n  left behind: none\\u202e\\u0085\\xff", `is not a Kinesis shard id`}},
		{"dlq message naming another stream", []string{"dlq", "--queue-url", "q", "--table", "t", "--stream", pinned, "--verbose"},
			redrive.Clients{DB: &escDB{}, SQS: &escSQS{id: evil, body: string(foreign)}},
			[]string{"LEFT foreign-stream sqs:\\x1b[2J\\x1b[H\\r\\nredrive dlq summary\\n  left behind: none\\u202e\\u0085\\xff shard=shardId-000000000000", "names stream arn:aws:kinesis:us-east-1:000000000000:stream/\\x1b[2J"}},
		{"error entry", []string{"errors", "--table", "t", "--error-table", "e", "--verbose"},
			redrive.Clients{DB: &escDB{entries: []map[string]types.AttributeValue{entry}}},
			[]string{"LEFT invalid error:\\x1b[2J\\x1b[H\\r\\n", "shard=\\x1b[2J", "sequence=\\x1b[2J", `unknown payload encoding`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PIPELINE_TABLE_NAME", "")
			t.Setenv("PIPELINE_ERROR_TABLE_NAME", "")
			t.Setenv("PIPELINE_CONFIG_FILE", "")
			clients := func(context.Context, clientOptions) (redrive.Clients, error) { return tt.clients, nil }
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stdout, &stderr, clients); code != ExitLeftover {
				t.Errorf("exit %d, want %d", code, ExitLeftover)
			}
			checkPrintable(t, "stdout", stdout.String())
			checkPrintable(t, "stderr", stderr.String())
			for _, want := range tt.want {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			var summaries []string
			for _, line := range strings.Split(stdout.String(), "\n") {
				if strings.HasPrefix(line, "  left behind:") || strings.HasPrefix(line, "redrive ") {
					summaries = append(summaries, line)
				}
			}
			if len(summaries) != 2 || summaries[1] != "  left behind: 1 (lines starting with LEFT above)" {
				t.Errorf("summary lines %q, want only the real summary:\n%s", summaries, stdout.String())
			}
		})
	}
}

// TestStreamReadInItsRegion: the Kinesis client reads the pinned stream in the stream's own region, whatever the
// default configuration names (elsewhere the stream would not be found, and a range not found reads as past
// retention: written insert-only, unverified).
func TestStreamReadInItsRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	var got clientOptions
	capture := func(_ context.Context, o clientOptions) (redrive.Clients, error) {
		got = o
		return redrive.Clients{}, errors.New("no clients in this test")
	}
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"dlq", "--queue-url", "q", "--table", "t", "--stream", "arn:aws:kinesis:eu-west-1:123456789012:stream/s"}, &stdout, &stderr, capture)
	if got.streamRegion != "eu-west-1" {
		t.Fatalf("stream region %q, want eu-west-1 (stderr %s)", got.streamRegion, stderr.String())
	}
	clients, err := defaultClients(context.Background(), got)
	if err != nil {
		t.Fatal(err)
	}
	if r := clients.Kinesis.(*kinesis.Client).Options().Region; r != "eu-west-1" {
		t.Errorf("Kinesis client region %q, want the stream's eu-west-1", r)
	}
	if r := clients.DB.(*dynamodb.Client).Options().Region; r != "us-east-1" {
		t.Errorf("DynamoDB client region %q, want the configured us-east-1", r)
	}
}

// TestDefaultClientsRetryPatiently: the DynamoDB client of the operator tools sends a request that keeps being
// throttled RetryMaxAttempts times (the SDK's default is 3), with the processor's short waits in between.
func TestDefaultClientsRetryPatiently(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	c, err := defaultClients(context.Background(), clientOptions{streamRegion: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	db, ok := c.DB.(*dynamodb.Client)
	if !ok {
		t.Fatalf("DB is a %T", c.DB)
	}
	r := db.Options().Retryer
	if got := r.MaxAttempts(); got != RetryMaxAttempts {
		t.Errorf("MaxAttempts = %d, want %d", got, RetryMaxAttempts)
	}
	if d, err := r.RetryDelay(5, &types.ProvisionedThroughputExceededException{}); err != nil || d > 250*time.Millisecond {
		t.Errorf("RetryDelay(5, throttled) = %v, %v; want at most 250ms", d, err)
	}
}
