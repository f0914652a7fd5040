package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Invoker invokes the function once with a JSON event and returns its JSON response. A function error (the
// handler returned an error, panicked, crashed or timed out) is returned as an error; *FunctionError when the
// function itself reported it.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// InvokerFunc adapts a function to Invoker.
type InvokerFunc func(ctx context.Context, payload []byte) ([]byte, error)

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

// FunctionError is an error the function reported: the handler's error or panic, or the runtime's exit, in Lambda's
// shape ({"errorType": ..., "errorMessage": ...}).
type FunctionError struct {
	// Type is the error's type, for example "Runtime.ExitError" or the Go type of a handler's error.
	Type string `json:"errorType"`
	// Message is the error's message.
	Message string `json:"errorMessage"`
}

// Error describes the function error Lambda would report.
func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error: %s: %s", e.Type, e.Message)
}

// Handler is a Kinesis batch handler as a Go Lambda function declares it, for example
// (*processor.Processor).Handle.
type Handler func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error)

// InProcess returns an Invoker that runs h in this process through aws-lambda-go's lambda.NewHandler, the code
// path lambda.Start uses: the event is decoded from JSON and the response encoded to JSON as in Lambda. The
// context carries the runner's deadline. A handler that returns after its deadline is reported as a timeout, its
// response discarded, as Lambda does; unlike Lambda, it is not stopped at the deadline.
func InProcess(h Handler) Invoker {
	lh := lambda.NewHandler(h)
	return InvokerFunc(func(ctx context.Context, payload []byte) (out []byte, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = &FunctionError{Type: "Runtime.Panic", Message: fmt.Sprint(p)}
			}
		}()
		out, err = lh.Invoke(ctx, payload)
		if dl, ok := ctx.Deadline(); ok && time.Now().After(dl) {
			return nil, &FunctionError{Type: "Sandbox.Timedout", Message: "Task timed out"}
		}
		if err != nil {
			var fe *FunctionError
			if errors.As(err, &fe) {
				return nil, err
			}
			return nil, &FunctionError{Type: fmt.Sprintf("%T", err), Message: err.Error()}
		}
		return out, nil
	})
}

// eventFor builds the events.KinesisEvent Lambda would send for records of shardID.
func (r *Runner) eventFor(shardID string, recs []ktypes.Record) events.KinesisEvent {
	ev := events.KinesisEvent{Records: make([]events.KinesisEventRecord, len(recs))}
	for i, rec := range recs {
		var arrival time.Time
		if rec.ApproximateArrivalTimestamp != nil {
			arrival = rec.ApproximateArrivalTimestamp.Truncate(time.Millisecond)
		}
		ev.Records[i] = events.KinesisEventRecord{
			AwsRegion:         r.opts.Region,
			EventID:           shardID + ":" + deref(rec.SequenceNumber),
			EventName:         "aws:kinesis:record",
			EventSource:       "aws:kinesis",
			EventSourceArn:    r.opts.StreamARN,
			EventVersion:      "1.0",
			InvokeIdentityArn: r.opts.InvokeIdentityARN,
			Kinesis: events.KinesisRecord{
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: arrival},
				Data:                        rec.Data,
				EncryptionType:              encryptionType(rec.EncryptionType),
				PartitionKey:                deref(rec.PartitionKey),
				SequenceNumber:              deref(rec.SequenceNumber),
				KinesisSchemaVersion:        "1.0",
			},
		}
	}
	return ev
}

func encryptionType(t ktypes.EncryptionType) string {
	if t == "" {
		return ""
	}
	return string(t)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// outcome is how one invocation ended.
type outcome struct {
	// failed: the whole batch failed (function error, or an invalid batch item failure).
	failed bool
	// functionError: the function itself failed (as opposed to an invalid response).
	functionError bool
	// firstFailed is the index of the first record to retry after a partial failure; len(batch) when all succeeded.
	firstFailed int
	// reason describes a failure for logs.
	reason string
}

// judge interprets an invocation's result for a batch of recs, as Lambda does.
func (r *Runner) judge(recs []ktypes.Record, resp []byte, err error) outcome {
	if err != nil {
		return outcome{failed: true, functionError: true, reason: err.Error()}
	}
	all := outcome{firstFailed: len(recs)}
	if !r.opts.ReportBatchItemFailures {
		return all // the response is ignored
	}
	var body struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(resp) == 0 || string(resp) == "null" {
		return all
	}
	if err := json.Unmarshal(resp, &body); err != nil {
		return outcome{failed: true, reason: fmt.Sprintf("response is not a batch item failure response: %v", err)}
	}
	if len(body.BatchItemFailures) == 0 {
		return all
	}
	index := make(map[string]int, len(recs))
	for i, rec := range recs {
		index[deref(rec.SequenceNumber)] = i
	}
	first := len(recs)
	for _, f := range body.BatchItemFailures {
		if f.ItemIdentifier == nil || *f.ItemIdentifier == "" {
			return outcome{failed: true, reason: "a batch item failure has an empty or missing itemIdentifier"}
		}
		i, ok := index[*f.ItemIdentifier]
		if !ok {
			return outcome{failed: true, reason: fmt.Sprintf("batch item failure %q is not a sequence number of the batch", *f.ItemIdentifier)}
		}
		first = min(first, i)
	}
	return outcome{firstFailed: first, reason: "partial batch failure at " + deref(recs[first].SequenceNumber)}
}
