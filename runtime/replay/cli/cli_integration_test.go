//go:build integration

package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestMainOnEmulators runs the command as kdp does, its AWS clients from the SDK's default chain pointed at the
// emulators by the environment: the exit statuses and what the tables hold afterwards.
func TestMainOnEmulators(t *testing.T) {
	ctx := context.Background()
	dyn, kin := emulators.Dynalite(t), emulators.Kinesalite(t)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": dyn, "AWS_ENDPOINT_URL_KINESIS": kin,
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": emulators.Region,
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE": "", "AWS_EC2_METADATA_DISABLED": "true",
		processor.EnvTableName: "", processor.EnvErrorTableName: "", processor.EnvConfigFile: "",
	} {
		t.Setenv(k, v)
	}
	db, kc := emulators.DynamoDBClient(dyn), emulators.KinesisClient(kin)
	table, errs, stream := emulators.UniqueName("data"), emulators.UniqueName("errors"), emulators.UniqueName("stream")
	for _, n := range []string{table, errs} {
		if err := emulators.CreateTable(ctx, db, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := emulators.CreateStream(ctx, kc, stream, 1); err != nil {
		t.Fatal(err)
	}
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	for _, d := range []string{`{"a": 1}`, `{"a": 2}`, `not json`} {
		if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("k"), Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(name string) int {
		out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(name), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Items)
	}
	common := []string{"--stream", arn, "--table", table, "--error-table", errs}
	tests := []struct {
		name                   string
		args                   []string
		wantCode               int
		wantStdout, wantStderr string
		wantItems, wantErrors  int
	}{
		{"dry run", []string{"--since", "10m", "--dry-run"}, 0, "3 read, would write 2 items", "shares each shard's 5 reads per second", 0, 0},
		{"unknown shard", []string{"--since", "10m", "--shard", "shardId-000000000007"}, 2, "", "the stream has no shard shardId-000000000007", 0, 0},
		{"past retention", []string{"--since", "30h"}, 1, "PAST RETENTION: the window starts at", "", 2, 1},
		{"within retention", []string{"--since", "10m", "--rate", "100"}, 0, "left: none", "shardId-000000000000 done", 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(ctx, append(append([]string(nil), common...), tt.args...), &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stdout.String(), tt.wantStdout) || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if got, gotErrs := count(table), count(errs); got != tt.wantItems || gotErrs != tt.wantErrors {
				t.Errorf("%d items and %d error items, want %d and %d", got, gotErrs, tt.wantItems, tt.wantErrors)
			}
		})
	}
}
