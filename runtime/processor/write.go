package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
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

// writeMode says how a job writes its entries.
type writeMode uint8

const (
	writePlain     writeMode = iota // BatchWriteItem, 25 per request; the later record of a batch wins
	writeLaterWins                  // PutItem each, on conditionLaterWins (Options.ConditionalWrites)
	writeInsert                     // PutItem each, on conditionInsert (Options.InsertOnly)
)

// writeJob is the entries to write to one table.
type writeJob struct {
	table   string
	keys    []KeyAttribute
	entries []*entry
	mode    writeMode
	// unmatched counts the BatchWriteItem requests whose UnprocessedItems could not be matched to the items sent
	// (their items were then written one by one); nil for none.
	unmatched *atomic.Int64
}

// conditionLaterWins is the condition of a conditional write (Options.ConditionalWrites): the table holds no item
// with the key, or one without AttrPosition (under an event-id key the record's own item, whose key names its
// position, in this version's format or one from before positions existed), or one with an unverified position
// (:u, see UnverifiedPosition: written insert-only from a source nothing could check), or one written from the same shard
// (its position #p starts with the shard's prefix :s) by a record not later than this one (:p, see EncodePosition:
// positions of one shard compare byte-wise in stream order). An item written from another shard is never
// overwritten: order across shards is undefined.
const conditionLaterWins = "attribute_not_exists(#p) OR begins_with(#p, :u) OR (begins_with(#p, :s) AND #p <= :p)"

// conditionInsert is the condition of an insert-only write (Options.InsertOnly): the table holds no item with the
// key (#k is the partition key attribute).
const conditionInsert = "attribute_not_exists(#k)"

// itemPosition returns item's position (AttrPosition), nil if it has none.
func itemPosition(item Item) []byte {
	if b, ok := item[AttrPosition].(*types.AttributeValueMemberB); ok && b != nil {
		return b.Value
	}
	return nil
}

// writeAll writes every job's entries and records each entry's result in the entry: a plain job in chunks of 25
// (BatchWriteItem), a conditional one item by item (PutItem), at most MaxInFlight requests at a time.
func (p *Processor) writeAll(ctx context.Context, jobs []writeJob) {
	var g errgroup.Group
	g.SetLimit(p.opts.MaxInFlight)
	for _, j := range jobs {
		if j.mode != writePlain {
			for _, e := range j.entries {
				g.Go(func() error {
					p.isolate(ctx, &j, []*entry{e})
					return nil
				})
			}
			continue
		}
		ents := j.entries
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
// while time remains, and falling back to one PutItem per entry when DynamoDB rejects the request as invalid or
// answers with unprocessed items that do not match what was sent.
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
				if otherTable(out.UnprocessedItems, table) {
					p.unmatched(ctx, j, pending, "unprocessed items of a table not in the request")
					return
				}
			}
			rest, ok := settle(pending, unprocessed, keys)
			if !ok {
				p.unmatched(ctx, j, pending, "unprocessed items that do not match the items sent")
				return
			}
			if pending = rest; len(pending) == 0 {
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

// unmatched handles a BatchWriteItem answer whose UnprocessedItems cannot be matched to the request: nothing of the
// request counts as stored; its items are written again one by one with PutItem, whose results need no matching.
func (p *Processor) unmatched(ctx context.Context, j *writeJob, pending []*entry, why string) {
	if j.unmatched != nil {
		j.unmatched.Add(1)
	}
	p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "batch write answered with "+why+"; writing its items one by one",
		slog.String("table", j.table), slog.Int("items", len(pending)))
	p.isolate(ctx, j, pending)
}

// settle marks the entries DynamoDB processed as stored and returns the others. It reports false, marking nothing,
// when unprocessed cannot be matched to pending exactly: more entries than were sent, one that is not a put
// request, whose key matches no pending entry, or that repeats a key.
func settle(pending []*entry, unprocessed []types.WriteRequest, keys []KeyAttribute) ([]*entry, bool) {
	if len(unprocessed) == 0 {
		for _, e := range pending {
			e.stored = len(e.cands) - 1
		}
		return nil, true
	}
	if len(unprocessed) > len(pending) {
		return nil, false
	}
	sent := make(map[string]bool, len(pending))
	for _, e := range pending {
		sent[e.key] = true
	}
	left := make(map[string]bool, len(unprocessed))
	for _, w := range unprocessed {
		if w.PutRequest == nil || w.DeleteRequest != nil || !hasKeys(w.PutRequest.Item, keys) {
			return nil, false
		}
		k := itemKey(w.PutRequest.Item, keys)
		if !sent[k] || left[k] {
			return nil, false
		}
		left[k] = true
	}
	var rest []*entry
	for _, e := range pending {
		if left[e.key] {
			rest = append(rest, e)
		} else {
			e.stored = len(e.cands) - 1
		}
	}
	return rest, true
}

// otherTable reports whether unprocessed holds items of a table other than table.
func otherTable(unprocessed map[string][]types.WriteRequest, table string) bool {
	for name, reqs := range unprocessed {
		if name != table && len(reqs) > 0 {
			return true
		}
	}
	return false
}

// hasKeys reports whether item holds a valid value of every key attribute, of its type.
func hasKeys(item Item, keys []KeyAttribute) bool {
	for _, k := range keys {
		if checkKey(item[k.Name], k, maxPartitionKey) != nil {
			return false
		}
	}
	return true
}

func markFailed(ents []*entry, err error) {
	for _, e := range ents {
		e.err = err
	}
}

// Why an item was not written, for the records concerned.
var (
	errRefused = safeReason("refused: insert-only write, and the table holds another record's item for its key")
)

// isolate writes entries one by one with PutItem: after DynamoDB rejected their batch (isRejected) or answered it
// with unprocessed items that did not match, and for conditional jobs. A rejected item is marked invalid (its
// record fails permanently) and the entry's previous candidate (an earlier record's item for the same key) is tried
// instead. For a conditional job, see conditionLaterWins and conditionInsert: an item whose later-wins condition
// fails was superseded (it counts as stored); an insert whose key is taken is a rerun (stored) when the item there
// has the candidate's position, else refused.
func (p *Processor) isolate(ctx context.Context, j *writeJob, ents []*entry) {
	for _, e := range ents {
		for ci := len(e.cands) - 1; ci >= 0; ci-- {
			err := p.putItem(ctx, j, e.cands[ci].item, e.cands[ci].pos)
			if err == nil {
				e.stored = ci
				break
			}
			if isConditionFailed(err) {
				switch j.mode {
				case writeLaterWins:
					p.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "item superseded: not written, counted as stored",
						slog.String("table", j.table),
						slog.String("reason", "the table holds the key's item from a later record of the same shard, or from another shard"))
					e.stored = ci
				case writeInsert:
					p.settleInsert(ctx, j, e, ci)
				default:
					e.err = fmt.Errorf("put item: %w", err)
				}
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

// settleInsert settles entry e after the insert of its candidate ci found the key taken: it reads the item there
// (strongly consistent) and compares its position with the candidates'. The candidate with that position and the
// earlier ones count as stored (a rerun of a record already stored; the earlier records of the batch lose to it as
// they would to a later record); the others are refused. When the read fails, they fail (retried).
func (p *Processor) settleInsert(ctx context.Context, j *writeJob, e *entry, ci int) {
	got, err := p.getPosition(ctx, j, e.cands[ci].item)
	if err != nil {
		e.err = fmt.Errorf("insert: the key is taken, and reading the item there failed: %w", err)
		return
	}
	for k := ci; k >= 0; k-- {
		if samePosition(got, e.cands[k].pos) {
			e.stored = k
			break
		}
	}
	if e.stored < ci {
		e.refused, e.err = true, errRefused
		p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "item refused: insert-only write, and the table holds another record's item for its key",
			slog.String("table", j.table), slog.Bool("positionMatched", e.stored >= 0))
	}
}

// getPosition reads the position of the item the table holds under item's key (its AttrPosition, or the position
// its event-id key names: see storedPosition), with a strongly consistent read, retrying throttling with backoff
// while time remains. It returns nil when there is no such item or it has no position.
func (p *Processor) getPosition(ctx context.Context, j *writeJob, item Item) ([]byte, error) {
	r, ok := p.db.(ItemReader)
	if !ok {
		return nil, errors.New("the DB cannot read items (it does not implement ItemReader)")
	}
	key := make(Item, len(j.keys))
	names := map[string]string{"#p": AttrPosition}
	proj := "#p"
	for i, k := range j.keys {
		key[k.Name] = item[k.Name]
		ph := "#k" + strconv.Itoa(i)
		names[ph] = k.Name
		proj += ", " + ph
	}
	in := &dynamodb.GetItemInput{
		TableName:                &j.table,
		Key:                      key,
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String(proj), // the key too: it names the position of an item without AttrPosition
		ExpressionAttributeNames: names,
	}
	for attempt := 0; ; attempt++ {
		out, err := r.GetItem(ctx, in)
		if err == nil {
			if out == nil || len(out.Item) == 0 {
				return nil, nil
			}
			return p.storedPosition(out.Item), nil
		}
		if !isRetryable(ctx, err) {
			return nil, err
		}
		if !p.backoff(ctx, attempt) {
			return nil, fmt.Errorf("gave up before the deadline: %w", err)
		}
	}
}

// putItem writes one item, on j's condition, retrying throttling with backoff while time remains. pos is the
// item's record's position: the item carries it as AttrPosition, or its event-id key names it (derivesPosition).
func (p *Processor) putItem(ctx context.Context, j *writeJob, item Item, pos []byte) error {
	in := &dynamodb.PutItemInput{TableName: &j.table, Item: item}
	switch j.mode {
	case writeLaterWins:
		if len(pos) == 0 || len(pos) < 1+int(pos[0]) {
			return fmt.Errorf("conditional write: the item's record has no valid position")
		}
		in.ConditionExpression = aws.String(conditionLaterWins)
		in.ExpressionAttributeNames = map[string]string{"#p": AttrPosition}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{
			":u": &types.AttributeValueMemberB{Value: []byte{unverifiedMark}},
			":s": &types.AttributeValueMemberB{Value: pos[:1+int(pos[0])]},
			":p": &types.AttributeValueMemberB{Value: pos},
		}
	case writeInsert:
		in.ConditionExpression = aws.String(conditionInsert)
		in.ExpressionAttributeNames = map[string]string{"#k": j.keys[0].Name}
	}
	for attempt := 0; ; attempt++ {
		_, err := p.db.PutItem(ctx, in)
		if err == nil || isRejected(err) || isConditionFailed(err) || !isRetryable(ctx, err) {
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
