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
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// noStream is a stream and tables that answer nothing: a replay built on them fails when it describes the stream.
type noStream struct{}

func (noStream) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	return nil, errors.New("no stream in this test")
}

func (noStream) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return nil, errors.New("no stream in this test")
}

func (noStream) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return nil, errors.New("no stream in this test")
}

func (noStream) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	return nil, errors.New("no stream in this test")
}

func (noStream) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, errors.New("no table in this test")
}

func (noStream) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return nil, errors.New("no table in this test")
}

func (noStream) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, errors.New("no table in this test")
}

// TestAggregateFlags: a configuration with aggregates needs --aggregate-table (or its environment variable), or
// --skip-aggregates; without either the replay stops with a usage error naming the flag, before reading anything.
func TestAggregateFlags(t *testing.T) {
	dir := t.TempDir()
	withAggs, without := filepath.Join(dir, "aggs.json"), filepath.Join(dir, "plain.json")
	for path, content := range map[string]string{
		withAggs: `{"aggregates":[{"name":"perMinute","windowSeconds":60,"measures":[{"name":"n","kind":"count"}]}]}`,
		without:  `{}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		config     string
		extra      []string
		env        string
		wantCode   int
		wantStderr string
	}{
		{name: "aggregates without the flag", config: withAggs, wantCode: ExitUsage,
			wantStderr: "kdp replay: --aggregate-table is required: the configuration has 1 aggregates"},
		{name: "aggregates with the flag", config: withAggs, extra: []string{"--aggregate-table", "agg"}, wantCode: ExitLeftover, wantStderr: "no stream in this test"},
		{name: "aggregates with the environment variable", config: withAggs, env: "agg", wantCode: ExitLeftover, wantStderr: "no stream in this test"},
		{name: "aggregates skipped", config: withAggs, extra: []string{"--skip-aggregates"}, wantCode: ExitLeftover, wantStderr: "no stream in this test"},
		{name: "no aggregates", config: without, wantCode: ExitLeftover, wantStderr: "no stream in this test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{processor.EnvTableName, processor.EnvErrorTableName, processor.EnvConfigFile} {
				t.Setenv(k, "")
			}
			t.Setenv(processor.EnvAggregateTableName, tt.env)
			newClients := func(context.Context, string) (clients, error) {
				return clients{replay: replay.Clients{DB: noStream{}, Kinesis: noStream{}}}, nil
			}
			args := append([]string{"--stream", testARN, "--since", "2h", "--table", "T", "--config", tt.config}, tt.extra...)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr, newClients)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.wantCode, tt.wantStderr)
			}
			if tt.wantCode == ExitUsage && (!strings.Contains(stderr.String(), "--skip-aggregates") || stdout.Len() != 0) {
				t.Errorf("a usage error names --skip-aggregates and prints no summary; stderr %q, stdout %q", stderr.String(), stdout.String())
			}
		})
	}
}

// TestParseAggregateFlags: --aggregate-table and --skip-aggregates reach the replay's options.
func TestParseAggregateFlags(t *testing.T) {
	tests := []struct {
		args      []string
		env       string
		wantTable string
		wantSkip  bool
	}{
		{args: nil},
		{args: []string{"--aggregate-table", "agg"}, wantTable: "agg"},
		{env: "from-env", wantTable: "from-env"},
		{args: []string{"--aggregate-table", "agg"}, env: "from-env", wantTable: "agg"},
		{args: []string{"--skip-aggregates"}, wantSkip: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+" env="+tt.env, func(t *testing.T) {
			t.Setenv(processor.EnvAggregateTableName, tt.env)
			var stderr bytes.Buffer
			_, fns, err := parse(append([]string{"--stream", testARN, "--since", "2h", "--table", "T"}, tt.args...), &stderr, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var o replay.Options
			for _, fn := range fns {
				fn(&o)
			}
			if o.AggregateTableName != tt.wantTable || o.SkipAggregates != tt.wantSkip {
				t.Errorf("AggregateTableName %q, SkipAggregates %v; want %q, %v", o.AggregateTableName, o.SkipAggregates, tt.wantTable, tt.wantSkip)
			}
		})
	}
}

// TestFormatSummaryAggregates: the summary says how many records were recounted into the aggregates, or why none
// were; without aggregates it says nothing about them.
func TestFormatSummaryAggregates(t *testing.T) {
	tests := []struct {
		name    string
		mode    redrive.AggregateMode
		dryRun  bool
		want    string // "" : no aggregates line
		wantNot string
	}{
		{name: "none", mode: redrive.AggregatesNone},
		{name: "recount", mode: redrive.AggregatesRecount, want: "  aggregates: 7 records recounted"},
		{name: "dry run", mode: redrive.AggregatesRecount, dryRun: true,
			want: "  aggregates: not recounted (dry run: nothing written to the aggregate table); 7 records would be recounted", wantNot: "7 records recounted"},
		{name: "skip", mode: redrive.AggregatesSkip, want: "  aggregates: not recounted (--skip-aggregates): the records stored are left uncounted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := formatSummary(replay.Summary{Stream: "s", Aggregates: tt.mode, DryRun: tt.dryRun, Records: replay.Counts{Read: 9, Stored: 9, Recounted: 7}})
			if tt.want == "" {
				if strings.Contains(got, "aggregates:") {
					t.Errorf("summary speaks of aggregates:\n%s", got)
				}
				return
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("summary lacks %q:\n%s", tt.want, got)
			}
			if tt.wantNot != "" && strings.Contains(got, tt.wantNot) {
				t.Errorf("summary says %q:\n%s", tt.wantNot, got)
			}
		})
	}
}
