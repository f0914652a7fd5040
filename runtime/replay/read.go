package replay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/kinesisread"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// Reading limits.
const (
	maxGetRecords   = 10000 // GetRecords' largest Limit
	maxEmptyPages   = 600   // empty pages in a row, not at the tip, before giving up on a shard
	maxIteratorRuns = 20    // fresh iterators after ExpiredIteratorException
)

// Why a shard's reading ended.
const (
	endAfterWindow = "a record after the window"
	endClosed      = "the shard's end (closed)"
	endTip         = "the shard's tip"
)

// replayShard reads the window of shard s and runs its records through a processor of its own, filling res.
func (r *Replayer) replayShard(ctx context.Context, s Shard, until time.Time, res *ShardResult) {
	started := r.opts.Now()
	res.State = ShardReading
	sp, err := r.newShardProcessor(s.ancestors)
	if err != nil {
		res.State, res.Reason = ShardFailed, err.Error()
		r.report(*res)
		return
	}
	var mu sync.Mutex // res is read by report while the shard is written to
	snapshot := func() ShardResult {
		mu.Lock()
		defer mu.Unlock()
		res.Elapsed = r.opts.Now().Sub(started)
		return *res
	}
	err = r.readShard(ctx, s.ID, until, res, func(recs []ktypes.Record) error {
		evs := make([]events.KinesisEventRecord, len(recs))
		for i, rec := range recs {
			evs[i] = redrive.EventRecord(r.ref, s.ID, rec)
		}
		for start := 0; start < len(evs); start += r.opts.BatchSize {
			chunk := evs[start:min(start+r.opts.BatchSize, len(evs))]
			c, err := sp.handle(ctx, chunk)
			mu.Lock()
			res.Records.add(c)
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		r.report(snapshot())
		return nil
	})
	mu.Lock()
	switch {
	case err != nil && ctx.Err() != nil:
		res.State, res.Reason = ShardStopped, "interrupted: "+err.Error()
	case err != nil:
		res.State, res.Reason = ShardFailed, err.Error()
	case res.Records.Failed > 0:
		res.State, res.Reason = ShardFailed, fmt.Sprintf("%d records not stored (see the processor's warnings); run again", res.Records.Failed)
	default:
		res.State = ShardDone
	}
	mu.Unlock()
	r.report(snapshot())
}

// readShard calls fn with the records of the window in shard, in order, page by page, each page paced by the rate
// limit. It returns nil when it reached the window's end (res.End says which), or the error that stopped it.
func (r *Replayer) readShard(ctx context.Context, shard string, until time.Time, res *ShardResult, fn func([]ktypes.Record) error) error {
	iter, start, err := r.startIterator(ctx, shard)
	if err != nil {
		return fmt.Errorf("get shard iterator: %w", err)
	}
	res.Start = start
	limit := kinesisread.ReadLimit(r.opts.Rate, maxGetRecords)
	var (
		inWindow = start == "AT_TIMESTAMP" // AT_TIMESTAMP starts in the window; TRIM_HORIZON skips to it
		last     string
		renewed  int
		empty    int
		lastCall time.Time
	)
	for {
		if wait := r.opts.ReadInterval - r.opts.Now().Sub(lastCall); !lastCall.IsZero() && wait > 0 {
			if err := kinesisread.Sleep(ctx, wait); err != nil {
				return err
			}
		}
		lastCall = r.opts.Now()
		var out *kinesis.GetRecordsOutput
		err := r.throttled(ctx, func() error {
			var err error
			out, err = r.c.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(limit), StreamARN: aws.String(r.ref.ARN)})
			return err
		})
		if err != nil {
			var exp *ktypes.ExpiredIteratorException
			if errors.As(err, &exp) && renewed < maxIteratorRuns {
				renewed++
				if last == "" {
					iter, start, err = r.startIterator(ctx, shard)
					inWindow = start == "AT_TIMESTAMP"
				} else {
					iter, err = r.iterator(ctx, shard, ktypes.ShardIteratorTypeAfterSequenceNumber, last, nil, 0)
				}
				if err == nil {
					continue
				}
			}
			return fmt.Errorf("get records after sequence number %q: %w", last, err)
		}
		var page []ktypes.Record
		done := false
		for _, rec := range out.Records {
			arrival := aws.ToTime(rec.ApproximateArrivalTimestamp)
			if !inWindow {
				if arrival.Before(r.opts.Since) {
					continue
				}
				inWindow = true
			}
			if arrival.After(until) {
				done, res.End = true, endAfterWindow
				break
			}
			page = append(page, rec)
		}
		if len(page) > 0 {
			empty = 0
			if err := r.limiter.Wait(ctx, len(page)); err != nil {
				return err
			}
			if err := fn(page); err != nil {
				return err
			}
			lastRec := page[len(page)-1]
			last = aws.ToString(lastRec.SequenceNumber)
			if res.FirstSequenceNumber == "" {
				res.FirstSequenceNumber = aws.ToString(page[0].SequenceNumber)
			}
			res.LastSequenceNumber, res.LastArrival = last, aws.ToTime(lastRec.ApproximateArrivalTimestamp)
		} else if len(out.Records) > 0 && !done {
			// Records before the window (TRIM_HORIZON): keep the position, so a renewed iterator starts after them.
			last = aws.ToString(out.Records[len(out.Records)-1].SequenceNumber)
		}
		switch {
		case done:
			return nil
		case out.NextShardIterator == nil:
			res.End = endClosed
			return nil
		case len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0:
			res.End = endTip
			return nil
		case len(out.Records) == 0:
			if empty++; empty > maxEmptyPages {
				return fmt.Errorf("no records in %d reads after sequence number %q, yet not at the shard's tip", empty, last)
			}
		}
		iter = out.NextShardIterator
	}
}

// startIterator returns an iterator at the window's start: AT_TIMESTAMP, or TRIM_HORIZON when a GetShardIterator
// call does not answer within Options.IteratorTimeout (kinesalite never answers AT_TIMESTAMP on a shard without a
// record at or after the time; AWS answers with an iterator at the tip). The timeout bounds each call, not the
// backoff between throttled calls, so throttling never causes the fallback.
func (r *Replayer) startIterator(ctx context.Context, shard string) (*string, string, error) {
	iter, err := r.iterator(ctx, shard, ktypes.ShardIteratorTypeAtTimestamp, "", aws.Time(r.opts.Since), r.opts.IteratorTimeout)
	if err == nil {
		return iter, "AT_TIMESTAMP", nil
	}
	if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return nil, "", err
	}
	r.opts.Logger.Info("AT_TIMESTAMP iterator did not answer: reading from TRIM_HORIZON, skipping records before the window", "shardId", shard)
	iter, err = r.iterator(ctx, shard, ktypes.ShardIteratorTypeTrimHorizon, "", nil, 0)
	return iter, "TRIM_HORIZON", err
}

// iterator gets a shard iterator, each call bounded by timeout when positive. It names the stream by name and ARN:
// Kinesis accepts either and kinesalite needs the name.
func (r *Replayer) iterator(ctx context.Context, shard string, typ ktypes.ShardIteratorType, seq string, at *time.Time, timeout time.Duration) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.ref.Name), StreamARN: aws.String(r.ref.ARN), ShardId: aws.String(shard), ShardIteratorType: typ, Timestamp: at}
	if seq != "" {
		in.StartingSequenceNumber = aws.String(seq)
	}
	var out *kinesis.GetShardIteratorOutput
	err := r.throttled(ctx, func() error {
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, timeout)
		}
		defer cancel()
		var err error
		out, err = r.c.Kinesis.GetShardIterator(cctx, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.ShardIterator == nil {
		return nil, errors.New("no shard iterator returned")
	}
	return out.ShardIterator, nil
}

// throttled calls call while Kinesis throttles it (kinesisread.Throttled), logging each throttled call.
func (r *Replayer) throttled(ctx context.Context, call func() error) error {
	return kinesisread.Throttled(ctx, func(attempt int, err error) {
		r.opts.Logger.Info("stream read throttled, backing off", "attempt", attempt, "error", redrive.Escape(err.Error()))
	}, call)
}
