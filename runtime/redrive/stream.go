package redrive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/kinesisread"
)

// Stream reading limits.
const (
	maxGetRecords   = 10000                  // GetRecords' largest Limit
	maxEmptyPolls   = 300                    // empty GetRecords pages in a row before giving up on a range
	emptyPollPause  = 200 * time.Millisecond // Kinesis allows 5 GetRecords per second per shard
	maxIteratorRuns = 20                     // fresh iterators after ExpiredIteratorException
)

// errExpired marks a range that cannot be read in full any more.
type errExpired struct{ msg string }

// Error returns why the range cannot be read.
func (e *errExpired) Error() string { return e.msg }

// batcher collects records into processor calls of at most Options.BatchSize and sums what became of them. Records
// read from the stream were paced by readRange; the others (S3 payload records) are paced here.
type batcher struct {
	r        *Redriver
	verified bool // the records are the stream's (or match it): conditional writes; else insert-only
	paced    bool // readRange already waited for the rate limit
	pending  []events.KinesisEventRecord
	counts   RecordCounts
	failed   []string // why batches were not stored

	// distrust says why the range's unseen records are not counted on its word (runner.distrustRange); "" if
	// they may be.
	distrust string
}

func (b *batcher) add(ctx context.Context, recs ...events.KinesisEventRecord) error {
	b.pending = append(b.pending, recs...)
	for len(b.pending) >= b.r.opts.BatchSize {
		if err := b.flushN(ctx, b.r.opts.BatchSize); err != nil {
			return err
		}
	}
	return nil
}

func (b *batcher) flush(ctx context.Context) error {
	for len(b.pending) > 0 {
		if err := b.flushN(ctx, min(len(b.pending), b.r.opts.BatchSize)); err != nil {
			return err
		}
	}
	return nil
}

func (b *batcher) flushN(ctx context.Context, n int) error {
	chunk := b.pending[:n]
	if !b.paced {
		if err := b.r.limiter.Wait(ctx, n); err != nil {
			return err
		}
	}
	res, err := b.r.run.handleWith(ctx, events.KinesisEvent{Records: chunk}, b.verified, b.distrust != "")
	b.pending = append(b.pending[:0], b.pending[n:]...)
	if err != nil {
		b.counts.Read += n
		b.counts.Failed += n
		b.failed = append(b.failed, err.Error())
		return nil
	}
	b.counts.add(res.counts)
	if res.counts.Failed > 0 || (res.reported != "" && res.counts.Refused == 0) {
		b.failed = append(b.failed, fmt.Sprintf("%d records not stored, from sequence number %s (see the processor's warnings)", res.counts.Failed, res.reported))
	}
	return nil
}

// result sums the batches into res: OutcomeRefused if an insert-only write found another record's item,
// OutcomeFailed if any other record was not stored.
func (b *batcher) result(res *Result) {
	res.Records.add(b.counts)
	var reasons []string
	if b.counts.Refused > 0 {
		res.Outcome = OutcomeRefused
		reasons = append(reasons, refusedReason(b.counts.Refused))
	} else if len(b.failed) > 0 {
		res.Outcome = OutcomeFailed
	}
	reasons = append(reasons, b.failed...)
	if why := uncounted(b.counts, b.verified && b.distrust == "" && !b.r.opts.CountUnseen); len(why) > 0 {
		// Stored, but not counted into the aggregates: the source is kept for a run that may count them. Named
		// whatever else went wrong, so that no uncounted record goes unmentioned.
		if res.Outcome == OutcomeRecovered {
			res.Outcome = OutcomeFailed
		}
		reasons = append(reasons, why...)
	}
	if b.counts.Unseen > 0 && b.distrust != "" {
		reasons = append(reasons, b.distrust)
	}
	if len(reasons) > 0 {
		res.Reason = strings.Join(reasons, "; ")
	}
}

// uncounted says why records c counts were stored but left uncounted into the aggregates, none when there are none:
// the ledger never saw them (Unseen), their payload was not verified against the stream (Unverified), they lie
// before a give-up range the ledger dropped (Forgotten) or in a shard it holds no state for (NoLedger). Their source
// is kept, for a run with the option that counts them where one does; unseenCountable says whether CountUnseen
// would count the unseen ones (records of an on-failure range read from the stream, in a run without it) or not
// (error entries, payload records past the stream's retention, a run that had it). Nothing counts the last two.
func uncounted(c RecordCounts, unseenCountable bool) []string {
	var why []string
	switch {
	case c.Unseen > 0 && unseenCountable:
		why = append(why, fmt.Sprintf("%d records stored but not counted into the aggregates (the aggregate ledger never saw "+
			"them delivered): the source is kept for a run with CountUnseen (--count-unseen)", c.Unseen))
	case c.Unseen > 0:
		why = append(why, fmt.Sprintf("%d records stored but not counted into the aggregates (the aggregate ledger never saw "+
			"them delivered, so nothing tells them from records the pipeline counted; CountUnseen (--count-unseen) counts only "+
			"records of an on-failure range read from the stream, and not from a range the ledger saw): the source is kept", c.Unseen))
	}
	if c.Unverified > 0 {
		why = append(why, fmt.Sprintf("%d records stored, left uncounted: payload not verified against the stream "+
			"(anyone able to write the source could have forged it): the source is kept for a run with CountUnverified (--count-unverified)", c.Unverified))
	}
	if c.Forgotten > 0 {
		why = append(why, forgottenReason(c.Forgotten))
	}
	if c.NoLedger > 0 {
		why = append(why, noLedgerReason(c.NoLedger))
	}
	return why
}

// forgottenReason says why n records stored were not counted into the aggregates: they lie before a give-up range
// the aggregate ledger dropped (aggregate.MaxLedgerGaps), so it cannot tell whether the pipeline counted them.
func forgottenReason(n int) string {
	return fmt.Sprintf("%d records stored but not counted into the aggregates, perhaps never counted: they lie before the end of a "+
		"give-up range the aggregate ledger no longer holds (more than %d give-ups on the shard since), so nothing tells whether the "+
		"pipeline counted them; the source is kept (--count-unseen does not count them)", n, aggregate.MaxLedgerGaps)
}

// noLedgerReason says why n records stored were not counted into the aggregates: the aggregate ledger holds no
// state for their shard, so it cannot tell whether the pipeline counted them.
func noLedgerReason(n int) string {
	return fmt.Sprintf("%d records stored but not counted into the aggregates, perhaps never counted: the aggregate ledger holds "+
		"no state for their shard (the pipeline never reached the aggregate table there, or the records predate the ledger), so "+
		"nothing tells whether the pipeline counted them; the source is kept (--count-unseen does not count them)", n)
}

// refusedReason says why n records were refused.
func refusedReason(n int) string {
	return fmt.Sprintf("refused: the key holds another record's item (%d records not written: they cannot be verified against the stream, so they are only inserted where their key is free; the item there is left as it is)", n)
}

// processRange reads the records bi names from the pinned stream, handles them and returns the result:
// OutcomeRecovered (nothing removed yet), OutcomeExpired, or OutcomeFailed.
func (r *Redriver) processRange(ctx context.Context, source string, bi KinesisBatchInfo) Result {
	res := Result{Source: source, Outcome: OutcomeRecovered, ShardID: bi.ShardID, StartSequenceNumber: bi.StartSequenceNumber, EndSequenceNumber: bi.EndSequenceNumber}
	if r.c.Kinesis == nil {
		res.Outcome, res.Reason = OutcomeFailed, "no Kinesis client to read the range with"
		return res
	}
	ref := *r.pin
	b := &batcher{r: r, verified: true, paced: true}
	_, b.distrust = r.run.distrustRange(ctx, bi)
	readErr := r.readRange(ctx, ref, bi, true, func(recs []ktypes.Record) error {
		evs := make([]events.KinesisEventRecord, len(recs))
		for i, rec := range recs {
			evs[i] = eventRecord(ref, bi.ShardID, rec)
		}
		return b.add(ctx, evs...)
	})
	// The records read are handled whatever ended the read: each one stored is one less to lose.
	if err := b.flush(ctx); err != nil && readErr == nil {
		readErr = err
	}
	b.result(&res)
	mergeReadError(&res, readErr)
	return res
}

// mergeReadError folds the error that ended a read of the range into res: OutcomeExpired for a range that cannot be
// read in full, OutcomeFailed for any other error; an outcome res already has that says more (OutcomeRefused) stays.
func mergeReadError(res *Result, readErr error) {
	if readErr == nil {
		return
	}
	reason := readErr.Error()
	if res.Reason != "" {
		reason += "; and " + res.Reason
	}
	var exp *errExpired
	switch {
	case res.Outcome == OutcomeRefused:
	case errors.As(readErr, &exp):
		res.Outcome = OutcomeExpired
	default:
		res.Outcome = OutcomeFailed
	}
	res.Reason = reason
}

// readRange calls fn with the records of bi's range, in order, page by page. It returns nil only when it read
// exactly the range the on-failure record names: the first record read at or after the range's start is the start,
// the last is the end, and the count of records in between is bi.BatchSize. Sequence numbers alone cannot prove
// that nothing is missing (they are not contiguous, and after an ExpiredIteratorException the iterator is renewed
// AFTER_SEQUENCE_NUMBER the last record read, past any records trimmed meanwhile), so the count does. It returns an
// *errExpired when the range cannot be read in full (the records still readable are passed to fn first), another
// error when reading failed or the range holds more records than the on-failure record says (it stops reading as
// soon as it has seen one record too many), or fn's error.
//
// The read shares the shard with the live event source mapping (5 GetRecords per second per shard): a throttled call
// (ProvisionedThroughputExceededException, LimitExceededException) is retried after a growing pause, and with pace
// each page's records wait for the rate limit (Options.Rate) before fn sees them, pages being no larger than a
// second's worth of records.
func (r *Redriver) readRange(ctx context.Context, ref StreamRef, bi KinesisBatchInfo, pace bool, fn func([]ktypes.Record) error) error {
	where := fmt.Sprintf("stream %s shard %s range %s..%s", ref.Name, bi.ShardID, bi.StartSequenceNumber, bi.EndSequenceNumber)
	iter, err := r.shardIterator(ctx, ref, bi.ShardID, ktypes.ShardIteratorTypeAtSequenceNumber, bi.StartSequenceNumber)
	if err != nil {
		if gone(err) {
			return &errExpired{fmt.Sprintf("%s cannot be read (past the stream's retention, or not in this stream): %v", where, err)}
		}
		return fmt.Errorf("%s: get shard iterator: %w", where, err)
	}
	limit := int32(maxGetRecords)
	if bi.BatchSize > 0 && bi.BatchSize < maxGetRecords {
		limit = int32(bi.BatchSize)
	}
	if pace {
		limit = kinesisread.ReadLimit(r.opts.Rate, limit)
	}
	var (
		first   string // the first sequence number read in the range
		last    string // the last sequence number read
		count   int    // records read in the range
		empty   int
		renewed int
	)
	for {
		var out *kinesis.GetRecordsOutput
		err := r.throttled(ctx, func() error {
			var err error
			out, err = r.c.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(limit), StreamARN: optionalARN(ref)})
			return err
		})
		if err != nil {
			var expIter *ktypes.ExpiredIteratorException
			if errors.As(err, &expIter) && renewed < maxIteratorRuns {
				renewed++
				if last == "" {
					iter, err = r.shardIterator(ctx, ref, bi.ShardID, ktypes.ShardIteratorTypeAtSequenceNumber, bi.StartSequenceNumber)
				} else {
					iter, err = r.shardIterator(ctx, ref, bi.ShardID, ktypes.ShardIteratorTypeAfterSequenceNumber, last)
				}
				if err == nil {
					continue
				}
			}
			if gone(err) {
				return &errExpired{fmt.Sprintf("%s: read stopped after sequence number %q (%d of %d records read): %v", where, last, count, bi.BatchSize, err)}
			}
			return fmt.Errorf("%s: get records: %w", where, err)
		}
		var page []ktypes.Record
		done := false
		for _, rec := range out.Records {
			seq := aws.ToString(rec.SequenceNumber)
			if CompareSequenceNumbers(seq, bi.StartSequenceNumber) < 0 || (last != "" && CompareSequenceNumbers(seq, last) <= 0) {
				continue
			}
			if CompareSequenceNumbers(seq, bi.EndSequenceNumber) > 0 {
				done = true
				break
			}
			if bi.BatchSize > 0 && count == bi.BatchSize {
				if len(page) > 0 {
					if err := fn(page); err != nil {
						return err
					}
				}
				return fmt.Errorf("%s: more than the %d records the on-failure record says the range holds (at sequence number %s)", where, bi.BatchSize, seq)
			}
			if first == "" {
				first = seq
			}
			last = seq
			count++
			page = append(page, rec)
			if seq == bi.EndSequenceNumber {
				done = true
				break
			}
		}
		if len(page) > 0 {
			empty = 0
			if pace {
				if err := r.limiter.Wait(ctx, len(page)); err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
			}
			if err := fn(page); err != nil {
				return err
			}
		}
		switch {
		case done:
			return checkRange(where, bi, first, last, count)
		case out.NextShardIterator == nil:
			return &errExpired{fmt.Sprintf("%s: the shard is closed and ends at sequence number %q, before the range's end (%d of %d records read)", where, last, count, bi.BatchSize)}
		case len(out.Records) == 0:
			if out.MillisBehindLatest != nil && *out.MillisBehindLatest == 0 {
				return &errExpired{fmt.Sprintf("%s: records missing: the shard's latest record is %q, before the range's end (%d of %d records read)", where, last, count, bi.BatchSize)}
			}
			if empty++; empty > maxEmptyPolls {
				return fmt.Errorf("%s: no records after %d reads past sequence number %q", where, empty, last)
			}
			t := time.NewTimer(emptyPollPause)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%s: %w", where, ctx.Err())
			case <-t.C:
			}
		}
		iter = out.NextShardIterator
	}
}

// checkRange tells whether a read of bi's range that ended got all of it: first and last are the first and last
// sequence numbers read within the range, count the records read within it.
func checkRange(where string, bi KinesisBatchInfo, first, last string, count int) error {
	switch {
	case first != bi.StartSequenceNumber:
		if first == "" {
			return &errExpired{fmt.Sprintf("%s: no record of the range is left (trimmed past the stream's retention)", where)}
		}
		return &errExpired{fmt.Sprintf("%s: records from %s up to %s are gone (trimmed past the stream's retention); the first record still there is %s", where, bi.StartSequenceNumber, first, first)}
	case last != bi.EndSequenceNumber:
		return &errExpired{fmt.Sprintf("%s: the range's last record %s is missing; the last record read is %s (%d of %d records read)", where, bi.EndSequenceNumber, last, count, bi.BatchSize)}
	case bi.BatchSize <= 0:
		return fmt.Errorf("%s: %d records read, but the on-failure record has no batchSize to check that none is missing", where, count)
	case count < bi.BatchSize:
		return &errExpired{fmt.Sprintf("%s: %d of the range's %d records read: the others were trimmed past the stream's retention while the range was read", where, count, bi.BatchSize)}
	case count > bi.BatchSize:
		return fmt.Errorf("%s: %d records read, but the on-failure record says the range holds %d", where, count, bi.BatchSize)
	}
	return nil
}

// shardIterator gets an iterator of the given type at seq. It names the stream by name and ARN: Kinesis accepts
// either (the ARN reaches streams of other accounts) and kinesalite needs the name.
func (r *Redriver) shardIterator(ctx context.Context, ref StreamRef, shard string, typ ktypes.ShardIteratorType, seq string) (*string, error) {
	var out *kinesis.GetShardIteratorOutput
	err := r.throttled(ctx, func() error {
		var err error
		out, err = r.c.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(ref.Name), StreamARN: optionalARN(ref), ShardId: aws.String(shard),
			ShardIteratorType: typ, StartingSequenceNumber: aws.String(seq),
		})
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
func (r *Redriver) throttled(ctx context.Context, call func() error) error {
	return kinesisread.Throttled(ctx, func(attempt int, err error) {
		r.opts.Logger.Info("stream read throttled, retrying", "attempt", attempt, "error", err.Error())
	}, call)
}

func optionalARN(ref StreamRef) *string {
	if ref.ARN == "" {
		return nil
	}
	return aws.String(ref.ARN)
}

// gone reports whether err says the stream, the shard or the sequence number no longer exists.
func gone(err error) bool {
	var nf *ktypes.ResourceNotFoundException
	var inv *ktypes.InvalidArgumentException
	return errors.As(err, &nf) || errors.As(err, &inv)
}

// eventRecord builds the event record Lambda would have sent for rec.
func eventRecord(ref StreamRef, shard string, rec ktypes.Record) events.KinesisEventRecord {
	seq := aws.ToString(rec.SequenceNumber)
	var arrival time.Time
	if rec.ApproximateArrivalTimestamp != nil {
		arrival = *rec.ApproximateArrivalTimestamp
	}
	return events.KinesisEventRecord{
		AwsRegion:      ref.Region,
		EventID:        shard + ":" + seq,
		EventName:      "aws:kinesis:record",
		EventSource:    "aws:kinesis",
		EventSourceArn: ref.ARN,
		EventVersion:   "1.0",
		Kinesis: events.KinesisRecord{
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: arrival},
			Data:                        rec.Data,
			PartitionKey:                aws.ToString(rec.PartitionKey),
			SequenceNumber:              seq,
			KinesisSchemaVersion:        "1.0",
		},
	}
}
