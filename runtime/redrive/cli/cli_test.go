package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

func noClients(context.Context, clientOptions) (redrive.Clients, error) {
	return redrive.Clients{}, errors.New("no clients in this test")
}

func TestUsage(t *testing.T) {
	tests := []struct {
		give []string
		want int
		msg  string
	}{
		{give: nil, want: exitUsage, msg: "usage:"},
		{give: []string{"help"}, want: exitOK, msg: "usage:"},
		{give: []string{"replay"}, want: exitUsage, msg: `unknown mode "replay"`},
		{give: []string{"dlq"}, want: exitUsage, msg: "--queue-url is required; --table is required"},
		{give: []string{"s3", "--table", "t"}, want: exitUsage, msg: "--bucket is required"},
		{give: []string{"errors", "--table", "t"}, want: exitUsage, msg: "--error-table is required"},
		{give: []string{"errors", "--table", "t", "--error-table", "e", "--since", "yesterday"}, want: exitUsage, msg: `--since: "yesterday" is neither`},
		{give: []string{"dlq", "--queue-url", "u", "--table", "t", "--config", "/nonexistent/pipeline.json"}, want: exitUsage, msg: "--config /nonexistent/pipeline.json"},
		{give: []string{"dlq", "--queue-url", "u", "--table", "t", "extra"}, want: exitUsage, msg: "unexpected arguments"},
		{give: []string{"dlq", "--queue-url", "u", "--table", "t"}, want: exitLeftover, msg: "no clients in this test"},
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
		got, err := parseTime(tt.give, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v (error %v)", tt.give, got, err, tt.want, tt.wantErr)
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
	for _, want := range []string{"sources: 3: 2 recovered, 1 expired; 2 removed", "10 read, 9 written, 0 skipped, 1 to the error table, 0 failed", "5.0 records/s", "left behind: 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
}
