package replay_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// tableCalls passes every call on to a DynamoDB client and counts reads and writes per table.
type tableCalls struct {
	db *dynamodb.Client

	mu            sync.Mutex
	reads, writes map[string]int
}

func (c *tableCalls) note(m map[string]int, table string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m[table]++
}

func (c *tableCalls) count(m map[string]int, table string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m[table]
}

func (c *tableCalls) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.note(c.writes, aws.ToString(in.TableName))
	return c.db.PutItem(ctx, in, optFns...)
}

func (c *tableCalls) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	for table := range in.RequestItems {
		c.note(c.writes, table)
	}
	return c.db.BatchWriteItem(ctx, in, optFns...)
}

func (c *tableCalls) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.note(c.reads, aws.ToString(in.TableName))
	return c.db.GetItem(ctx, in, optFns...)
}

// TestReplayAggregates: a configuration with aggregates is replayed with the aggregate table (its stored records are
// looked up there, to be counted where the pipeline did not count them), or with SkipAggregates (the aggregate table
// is never touched); without either, New refuses it. A dry run reads the aggregate table and writes nothing at all.
// Records come from the stream, so they are verified: a caller's processor option marking them unverified is
// overridden and they are still looked up to be counted.
func TestReplayAggregates(t *testing.T) {
	cfg, err := processor.ParseConfig([]byte(`{"aggregates":[{"name":"perMinute","windowSeconds":60,"measures":[{"name":"n","kind":"count"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		table        string
		skip, dryRun bool
		unverified   bool // a caller's ProcessorOptions set processor.Options.Unverified
		wantErr      string
		wantMode     redrive.AggregateMode
		wantAggReads bool
		wantItems    int
	}{
		{name: "no aggregate table", wantErr: "aggregate table name is required: the configuration has 1 aggregates"},
		{name: "recount", table: "agg", wantMode: redrive.AggregatesRecount, wantAggReads: true, wantItems: 1},
		{name: "skip", skip: true, wantMode: redrive.AggregatesSkip, wantItems: 1},
		{name: "skip with a table", table: "agg", skip: true, wantMode: redrive.AggregatesSkip, wantItems: 1},
		{name: "dry run", table: "agg", dryRun: true, wantMode: redrive.AggregatesRecount, wantAggReads: true},
		{name: "recount, the caller says unverified", table: "agg", unverified: true, wantMode: redrive.AggregatesRecount, wantAggReads: true, wantItems: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := dynamostandin.New(dynamostandin.Options{KeyAttributes: map[string][]string{"agg": {"pk", "sk"}}})
			defer srv.Close()
			db := &tableCalls{db: dynamodb.NewFromConfig(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL()) }),
				reads: map[string]int{}, writes: map[string]int{}}
			now := time.Now()
			ks := &attackStream{recs: []ktypes.Record{{Data: []byte(`{"a":1}`), PartitionKey: aws.String("k"),
				SequenceNumber: aws.String("49600000000000000000000000000000000000000000000000000001"), ApproximateArrivalTimestamp: aws.Time(now.Add(-time.Minute))}}}
			r, err := replay.New(replay.Clients{DB: db, Kinesis: ks}, func(o *replay.Options) {
				o.StreamARN, o.Since, o.TableName, o.Config = attackARN, now.Add(-time.Hour), "data", cfg
				o.AggregateTableName, o.SkipAggregates, o.DryRun = tt.table, tt.skip, tt.dryRun
				if tt.unverified {
					o.ProcessorOptions = append(o.ProcessorOptions, func(po *processor.Options) { po.Unverified = true })
				}
			})
			if tt.wantErr != "" {
				var ue *replay.UsageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New returned %v, want a *UsageError saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sum, err := r.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !sum.Complete() || sum.Records.Read != 1 {
				t.Errorf("complete %v, %d read; shards %+v", sum.Complete(), sum.Records.Read, sum.Shards)
			}
			if sum.Aggregates != tt.wantMode {
				t.Errorf("Summary.Aggregates = %q, want %q", sum.Aggregates, tt.wantMode)
			}
			if got := db.count(db.reads, "agg") > 0; got != tt.wantAggReads {
				t.Errorf("aggregate table read: %v, want %v", got, tt.wantAggReads)
			}
			if tt.skip || tt.dryRun {
				if n := db.count(db.writes, "agg"); n > 0 {
					t.Errorf("%d writes reached the aggregate table", n)
				}
			}
			if tt.dryRun && db.count(db.writes, "data") > 0 {
				t.Errorf("a dry run wrote %d times to the data table", db.count(db.writes, "data"))
			}
			if n := len(srv.Items("data")); n != tt.wantItems {
				t.Errorf("%d items in the data table, want %d", n, tt.wantItems)
			}
		})
	}
}
