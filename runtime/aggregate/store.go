package aggregate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// DB is the part of the DynamoDB API Apply uses. *dynamodb.Client satisfies it.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

var _ DB = (*dynamodb.Client)(nil)

// Contribution is what one record adds to one aggregate item.
type Contribution struct {
	// Aggregate is the aggregate's name (a key of Store.Measures).
	Aggregate string
	// Key is the item's partition key (KeyText).
	Key string
	// WindowStart is the window's start.
	WindowStart time.Time
	// Group holds the group values (GroupValue's).
	Group []any
	// Shard is the record's shard id: the item's sort key.
	Shard string
	// Position is the record's position in its shard (the processor's EncodePosition): within a shard, byte order
	// is stream order.
	Position []byte
	// Values holds the record's value for each measure of the aggregate, in order; nil where it has none (and for
	// counts).
	Values []*Number
	// Ref is the caller's reference to the record, returned in Result.Refs.
	Ref int
	// Ledgered marks a contribution of a record the ledger marked as sent to the error table by an earlier
	// delivery (Batch.Ledgered): it is applied iff its position is not in the item's AttrSet, and added to it.
	Ledgered bool
	// rule is the recount's rule for this contribution's record (set by RecountBatch; nil in fence order).
	rule *recountRule
}

// Store applies contributions to an aggregate table.
type Store struct {
	// DB reads and writes the table.
	DB DB
	// Table is the aggregate table's name.
	Table string
	// Measures lists each aggregate's measures, by aggregate name.
	Measures map[string][]Measure
	// MaxInFlight bounds the items updated at once. Default: 8.
	MaxInFlight int
	// CountUnseen makes a recount (Recount, RecountBatch) count records the ledger never saw delivered: a record
	// the pipeline has passed (at or before the shard's delivered position) that is not in a give-up range, not
	// pending and not marked, is counted in every item whose AttrSet lacks it. That is right only for records of a
	// batch the event source mapping gave up on while none of its attempts reached the aggregate table (DynamoDB
	// unreachable for all of them): the caller vouches for that (kdp redrive --count-unseen, trusting the
	// on-failure destination's ranges); for any other record the pipeline counted, it counts it twice.
	// Default: false, such records count nothing.
	CountUnseen bool
	// BackoffBase is the first retry's longest wait (full jitter, doubling, at most 1 s). Default: 25 ms.
	BackoffBase time.Duration
	// MaxAttempts bounds the requests sent for one read or write that keeps failing with a retryable error (the
	// context's deadline bounds them too). Default: 20.
	MaxAttempts int
	// LedgerPositions bounds the positions a shard state holds (AttrErrs and AttrUnstored together): a delivery
	// needing more fails the records from the first one that does not fit (MarkErrors, Batch.Unmarked). Default
	// (0): MaxLedgerPositions, which keeps the state well under DynamoDB's 400 KB; tests set it lower.
	LedgerPositions int

	// Tests make the archive small: the set's limit (MaxRecountedPositions), a bucket's (MaxRecountedPositions)
	// and the number of buckets (ArchiveBuckets); 0 is the default.
	setCap, bucketCap, buckets int
}

// ledgerPositions returns s.LedgerPositions, or MaxLedgerPositions when it is not set.
func (s *Store) ledgerPositions() int {
	return orDefault(s.LedgerPositions, MaxLedgerPositions)
}

// Result is the outcome of one item's update.
type Result struct {
	// Key and Shard name the item.
	Key, Shard string
	// Refs are the Ref of every contribution to the item, in position order.
	Refs []int
	// Applied counts the contributions applied by this call; Already those the item's fence showed applied before.
	Applied, Already int
	// Writes counts successful writes (0 or 1; more when the set's archive splits the contributions over several
	// writes); Conflicts the writes refused because the item changed after it was read (another writer: a redrive,
	// a replay, a second invocation).
	Writes, Conflicts int
	// AppliedRefs are the Ref of the contributions applied by this call.
	AppliedRefs []int
	// FullRefs are the Ref of the recount contributions (and of the pipeline's contributions of records in a
	// give-up range: a duplicate delivery) not applied because the item's set holds MaxRecountedPositions
	// positions and their archive buckets are full (ErrItemFull): the pipeline leaves them to the redrive, which
	// reports them.
	FullRefs []int
	// Err is why the update did not happen: none of the Refs' contributions is known to be applied then (some may
	// be, from an earlier call: the fence tells the next call).
	Err error
}

type itemID struct{ key, shard string }

// Apply applies contributions to their items (one item per aggregate, group, window and shard), exactly once:
// a contribution is applied iff its position is not in the item's AttrSet and, unless it is Ledgered (then it is
// added to the set), after the item's fence; the fence moves to the last contribution applied, in the same
// conditional write (see the package documentation for why that is exactly once). gaps are the give-up ranges of
// the contributions' shards (Batch.Gaps): a write moving an item's fence past one records the crossing.
// Contributions of one item must come from one shard; Apply sorts them by position. Items are updated
// concurrently; the result has one entry per item, in first-seen order. ctx bounds the retries.
func (s *Store) Apply(ctx context.Context, contribs []Contribution, gaps ...Gap) []Result {
	return s.update(ctx, contribs, gaps, false)
}

// update applies contributions as Apply does, or as a recount does (recount: each contribution decided by its
// rule, no fence moves).
func (s *Store) update(ctx context.Context, contribs []Contribution, gaps []Gap, recount bool) []Result {
	var order []itemID
	byItem := map[itemID][]Contribution{}
	for _, c := range contribs {
		id := itemID{c.Key, c.Shard}
		if _, ok := byItem[id]; !ok {
			order = append(order, id)
		}
		byItem[id] = append(byItem[id], c)
	}
	results := make([]Result, len(order))
	limit := s.inFlight()
	var g errgroup.Group
	g.SetLimit(limit)
	for i, id := range order {
		cs := byItem[id]
		sort.SliceStable(cs, func(a, b int) bool { return bytes.Compare(cs[a].Position, cs[b].Position) < 0 })
		g.Go(func() error {
			results[i] = s.applyItem(ctx, cs, gaps, recount)
			return nil
		})
	}
	_ = g.Wait()
	return results
}

// MaxRecountedPositions is the most positions a write leaves in an item's set (AttrSet, about 50 bytes each), and
// the most an archive bucket holds: far enough below DynamoDB's 400 KB item limit that the pipeline's own writes
// to the item always fit. A write that would pass it first moves the set's lowest positions to the item's archive
// buckets (AttrArchive, ArchivePrefix): an item holds about ArchiveBuckets+1 times as many, a million records
// counted out of fence order into one aggregate, group, window and shard. A recount that finds no room left does
// not count the record there (ErrItemFull): the record is reported, and its source kept.
const MaxRecountedPositions = 4000

// ErrItemFull is why a recount did not count a record into an item whose set holds MaxRecountedPositions
// positions and whose archive bucket for the record is full too.
var ErrItemFull = errors.New("aggregate item full: its set and its archive bucket hold the most positions counted out of order they may (aggregate.MaxRecountedPositions)")

// maxConflicts bounds how often an item is re-read after another writer changed it.
const maxConflicts = 10

func (s *Store) applyItem(ctx context.Context, cs []Contribution, gaps []Gap, recount bool) Result {
	first := cs[0]
	res := Result{Key: first.Key, Shard: first.Shard, Refs: make([]int, len(cs))}
	for i, c := range cs {
		res.Refs[i] = c.Ref
	}
	measures, ok := s.Measures[first.Aggregate]
	if !ok {
		res.Err = fmt.Errorf("aggregate %q: no such aggregate", first.Aggregate)
		return res
	}
	key := map[string]types.AttributeValue{
		AttrPartitionKey: &types.AttributeValueMemberS{Value: first.Key},
		AttrSortKey:      &types.AttributeValueMemberS{Value: first.Shard},
	}
	// A record of a give-up range the pipeline sees again (a duplicate delivery: the mapping delivers at least
	// once, even records it passed) counts as a recount of it would, through the set, and moves no fence: a record
	// of the range it sends to the error table unmarked (processed has passed it) must stay after the range's
	// crossing, where a recount counts it.
	rules, inGap := make([]*recountRule, len(cs)), make([]bool, len(cs))
	for i, c := range cs {
		rules[i] = c.rule
		if recount {
			continue
		}
		if g, ok := gapOf(gaps, c.Shard, c.Position); ok {
			rules[i], inGap[i] = &recountRule{class: RecountGap, gap: g}, true
			if c.Ledgered {
				rules[i].class = RecountMarked
			}
		}
	}
	// Each round reads the item, decides, archives when the set would pass its limit, and writes; a round whose
	// additions to the set do not all fit writes those before the first that does not, and the next round takes
	// the rest (cs from there).
	conflicts := 0 // refused writes in a row
	for attempt := 0; ; attempt++ {
		out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			if s.retry(ctx, err, attempt) {
				continue
			}
			res.Err = fmt.Errorf("read aggregate item: %w", err)
			return res
		}
		st := make(state, len(measures))
		led, err := decodeLedger(out.Item)
		if err != nil {
			res.Err = fmt.Errorf("aggregate item %q/%q: %w", first.Key, first.Shard, err)
			return res
		}
		exists, fence := led.exists, led.fence
		if exists {
			if st, err = decodeState(out.Item, measures); err != nil {
				res.Err = fmt.Errorf("aggregate item %q/%q: %w", first.Key, first.Shard, err)
				return res
			}
		}
		// A position at or below the archive watermark that would otherwise apply may have been moved to its
		// bucket: the buckets are read now, after the item (the watermark rises only after its positions are in
		// their buckets), and membership there counts as membership in the set.
		if led.archive != nil {
			var probe [][]byte
			for i, c := range cs {
				if bytes.Compare(c.Position, led.archive) <= 0 && led.decide(c.Position, c.Ledgered, recount || inGap[i], rules[i]) {
					probe = append(probe, c.Position)
				}
			}
			if len(probe) > 0 {
				if led.inArch, err = s.archived(ctx, first.Key, first.Shard, probe); err != nil {
					res.Err = fmt.Errorf("aggregate item %q/%q: %w", first.Key, first.Shard, err)
					return res
				}
			}
		}
		const (
			skip    = iota // already applied
			toSet          // applied out of fence order: added to the set
			inFence        // applied in fence order
			full           // a recount's, not applied: no room in the set (ErrItemFull)
		)
		verdicts := make([]int, len(cs))
		adds := 0
		seen := map[string]bool{} // a duplicate record in cs applies once
		for i, c := range cs {
			if seen[string(c.Position)] || !led.decide(c.Position, c.Ledgered, recount || inGap[i], rules[i]) {
				continue
			}
			seen[string(c.Position)] = true
			if recount || c.Ledgered || inGap[i] {
				verdicts[i] = toSet
				adds++
			} else {
				verdicts[i] = inFence
			}
		}
		// Room in the set: when the additions would take it past its limit, its lowest positions go to the
		// archive first (they are counted: the set read holds them), and this write removes them and raises the
		// watermark.
		room, limit := adds, s.maxSet()
		if adds > 0 && len(led.setList)+adds > limit {
			if move := toArchive(led.setList, adds, limit); len(move) > 0 {
				moved, err := s.archive(ctx, first.Key, first.Shard, move)
				if err != nil {
					res.Err = fmt.Errorf("aggregate item %q/%q: %w", first.Key, first.Shard, err)
					return res
				}
				if len(moved) > 0 {
					led.setList = without(led.setList, moved)
					led.archive = maxBytes(led.archive, highest(moved))
				}
			}
			room = max(limit-len(led.setList), 0)
		}
		cut, n := len(cs), 0
		for i := range cs {
			switch {
			case verdicts[i] != toSet:
			case n < room:
				n++
			case room > 0:
				cut = i // the rest in the next round, after archiving again
			case recount || inGap[i]:
				verdicts[i] = full // nothing could be archived: its buckets are full
			default:
				// The pipeline's own additions are applied even then: the set grows past its limit, as it did
				// before the archive.
			}
			if cut < len(cs) {
				break
			}
		}
		applied, already := 0, 0
		last := fence
		var added, inOrder [][]byte
		var appliedRefs, fullRefs []int
		for i, c := range cs[:cut] {
			switch verdicts[i] {
			case skip:
				already++
				continue
			case full:
				fullRefs = append(fullRefs, c.Ref)
				continue
			}
			st.merge(measures, c.Values)
			applied++
			appliedRefs = append(appliedRefs, c.Ref)
			if verdicts[i] == toSet {
				added = append(added, c.Position)
			} else {
				inOrder = append(inOrder, c.Position)
			}
			if !recount && !inGap[i] {
				last = maxBytes(last, c.Position)
			}
		}
		if applied == 0 {
			res.Already += already
			res.FullRefs = append(res.FullRefs, fullRefs...)
			return res
		}
		item := map[string]types.AttributeValue{
			AttrPartitionKey: key[AttrPartitionKey],
			AttrSortKey:      key[AttrSortKey],
			AttrAggregate:    &types.AttributeValueMemberS{Value: first.Aggregate},
			AttrWindowStart:  &types.AttributeValueMemberS{Value: first.WindowStart.UTC().Format(time.RFC3339)},
			AttrGroup:        groupAV(first.Group),
		}
		if last != nil {
			item[AttrFence] = &types.AttributeValueMemberB{Value: last}
		}
		led.ledgerAttrs(item, added, shardGaps(gaps, first.Shard), last, inOrder)
		if !recount {
			pruneCrossings(item, shardGaps(gaps, first.Shard)) // a recount adds none and knows no ranges
		}
		for i, m := range measures {
			if st[i] == nil {
				continue
			}
			item[m.Name] = measureAttr(st[i])
		}
		// Measures this writer does not know (another configuration's: a deployment adding one while an older
		// writer still runs) are kept as they are: the item is written whole.
		for name, av := range out.Item {
			if _, ok := item[name]; !ok && !strings.HasPrefix(name, "_") {
				item[name] = av
			}
		}
		in := &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item}
		// Compare-and-swap on the version (or, for an item written before versions, the fence): the item is
		// still what was read.
		versionCondition(in, exists, led.version, fence)
		_, err = s.DB.PutItem(ctx, in)
		switch {
		case err == nil:
			res.Applied += applied
			res.Already += already
			res.Writes++
			res.AppliedRefs = append(res.AppliedRefs, appliedRefs...)
			res.FullRefs = append(res.FullRefs, fullRefs...)
			if cut == len(cs) {
				return res
			}
			cs, rules, inGap, conflicts, attempt = cs[cut:], rules[cut:], inGap[cut:], 0, -1
		case isConditionFailed(err):
			res.Conflicts++
			conflicts++
			if conflicts >= maxConflicts || !s.wait(ctx, conflicts-1) {
				res.Err = fmt.Errorf("write aggregate item: changed by another writer %d times in a row: %w", conflicts, err)
				return res
			}
		case s.retry(ctx, err, attempt):
		default:
			res.Err = fmt.Errorf("write aggregate item: %w", err)
			return res
		}
	}
}

// gapOf returns the first (oldest) of gaps of shard holding p, as a recount classifies it.
func gapOf(gaps []Gap, shard string, p []byte) (Gap, bool) {
	for _, g := range gaps {
		if g.Shard == shard && g.contains(p) {
			return g, true
		}
	}
	return Gap{}, false
}

// retry reports whether a failed request may be sent again, after waiting.
func (s *Store) retry(ctx context.Context, err error, attempt int) bool {
	maxAttempts := s.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 20
	}
	if !retryable(ctx, err) || attempt+1 >= maxAttempts {
		return false
	}
	return s.wait(ctx, attempt)
}

// wait sleeps before the next try of a request (full jitter, doubling from BackoffBase, at most 1 s), reporting
// false when ctx ends first or its deadline leaves no room.
func (s *Store) wait(ctx context.Context, attempt int) bool {
	base := s.BackoffBase
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	d := min(base<<min(attempt, 10), time.Second)
	d = rand.N(d + 1)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d+20*time.Millisecond {
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

func isConditionFailed(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ConditionalCheckFailedException"
}

// retryable reports whether a request failing with err may succeed if sent again: throttling, server faults,
// network errors.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return true
	}
	switch ae.ErrorCode() {
	case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
		"InternalServerError", "ServiceUnavailable", "LimitExceededException":
		return true
	}
	return ae.ErrorFault() == smithy.FaultServer
}
