package processor_test

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackMetaConfigFile feeds pipeline.json files to ParseConfig the way a cold start reads them, then runs a
// processor with the result against the wire-level stand-in and reads the stored item's attribute names back:
// "metadata" absent, null, [] and listed; the removed omitMetadata field (top level or in transform) must be an
// error that names it, never silently ignored; duplicates, unknown and reserved names are errors; trailing content
// after the object must not smuggle a second configuration past the decoder.
func TestAttackMetaConfigFile(t *testing.T) {
	const meta = "_kinesisArrivalTime,_kinesisPartitionKey,_kinesisSequenceNumber,_processedAt"
	tests := []struct {
		name    string
		file    string
		wantErr string // a substring of the error; "" for none
		want    string // the stored item's attribute names besides "id" and "v", sorted, comma-separated
	}{
		{name: "absent", file: `{}`, want: "_kinesisArrivalTime"},
		{name: "null", file: `{"metadata": null}`, want: "_kinesisArrivalTime"},
		{name: "empty list", file: `{"metadata": []}`, want: ""},
		{name: "empty list with a transform", file: `{"metadata": [], "transform": {"exclude": ["x"]}}`, want: ""},
		{name: "all", file: `{"metadata": ["_processedAt", "_kinesisSequenceNumber", "_kinesisPartitionKey", "_kinesisArrivalTime"]}`, want: meta},
		{name: "omitMetadata in transform", file: `{"transform": {"omitMetadata": true}}`, wantErr: "omitMetadata"},
		{name: "omitMetadata at the top", file: `{"omitMetadata": true}`, wantErr: "omitMetadata"},
		{name: "omitMetadata false", file: `{"transform": {"omitMetadata": false}}`, wantErr: "omitMetadata"},
		{name: "duplicate", file: `{"metadata": ["_kinesisArrivalTime", "_kinesisArrivalTime"]}`, wantErr: "twice"},
		{name: "position", file: `{"metadata": ["_kpos"]}`, wantErr: "_kpos"},
		{name: "unknown", file: `{"metadata": ["arrival"]}`, wantErr: "arrival"},
		{name: "wrong type", file: `{"metadata": "_kinesisArrivalTime"}`, wantErr: "metadata"},
		{name: "second object after the first", file: `{"metadata": []} {"transform": {"omitMetadata": true}}`, wantErr: "after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := processor.ParseConfig([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseConfig(%s) = %v, want an error containing %q", tt.file, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tt.file, err)
			}
			s := dynamostandin.New(dynamostandin.Options{})
			defer s.Close()
			p, err := processor.New(newSDKClient(s.URL()), func(o *processor.Options) {
				o.TableName, o.ErrorTableName, o.Config = "data", "errors", cfg
				o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
				o.MetricsWriter = io.Discard
			})
			if err != nil {
				t.Fatal(err)
			}
			const id = "shardId-000000000000:49590000000000000000000000000000000000000000000000000001"
			ev := events.KinesisEvent{Records: []events.KinesisEventRecord{{
				EventID: id, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
				Kinesis: events.KinesisRecord{SequenceNumber: "49590000000000000000000000000000000000000000000000000001",
					PartitionKey: "pk", Data: []byte(`{"v":1}`),
					ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Unix(1_700_000_000, 0)}},
			}}}
			resp, err := p.Handle(context.Background(), ev)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("handle: %v %v", resp, err)
			}
			it, ok := s.Items("data")[id]
			if !ok {
				t.Fatalf("no item %s; table %v", id, s.Items("data"))
			}
			var names []string
			for name := range it {
				if name != "id" && name != "v" {
					names = append(names, name)
				}
			}
			sort.Strings(names)
			if got := strings.Join(names, ","); got != tt.want {
				t.Errorf("item attributes %q, want %q", got, tt.want)
			}
			if len(s.Items("errors")) != 0 {
				t.Errorf("error table: %v", s.Items("errors"))
			}
		})
	}
}
