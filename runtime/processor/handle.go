package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	aggr "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
)

// outcome is where a record of the batch stands.
type outcome uint8

const (
	outPending     outcome = iota // items being written
	outStored                     // all its items are in the data table
	outSkipped                    // nothing to write
	outPermanent                  // waiting for its error items
	outErrorStored                // all its error items are in the error table
	outFailed                     // not stored: reported for retry
	outRefused                    // not stored: an insert-only write found another record's item (Options.InsertOnly)
)

// maxRecordLogs bounds the per-record failure lines logged per batch.
const maxRecordLogs = 100

// recState is one record of a batch and its outcome.
type recState struct {
	rec        Record
	out        outcome
	pending    int   // items not yet known to be stored
	errPending int   // error items (the error item and its parts) not yet known to be stored
	err        error // why the record is permanent or failed
	queued     bool  // its error items were queued

	contribs []contribution // what it adds to the aggregates once stored (Config.Aggregates)
}

func (r *recState) permanent(err error) {
	if r.out == outPending || r.out == outFailed {
		r.out, r.err = outPermanent, Permanent(err)
	}
}

// refuse marks a pending record refused: Options.InsertOnly found another record's item under one of its keys.
func (r *recState) refuse(err error) {
	if r.out == outPending {
		r.out, r.err = outRefused, err
	}
}

func (r *recState) fail(err error) {
	if r.out == outPending || r.out == outPermanent {
		r.out, r.err = outFailed, err
	}
}

// candidate is one record's item for a key.
type candidate struct {
	rec  int
	item Item
	pos  []byte // the record's position (EncodePosition; marked by UnverifiedPosition for InsertOnly), nil for error items
}

// entry is one key to write: the items of the batch for that key, in sequence-number order; the last one wins.
type entry struct {
	key     string
	cands   []candidate
	stored  int     // index of the candidate stored, -1 for none
	invalid []error // per candidate: why DynamoDB rejected it (nil slice when none was)
	refused bool    // the candidates after stored were refused (Options.InsertOnly)
	err     error   // why no candidate (or none after stored) was stored
}

// batch holds one invocation's state.
type batch struct {
	p              *Processor
	kinesisRecords int        // records in the event
	recs           []recState // one per plain record and per user record of an aggregate
	entries        []*entry   // data table, in first-seen order
	byKey          map[string]*entry
	errorEnts      []*entry
	unmatched      atomic.Int64 // BatchWriteItem answers whose unprocessed items did not match the request

	ledgers        map[string]*aggr.Batch // per shard: the aggregates ledger's view of this delivery (beginLedger)
	ledgerFailures int                    // ledger steps that failed
}

// Handle processes one batch of Kinesis records: every record ends stored in the data table, skipped, or stored in
// the error table; the lowest sequence number of the records that did not is reported as the batch item failure,
// so Lambda retries from there. The error is non-nil only when a failed record cannot be identified (it has no
// sequence number): Lambda then retries the whole batch.
//
// A record the Kinesis Producer Library aggregated (see runtime/kpl) is split into its user records first, and each
// is processed like a plain record (Record.Aggregated, Record.SubSequenceNumber). If one of them is not stored, the
// aggregate's sequence number is reported: Lambda retries the whole aggregate, and its user records rewrite the same
// items, since their event ids (and so the default keys) include their sub-sequence numbers. An aggregate that cannot
// be read (a checksum mismatch, truncated, an invalid message) goes to the error table whole.
func (p *Processor) Handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	began := time.Now()
	ctx = withBatchTime(ctx, p.opts.Now())
	b := &batch{p: p, kinesisRecords: len(ev.Records), byKey: make(map[string]*entry, len(ev.Records))}
	b.load(ev.Records)

	// The write budget is set before transforming, and transforming stops while there is still time to write what
	// was transformed: records left untransformed fail (the lowest is reported), so every invocation makes progress
	// instead of timing out and retrying the whole batch.
	wctx, cancel := writeContext(ctx)
	defer cancel()
	dctx, dcancel := p.aggregateReserve(wctx) // the data and error writes; the aggregate writes get the rest of wctx
	defer dcancel()
	b.beginLedger(dctx) // the aggregates ledger's first step, before anything is written
	tctx, tcancel := transformContext(dctx)
	defer tcancel()
	for i := range b.recs {
		b.transform(tctx, i)
	}
	mode := writePlain
	switch {
	case p.opts.InsertOnly:
		mode = writeInsert
	case p.opts.ConditionalWrites:
		mode = writeLaterWins
	}
	// Error items go first: writeAll starts requests in order, MaxInFlight at a time, and a permanent failure whose
	// error item waits behind a large or slow data write would miss the deadline on every retry and block the shard.
	var jobs []writeJob
	if errJob, ok := b.queueErrors(ctx); ok {
		jobs = append(jobs, errJob)
	}
	jobs = append(jobs, writeJob{table: p.opts.TableName, keys: p.keys, entries: b.entries, mode: mode, unmatched: &b.unmatched})
	p.writeAll(dctx, jobs)
	b.resolveData()
	if errJob, ok := b.queueErrors(ctx); ok {
		p.writeAll(dctx, []writeJob{errJob})
	}
	b.resolveErrors()
	b.applyAggregates(wctx)
	return b.respond(ctx, began)
}

// Time budget of a batch with a deadline: writes stop responseMargin before it, and transforms stop writeReserve
// before the writes must.
const (
	maxResponseMargin = time.Second            // at most this long is kept to send the response
	maxWriteReserve   = 250 * time.Millisecond // at most this long is kept for a round of writes
)

// errNoTimeToTransform fails the records left untransformed when the time left is needed for writing.
var errNoTimeToTransform = safeReason("not transformed: the time left before the deadline is kept for writing")

// writeContext leaves a safety margin (a tenth of the time left, at most maxResponseMargin) before ctx's deadline
// so the response gets out in time. The deadline it sets is never later than ctx's.
func writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := max(min(time.Until(dl)/10, maxResponseMargin), 0)
	return context.WithDeadline(ctx, dl.Add(-margin))
}

// transformContext is wctx (from writeContext) with a deadline earlier by a reserve for one round of writes: a
// quarter of the time left, at most maxWriteReserve. The deadline it sets is never later than wctx's.
func transformContext(wctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := wctx.Deadline()
	if !ok {
		return context.WithCancel(wctx)
	}
	reserve := max(min(time.Until(dl)/4, maxWriteReserve), 0)
	return context.WithDeadline(wctx, dl.Add(-reserve))
}

// load fills b.recs from the event's records: one per plain record, one per user record of a KPL-aggregated record
// (see runtime/kpl), and one for an aggregate that cannot be read, which fails permanently as a whole.
func (b *batch) load(ers []events.KinesisEventRecord) {
	// Aggregates are rare: plain batches pay one prefix check per record and no allocation for them.
	var aggs []aggregate // per record, only once an aggregate is seen
	total := len(ers)
	for i := range ers {
		data := ers[i].Kinesis.Data
		if !kpl.IsAggregated(data) {
			continue
		}
		if aggs == nil {
			aggs = make([]aggregate, len(ers))
		}
		a := &aggs[i]
		a.is = true
		a.recs, a.err = kpl.Deaggregate(data)
		if len(a.recs) > 1 {
			total += len(a.recs) - 1
		}
	}
	b.recs = make([]recState, total)
	k := 0
	for i := range ers {
		er := &ers[i]
		r := &b.recs[k]
		k++
		r.rec = Record{
			EventID:        er.EventID,
			SequenceNumber: er.Kinesis.SequenceNumber,
			PartitionKey:   er.Kinesis.PartitionKey,
			// Kinesis keeps milliseconds; the event's float seconds lose the last digits, so round back.
			ArrivalTime: er.Kinesis.ApproximateArrivalTimestamp.Round(time.Millisecond),
			Raw:         er.Kinesis.Data,
		}
		if shard, _, ok := strings.Cut(er.EventID, ":"); ok {
			r.rec.ShardID = shard
		}
		if r.rec.EventID == "" {
			r.rec.EventID = r.rec.SequenceNumber
		}
		if aggs == nil || !aggs[i].is {
			r.rec.SubSequenceNumber, r.rec.Aggregated = redrivenSub(&r.rec)
			continue
		}
		a := &aggs[i]
		switch {
		case a.err != nil: // the whole Kinesis record, as received, goes to the error table
			r.permanent(a.err)
			continue
		case len(a.recs) == 0: // a valid aggregate of nothing: acknowledge it
			r.rec.Aggregated = true
			r.out = outSkipped
			continue
		}
		base := r.rec
		for j, ur := range a.recs {
			if j > 0 {
				r = &b.recs[k]
				k++
			}
			r.rec = base
			r.rec.EventID = base.EventID + "#" + strconv.Itoa(j)
			r.rec.PartitionKey = ur.PartitionKey
			r.rec.SubSequenceNumber = j
			r.rec.Aggregated = true
			r.rec.Raw = ur.Data
		}
	}
}

// redrivenSub returns the sub-sequence number of a plain record whose event id is "shardId:sequenceNumber#<n>":
// a user record of a KPL aggregate, rebuilt alone (as redrive does from its error item). Its position and error
// item then stay those of the user record. Any other record gives 0, false.
func redrivenSub(r *Record) (int, bool) {
	head, n, ok := strings.Cut(r.EventID, "#")
	if !ok || head != r.ShardID+":"+r.SequenceNumber || n == "" || len(n) > 10 || n[0] == '0' && n != "0" {
		return 0, false
	}
	sub, err := strconv.ParseUint(n, 10, 32)
	if err != nil {
		return 0, false
	}
	return int(sub), true
}

// aggregate is what load read from a KPL-aggregated record.
type aggregate struct {
	is   bool
	recs []kpl.UserRecord
	err  error
}

// transform decodes, transforms and validates record i, and queues its items. ctx is the transform context (see
// transformContext): once it is done, the record fails untransformed.
func (b *batch) transform(ctx context.Context, i int) {
	r := &b.recs[i]
	if r.out != outPending { // an unreadable or empty aggregate
		return
	}
	if ctx.Err() != nil {
		r.fail(errNoTimeToTransform)
		return
	}
	pos, err := EncodePosition(r.rec.ShardID, r.rec.SequenceNumber, r.rec.SubSequenceNumber)
	if err != nil {
		r.permanent(prefixReason("the record's position in its shard cannot be recorded", safeReason(err.Error()))) // lengths and offsets only
		return
	}
	data, err := decodeObject(r.rec.Raw)
	if err != nil {
		r.permanent(err)
		return
	}
	if _, ok := data[AttrPosition]; ok && b.p.defaultTransform {
		r.permanent(errReservedPayload)
		return
	}
	r.rec.Data = data
	contribs, cerr := b.contribute(ctx, i, data) // from the payload as decoded, before a transform may change it
	items, err := b.p.callTransform(ctx, &r.rec)
	r.rec.Data = nil // not needed any more: let it go early on big batches
	switch {
	case err == nil:
	case errors.Is(err, ErrSkip):
		r.out = outSkipped
		return
	case IsPermanent(err):
		r.permanent(err)
		return
	default:
		r.fail(err)
		return
	}
	switch {
	case len(items) == 0:
		r.out = outSkipped
		return
	}
	for j, it := range items {
		if _, ok := it[AttrPosition]; ok {
			r.permanent(itemErr(len(items), j, errReservedItem))
			return
		}
	}
	if b.p.opts.InsertOnly {
		pos = UnverifiedPosition(pos) // a later verified record of the key may replace it (see conditionLaterWins)
	}
	// Under an event-id key, the processor's own items leave their position to their key (see derivesPosition);
	// unverified ones carry it, marked, so that a verified write replaces them.
	derived := b.p.derivesPosition() && !b.p.opts.InsertOnly
	posAV := &types.AttributeValueMemberB{Value: pos}
	for j, it := range items {
		if it == nil {
			continue
		}
		if !b.p.defaultTransform {
			// A transform of the user's may return a map it keeps or returns again (for the next record, or twice
			// in one slice): the processor writes its own copy, never into the transform's map.
			it = maps.Clone(it)
			items[j] = it
		}
		if !derived || !keyNamesPosition(it, b.p.keys[0].Name, &r.rec) {
			it[AttrPosition] = posAV
		}
	}
	for j, it := range items {
		if err := validateItem(it, b.p.keys); err != nil {
			r.permanent(itemErr(len(items), j, err))
			return
		}
	}
	if cerr != nil {
		r.permanent(cerr)
		return
	}
	r.contribs = contribs
	r.pending = len(items)
	for _, it := range items {
		b.add(i, it, pos)
	}
}

// Reserved attribute names (AttrPosition) in a payload or a transform's item.
var (
	errReservedPayload = safeReason("payload field " + AttrPosition + ": attribute name " + AttrPosition + " is reserved")
	errReservedItem    = safeReason("attribute name " + AttrPosition + " is reserved")
)

// rejectedReason is the failure of an item DynamoDB rejected: the error code in logs, the whole message in the
// error table.
func rejectedReason(err error) error {
	code := "an error"
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return reason("rejected by DynamoDB: "+code, "rejected by DynamoDB: "+err.Error())
}

// itemErr prefixes err with the item's index when the transform returned several.
func itemErr(n, j int, err error) error {
	if n > 1 {
		return prefixReason("item "+strconv.Itoa(j), err)
	}
	return err
}

// callTransform runs the transform, turning a panic into a transient error.
func (p *Processor) callTransform(ctx context.Context, r *Record) (items []Item, err error) {
	defer func() {
		if v := recover(); v != nil {
			// The panic value may quote the record (a parse error of a payload field): the log line gets its type
			// and the stack; the error keeps the value for callers, its log form does not.
			p.opts.Logger.Error("transform panicked", "eventId", r.EventID, "panicType", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
			items, err = nil, reason(fmt.Sprintf("transform panicked (a %T)", v), fmt.Sprintf("transform panicked: %v", v))
		}
	}()
	return p.opts.Transform(ctx, r)
}

// add queues record i's item under its key, keeping candidates in sequence-number order. The user records of one
// aggregate share a sequence number and are added in sub-sequence order, so the later one wins there too.
func (b *batch) add(i int, it Item, pos []byte) {
	key := itemKey(it, b.p.keys)
	e := b.byKey[key]
	if e == nil {
		e = &entry{key: key, stored: -1}
		b.byKey[key] = e
		b.entries = append(b.entries, e)
	}
	e.cands = append(e.cands, candidate{rec: i, item: it, pos: pos})
	seq := b.recs[i].rec.SequenceNumber
	for k := len(e.cands) - 1; k > 0 && compareSequence(b.recs[e.cands[k-1].rec].rec.SequenceNumber, seq) > 0; k-- {
		e.cands[k-1], e.cands[k] = e.cands[k], e.cands[k-1]
	}
}

// compareSequence compares Kinesis sequence numbers (decimal strings): by length, then lexically.
func compareSequence(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// resolveData applies the data table's write results to the records.
func (b *batch) resolveData() {
	for _, e := range b.entries {
		for ci, c := range e.cands {
			r := &b.recs[c.rec]
			switch {
			case e.invalid != nil && e.invalid[ci] != nil:
				r.permanent(rejectedReason(e.invalid[ci]))
			case e.stored >= ci:
				r.pending--
			case e.refused:
				r.refuse(e.err)
			default:
				r.fail(writeFailure(e.err))
			}
		}
	}
	for i := range b.recs {
		r := &b.recs[i]
		if r.out == outPending {
			if r.pending == 0 {
				r.out = outStored
			} else {
				r.fail(safeReason("items not written")) // cannot happen: every item has an entry
			}
		}
	}
}

// queueErrors makes the error items (with their part items) of the records that became permanent since the last
// call and returns the job writing them. Without an error table those records fail instead.
func (b *batch) queueErrors(ctx context.Context) (writeJob, bool) {
	var ents []*entry
	var byID map[string]*entry
	for i := range b.recs {
		r := &b.recs[i]
		if r.out != outPermanent || r.queued {
			continue
		}
		r.queued = true
		if b.p.opts.ErrorTableName == "" {
			r.out = outFailed
			continue
		}
		items := b.p.errorItems(ctx, &r.rec, r.err)
		r.errPending = len(items)
		if byID == nil {
			byID = make(map[string]*entry)
		}
		for _, item := range items {
			key := itemKey(item, b.p.errKeys)
			e := byID[key]
			if e == nil {
				e = &entry{key: key, stored: -1}
				byID[key] = e
				ents = append(ents, e)
			}
			e.cands = append(e.cands, candidate{rec: i, item: item})
		}
	}
	b.errorEnts = append(b.errorEnts, ents...)
	if len(ents) == 0 {
		return writeJob{}, false
	}
	return writeJob{table: b.p.opts.ErrorTableName, keys: b.p.errKeys, entries: ents, unmatched: &b.unmatched}, true
}

// resolveErrors applies the error table's write results to the records: a record is in the error table only once
// all its error items are.
func (b *batch) resolveErrors() {
	for _, e := range b.errorEnts {
		for ci, c := range e.cands {
			r := &b.recs[c.rec]
			if e.stored >= ci && (e.invalid == nil || e.invalid[ci] == nil) {
				r.errPending--
				continue
			}
			why := e.err
			if e.invalid != nil && e.invalid[ci] != nil {
				why = e.invalid[ci]
			}
			if r.out == outPermanent {
				id, _ := c.item[ErrorTablePartitionKey].(*types.AttributeValueMemberS)
				r.out, r.err = outFailed, &reasonError{
					full: fmt.Sprintf("%v; and its error item %q was not stored: %v", r.err, id.Value, why),
					log:  logReason(r.err) + "; and its error item was not stored: " + logReason(why),
					err:  r.err, // still permanent: stored in the error table on a retry
				}
			}
		}
	}
	for i := range b.recs {
		r := &b.recs[i]
		if r.out == outPermanent && r.queued {
			if r.errPending == 0 {
				r.out = outErrorStored
			} else {
				r.out, r.err = outFailed, prefixReason("error items not stored", r.err) // cannot happen: every item has an entry
			}
		}
	}
}

// respond builds the response, logs and emits the batch's metrics.
func (b *batch) respond(ctx context.Context, began time.Time) (events.KinesisEventResponse, error) {
	var m batchMetrics
	var lowest string
	var unidentified bool
	log := b.p.opts.Logger
	logged := 0
	warn := func(msg string, r *recState) {
		if logged++; logged <= maxRecordLogs {
			log.LogAttrs(ctx, slog.LevelWarn, msg, recordAttrs(r)...)
		}
	}
	for i := range b.recs {
		r := &b.recs[i]
		switch r.out {
		case outStored:
			m.written++
		case outSkipped:
			m.skipped++
		case outErrorStored:
			if isSelfTest(&r.rec) {
				m.selfTestToErrorTable++
			} else {
				m.toErrorTable++
			}
			warn("record sent to the error table", r)
		default: // outFailed, outRefused, or outPermanent left over (cannot happen)
			if r.out == outRefused {
				m.refused++
				warn("record refused, reported", r)
			} else {
				m.failed++
				warn("record not stored, reported for retry", r)
			}
			seq := r.rec.SequenceNumber
			if seq == "" {
				unidentified = true
			} else if lowest == "" || compareSequence(seq, lowest) < 0 {
				lowest = seq
			}
		}
	}
	if logged > maxRecordLogs {
		log.LogAttrs(ctx, slog.LevelWarn, "more failed records not logged", slog.Int("count", logged-maxRecordLogs))
	}
	m.latency = time.Since(began)
	resp := events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}
	if lowest != "" {
		resp.BatchItemFailures = []events.KinesisBatchItemFailure{{ItemIdentifier: lowest}}
	}
	log.LogAttrs(ctx, slog.LevelInfo, "batch processed",
		slog.Int("records", len(b.recs)), slog.Int("kinesisRecords", b.kinesisRecords), slog.Int("written", m.written), slog.Int("skipped", m.skipped),
		slog.Int("toErrorTable", m.toErrorTable), slog.Int("failed", m.failed), slog.Int("refused", m.refused),
		slog.Int64("unmatchedUnprocessed", b.unmatched.Load()),
		slog.String("reportedSequenceNumber", lowest), slog.Float64("latencyMs", float64(m.latency.Microseconds())/1000))
	b.p.emitMetrics(m)
	if unidentified {
		return events.KinesisEventResponse{}, errors.New("handle batch: a record without a sequence number was not stored; retrying the whole batch")
	}
	return resp, nil
}

func recordAttrs(r *recState) []slog.Attr {
	reason := logReason(r.err) // the path and the rule, never a value: the error table has the full reason
	return []slog.Attr{
		slog.String("eventId", r.rec.EventID),
		slog.String("sequenceNumber", r.rec.SequenceNumber),
		slog.Bool("permanent", IsPermanent(r.err) || r.out == outErrorStored),
		slog.String("reason", reason),
	}
}
