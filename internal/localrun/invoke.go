package localrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// outcomeKind is how one invocation ended.
type outcomeKind int

const (
	outcomeSuccess         outcomeKind = iota // every record processed
	outcomePartial                            // batch item failures: records from firstFailed on are retried
	outcomeFunctionError                      // error, panic, crash or timeout ("Unhandled")
	outcomeInvalidResponse                    // a batch item failure response Lambda cannot use (functionError null)
)

// outcome is how one invocation ended.
type outcome struct {
	kind outcomeKind
	// firstFailed is the index of the first record to retry after a partial failure.
	firstFailed int
	// reason describes a failure for logs.
	reason string
}

// judge interprets an invocation's result for a batch of recs as Lambda does. With ReportBatchItemFailures, these
// responses are a success (recorded on AWS): no body, null, "", [], {}, an object without batchItemFailures, and
// batchItemFailures null or []. An identifier that is not a string, is empty or null, or an item without the
// itemIdentifier key makes the response invalid: the whole batch failed (recorded on AWS: retried, then an
// on-failure record with functionError null). So does an identifier that is not a sequence number of the batch,
// and any other shape (a key that differs from batchItemFailures only in case, a number, a non-empty string).
func (r *Runner) judge(recs []ktypes.Record, resp []byte, err error) outcome {
	if err != nil {
		return outcome{kind: outcomeFunctionError, reason: err.Error()}
	}
	success := outcome{kind: outcomeSuccess, firstFailed: len(recs)}
	if !r.opts.ReportBatchItemFailures {
		return success // the response is ignored
	}
	invalid := func(format string, args ...any) outcome {
		return outcome{kind: outcomeInvalidResponse, reason: "invalid batch item failure response: " + fmt.Sprintf(format, args...)}
	}
	body := bytes.TrimSpace(resp)
	switch string(body) {
	case "", "null", `""`, "[]":
		return success
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return invalid("the response is not a JSON object")
	}
	raw, ok := top["batchItemFailures"]
	if !ok {
		for k := range top {
			if strings.EqualFold(k, "batchItemFailures") {
				return invalid("key %q is not batchItemFailures", k)
			}
		}
		return success
	}
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return success
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return invalid("batchItemFailures is not a list")
	}
	if len(items) == 0 {
		return success
	}
	index := make(map[string]int, len(recs))
	for i, rec := range recs {
		index[deref(rec.SequenceNumber)] = i
	}
	first := len(recs)
	for n, it := range items {
		var item map[string]json.RawMessage
		if err := json.Unmarshal(it, &item); err != nil || item == nil {
			return invalid("batch item failure %d is not an object", n)
		}
		idRaw, ok := item["itemIdentifier"]
		if !ok {
			return invalid("batch item failure %d has no itemIdentifier", n)
		}
		idRaw = bytes.TrimSpace(idRaw)
		var id string
		if string(idRaw) == "null" || json.Unmarshal(idRaw, &id) != nil {
			return invalid("the itemIdentifier of batch item failure %d is %s, not a string", n, idRaw)
		}
		if id == "" {
			return invalid("the itemIdentifier of batch item failure %d is empty", n)
		}
		i, ok := index[id]
		if !ok {
			return invalid("itemIdentifier %q is not a sequence number of the batch", id)
		}
		first = min(first, i)
	}
	return outcome{kind: outcomePartial, firstFailed: first, reason: "partial batch failure at " + deref(recs[first].SequenceNumber)}
}
