package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// aggregatesConfig is a pipeline.json with one aggregate: a count per minute of arrival.
const aggregatesConfig = `{"aggregates":[{"name":"perMinute","windowSeconds":60,"measures":[{"name":"n","kind":"count"}]}]}`

// writeConfig writes content as a pipeline.json in a temporary directory and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), processor.ConfigFileName)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAggregateFlags: a configuration with aggregates needs --aggregate-table (or its environment variable), or
// --skip-aggregates; without either every mode stops with a usage error naming the flag. A configuration without
// aggregates needs neither.
func TestAggregateFlags(t *testing.T) {
	const arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
	withAggs := writeConfig(t, aggregatesConfig)
	without := writeConfig(t, `{}`)
	modes := map[string][]string{
		ModeDLQ:    {ModeDLQ, "--queue-url", "u", "--stream", arn, "--table", "t"},
		ModeS3:     {ModeS3, "--bucket", "b", "--stream", arn, "--table", "t"},
		ModeErrors: {ModeErrors, "--error-table", "e", "--table", "t"},
	}
	tests := []struct {
		name     string
		config   string
		extra    []string
		env      string // $PIPELINE_AGGREGATE_TABLE_NAME
		want     int
		wantText string
	}{
		{name: "aggregates without the flag", config: withAggs, want: ExitUsage,
			wantText: "--aggregate-table is required: the configuration has 1 aggregates"},
		{name: "aggregates with the flag", config: withAggs, extra: []string{"--aggregate-table", "agg"}, want: ExitLeftover, wantText: "no clients in this test"},
		{name: "aggregates with the environment variable", config: withAggs, env: "agg", want: ExitLeftover, wantText: "no clients in this test"},
		{name: "aggregates skipped", config: withAggs, extra: []string{"--skip-aggregates"}, want: ExitLeftover, wantText: "no clients in this test"},
		{name: "no aggregates", config: without, want: ExitLeftover, wantText: "no clients in this test"},
	}
	for mode, args := range modes {
		for _, tt := range tests {
			t.Run(mode+" "+tt.name, func(t *testing.T) {
				t.Setenv(processor.EnvTableName, "")
				t.Setenv(processor.EnvErrorTableName, "")
				t.Setenv(processor.EnvConfigFile, "")
				t.Setenv(processor.EnvAggregateTableName, tt.env)
				give := append(append(append([]string(nil), args...), "--config", tt.config), tt.extra...)
				var out, errOut bytes.Buffer
				if got := run(context.Background(), give, &out, &errOut, noClients); got != tt.want {
					t.Errorf("exit = %d, want %d; stderr:\n%s", got, tt.want, errOut.String())
				}
				if !strings.Contains(errOut.String(), tt.wantText) {
					t.Errorf("stderr = %q, want it to contain %q", errOut.String(), tt.wantText)
				}
				if tt.want == ExitUsage && !strings.Contains(errOut.String(), "--skip-aggregates") {
					t.Errorf("stderr = %q, want it to name --skip-aggregates", errOut.String())
				}
			})
		}
	}
}

// TestAggregateFlagsConfigFromS3: a configuration read from S3 (the stack outputs' code asset) is checked the same
// way once read.
func TestAggregateFlagsConfigFromS3(t *testing.T) {
	t.Setenv(processor.EnvTableName, "")
	t.Setenv(processor.EnvErrorTableName, "")
	t.Setenv(processor.EnvConfigFile, "")
	t.Setenv(processor.EnvAggregateTableName, "")
	s3c := &attackS3{bodies: map[string][]byte{"pipeline.json": []byte(aggregatesConfig)}}
	db := &aggDB{}
	clients := func(context.Context, clientOptions) (redrive.Clients, error) {
		return redrive.Clients{DB: db, S3: s3c}, nil
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{ModeErrors, "--error-table", "e", "--table", "t", "--config", "s3://assets/pipeline.json"}, &out, &errOut, clients)
	if code != ExitUsage || !strings.Contains(errOut.String(), "--aggregate-table is required") {
		t.Errorf("exit %d, want %d with --aggregate-table named; stderr:\n%s", code, ExitUsage, errOut.String())
	}
	if db.calls() != 0 {
		t.Errorf("the usage error came after %d calls to DynamoDB", db.calls())
	}
}

// aggDB is a pipeline's tables in memory: the error table "e" holds entries, the data table "t" and the aggregate
// table "agg" start empty. It records which tables each call reached, and accepts every write.
type aggDB struct {
	entries []map[string]types.AttributeValue

	mu     sync.Mutex
	reads  map[string]int // GetItem per table
	writes map[string]int // PutItem and BatchWriteItem requests per table
	n      int
}

func (d *aggDB) note(m *map[string]int, table string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[table]++
	d.n++
}

func (d *aggDB) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *aggDB) count(m map[string]int, table string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return m[table]
}

func (d *aggDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	for table, ws := range in.RequestItems {
		for range ws {
			d.note(&d.writes, table)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func (d *aggDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	d.note(&d.writes, aws.ToString(in.TableName))
	return &dynamodb.PutItemOutput{}, nil
}

func (d *aggDB) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	d.note(new(map[string]int), aws.ToString(in.TableName))
	if aws.ToString(in.TableName) != "e" {
		return nil, errors.New("aggDB: only the error table is scanned")
	}
	return &dynamodb.ScanOutput{Items: d.entries}, nil
}

func (d *aggDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	d.note(&d.reads, aws.ToString(in.TableName))
	if pk, ok := in.Key["pk"].(*types.AttributeValueMemberS); ok && aws.ToString(in.TableName) == "agg" && pk.Value == aggregate.ShardStatePartitionKey {
		// The ledger ran on the shard (a state without anything delivered): a record without it is reported as
		// uncounted for want of the shard's ledger state, and kept.
		return &dynamodb.GetItemOutput{Item: map[string]types.AttributeValue{"pk": pk, "sk": in.Key["sk"],
			aggregate.AttrVersion: &types.AttributeValueMemberN{Value: "1"}}}, nil
	}
	return &dynamodb.GetItemOutput{}, nil
}

func (d *aggDB) BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	d.note(new(map[string]int), "")
	return &dynamodb.BatchGetItemOutput{}, nil
}

func (d *aggDB) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	d.note(new(map[string]int), "")
	return &dynamodb.DeleteItemOutput{}, nil
}

// TestAggregateTableReachesTheProcessor: an error-table redrive of a configuration with aggregates runs the
// processor with the aggregate table --aggregate-table names: the records it stores are looked up there (to be
// counted where the pipeline did not count them). With --skip-aggregates the aggregate table is never touched; a dry
// run reads it but sends it no write, and its summary says the aggregates were not recounted. The entry cannot be
// verified (no --stream, or no Kinesis client to read it): without --count-unverified it is stored but not looked up
// nor counted, and the run exits 1.
func TestAggregateTableReachesTheProcessor(t *testing.T) {
	const shard = "shardId-000000000000"
	const seq = "49590338271490256608559692538361571095921575989136588802"
	arrival := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC3339Nano)
	entry := func() map[string]types.AttributeValue {
		return map[string]types.AttributeValue{
			processor.ErrorTablePartitionKey:   &types.AttributeValueMemberS{Value: shard + ":" + seq},
			processor.ErrorAttrShardID:         &types.AttributeValueMemberS{Value: shard},
			processor.ErrorAttrSequenceNumber:  &types.AttributeValueMemberS{Value: seq},
			processor.ErrorAttrPartitionKey:    &types.AttributeValueMemberS{Value: "pk"},
			processor.ErrorAttrArrivalTime:     &types.AttributeValueMemberS{Value: arrival},
			processor.ErrorAttrReason:          &types.AttributeValueMemberS{Value: "throttled"},
			processor.ErrorAttrFailedAt:        &types.AttributeValueMemberS{Value: arrival},
			processor.ErrorAttrPayloadEncoding: &types.AttributeValueMemberS{Value: processor.PayloadEncodingRaw},
			processor.ErrorAttrPayload:         &types.AttributeValueMemberB{Value: []byte(`{"v":1}`)},
		}
	}
	config := writeConfig(t, aggregatesConfig)
	// --count-unverified needs the pin; the fake clients have no Kinesis, so the entry stays unverified.
	const pinned = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
	tests := []struct {
		name           string
		extra          []string
		wantAggReads   bool
		wantAggWrites  bool // may the aggregate table receive writes (only a real recount may)
		wantDataWrites int
		wantSummary    string
		wantCode       int
	}{
		{name: "recount", extra: []string{"--aggregate-table", "agg", "--" + FlagCountUnverified, "--stream", pinned}, wantAggReads: true, wantAggWrites: true, wantDataWrites: 1,
			wantSummary: "  aggregates: "},
		{name: "unverified left uncounted", extra: []string{"--aggregate-table", "agg"}, wantDataWrites: 1, wantCode: ExitLeftover,
			wantSummary: "  aggregates: 1 records stored, left uncounted: payload not verified against the stream"},
		{name: "skip", extra: []string{"--skip-aggregates"}, wantDataWrites: 1,
			wantSummary: "  aggregates: not recounted (--skip-aggregates): the records stored are left uncounted"},
		{name: "dry run", extra: []string{"--aggregate-table", "agg", "--dry-run", "--" + FlagCountUnverified, "--stream", pinned}, wantAggReads: true,
			wantSummary: "  aggregates: not recounted (dry run: nothing written to the aggregate table); 0 records would be recounted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(processor.EnvTableName, "")
			t.Setenv(processor.EnvErrorTableName, "")
			t.Setenv(processor.EnvConfigFile, "")
			t.Setenv(processor.EnvAggregateTableName, "")
			db := &aggDB{entries: []map[string]types.AttributeValue{entry()}}
			clients := func(context.Context, clientOptions) (redrive.Clients, error) { return redrive.Clients{DB: db}, nil }
			args := append([]string{ModeErrors, "--error-table", "e", "--table", "t", "--config", config}, tt.extra...)
			var out, errOut bytes.Buffer
			if code := run(context.Background(), args, &out, &errOut, clients); code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out.String(), errOut.String())
			}
			if got := db.count(db.reads, "agg") > 0; got != tt.wantAggReads {
				t.Errorf("aggregate table read: %v, want %v", got, tt.wantAggReads)
			}
			if n := db.count(db.writes, "agg"); n > 0 && !tt.wantAggWrites {
				t.Errorf("%d writes reached the aggregate table", n)
			}
			if n := db.count(db.writes, "t"); n != tt.wantDataWrites {
				t.Errorf("%d writes reached the data table, want %d", n, tt.wantDataWrites)
			}
			if !strings.Contains(out.String(), tt.wantSummary) {
				t.Errorf("summary lacks %q:\n%s", tt.wantSummary, out.String())
			}
		})
	}
}

// TestFormatSummaryAggregates: the redrive summary says how many records were recounted into the aggregates (or,
// in a dry run, would be); without aggregates it says nothing about them.
func TestFormatSummaryAggregates(t *testing.T) {
	tests := []struct {
		name   string
		mode   redrive.AggregateMode
		dryRun bool
		want   string // "": no aggregates line
	}{
		{name: "none", mode: redrive.AggregatesNone},
		{name: "recount", mode: redrive.AggregatesRecount, want: "  aggregates: 3 records recounted (the pipeline had not counted them; each counted once)\n"},
		{name: "dry run", mode: redrive.AggregatesRecount, dryRun: true, want: "  aggregates: not recounted (dry run: nothing written to the aggregate table); 3 records would be recounted\n"},
		{name: "skip", mode: redrive.AggregatesSkip, want: "  aggregates: not recounted (--skip-aggregates): the records stored are left uncounted\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := formatSummary(ModeErrors, redrive.Summary{Aggregates: tt.mode, DryRun: tt.dryRun,
				Records: redrive.RecordCounts{Read: 4, Written: 4, Recounted: 3}})
			if tt.want == "" {
				if strings.Contains(got, "aggregates:") {
					t.Errorf("summary speaks of aggregates:\n%s", got)
				}
			} else if !strings.Contains(got, tt.want) {
				t.Errorf("summary lacks %q:\n%s", tt.want, got)
			}
		})
	}
}

// TestCountUnseenFlag: --count-unseen exists for the on-failure inputs (dlq, s3), whose ranges it trusts, and not
// for the error table, whose entries the ledger marks itself.
func TestCountUnseenFlag(t *testing.T) {
	const arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
	cfg := writeConfig(t, aggregatesConfig)
	tests := []struct {
		args []string
		want int
	}{
		{[]string{ModeDLQ, "--queue-url", "u", "--stream", arn, "--table", "t"}, ExitLeftover},
		{[]string{ModeS3, "--bucket", "b", "--stream", arn, "--table", "t"}, ExitLeftover},
		{[]string{ModeErrors, "--error-table", "e", "--table", "t"}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			t.Setenv(processor.EnvConfigFile, "")
			give := append(append([]string(nil), tt.args...), "--config", cfg, "--aggregate-table", "agg", "--"+FlagCountUnseen)
			var out, errOut bytes.Buffer
			if got := run(context.Background(), give, &out, &errOut, noClients); got != tt.want {
				t.Errorf("exit = %d, want %d; stderr:\n%s", got, tt.want, errOut.String())
			}
		})
	}
}

// TestCountUnverifiedFlag: --count-unverified exists for the inputs whose payloads may be unverified (errors: entries
// the stream does not confirm; s3: payload records past its retention), and not for dlq, whose records all come from
// the stream.
func TestCountUnverifiedFlag(t *testing.T) {
	const arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
	cfg := writeConfig(t, aggregatesConfig)
	tests := []struct {
		args []string
		want int
	}{
		{[]string{ModeErrors, "--error-table", "e", "--stream", arn, "--table", "t"}, ExitLeftover},
		{[]string{ModeErrors, "--error-table", "e", "--table", "t"}, ExitUsage}, // without the pin, every entry would count on its word
		{[]string{ModeS3, "--bucket", "b", "--stream", arn, "--table", "t"}, ExitLeftover},
		{[]string{ModeDLQ, "--queue-url", "u", "--stream", arn, "--table", "t"}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			t.Setenv(processor.EnvConfigFile, "")
			give := append(append([]string(nil), tt.args...), "--config", cfg, "--aggregate-table", "agg", "--"+FlagCountUnverified)
			var out, errOut bytes.Buffer
			if got := run(context.Background(), give, &out, &errOut, noClients); got != tt.want {
				t.Errorf("exit = %d, want %d; stderr:\n%s", got, tt.want, errOut.String())
			}
		})
	}
}

// TestFormatSummaryUnverified: the summary names the records stored but left uncounted because their payload was
// not verified against the stream, and the flag that counts them, in the modes that can have such records.
func TestFormatSummaryUnverified(t *testing.T) {
	const line = "  aggregates: 2 records stored, left uncounted: payload not verified against the stream"
	tests := []struct {
		mode       string
		unverified int
		want       bool
	}{
		{ModeErrors, 2, true},
		{ModeS3, 2, true},
		{ModeErrors, 0, false},
		{ModeS3, 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %d", tt.mode, tt.unverified), func(t *testing.T) {
			got := formatSummary(tt.mode, redrive.Summary{Aggregates: redrive.AggregatesRecount,
				Records: redrive.RecordCounts{Read: 3, Written: 3, Recounted: 1, Unverified: tt.unverified}})
			has := strings.Contains(got, line) && strings.Contains(got, "--"+FlagCountUnverified)
			if has != tt.want || strings.Contains(got, "left uncounted") != tt.want {
				t.Errorf("summary names the unverified records: %v, want %v:\n%s", has, tt.want, got)
			}
		})
	}
}
