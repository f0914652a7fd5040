package redrive_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// TestNewAggregates: a configuration with aggregates needs the aggregate table's name, or SkipAggregates (data
// only); a configuration without needs neither. The mode is what the run will do with them.
func TestNewAggregates(t *testing.T) {
	aggs, err := processor.ParseConfig([]byte(`{"aggregates":[{"name":"perMinute","windowSeconds":60,"measures":[{"name":"n","kind":"count"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cfg      processor.Config
		table    string
		skip     bool
		wantErr  string
		wantMode redrive.AggregateMode
	}{
		{name: "aggregates without a table", cfg: aggs, wantErr: "aggregate table name is required: the configuration has 1 aggregates"},
		{name: "aggregates with a table", cfg: aggs, table: "agg", wantMode: redrive.AggregatesRecount},
		{name: "aggregates skipped", cfg: aggs, skip: true, wantMode: redrive.AggregatesSkip},
		{name: "no aggregates", cfg: processor.DefaultConfig(), wantMode: redrive.AggregatesNone},
		{name: "no aggregates, skipped", cfg: processor.DefaultConfig(), skip: true, wantMode: redrive.AggregatesNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redrive.New(redrive.Clients{DB: dynamodb.New(dynamodb.Options{Region: "us-east-1"})}, func(o *redrive.Options) {
				o.TableName, o.Config, o.AggregateTableName, o.SkipAggregates = "t", tt.cfg, tt.table, tt.skip
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New returned %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := redrive.AggregateModeOf(tt.cfg, tt.skip); got != tt.wantMode {
				t.Errorf("AggregateModeOf = %q, want %q", got, tt.wantMode)
			}
		})
	}
}
