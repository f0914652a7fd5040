package redrive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// DLQ defaults.
const (
	// DefaultVisibilityTimeout is how long a received message stays invisible to other consumers while it is
	// redriven; it is extended while processing takes longer.
	DefaultVisibilityTimeout = 5 * time.Minute
	// DefaultWaitTime is how long a receive waits for messages (long polling) before the queue counts as drained.
	DefaultWaitTime = 2 * time.Second
)

// DLQInput says which queue to redrive.
type DLQInput struct {
	// QueueURL is the on-failure destination queue's URL. Required.
	QueueURL string
	// MaxMessages stops the run after this many messages. Default: 0, until the queue is drained.
	MaxMessages int
	// VisibilityTimeout is how long received messages stay invisible; a message still being processed after half of
	// it is extended. Default: DefaultVisibilityTimeout.
	VisibilityTimeout time.Duration
	// WaitTime is how long each receive waits for messages (at most 20 s); a receive that returns none ends the run.
	// Default: DefaultWaitTime.
	WaitTime time.Duration
}

// DLQ redrives the on-failure records in an SQS queue: for each message, it reads the records of the range it names
// from the pinned stream (Options.StreamARN), handles them, and deletes the message once every record is stored. A
// message naming another stream, a message whose range cannot be read in full, and one whose records were not all
// stored are kept. At the end, every message kept is made visible
// again at once. The run ends when a receive returns no message, or only messages this run has seen.
func (r *Redriver) DLQ(ctx context.Context, in DLQInput) (Summary, error) {
	r.start()
	if r.c.SQS == nil {
		return r.finish(), errors.New("dlq: no SQS client")
	}
	if r.pin == nil {
		return r.finish(), errors.New("dlq: the pipeline's stream ARN is required (Options.StreamARN)")
	}
	if in.QueueURL == "" {
		return r.finish(), errors.New("dlq: queue URL is empty")
	}
	if in.VisibilityTimeout <= 0 {
		in.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if in.WaitTime <= 0 {
		in.WaitTime = DefaultWaitTime
	}
	in.WaitTime = min(in.WaitTime, 20*time.Second)
	seen := map[string]bool{}
	var kept []string // receipt handles to release
	defer func() {
		// Make the kept messages visible again now rather than after the visibility timeout, even if ctx is done.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, h := range kept {
			_, _ = r.c.SQS.ChangeMessageVisibility(rctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl: aws.String(in.QueueURL), ReceiptHandle: aws.String(h), VisibilityTimeout: 0,
			})
		}
	}()
	count := 0
	for in.MaxMessages <= 0 || count < in.MaxMessages {
		if err := ctx.Err(); err != nil {
			return r.finish(), fmt.Errorf("dlq: %w", err)
		}
		n := int32(10)
		if in.MaxMessages > 0 {
			n = int32(min(10, in.MaxMessages-count))
		}
		out, err := r.c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(in.QueueURL), MaxNumberOfMessages: n,
			VisibilityTimeout: int32(in.VisibilityTimeout / time.Second), WaitTimeSeconds: int32(in.WaitTime / time.Second),
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			return r.finish(), fmt.Errorf("dlq: receive from %s: %w", in.QueueURL, err)
		}
		fresh := 0
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			if seen[id] {
				continue
			}
			seen[id] = true
			fresh++
			count++
			res := r.redriveMessage(ctx, in, m)
			if !res.Removed {
				kept = append(kept, aws.ToString(m.ReceiptHandle))
			}
			r.record(res)
		}
		if fresh == 0 {
			break
		}
	}
	return r.finish(), nil
}

// redriveMessage processes one message and deletes it when its range is recovered (not in a dry run).
func (r *Redriver) redriveMessage(ctx context.Context, in DLQInput, m sqstypes.Message) Result {
	source := "sqs:" + aws.ToString(m.MessageId)
	rec, err := ParseFailureRecord([]byte(aws.ToString(m.Body)))
	if err != nil {
		return Result{Source: source, Outcome: OutcomeInvalid, Reason: err.Error()}
	}
	bi := rec.KinesisBatchInfo
	if res, foreign := r.foreign(source, bi); foreign {
		return res
	}
	// The message may have waited behind others of its receive: renew its visibility before starting. A message that
	// became visible meanwhile and was received elsewhere has a new receipt handle; leave it to that consumer.
	if _, err := r.c.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(in.QueueURL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(in.VisibilityTimeout / time.Second),
	}); err != nil {
		return Result{Source: source, Outcome: OutcomeFailed, ShardID: bi.ShardID, StartSequenceNumber: bi.StartSequenceNumber,
			EndSequenceNumber: bi.EndSequenceNumber, Reason: fmt.Sprintf("renew the message's visibility: %v", err)}
	}
	stop := r.keepInvisible(ctx, in, aws.ToString(m.ReceiptHandle))
	res := r.processRange(ctx, source, bi)
	stop()
	if res.Outcome != OutcomeRecovered || r.opts.DryRun {
		return res
	}
	if _, err := r.c.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(in.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
		res.Outcome, res.Reason = OutcomeFailed, fmt.Sprintf("records stored, but the message was not deleted: %v", err)
		return res
	}
	res.Removed = true
	return res
}

// keepInvisible extends the message's visibility timeout every half timeout until stop is called.
func (r *Redriver) keepInvisible(ctx context.Context, in DLQInput, handle string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(in.VisibilityTimeout / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, err := r.c.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
					QueueUrl: aws.String(in.QueueURL), ReceiptHandle: aws.String(handle),
					VisibilityTimeout: int32(in.VisibilityTimeout / time.Second),
				})
				if err != nil && ctx.Err() == nil {
					r.opts.Logger.Warn("extend message visibility", "error", err.Error())
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// foreign returns the result of a source whose range names another stream than the pinned one, and whether it does.
func (r *Redriver) foreign(source string, bi KinesisBatchInfo) (Result, bool) {
	ref, err := ParseStreamARN(bi.StreamARN)
	if err == nil && r.pin.Same(ref) {
		return Result{}, false
	}
	return Result{Source: source, Outcome: OutcomeForeignStream, ShardID: bi.ShardID, StartSequenceNumber: bi.StartSequenceNumber,
		EndSequenceNumber: bi.EndSequenceNumber,
		Reason:            fmt.Sprintf("names stream %s, not the pinned stream %s: left where it is, nothing read or written", bi.StreamARN, r.pin.ARN)}, true
}
