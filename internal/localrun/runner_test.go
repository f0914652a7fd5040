package localrun_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
)

func TestNewValidates(t *testing.T) {
	kc := kinesis.New(kinesis.Options{Region: "us-east-1"})
	inv := localrun.InvokerFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil })
	tests := []struct {
		name string
		give func(*localrun.Options)
		want []string // substrings of the error; none: valid
	}{
		{"defaults", func(o *localrun.Options) { o.StreamName = "s" }, nil},
		{"everything wrong", func(o *localrun.Options) {
			o.BatchSize, o.MaximumBatchingWindow, o.StartingPosition = 0, time.Hour, "OLDEST"
			o.MaximumRetryAttempts, o.MaximumRecordAge, o.FunctionTimeout = -2, 0, 0
		}, []string{"stream name is empty", "batch size 0", "batching window 1h0m0s", `starting position "OLDEST"`,
			"retry attempts -2", "record age 0s", "function timeout 0s"}},
		{"at timestamp without a time", func(o *localrun.Options) { o.StreamName, o.StartingPosition = "s", localrun.AtTimestamp },
			[]string{"needs a starting position timestamp"}},
		{"batch size above the limit", func(o *localrun.Options) { o.StreamName, o.BatchSize = "s", 10001 }, []string{"batch size 10001"}},
		{"settings outside AWS's ranges", func(o *localrun.Options) {
			o.StreamName, o.ParallelizationFactor, o.TumblingWindow = "s", 11, 901*time.Second
		}, []string{"parallelization factor 11 is outside 1..10", "tumbling window 15m1s is outside 0..15m0s"}},
		{"a filter the runner cannot evaluate", func(o *localrun.Options) {
			o.StreamName, o.FilterPatterns = "s", []string{`{"data":{"a":["b"]}}`, `{"data":{"name":[{"wildcard":"a*"}]}}`}
		}, []string{`filter patterns: filter 2: data.name[0]: operator "wildcard" is not supported`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := localrun.New(kc, inv, tt.give)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				o := r.Options()
				if o.BatchSize != 100 || o.MaximumRetryAttempts != -1 || o.MaximumRecordAge != -1 || o.StartingPosition != localrun.TrimHorizon ||
					o.StreamARN != "arn:aws:kinesis:us-east-1:000000000000:stream/s" || o.ReportBatchItemFailures || o.ParallelizationFactor != 1 {
					t.Errorf("defaults = %+v", o)
				}
				if w := r.Warnings(); len(w) != 0 {
					t.Errorf("warnings for the defaults: %q", w)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestInProcess(t *testing.T) {
	tests := []struct {
		name     string
		h        localrun.Handler
		timeout  time.Duration
		want     string
		wantType string // FunctionError type; empty: success
	}{
		{"response", func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error) {
			return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{{ItemIdentifier: "7"}}}, nil
		}, time.Second, `{"batchItemFailures":[{"itemIdentifier":"7"}]}`, ""},
		{"error", func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error) {
			return events.KinesisEventResponse{}, errors.New("boom")
		}, time.Second, "", "*errors.errorString"},
		{"panic", func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error) {
			panic("oops")
		}, time.Second, "", "Runtime.Panic"},
		{"past its deadline", func(ctx context.Context, _ events.KinesisEvent) (events.KinesisEventResponse, error) {
			time.Sleep(50 * time.Millisecond)
			return events.KinesisEventResponse{}, nil
		}, 10 * time.Millisecond, "", "Sandbox.Timedout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			out, err := localrun.InProcess(tt.h).Invoke(ctx, []byte(`{"Records":[]}`))
			if tt.wantType == "" {
				if err != nil || string(out) != tt.want {
					t.Errorf("Invoke = %s, %v; want %s", out, err, tt.want)
				}
				return
			}
			var fe *localrun.FunctionError
			if !errors.As(err, &fe) || !strings.Contains(fe.Type, tt.wantType) {
				t.Errorf("Invoke error = %v, want a function error of type %s", err, tt.wantType)
			}
		})
	}
}
