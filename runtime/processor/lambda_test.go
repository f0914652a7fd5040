package processor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// kinesisEventJSON renders an event as Lambda delivers it.
func kinesisEventJSON(payloads ...string) []byte {
	var recs []string
	for i, p := range payloads {
		recs = append(recs, fmt.Sprintf(`{
      "kinesis": {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": "pk-%d",
        "sequenceNumber": %q,
        "data": %q,
        "approximateArrivalTimestamp": 1726268816.123
      },
      "eventSource": "aws:kinesis",
      "eventVersion": "1.0",
      "eventID": %q,
      "eventName": "aws:kinesis:record",
      "invokeIdentityArn": "arn:aws:iam::123456789012:role/processor",
      "awsRegion": "us-east-1",
      "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/events"
    }`, i, seq(i), base64.StdEncoding.EncodeToString([]byte(p)), testShard+":"+seq(i)))
	}
	return []byte(`{"Records": [` + strings.Join(recs, ",") + `]}`)
}

func TestInvoke(t *testing.T) {
	tests := []struct {
		name         string
		give         []string
		noErrorTable bool
		want         string
	}{
		{name: "all stored", give: []string{`{"Value": 81}`, `{"Value": 82}`}, want: `{"batchItemFailures":[]}`},
		{name: "error table", give: []string{`{"Value": 81}`, `oops`}, want: `{"batchItemFailures":[]}`},
		{name: "no error table", give: []string{`{"Value": 81}`, `oops`, `[]`}, noErrorTable: true, want: `{"batchItemFailures":[{"itemIdentifier":"` + seq(1) + `"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
			p := newTestProcessor(t, db, func(o *Options) {
				if tt.noErrorTable {
					o.ErrorTableName = ""
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := lambda.NewHandler(p.Handle).Invoke(ctx, kinesisEventJSON(tt.give...))
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if string(out) != tt.want {
				t.Errorf("response %s, want %s", out, tt.want)
			}
		})
	}
	t.Run("arrival time", func(t *testing.T) {
		db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
		p := newTestProcessor(t, db)
		if _, err := lambda.NewHandler(p.Handle).Invoke(context.Background(), kinesisEventJSON(`{}`)); err != nil {
			t.Fatal(err)
		}
		for _, it := range db.tables[testTable] {
			if got := it[AttrArrivalTime].(*types.AttributeValueMemberS).Value; got != "2024-09-13T23:06:56.123Z" {
				t.Errorf("arrival time %s", got)
			}
		}
	})
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		db      DB
		give    func(*Options)
		wantErr []string
	}{
		{name: "ok", db: newFakeDB(nil), give: func(o *Options) { o.TableName = "t" }},
		{
			name: "every problem",
			give: func(o *Options) {
				o.ErrorTableName = "e"
				o.MaxInFlight = -1
				o.Config = Config{PartitionKey: KeyAttribute{Name: "pk", Type: "X", Source: "$nope"}, ErrorTTLSeconds: -1}
			},
			wantErr: []string{"db is nil", "table name is empty", "max in flight: -1 is negative", `type "X"`, `unknown metadata source "$nope"`, "error TTL"},
		},
		{name: "same tables", db: newFakeDB(nil), give: func(o *Options) { o.TableName, o.ErrorTableName = "t", "t" }, wantErr: []string{`error table name "t" is the data table's name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.db, tt.give)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				o := p.Options()
				if o.MaxInFlight != DefaultMaxInFlight || o.Version != Version || o.Transform == nil || o.Config.PartitionKey != DefaultConfig().PartitionKey {
					t.Errorf("defaults not set: %+v", o)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLogsAndMetrics(t *testing.T) {
	t.Setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
	var logs, metrics bytes.Buffer
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	p := newTestProcessor(t, db, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		o.MetricsWriter = &metrics
		o.Transform = func(ctx context.Context, r *Record) ([]Item, error) {
			switch r.Data["k"] {
			case "skip":
				return nil, ErrSkip
			case "later":
				return nil, errors.New("try later")
			}
			return DefaultTransform(Config{})(ctx, r)
		}
	})
	if _, err := p.Handle(context.Background(), event(`{"k":"a"}`, `{"k":"skip"}`, `{"secret":`, `{"k":"later"}`)); err != nil {
		t.Fatal(err)
	}
	var emf map[string]any
	if err := json.Unmarshal(metrics.Bytes(), &emf); err != nil || bytes.Count(metrics.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("EMF %q: %v", metrics.String(), err)
	}
	for k, want := range map[string]any{"FunctionName": "fn", MetricRecordsWritten: 1.0, MetricRecordsSkipped: 1.0, MetricRecordsToErrorTable: 1.0, MetricRecordsFailed: 1.0, MetricRecordsRefused: 0.0} {
		if emf[k] != want {
			t.Errorf("EMF %s = %v, want %v", k, emf[k], want)
		}
	}
	cw := emf["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if cw["Namespace"] != MetricNamespace || len(cw["Metrics"].([]any)) != 7 {
		t.Errorf("EMF directive %v", cw)
	}
	if _, ok := emf[MetricBatchLatency].(float64); !ok {
		t.Errorf("no latency in %v", emf)
	}
	var levels []string
	dec := json.NewDecoder(&logs)
	for {
		var line map[string]any
		if err := dec.Decode(&line); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		levels = append(levels, fmt.Sprint(line["level"], " ", line["msg"], " ", line["eventId"]))
		if strings.Contains(fmt.Sprint(line), "secret") && line["level"] != "WARN" {
			t.Errorf("payload logged: %v", line)
		}
	}
	want := []string{
		"WARN record sent to the error table " + testShard + ":" + seq(2),
		"WARN record not stored, reported for retry " + testShard + ":" + seq(3),
		"INFO batch processed <nil>",
	}
	if strings.Join(levels, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs\n%s\nwant\n%s", strings.Join(levels, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnidentifiedRecord(t *testing.T) {
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	p := newTestProcessor(t, db, func(o *Options) { o.ErrorTableName = "" })
	ev := event(`{"ok":1}`, `bad`)
	ev.Records[1].Kinesis.SequenceNumber = ""
	ev.Records[1].EventID = ""
	if _, err := p.Handle(context.Background(), ev); err == nil {
		t.Fatal("Handle succeeded with an unreportable failure")
	}
}
