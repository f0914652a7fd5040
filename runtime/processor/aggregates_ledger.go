package processor

import (
	"context"
	"log/slog"

	aggr "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
)

// shardSpan is one shard's records in a batch, for the ledger.
type shardSpan struct {
	shard       string
	first, last []byte
	errored     [][]byte // positions of the records sent to the error table (self-test canaries left out)
	failed      [][]byte // positions of the records neither stored, skipped nor in the error table
	recs        []int    // the shard's records, in batch order
}

// shardSpans groups the batch's records by shard, in first-seen order (Lambda's batches hold one shard).
func (b *batch) shardSpans() []*shardSpan {
	var spans []*shardSpan
	byShard := map[string]*shardSpan{}
	for i := range b.recs {
		r := &b.recs[i]
		pos, err := EncodePosition(r.rec.ShardID, r.rec.SequenceNumber, r.rec.SubSequenceNumber)
		if err != nil {
			continue // no position: it went to the error table (or failed) without contributions
		}
		sp := byShard[r.rec.ShardID]
		if sp == nil {
			sp = &shardSpan{shard: r.rec.ShardID, first: pos}
			byShard[r.rec.ShardID] = sp
			spans = append(spans, sp)
		}
		sp.last = pos
		sp.recs = append(sp.recs, i)
		switch r.out {
		case outStored, outSkipped:
		case outErrorStored:
			if !isSelfTest(&r.rec) {
				sp.errored = append(sp.errored, pos)
			}
		default:
			sp.failed = append(sp.failed, pos)
		}
	}
	return spans
}

// beginLedger runs the ledger's first step (aggregate.Store.BeginBatch) for each shard of the batch, before its
// records are processed; without aggregates, or when recounting, it does nothing. A shard whose step fails has its
// records failed before anything is written (reported for retry).
func (b *batch) beginLedger(ctx context.Context) {
	if b.p.aggs == nil || b.p.aggs.recount {
		return
	}
	b.ledgers = map[string]*aggr.Batch{}
	for _, sp := range b.shardSpans() {
		l, err := b.p.aggs.store.BeginBatch(ctx, sp.shard, sp.first, sp.last)
		if err == nil {
			b.ledgers[sp.shard] = l
			continue
		}
		b.ledgerFailures++
		b.p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "aggregates ledger not written, the shard's records reported for retry",
			slog.String("shardId", sp.shard), slog.String("error", err.Error()))
		for _, i := range sp.recs {
			b.recs[i].fail(safeReason("aggregates ledger not written"))
		}
	}
}

// markErrors runs the ledger's second step (aggregate.Store.MarkErrors) for each shard, after the data and error
// writes: the error-tabled records first delivered (or never stored before) are marked. A shard whose step fails
// has its stored and error-tabled records failed (nothing applied) and is left out of the returned ledgers.
func (b *batch) markErrors(ctx context.Context) map[string]*aggr.Batch {
	ledgers := map[string]*aggr.Batch{}
	for _, sp := range b.shardSpans() {
		l := b.ledgers[sp.shard]
		if l == nil {
			continue
		}
		var stored [][]byte // a delivery repeating acknowledged records reads their markers (LoadMarkers)
		for _, i := range sp.recs {
			if r := &b.recs[i]; r.out == outStored && len(r.contribs) > 0 {
				stored = append(stored, r.contribs[0].Position)
			}
		}
		err := b.p.aggs.store.MarkErrors(ctx, l, sp.errored, sp.failed)
		if err == nil {
			err = b.p.aggs.store.LoadMarkers(ctx, l, stored)
		}
		if err != nil {
			b.ledgerFailures++
			b.p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "aggregates ledger not written, the shard's records reported for retry",
				slog.String("shardId", sp.shard), slog.String("error", err.Error()))
			for _, i := range sp.recs {
				r := &b.recs[i]
				if r.out == outStored || r.out == outErrorStored && !isSelfTest(&r.rec) {
					r.out, r.err = outFailed, safeReason("aggregates ledger not written")
				}
			}
			continue
		}
		b.failUnmarked(ctx, sp, l)
		ledgers[sp.shard] = l
	}
	return ledgers
}

// failUnmarked fails the records of sp sent to the error table that the ledger could not mark (its shard state is
// full: aggregate.Batch.Unmarked): Lambda delivers them again from the first, whose delivery marks them. Their
// error items are written already; the retry writes the same ones again (keyed by event id), and counts nothing
// after the first of them now (the contiguity rule).
func (b *batch) failUnmarked(ctx context.Context, sp *shardSpan, l *aggr.Batch) {
	if len(l.Unmarked) == 0 {
		return
	}
	unmarked := map[string]bool{}
	for _, p := range l.Unmarked {
		unmarked[string(p)] = true
	}
	for _, i := range sp.recs {
		r := &b.recs[i]
		if r.out != outErrorStored || isSelfTest(&r.rec) {
			continue
		}
		if pos, err := EncodePosition(r.rec.ShardID, r.rec.SequenceNumber, r.rec.SubSequenceNumber); err == nil && unmarked[string(pos)] {
			r.out, r.err = outFailed, safeReason("aggregates ledger full: sent to the error table but not marked yet")
		}
	}
	b.ledgerFailures++
	b.p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "aggregates ledger full: records sent to the error table not marked, reported for retry",
		slog.String("shardId", sp.shard), slog.Int("records", len(l.Unmarked)))
}

// endLedger runs the ledger step once the batch's outcomes are decided (aggregate.Store.EndBatch): the shard's
// pending record becomes the first one reported for retry. A failure is logged and counted, not fatal (see
// runtime/aggregate).
func (b *batch) endLedger(ctx context.Context, ledgers map[string]*aggr.Batch) int {
	failures := 0
	for _, sp := range b.shardSpans() {
		l := ledgers[sp.shard]
		if l == nil {
			continue
		}
		var firstFailed []byte
		unknown := false
		for _, i := range sp.recs {
			r := &b.recs[i]
			if r.out == outStored || r.out == outSkipped || r.out == outErrorStored {
				continue
			}
			// Lambda retries from the reported sequence number: a KPL aggregate from its first user record.
			pos, err := EncodePosition(r.rec.ShardID, r.rec.SequenceNumber, 0)
			if err != nil {
				unknown = true
			}
			firstFailed = pos
			break
		}
		if unknown {
			continue // the whole batch is retried: pending stays at its first record
		}
		if err := b.p.aggs.store.EndBatch(ctx, l, firstFailed); err != nil {
			failures++
			b.p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "aggregates ledger state not updated after the batch (safe: the next batch sees a false give-up range)",
				slog.String("shardId", sp.shard), slog.String("error", err.Error()))
		}
	}
	return failures
}

// recountAggregates counts each stored record with contributions where the ledger shows the pipeline did not
// (aggregate.Store.RecountBatch: one write per item for the whole batch, so records sharing an item do not contend
// for it), for Options.RecountAggregates: no fence moves, no ledger state is written. A record whose recount fails
// is reported for retry (recounting it again decides the same way). Unverified records (Options.Unverified) are
// not counted, only reported (MetricAggregateUnverified), unless Options.RecountUnverified.
func (b *batch) recountAggregates(ctx context.Context) {
	var idx []int
	var records [][]aggr.Contribution
	for i := range b.recs {
		r := &b.recs[i]
		if r.out != outStored || len(r.contribs) == 0 {
			continue
		}
		idx = append(idx, i)
		records = append(records, r.contribs)
	}
	if len(records) == 0 {
		return
	}
	if b.p.aggs.uncounted {
		// Unverified payloads: their values may be forged, so they are never counted (Options.Unverified).
		b.p.emitAggregateMetrics(0, 0, 0, &recountCounts{unverified: len(records)})
		return
	}
	res := b.p.aggs.store.RecountBatch(ctx, records)
	failures, rc := 0, recountCounts{}
	for j, rr := range res.Records {
		r := &b.recs[idx[j]]
		if rr.Counted() {
			rc.recounted++
		} else if rr.Unseen && rr.Class != aggr.RecountUnseen { // unseen, and not counted for want of RecountUnseen
			rc.unseen++
		} else if rr.Class == aggr.RecountForgotten {
			rc.forgotten++
		} else if rr.Class == aggr.RecountNoLedger {
			rc.noLedger++
		}
		if rr.Err != nil {
			failures++
			b.p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "aggregates not recounted, the record reported for retry",
				slog.String("eventId", r.rec.EventID), slog.String("error", rr.Err.Error()))
			r.out, r.err = outFailed, safeReason("aggregates not recounted")
		}
	}
	b.p.emitAggregateMetrics(res.Writes, res.Conflicts, failures, &rc)
}
