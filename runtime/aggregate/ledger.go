package aggregate

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"
)

// Ledger attributes of aggregate items (see the package documentation).
const (
	// AttrSet holds the positions (BS) counted into an item out of fence order: by a recount (redrive, replay) or
	// by the pipeline for a record it had sent to the error table. A position in it is counted in the item,
	// whatever the fence says.
	AttrSet = "_kset"
	// AttrGapCrossings maps a give-up range (GapKey) to the item's fence when its fence first moved past the
	// range's end (B), or NULL when the item had no fence then (M).
	AttrGapCrossings = "_kgaps"
	// AttrVersion is an item's version (N): every write sets it one higher, on the condition that it is still
	// the version read.
	AttrVersion = "_kver"
	// AttrFirst is the first position (B) applied to an item in fence order: no record before it ever was, so a
	// give-up range ending at or before it needs no crossing (absent on items written before it).
	AttrFirst = "_kfirst"
)

// IsLedgerItem reports whether item, an item of the aggregate table, is one of the ledger's (a shard state, an
// error marker or an archive bucket) rather than an aggregate item: its partition key starts with '_' (aggregate
// names start with a letter).
func IsLedgerItem(item map[string]types.AttributeValue) bool {
	pk, ok := item[AttrPartitionKey].(*types.AttributeValueMemberS)
	return ok && strings.HasPrefix(pk.Value, "_")
}

// Items of the ledger in the aggregate table (their partition keys start with '_', aggregate names with a letter).
const (
	// ShardStatePartitionKey is the partition key of the shard state items; the sort key is the shard id.
	ShardStatePartitionKey = "_shard"
	// ErrorMarkerPrefix starts the partition key of an error marker: ErrorMarkerPrefix + hex of the record's
	// position; the sort key is the shard id.
	ErrorMarkerPrefix = "_error#"
	// AttrPending holds the position (B) of the first record of the shard delivered and not acknowledged.
	AttrPending = "pending"
	// AttrDelivered holds the last position (B) of the last batch that reached the ledger's first step
	// (BeginBatch).
	AttrDelivered = "delivered"
	// AttrBegun holds the highest first position (B) of a batch that reached BeginBatch: BeginBatch prunes AttrErrs
	// below it, so a delivery starting before it may hold records whose marks are gone (LoadMarkers reads them).
	AttrBegun = "begun"
	// AttrProcessed holds the last position (B) of the last batch whose records' outcomes reached the ledger
	// (MarkErrors), or a bound just below the record MarkErrors cut that batch at (the ledger was full): a record
	// after it was never counted by the pipeline.
	AttrProcessed = "processed"
	// AttrErrs holds positions (BS) this ledger marked as sent to the error table, at or after the last batch's
	// first record.
	AttrErrs = "errs"
	// AttrUnstored holds positions (BS) delivered and never stored nor sent to the error table in any delivery
	// that reached the ledger step (a transient failure each time): a later delivery sending one to the error
	// table marks it, as a first delivery does.
	AttrUnstored = "unstored"
	// AttrGaps holds the give-up ranges (L of M{s: B, e: B}).
	AttrGaps = "gaps"
	// AttrForgot holds the end (B) of the newest give-up range dropped from AttrGaps (MaxLedgerGaps): records
	// before it may lie in a range the ledger no longer lists, so Store.CountUnseen does not count them.
	AttrForgot = "forgot"
	// AttrMarkerShard and AttrMarkerPosition are an error marker's shard id (S) and position (B).
	AttrMarkerShard    = "shard"
	AttrMarkerPosition = "position"
)

// Gap is a give-up range of a shard: records from Start up to, not including, End were delivered, never
// acknowledged, and passed by the event source mapping (MaximumRetryAttempts or MaximumRecordAge).
type Gap struct {
	// Shard is the shard id.
	Shard string
	// Start and End are positions of the shard (the processor's EncodePosition): [Start, End).
	Start, End []byte
}

// Key is the gap's key in an item's AttrGapCrossings: hex of Start, '-', hex of End.
func (g Gap) Key() string { return hex.EncodeToString(g.Start) + "-" + hex.EncodeToString(g.End) }

// contains reports whether p lies in [g.Start, g.End).
func (g Gap) contains(p []byte) bool {
	return bytes.Compare(g.Start, p) <= 0 && bytes.Compare(p, g.End) < 0
}

// ShardState is a shard's ledger state item.
type ShardState struct {
	// Shard is the shard id.
	Shard string
	// Pending is the first record delivered and not acknowledged; nil when all delivered records are.
	Pending []byte
	// Delivered is the last position of the last batch that reached BeginBatch.
	Delivered []byte
	// Processed is the last position of the last batch that reached MarkErrors.
	Processed []byte
	// Begun is the highest first position of a batch that reached BeginBatch (nil in states written before it).
	Begun []byte
	// Errs are the positions marked as sent to the error table, at or after the last batch's first record.
	Errs [][]byte
	// Unstored are the positions delivered that no delivery stored or sent to the error table yet.
	Unstored [][]byte
	// Gaps are the give-up ranges detected, oldest first.
	Gaps []Gap
	// Forgot is the end of the newest give-up range dropped from Gaps (MaxLedgerGaps); nil when none was.
	Forgot []byte
	// Version is the item's AttrVersion; 0 when there is no item.
	Version int64
}

// addGap adds give-up range g to st's gaps unless they hold it, dropping the oldest beyond MaxLedgerGaps (Forgot
// keeps the newest end dropped). It reports whether g was added.
func (st *ShardState) addGap(g Gap) bool {
	for _, o := range st.Gaps {
		if o.Key() == g.Key() {
			return false
		}
	}
	st.Gaps = append(append([]Gap(nil), st.Gaps...), g)
	if len(st.Gaps) > MaxLedgerGaps {
		for _, d := range st.Gaps[:len(st.Gaps)-MaxLedgerGaps] {
			st.Forgot = maxBytes(st.Forgot, d.End)
		}
		st.Gaps = st.Gaps[len(st.Gaps)-MaxLedgerGaps:]
	}
	return true
}

// errStateChanged is a conditional write of the shard state refused: another writer changed it.
var errStateChanged = errors.New("shard state changed by another writer")

func shardStateKey(shard string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrPartitionKey: &types.AttributeValueMemberS{Value: ShardStatePartitionKey},
		AttrSortKey:      &types.AttributeValueMemberS{Value: shard},
	}
}

// MarkerKey returns the key of the error marker of the record at position in shard.
func MarkerKey(shard string, position []byte) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrPartitionKey: &types.AttributeValueMemberS{Value: ErrorMarkerPrefix + hex.EncodeToString(position)},
		AttrSortKey:      &types.AttributeValueMemberS{Value: shard},
	}
}

// getItem reads an item strongly consistently, retrying retryable errors.
func (s *Store) getItem(ctx context.Context, key map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	for attempt := 0; ; attempt++ {
		out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key, ConsistentRead: aws.Bool(true)})
		if err == nil {
			return out.Item, nil
		}
		if !s.retry(ctx, err, attempt) {
			return nil, err
		}
	}
}

// putItem writes an item, retrying retryable errors; a refused condition is errStateChanged.
func (s *Store) putItem(ctx context.Context, in *dynamodb.PutItemInput) error {
	in.TableName = aws.String(s.Table)
	for attempt := 0; ; attempt++ {
		_, err := s.DB.PutItem(ctx, in)
		switch {
		case err == nil:
			return nil
		case isConditionFailed(err):
			return fmt.Errorf("%w: %w", errStateChanged, err)
		case !s.retry(ctx, err, attempt):
			return err
		}
	}
}

// ReadShardState reads shard's state item (strongly consistent). Without one, the state has Version 0 and nothing
// else but Shard.
func (s *Store) ReadShardState(ctx context.Context, shard string) (ShardState, error) {
	it, err := s.getItem(ctx, shardStateKey(shard))
	if err != nil {
		return ShardState{}, fmt.Errorf("read shard state %q: %w", shard, err)
	}
	st, err := decodeShardState(shard, it)
	if err != nil {
		return ShardState{}, fmt.Errorf("shard state %q: %w", shard, err)
	}
	return st, nil
}

func decodeShardState(shard string, it map[string]types.AttributeValue) (ShardState, error) {
	st := ShardState{Shard: shard}
	if len(it) == 0 {
		return st, nil
	}
	v, ok := it[AttrVersion].(*types.AttributeValueMemberN)
	if !ok {
		return st, fmt.Errorf("no %s", AttrVersion)
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil || n < 1 {
		return st, fmt.Errorf("%s %q is not a positive integer", AttrVersion, v.Value)
	}
	st.Version = n
	if b, ok := it[AttrPending].(*types.AttributeValueMemberB); ok {
		st.Pending = b.Value
	}
	if b, ok := it[AttrDelivered].(*types.AttributeValueMemberB); ok {
		st.Delivered = b.Value
	}
	if b, ok := it[AttrProcessed].(*types.AttributeValueMemberB); ok {
		st.Processed = b.Value
	}
	if b, ok := it[AttrBegun].(*types.AttributeValueMemberB); ok {
		st.Begun = b.Value
	}
	if b, ok := it[AttrForgot].(*types.AttributeValueMemberB); ok {
		st.Forgot = b.Value
	}
	if bs, ok := it[AttrErrs].(*types.AttributeValueMemberBS); ok {
		st.Errs = sortedPositions(bs.Value)
	}
	if bs, ok := it[AttrUnstored].(*types.AttributeValueMemberBS); ok {
		st.Unstored = sortedPositions(bs.Value)
	}
	if l, ok := it[AttrGaps].(*types.AttributeValueMemberL); ok {
		for i, e := range l.Value {
			m, ok := e.(*types.AttributeValueMemberM)
			if !ok {
				return st, fmt.Errorf("%s[%d] is not a map", AttrGaps, i)
			}
			s, okS := m.Value["s"].(*types.AttributeValueMemberB)
			e, okE := m.Value["e"].(*types.AttributeValueMemberB)
			if !okS || !okE {
				return st, fmt.Errorf("%s[%d] has no s or e", AttrGaps, i)
			}
			st.Gaps = append(st.Gaps, Gap{Shard: shard, Start: s.Value, End: e.Value})
		}
	}
	return st, nil
}

// writeShardState writes st conditionally on the version prev (0: no item yet); st.Version must be prev+1.
func (s *Store) writeShardState(ctx context.Context, st ShardState, prev int64) error {
	item := shardStateKey(st.Shard)
	item[AttrVersion] = &types.AttributeValueMemberN{Value: strconv.FormatInt(st.Version, 10)}
	if st.Pending != nil {
		item[AttrPending] = &types.AttributeValueMemberB{Value: st.Pending}
	}
	if st.Delivered != nil {
		item[AttrDelivered] = &types.AttributeValueMemberB{Value: st.Delivered}
	}
	if st.Processed != nil {
		item[AttrProcessed] = &types.AttributeValueMemberB{Value: st.Processed}
	}
	if st.Begun != nil {
		item[AttrBegun] = &types.AttributeValueMemberB{Value: st.Begun}
	}
	if st.Forgot != nil {
		item[AttrForgot] = &types.AttributeValueMemberB{Value: st.Forgot}
	}
	if len(st.Errs) > 0 {
		item[AttrErrs] = &types.AttributeValueMemberBS{Value: st.Errs}
	}
	if len(st.Unstored) > 0 {
		item[AttrUnstored] = &types.AttributeValueMemberBS{Value: st.Unstored}
	}
	if len(st.Gaps) > 0 {
		l := make([]types.AttributeValue, len(st.Gaps))
		for i, g := range st.Gaps {
			l[i] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"s": &types.AttributeValueMemberB{Value: g.Start}, "e": &types.AttributeValueMemberB{Value: g.End}}}
		}
		item[AttrGaps] = &types.AttributeValueMemberL{Value: l}
	}
	in := &dynamodb.PutItemInput{Item: item}
	versionCondition(in, prev > 0, prev, nil)
	return s.putItem(ctx, in)
}

// versionCondition sets in's condition: the item does not exist (exists false), its version is still version, or,
// for an item of the format before versions (version 0), it has no version and its fence is still fence.
func versionCondition(in *dynamodb.PutItemInput, exists bool, version int64, fence []byte) {
	switch {
	case !exists:
		in.ConditionExpression = aws.String("attribute_not_exists(#pk)")
		in.ExpressionAttributeNames = map[string]string{"#pk": AttrPartitionKey}
		in.ExpressionAttributeValues = nil
	case version > 0:
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": AttrVersion}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)}}
	default:
		in.ConditionExpression = aws.String("attribute_not_exists(#v) AND #f = :f")
		in.ExpressionAttributeNames = map[string]string{"#v": AttrVersion, "#f": AttrFence}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":f": &types.AttributeValueMemberB{Value: fence}}
	}
}

// sortedPositions returns ps sorted, without duplicates.
func sortedPositions(ps [][]byte) [][]byte {
	out := append([][]byte(nil), ps...)
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	k := 0
	for i, p := range out {
		if i > 0 && bytes.Equal(p, out[k-1]) {
			continue
		}
		out[k] = p
		k++
	}
	return out[:k]
}

// maxBytes returns the larger of a and b (nil is the smallest).
func maxBytes(a, b []byte) []byte {
	if a == nil || b != nil && bytes.Compare(b, a) > 0 {
		return b
	}
	return a
}

// Batch is the ledger's view of one delivery of a shard's records to the pipeline, from BeginBatch through
// MarkErrors and Apply to EndBatch.
type Batch struct {
	// Shard is the shard id.
	Shard string
	// First and Last are the positions of the batch's first and last records of the shard.
	First, Last []byte
	// Gaps are the shard's give-up ranges: pass them to Apply.
	Gaps []Gap
	// Markers counts the error markers written.
	Markers int
	state   ShardState // as last written
	errs    map[string]bool
	// rewound: the delivery starts at or before the last record processed and before the first record of a later
	// batch (AttrBegun): the mapping delivers records again (at least once). Their marks may be pruned: LoadMarkers.
	rewound     bool
	processed   []byte // AttrProcessed before this delivery
	keepPending []byte // the pending record a delivery behind it leaves as it is (BeginBatch)

	// Unmarked are the positions of records sent to the error table that MarkErrors could not mark (the shard
	// state holds at most Store.LedgerPositions positions), in stream order: they must not be acknowledged (report
	// the first for retry). Their next delivery starts from the first of them, and marks them.
	Unmarked [][]byte
}

// Ledgered reports whether the record at position p is marked as sent to the error table by an earlier delivery:
// if it is stored now, its contributions must be applied with Contribution.Ledgered set.
func (b *Batch) Ledgered(p []byte) bool { return b.errs[string(p)] }

// MaxLedgerPositions bounds the positions a shard state holds (AttrErrs and AttrUnstored together), keeping the
// item well under DynamoDB's 400 KB (Store.LedgerPositions, by default): a delivery needing more is cut at the
// first record that does not fit, and its error-tabled records from there are reported for retry (Batch.Unmarked),
// to be marked by their next delivery, which starts there (MarkErrors).
const MaxLedgerPositions = 5000

// MaxLedgerGaps bounds the give-up ranges a shard state keeps: the oldest is dropped beyond it (its records, if
// redriven after that, are not counted: never twice, but not at all).
const MaxLedgerGaps = 100

// BeginBatch is the ledger's first step, before the pipeline processes a delivery of shard's records (first to
// last, in stream order): it reads the shard's state, detects a give-up range (the delivery starts after the first
// record delivered and not acknowledged: the mapping passed it), and writes pending = first, delivered = the later
// of delivered and last, begun = the later of begun and first, the gaps, and the marked and never-stored positions
// at or after first, conditionally on the version (re-reading on a conflict). A delivery starting before begun
// (and at or before processed) is rewound: LoadMarkers reads its records' markers. An error means none of the
// delivery's records may be written or acknowledged.
func (s *Store) BeginBatch(ctx context.Context, shard string, first, last []byte) (*Batch, error) {
	rewound := false
	for conflicts := 0; ; conflicts++ {
		st, err := s.ReadShardState(ctx, shard)
		if err != nil {
			return nil, err
		}
		// Marks below the first record of a later batch may have been pruned from errs: a delivery starting there
		// reads its records' markers (a state written before AttrBegun: one starting at or before processed). Any
		// read saying so counts: after a write applied and its answer lost, the read again shows this delivery's
		// own write.
		rewound = rewound || st.Processed != nil && bytes.Compare(first, st.Processed) <= 0 &&
			(st.Begun == nil || bytes.Compare(first, st.Begun) < 0)
		begun := st.Begun
		if begun == nil {
			// A state written before AttrBegun: the batches that pruned errs began at or before delivered, so
			// begun starts there, not at this delivery's first record (a duplicate's would let the next delivery
			// from below the pruned marks pass for a first one).
			begun = maxBytes(st.Delivered, st.Processed)
		}
		next := ShardState{Shard: shard, Pending: first, Delivered: maxBytes(st.Delivered, last), Processed: st.Processed,
			Begun: maxBytes(begun, first), Version: st.Version + 1, Gaps: st.Gaps, Forgot: st.Forgot}
		// A delivery behind the pending record repeats records acknowledged (and counted) before it: a duplicate
		// (the mapping delivers at least once); so may one from the pending record that ends before the last record
		// delivered. Pending stays, here and in EndBatch: overwritten, a give-up of the rest of the pending
		// record's batch would go undetected. (If the rest comes, the next delivery records a false give-up range,
		// which never makes a recount count twice.)
		var keep []byte
		if c := bytes.Compare(first, st.Pending); st.Pending != nil && (c < 0 || c == 0 && bytes.Compare(last, st.Delivered) < 0) {
			keep = st.Pending
			next.Pending = keep
		}
		if keep == nil && st.Pending != nil && bytes.Compare(first, st.Pending) > 0 {
			next.addGap(Gap{Shard: shard, Start: st.Pending, End: first})
		}
		next.Errs = atOrAfter(st.Errs, first)
		next.Unstored = atOrAfter(st.Unstored, first)
		err = s.writeShardState(ctx, next, st.Version)
		if errors.Is(err, errStateChanged) && conflicts+1 < maxConflicts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("write shard state %q: %w", shard, err)
		}
		return &Batch{Shard: shard, First: first, Last: last, Gaps: next.Gaps, state: next, errs: positionSet(next.Errs),
			rewound: rewound, processed: st.Processed, keepPending: keep}, nil
	}
}

// MarkErrors is the ledger's second step, after the delivery's data and error writes and before Apply. errored
// are the positions of the delivery's records sent to the error table (self-test canaries left out), failed those
// neither stored, skipped nor sent to the error table. A record sent to the error table is marked (AttrErrs, and an
// error marker item) when this is its first delivery to reach this step (after AttrProcessed) or no earlier
// delivery stored it or sent it to the error table (AttrUnstored); a failed record on its first delivery becomes unstored,
// and a record stored now stops being unstored. The state is written (only when it changes) before the markers, so
// a marker always has its position in errs: the pipeline then counts that record only through the set rule. An
// error means nothing may be applied and none of the delivery's stored or error-tabled records may be
// acknowledged. When errs and unstored would hold more than Store.LedgerPositions positions, the delivery is cut
// at the first record that does not fit (markPlan): the records sent to the error table from there are not marked
// but listed in b.Unmarked, and must not be acknowledged (nor anything counted from the first of them, as after a
// failed record); their next delivery starts at or before the first, and marks them.
func (s *Store) MarkErrors(ctx context.Context, b *Batch, errored, failed [][]byte) error {
	st := b.state
	hasMarker, err := s.markedAgain(ctx, st, b.Shard, errored)
	if err != nil {
		return err
	}
	for conflicts := 0; ; conflicts++ {
		next, errs, unmarked := s.markPlan(st, b, errored, failed, hasMarker)
		if len(next.Errs) == len(st.Errs) && samePositions(next.Unstored, st.Unstored) && bytes.Equal(next.Processed, st.Processed) &&
			sameGaps(next.Gaps, st.Gaps) {
			// st may be a state read again after a conflict: this delivery's own write whose answer was lost (the
			// SDK's retry found it applied). Its gaps (a one-record range added there) must reach Apply.
			b.state, b.errs, b.Unmarked, b.Gaps = st, errs, unmarked, st.Gaps
			break
		}
		err := s.writeShardState(ctx, next, st.Version)
		if err == nil {
			b.state, b.errs, b.Unmarked, b.Gaps = next, errs, unmarked, next.Gaps
			break
		}
		if !errors.Is(err, errStateChanged) || conflicts+1 >= maxConflicts {
			return fmt.Errorf("write shard state %q: %w", b.Shard, err)
		}
		if st, err = s.ReadShardState(ctx, b.Shard); err != nil {
			return err
		}
		if !bytes.Equal(st.Pending, b.First) && (b.keepPending == nil || !bytes.Equal(st.Pending, b.keepPending)) {
			return fmt.Errorf("write shard state %q: another delivery began", b.Shard)
		}
	}
	// The markers, several at a time: a bad deployment sends thousands of a batch's records to the error table,
	// and one after the other they would outlast the invocation on every retry.
	limit := s.inFlight()
	var g errgroup.Group
	g.SetLimit(limit)
	var mu sync.Mutex
	for _, p := range errored {
		if !b.errs[string(p)] {
			continue
		}
		g.Go(func() error {
			if err := s.PutErrorMarker(ctx, b.Shard, p); err != nil {
				return err
			}
			mu.Lock()
			b.Markers++
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// markPlan computes MarkErrors' next shard state from st: the marks (a record sent to the error table whose first
// delivery to reach MarkErrors this is, after st.Processed, or that no delivery stored or sent to the error table,
// in st.Unstored, goes to Errs) and the never-stored records (a failed record after st.Processed joins Unstored; one
// stored now leaves it; one marked now moves to Errs), in stream order, while Errs and Unstored together hold at
// most Store.LedgerPositions positions. At the first record that needs a new position and finds no room, the
// delivery is cut: nothing at or after it changes (Unmarked lists its error-tabled records, which the caller must
// not acknowledge), and Processed stays below it (before), so that its next delivery, which Lambda starts from the
// first record reported, treats it and the records after it as first deliveries again: BeginBatch prunes every
// position below it, so the room returns. Without a cut, Processed becomes the later of st.Processed and b.Last.
//
// hasMarker lists the error-tabled records at or before st.Processed, in neither Errs nor Unstored, that have an
// error marker (a rewound delivery repeats them after BeginBatch pruned their marks): they get no give-up range.
func (s *Store) markPlan(st ShardState, b *Batch, errored, failed [][]byte, hasMarker map[string]bool) (next ShardState, errs map[string]bool, unmarked [][]byte) {
	unstored, isFailed, isErrored := positionSet(st.Unstored), positionSet(failed), positionSet(errored)
	errs = positionSet(st.Errs)
	fresh := func(p []byte) bool {
		return st.Processed == nil || bytes.Compare(p, st.Processed) > 0 || unstored[string(p)]
	}
	const (
		mark  = iota // an error-tabled record to mark (cost 1, or 0 when it moves from Unstored)
		fail         // a failed record that joins Unstored (cost 1)
		store        // a record of Unstored stored now (cost -1)
	)
	type step struct {
		p    []byte
		kind int
	}
	var steps []step
	for _, p := range sortedPositions(errored) {
		if fresh(p) && !errs[string(p)] {
			steps = append(steps, step{p, mark})
		}
	}
	for _, p := range sortedPositions(failed) {
		if !unstored[string(p)] && (st.Processed == nil || bytes.Compare(p, st.Processed) > 0) {
			steps = append(steps, step{p, fail})
		}
	}
	for _, p := range st.Unstored {
		if bytes.Compare(p, b.Last) <= 0 && !isFailed[string(p)] && !isErrored[string(p)] {
			steps = append(steps, step{p, store})
		}
	}
	sort.SliceStable(steps, func(i, j int) bool { return bytes.Compare(steps[i].p, steps[j].p) < 0 })
	room := s.ledgerPositions() - len(st.Errs) - len(st.Unstored)
	var cut []byte
	var marked [][]byte
	drop, add := map[string]bool{}, [][]byte(nil)
	for _, sp := range steps {
		cost := 1
		switch {
		case sp.kind == store:
			cost = -1
		case sp.kind == mark && unstored[string(sp.p)]:
			cost = 0
		}
		if cost > 0 && cost > room { // a move or a removal always fits, even in a state over the cap
			cut = sp.p
			break
		}
		room -= cost
		switch sp.kind {
		case mark:
			marked = append(marked, sp.p)
			errs[string(sp.p)] = true
			drop[string(sp.p)] = true
		case fail:
			add = append(add, sp.p)
		case store:
			drop[string(sp.p)] = true
		}
	}
	next = st
	next.Version = st.Version + 1
	next.Processed = maxBytes(st.Processed, b.Last)
	if cut != nil {
		next.Processed = maxBytes(st.Processed, before(cut))
		for _, sp := range steps {
			if sp.kind == mark && bytes.Compare(sp.p, cut) >= 0 {
				unmarked = append(unmarked, sp.p)
			}
		}
	}
	next.Errs = sortedPositions(append(append([][]byte(nil), st.Errs...), marked...))
	// A record sent to the error table that an earlier delivery may have stored (not fresh: at or before processed
	// and not in unstored) gets no mark, since that delivery may have counted it; but if it did not (the record
	// came after the batch's first failure then, and the transform's verdict changed since: a deployment between
	// two deliveries), nothing would count it. It gets a give-up range of its own, [p, p+0x00), before Apply moves
	// any fence past it: each item's crossing then tells whether it was counted there, as for a given-up record.
	for _, p := range sortedPositions(errored) {
		if fresh(p) || errs[string(p)] || hasMarker[string(p)] || cut != nil && bytes.Compare(p, cut) >= 0 {
			continue
		}
		next.addGap(Gap{Shard: b.Shard, Start: p, End: append(bytes.Clone(p), 0)})
	}
	var keep [][]byte
	for _, p := range st.Unstored {
		if !drop[string(p)] {
			keep = append(keep, p)
		}
	}
	next.Unstored = sortedPositions(append(keep, add...))
	return next, errs, unmarked
}

// markedAgain reads the error markers of errored's records that are neither fresh for st (after its Processed, or
// in its Unstored) nor in its Errs: a rewound delivery sends records already marked to the error table again, after
// BeginBatch pruned their marks. A marked record needs no give-up range (a recount counts it by its marker), and
// without this read a rewind of more than MaxLedgerGaps error-tabled records would push every genuine give-up range
// out of the state (forgotten). Reads run several at a time, as the markers' writes do.
func (s *Store) markedAgain(ctx context.Context, st ShardState, shard string, errored [][]byte) (map[string]bool, error) {
	if st.Processed == nil {
		return nil, nil
	}
	unstored, errs := positionSet(st.Unstored), positionSet(st.Errs)
	limit := s.inFlight()
	var mu sync.Mutex
	found := map[string]bool{}
	var g errgroup.Group
	g.SetLimit(limit)
	for _, p := range errored {
		if bytes.Compare(p, st.Processed) > 0 || unstored[string(p)] || errs[string(p)] {
			continue
		}
		g.Go(func() error {
			ok, err := s.HasErrorMarker(ctx, shard, p)
			if err != nil {
				return err
			}
			mu.Lock()
			found[string(p)] = ok
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return found, nil
}

// before returns a bound just below position p: less than p, and at least every position less than p that is at
// most positionPad bytes longer than p (the processor's positions of a shard differ in length by at most 107
// bytes). MarkErrors keeps AttrProcessed there when it cuts a delivery at p.
func before(p []byte) []byte {
	n := len(p)
	switch {
	case n == 0:
		return nil
	case p[n-1] == 0:
		return bytes.Clone(p[:n-1]) // nothing lies between p without its last byte and p
	}
	out := make([]byte, n, n+positionPad)
	copy(out, p)
	out[n-1]--
	for len(out) < n+positionPad {
		out = append(out, 0xff)
	}
	return out
}

// positionPad is how much longer than a position p the bound before(p) is.
const positionPad = 256

// LoadMarkers runs after MarkErrors when the delivery starts before the first record of a later batch (a duplicate
// delivery: the mapping delivers at least once; BeginBatch says so): their marks in the shard state may have been
// pruned since, so for
// each stored record (stored: positions of the delivery's records stored now) processed before, it reads the
// record's error marker; a marked one is Ledgered (counted only through the items' sets, as a recount counts it).
// Otherwise it does nothing. An error means nothing may be applied, as for MarkErrors.
func (s *Store) LoadMarkers(ctx context.Context, b *Batch, stored [][]byte) error {
	if !b.rewound {
		return nil
	}
	for _, p := range stored {
		if b.errs[string(p)] || bytes.Compare(p, b.processed) > 0 {
			continue
		}
		marked, err := s.HasErrorMarker(ctx, b.Shard, p)
		if err != nil {
			return err
		}
		if marked {
			b.errs[string(p)] = true
		}
	}
	return nil
}

// atOrAfter returns the positions of ps at or after first.
func atOrAfter(ps [][]byte, first []byte) [][]byte {
	var out [][]byte
	for _, p := range ps {
		if bytes.Compare(p, first) >= 0 {
			out = append(out, p)
		}
	}
	return out
}

func positionSet(ps [][]byte) map[string]bool {
	m := make(map[string]bool, len(ps))
	for _, p := range ps {
		m[string(p)] = true
	}
	return m
}

// sameGaps reports whether a and b hold the same give-up ranges in the same order.
func sameGaps(a, b []Gap) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key() != b[i].Key() {
			return false
		}
	}
	return true
}

func samePositions(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// EndBatch is the ledger's last step, once the delivery's response is decided: pending becomes firstFailed, the position of
// the first record of the shard reported for retry (nil when none is), conditionally on the version BeginBatch
// wrote. If another writer changed the state since, it is re-read and written again only while its pending is still
// b.First (no later batch has begun). An error is not fatal (see the package documentation: the next batch then sees
// a false give-up range, which never makes a recount count a record twice).
func (s *Store) EndBatch(ctx context.Context, b *Batch, firstFailed []byte) error {
	st := b.state
	for conflicts := 0; ; conflicts++ {
		next := st
		next.Pending, next.Version = firstFailed, st.Version+1
		if b.keepPending != nil {
			next.Pending = b.keepPending
		}
		err := s.writeShardState(ctx, next, st.Version)
		if err == nil {
			b.state = next
			return nil
		}
		if !errors.Is(err, errStateChanged) || conflicts+1 >= maxConflicts {
			return fmt.Errorf("write shard state %q: %w", b.Shard, err)
		}
		if st, err = s.ReadShardState(ctx, b.Shard); err != nil {
			return err
		}
		if !bytes.Equal(st.Pending, b.First) && (b.keepPending == nil || !bytes.Equal(st.Pending, b.keepPending)) {
			return nil // a later batch has begun, or this write was applied and its answer lost
		}
	}
}

// PutErrorMarker writes the error marker of the record at position of shard (idempotent): the pipeline sent it to
// the error table on its first delivery and did not count it.
func (s *Store) PutErrorMarker(ctx context.Context, shard string, position []byte) error {
	item := MarkerKey(shard, position)
	item[AttrMarkerShard] = &types.AttributeValueMemberS{Value: shard}
	item[AttrMarkerPosition] = &types.AttributeValueMemberB{Value: position}
	if err := s.putItem(ctx, &dynamodb.PutItemInput{Item: item}); err != nil {
		return fmt.Errorf("write error marker: %w", err)
	}
	return nil
}

// HasErrorMarker reports whether the record at position of shard has an error marker (strongly consistent read).
func (s *Store) HasErrorMarker(ctx context.Context, shard string, position []byte) (bool, error) {
	it, err := s.getItem(ctx, MarkerKey(shard, position))
	if err != nil {
		return false, fmt.Errorf("read error marker: %w", err)
	}
	return len(it) > 0, nil
}

// itemLedger is what an aggregate item holds besides its measures.
type itemLedger struct {
	exists  bool
	fence   []byte // nil: nothing counted in fence order
	first   []byte // AttrFirst; nil when unknown (or no fence yet)
	version int64  // 0: the format before versions (or no item)
	set     map[string]bool
	setList [][]byte
	gaps    map[string]types.AttributeValue // AttrGapCrossings
	archive []byte                          // AttrArchive: nil when nothing was archived
	inArch  map[string]bool                 // positions at or below archive found in their buckets (read after the item)
}

// decodeLedger reads an existing item's ledger attributes.
func decodeLedger(it map[string]types.AttributeValue) (itemLedger, error) {
	l := itemLedger{exists: len(it) > 0, set: map[string]bool{}, gaps: map[string]types.AttributeValue{}}
	if !l.exists {
		return l, nil
	}
	if f, ok := it[AttrFence]; ok {
		b, ok := f.(*types.AttributeValueMemberB)
		if !ok || len(b.Value) == 0 {
			return l, fmt.Errorf("%s is not a position", AttrFence)
		}
		l.fence = b.Value
	}
	if f, ok := it[AttrFirst].(*types.AttributeValueMemberB); ok && l.fence != nil {
		l.first = f.Value
	}
	if v, ok := it[AttrVersion]; ok {
		n, isN := v.(*types.AttributeValueMemberN)
		if !isN {
			return l, fmt.Errorf("%s is not a number", AttrVersion)
		}
		x, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil || x < 1 {
			return l, fmt.Errorf("%s %q is not a positive integer", AttrVersion, n.Value)
		}
		l.version = x
	} else if l.fence == nil {
		return l, fmt.Errorf("no %s and no %s: not written by this package", AttrFence, AttrVersion)
	}
	if v, ok := it[AttrSet]; ok {
		ps, err := decodeSet(v)
		if err != nil {
			return l, err
		}
		for _, p := range ps {
			l.set[string(p)] = true
			l.setList = append(l.setList, p)
		}
	}
	if v, ok := it[AttrArchive]; ok {
		b, isB := v.(*types.AttributeValueMemberB)
		if !isB || len(b.Value) == 0 {
			return l, fmt.Errorf("%s is not a position", AttrArchive)
		}
		l.archive = b.Value
	}
	if v, ok := it[AttrGapCrossings]; ok {
		m, isM := v.(*types.AttributeValueMemberM)
		if !isM {
			return l, fmt.Errorf("%s is not a map", AttrGapCrossings)
		}
		l.gaps = m.Value
	}
	return l, nil
}

// decodeSet reads an item's AttrSet: a binary set, or, on an item with an archive, a list of binaries.
func decodeSet(v types.AttributeValue) ([][]byte, error) {
	switch x := v.(type) {
	case *types.AttributeValueMemberBS:
		return x.Value, nil
	case *types.AttributeValueMemberL:
		out := make([][]byte, len(x.Value))
		for i, e := range x.Value {
			b, ok := e.(*types.AttributeValueMemberB)
			if !ok || len(b.Value) == 0 {
				return nil, fmt.Errorf("%s[%d] is not a position", AttrSet, i)
			}
			out[i] = b.Value
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not a binary set", AttrSet)
}

// crossing returns the item's crossing of gap g: the fence when the item's fence first moved past g.End (nil: no
// fence then), and whether it has one.
func (l *itemLedger) crossing(g Gap) ([]byte, bool) {
	v, ok := l.gaps[g.Key()]
	if !ok {
		return nil, false
	}
	if b, isB := v.(*types.AttributeValueMemberB); isB {
		return b.Value, true
	}
	return nil, true
}

// recountRule is how a recount decides whether a position applies to an item.
type recountRule struct {
	class RecountClass
	gap   Gap
}

// decide reports whether the contribution at p applies to an item with ledger l: the set rule, then the fence (or,
// in a recount, the record's rule rc: nil counts nothing).
func (l *itemLedger) decide(p []byte, ledgered, recount bool, rc *recountRule) bool {
	if l.set[string(p)] || l.inArch[string(p)] {
		return false
	}
	if recount && rc == nil {
		return false
	}
	if !recount {
		return ledgered || l.fence == nil || bytes.Compare(p, l.fence) > 0
	}
	switch rc.class {
	case RecountMarked, RecountUnseen:
		return true
	case RecountGap:
		if cross, ok := l.crossing(rc.gap); ok {
			return cross == nil || bytes.Compare(p, cross) > 0
		}
		if l.first != nil && bytes.Compare(rc.gap.End, l.first) <= 0 {
			return true // the range ends before anything was applied in fence order
		}
		return l.fence == nil || bytes.Compare(p, l.fence) > 0
	case RecountInFlight:
		return l.fence == nil || bytes.Compare(p, l.fence) > 0
	}
	return false
}

// ledgerAttrs adds the ledger attributes of the item to write: the set with added (positions applied out of fence
// order), the crossings of gaps (gaps the fence moves past, from old to newFence; applied are the positions this
// write applies in fence order) and the next version.
func (l *itemLedger) ledgerAttrs(item map[string]types.AttributeValue, added [][]byte, gaps []Gap, newFence []byte, applied [][]byte) {
	set := sortedPositions(append(append([][]byte(nil), l.setList...), added...))
	switch {
	case l.archive != nil:
		// An item with an archive holds its set as a list: a writer older than the archive, which cannot see
		// archived positions, refuses the item ("not a binary set") instead of counting them again.
		list := make([]types.AttributeValue, len(set))
		for i, p := range set {
			list[i] = &types.AttributeValueMemberB{Value: p}
		}
		item[AttrSet] = &types.AttributeValueMemberL{Value: list}
		item[AttrArchive] = &types.AttributeValueMemberB{Value: l.archive}
	case len(set) > 0:
		item[AttrSet] = &types.AttributeValueMemberBS{Value: set}
	}
	crossings := make(map[string]types.AttributeValue, len(l.gaps))
	for k, v := range l.gaps {
		crossings[k] = v
	}
	first := l.first
	if l.fence == nil && newFence != nil {
		// The fence's first move: every position applied in fence order from now on is at or after first.
		first = newFence
		for _, p := range applied {
			if bytes.Compare(p, first) < 0 {
				first = p
			}
		}
	}
	if first != nil {
		item[AttrFirst] = &types.AttributeValueMemberB{Value: first}
	}
	if newFence != nil && (l.fence == nil || bytes.Compare(newFence, l.fence) > 0) {
		for _, g := range gaps {
			if _, done := crossings[g.Key()]; done || l.fence != nil && bytes.Compare(l.fence, g.End) >= 0 ||
				bytes.Compare(newFence, g.End) < 0 || first != nil && bytes.Compare(g.End, first) <= 0 {
				continue
			}
			// The fence before, or the last position this write applies before the range's end if later: every
			// record of the range at or before it is counted here, none after it (except through the set).
			cross := l.fence
			for _, p := range applied {
				if bytes.Compare(p, g.End) < 0 {
					cross = maxBytes(cross, p)
				}
			}
			if cross == nil {
				crossings[g.Key()] = &types.AttributeValueMemberNULL{Value: true}
			} else {
				crossings[g.Key()] = &types.AttributeValueMemberB{Value: cross}
			}
		}
	}
	if len(crossings) > 0 {
		item[AttrGapCrossings] = &types.AttributeValueMemberM{Value: crossings}
	}
	item[AttrVersion] = &types.AttributeValueMemberN{Value: strconv.FormatInt(l.version+1, 10)}
}
