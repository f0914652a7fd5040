package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// Write path tuning.
const (
	batchWriteLimit    = 25                    // items per BatchWriteItem request
	backoffBase        = 25 * time.Millisecond // first retry waits up to this long
	backoffCap         = 2 * time.Second       // no retry waits longer
	minCallTime        = 20 * time.Millisecond // a retry needs at least this much time left
	attemptsNoDeadline = 10                    // attempts per request when the context has no deadline
)

// writeJob is the entries to write to one table.
type writeJob struct {
	table      string
	keys       []KeyAttribute
	entries    []*entry
	errorTable bool
	// conditional writes the items that have AttrSequenceNumber one by one, each on the condition that the table
	// holds no later record's item for its key (Options.ConditionalWrites); seqOf gives a candidate's record's
	// sequence number.
	conditional bool
	seqOf       func(rec int) string
}

// conditionLaterWins is the condition of a conditional write: the table holds no item with the key, or its sequence
// number (#s) is not later than the record's (:s, of length :n), by length then lexically like compareSequence.
const conditionLaterWins = "attribute_not_exists(#s) OR size(#s) < :n OR (size(#s) = :n AND #s <= :s)"

// condition returns the sequence number item must be written on the condition of (see conditionLaterWins) when j
// writes conditionally, "" for an unconditional write.
func (j *writeJob) condition(c candidate) string {
	if !j.conditional || j.seqOf == nil {
		return ""
	}
	if _, ok := c.item[AttrSequenceNumber]; !ok {
		return ""
	}
	return j.seqOf(c.rec)
}

// writeAll writes every job's entries in chunks of 25, at most MaxInFlight requests at a time, and records each
// entry's result in the entry. A conditional job's entries with a condition are written one PutItem each.
func (p *Processor) writeAll(ctx context.Context, jobs []writeJob) {
	var g errgroup.Group
	g.SetLimit(p.opts.MaxInFlight)
	for _, j := range jobs {
		ents := j.entries
		if j.conditional {
			ents = nil
			for _, e := range j.entries {
				if j.condition(e.cands[len(e.cands)-1]) == "" {
					ents = append(ents, e)
					continue
				}
				g.Go(func() error {
					p.isolate(ctx, &j, []*entry{e})
					return nil
				})
			}
		}
		for start := 0; start < len(ents); start += batchWriteLimit {
			chunk := ents[start:min(start+batchWriteLimit, len(ents))]
			g.Go(func() error {
				p.writeChunk(ctx, &j, chunk)
				return nil
			})
		}
	}
	_ = g.Wait() // the goroutines never fail: results are in the entries
}

// writeChunk writes up to 25 entries with BatchWriteItem, retrying unprocessed items and throttling with backoff
// while time remains, and falling back to one PutItem per entry when DynamoDB rejects the request as invalid.
func (p *Processor) writeChunk(ctx context.Context, j *writeJob, chunk []*entry) {
	table, keys := j.table, j.keys
	pending := chunk
	for attempt := 0; ; attempt++ {
		reqs := make([]types.WriteRequest, len(pending))
		puts := make([]types.PutRequest, len(pending)) // one allocation for all the chunk's put requests
		for i, e := range pending {
			puts[i].Item = e.cands[len(e.cands)-1].item
			reqs[i].PutRequest = &puts[i]
		}
		out, err := p.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
		switch {
		case err == nil:
			var unprocessed []types.WriteRequest
			if out != nil {
				unprocessed = out.UnprocessedItems[table]
			}
			pending = p.settle(pending, unprocessed, keys)
			if len(pending) == 0 {
				return
			}
			err = fmt.Errorf("%d of %d items unprocessed", len(pending), len(reqs))
		case isRejected(err):
			p.isolate(ctx, j, pending)
			return
		case !isRetryable(ctx, err):
			markFailed(pending, fmt.Errorf("batch write: %w", err))
			return
		}
		if !p.backoff(ctx, attempt) {
			markFailed(pending, fmt.Errorf("batch write: gave up before the deadline: %w", err))
			return
		}
	}
}

// settle marks the entries DynamoDB processed as stored and returns the others.
func (p *Processor) settle(pending []*entry, unprocessed []types.WriteRequest, keys []KeyAttribute) []*entry {
	if len(unprocessed) == 0 {
		for _, e := range pending {
			e.stored = len(e.cands) - 1
		}
		return nil
	}
	left := make(map[string]struct{}, len(unprocessed))
	for _, w := range unprocessed {
		if w.PutRequest != nil {
			left[itemKey(w.PutRequest.Item, keys)] = struct{}{}
		}
	}
	var rest []*entry
	for _, e := range pending {
		if _, ok := left[e.key]; ok {
			rest = append(rest, e)
		} else {
			e.stored = len(e.cands) - 1
		}
	}
	return rest
}

func markFailed(ents []*entry, err error) {
	for _, e := range ents {
		e.err = err
	}
}

// isolate writes entries one by one with PutItem: after DynamoDB rejected their batch (isRejected), or for
// conditional writes (writeJob.condition). A rejected item is marked invalid (its record fails permanently) and the
// entry's previous candidate (an earlier record's item for the same key) is tried instead. An item whose condition
// fails was superseded by a later record's: it counts as stored.
func (p *Processor) isolate(ctx context.Context, j *writeJob, ents []*entry) {
	for _, e := range ents {
		for ci := len(e.cands) - 1; ci >= 0; ci-- {
			seq := j.condition(e.cands[ci])
			err := p.putItem(ctx, j.table, e.cands[ci].item, seq)
			if err == nil {
				e.stored = ci
				break
			}
			if seq != "" && isConditionFailed(err) {
				p.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "item superseded: the table holds a later record's item for its key",
					slog.String("table", j.table), slog.String("sequenceNumber", seq))
				e.stored = ci
				break
			}
			if isRejected(err) {
				if e.invalid == nil {
					e.invalid = make([]error, len(e.cands))
				}
				e.invalid[ci] = err
				e.err = err
				continue
			}
			e.err = fmt.Errorf("put item: %w", err)
			break
		}
	}
}

// putItem writes one item, retrying throttling with backoff while time remains. With a sequence number seq, the
// write is conditional (conditionLaterWins).
func (p *Processor) putItem(ctx context.Context, table string, item Item, seq string) error {
	in := &dynamodb.PutItemInput{TableName: &table, Item: item}
	if seq != "" {
		in.ConditionExpression = aws.String(conditionLaterWins)
		in.ExpressionAttributeNames = map[string]string{"#s": AttrSequenceNumber}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{
			":s": &types.AttributeValueMemberS{Value: seq},
			":n": &types.AttributeValueMemberN{Value: strconv.Itoa(len(seq))},
		}
	}
	for attempt := 0; ; attempt++ {
		_, err := p.db.PutItem(ctx, in)
		if err == nil || isRejected(err) || !isRetryable(ctx, err) {
			return err
		}
		if !p.backoff(ctx, attempt) {
			return fmt.Errorf("gave up before the deadline: %w", err)
		}
	}
}

// isRejected reports whether DynamoDB rejected a request because of one of its items, for good: the item is invalid
// (ValidationException) or its item collection (the items sharing its partition key, with a local secondary index)
// is full (ItemCollectionSizeLimitExceededException). Either way one item fails a whole BatchWriteItem request, and
// sending it again fails again.
func isRejected(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "ValidationException", "ItemCollectionSizeLimitExceededException":
		return true
	}
	return false
}

// isConditionFailed reports whether a conditional write failed its condition.
func isConditionFailed(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ConditionalCheckFailedException"
}

// isRetryable reports whether a failed request may succeed if sent again: throttling, server faults and network
// errors, as long as ctx is alive.
func isRetryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return true // network and transport errors
	}
	switch ae.ErrorCode() {
	case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
		"InternalServerError", "ServiceUnavailable", "LimitExceededException":
		return true
	}
	return ae.ErrorFault() == smithy.FaultServer
}

// backoff sleeps before retry number attempt+1: exponential with full jitter, cut short so a call still fits before
// ctx's deadline. It returns false when no time is left (or, without a deadline, after attemptsNoDeadline attempts).
func (p *Processor) backoff(ctx context.Context, attempt int) bool {
	d := p.backoffBase << min(attempt, 16)
	if d > backoffCap || d <= 0 {
		d = backoffCap
	}
	d = rand.N(d + 1)
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl) - minCallTime
		if left <= 0 {
			return false
		}
		d = min(d, left)
	} else if attempt+1 >= attemptsNoDeadline {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
