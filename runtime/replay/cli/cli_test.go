package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	redrivecli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive/cli"
)

const testARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/ingest"

// TestUsage: bad usage exits 2 with a message naming the flag, before any AWS client is made.
func TestUsage(t *testing.T) {
	for _, k := range []string{processor.EnvTableName, processor.EnvErrorTableName, processor.EnvConfigFile} {
		t.Setenv(k, "")
	}
	badConfig := filepath.Join(t.TempDir(), "pipeline.json")
	if err := os.WriteFile(badConfig, []byte(`{"partitionKey": {"name": "", "type": "X"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	ok := []string{"--stream", testARN, "--since", "2h", "--table", "T"}
	tests := []struct {
		name        string
		args        []string
		wantCode    int
		wantStderr  string
		wantClients bool
	}{
		{name: "nothing", args: nil, wantCode: 2, wantStderr: "--stream is required; --since is required; --table is required"},
		{name: "no since", args: []string{"--stream", testARN, "--table", "T"}, wantCode: 2, wantStderr: "--since is required"},
		{name: "not a stream ARN", args: []string{"--stream", "arn:aws:sqs:eu-west-1:123456789012:q", "--since", "2h", "--table", "T"}, wantCode: 2, wantStderr: "is not a Kinesis stream's"},
		{name: "since not a time", args: []string{"--stream", testARN, "--since", "yesterday", "--table", "T"}, wantCode: 2, wantStderr: "--since: \"yesterday\" is neither"},
		{name: "since in the future", args: []string{"--stream", testARN, "--since", future, "--table", "T"}, wantCode: 2, wantStderr: "--since is in the future"},
		{name: "until before since", args: append(append([]string(nil), ok...), "--until", "3h"), wantCode: 2, wantStderr: "--until is before --since"},
		{name: "negative rate", args: append(append([]string(nil), ok...), "--rate", "-1"), wantCode: 2, wantStderr: "--rate is negative"},
		{name: "rate not a number", args: append(append([]string(nil), ok...), "--rate", "fast"), wantCode: 2, wantStderr: "invalid value \"fast\" for flag -rate"},
		{name: "bad shard id", args: append(append([]string(nil), ok...), "--shard", "shardId-0"), wantCode: 2, wantStderr: `--shard "shardId-0" is not a shard id`},
		{name: "unknown flag", args: append(append([]string(nil), ok...), "--delete"), wantCode: 2, wantStderr: "flag provided but not defined: -delete"},
		{name: "extra arguments", args: append(append([]string(nil), ok...), "now"), wantCode: 2, wantStderr: `unexpected arguments ["now"]`},
		{name: "zero batch size", args: append(append([]string(nil), ok...), "--batch-size", "0"), wantCode: 2, wantStderr: "--batch-size must be positive"},
		{name: "help", args: []string{"-h"}, wantCode: 0, wantStderr: "usage: kdp replay"},
		{name: "bad configuration", args: append(append([]string(nil), ok...), "--config", badConfig), wantCode: 2, wantStderr: "--config " + badConfig, wantClients: true},
		{name: "clients fail", args: ok, wantCode: 1, wantStderr: "no credentials here", wantClients: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			made := false
			newClients := func(context.Context, string) (clients, error) {
				made = true
				if strings.Contains(strings.Join(tt.args, " "), "--config") {
					return clients{}, nil
				}
				return clients{}, errors.New("no credentials here")
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr, newClients)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.wantCode, tt.wantStderr)
			}
			if made != tt.wantClients {
				t.Errorf("clients made: %v, want %v", made, tt.wantClients)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}

// TestParseWindow: times are RFC 3339 or a duration before now; shards repeat or come comma-separated.
func TestParseWindow(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	var stderr bytes.Buffer
	f, fns, err := parse([]string{"--stream", testARN, "--since", "2h", "--until", "2026-01-02T14:30:00Z", "--table", "T",
		"--shard", "shardId-000000000001,shardId-000000000002", "--shard", "shardId-000000000004", "--dry-run", "--rate", "50"}, &stderr, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 1 {
		t.Fatalf("%d option functions", len(fns))
	}
	if got := []string(f.shards); strings.Join(got, " ") != "shardId-000000000001 shardId-000000000002 shardId-000000000004" {
		t.Errorf("shards %v", got)
	}
	since, _ := redrivecli.ParseTime(f.since, now)
	until, _ := redrivecli.ParseTime(f.until, now)
	if !since.Equal(now.Add(-2*time.Hour)) || !until.Equal(time.Date(2026, 1, 2, 14, 30, 0, 0, time.UTC)) || !f.dryRun || f.rate != 50 {
		t.Errorf("since %v until %v dry run %v rate %v", since, until, f.dryRun, f.rate)
	}
}

// TestDefaultClientsRetryPatiently: replay's DynamoDB client retries as redrive's does (RetryMaxAttempts), in the
// stream's region.
func TestDefaultClientsRetryPatiently(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	c, err := defaultClients(context.Background(), "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	db, ok := c.replay.DB.(*dynamodb.Client)
	if !ok {
		t.Fatalf("DB is a %T", c.replay.DB)
	}
	if got := db.Options().Retryer.MaxAttempts(); got != redrivecli.RetryMaxAttempts {
		t.Errorf("MaxAttempts = %d, want %d", got, redrivecli.RetryMaxAttempts)
	}
	if got := db.Options().Region; got != "eu-west-1" {
		t.Errorf("region %q, want the stream's, eu-west-1", got)
	}
}
