package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	aggr "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
)

// contribution is what a record adds to one aggregate item.
type contribution = aggr.Contribution

// aggregates is the processor's compiled Config.Aggregates and the store it applies them to.
type aggregates struct {
	list    []*compiledAggregate
	store   *aggr.Store
	recount bool // Options.RecountAggregates: Store.Recount per stored record, no fences, no ledger state
	// uncounted: a recount of unverified records (Options.Unverified or InsertOnly, without RecountUnverified):
	// their contributions are computed, never counted.
	uncounted bool
}

// aggregateDB is what the aggregate store needs of db.
type aggregateDB interface {
	DB
	ItemReader
}

// checkAggregateOptions reports what New needs for Config.Aggregates and lacks.
func checkAggregateOptions(db DB, o *Options) []error {
	if len(o.Config.Aggregates) == 0 || o.SkipAggregates {
		return nil
	}
	var errs []error
	if o.AggregateTableName == "" {
		errs = append(errs, fmt.Errorf("aggregate table name is empty, but the config has %d aggregates (set %s)", len(o.Config.Aggregates), EnvAggregateTableName))
	} else if o.AggregateTableName == o.TableName || o.AggregateTableName == o.ErrorTableName {
		errs = append(errs, fmt.Errorf("aggregate table name %q is also the data or error table's", o.AggregateTableName))
	}
	if _, ok := db.(ItemReader); db != nil && !ok {
		errs = append(errs, errors.New("aggregates: db cannot read items (it needs a GetItem method: see ItemReader)"))
	}
	return errs
}

// newAggregates compiles o.Config.Aggregates (already validated): nil when there are none.
func newAggregates(db DB, o *Options) (*aggregates, error) {
	if len(o.Config.Aggregates) == 0 || o.SkipAggregates {
		return nil, nil
	}
	list, errs := compileAggregates(o.Config.Aggregates)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	measures := make(map[string][]aggr.Measure, len(list))
	for _, a := range list {
		measures[a.name] = a.measures
	}
	return &aggregates{list: list, store: &aggr.Store{DB: db.(aggregateDB), Table: o.AggregateTableName,
		Measures: measures, MaxInFlight: o.MaxInFlight, CountUnseen: o.RecountAggregates && o.RecountUnseen},
		recount: o.RecountAggregates, uncounted: o.RecountAggregates && (o.Unverified || o.InsertOnly) && !o.RecountUnverified}, nil
}

// contribute computes record i's contributions, nil without aggregates.
func (b *batch) contribute(ctx context.Context, i int, data map[string]any) ([]aggr.Contribution, error) {
	if b.p.aggs == nil {
		return nil, nil
	}
	return b.p.contributions(ctx, &b.recs[i].rec, data, i)
}

// aggregateReserve returns wctx with a deadline earlier by a reserve for the aggregate writes that follow the data
// and error writes (as transformContext reserves time for writes: a quarter of the time left, at most
// maxWriteReserve). Without it a data table slow enough to use the whole write budget would leave the aggregate
// writes no time on every retry: the stored records would all fail, and the shard would never move. Without
// aggregates (or without a deadline) it is wctx.
func (p *Processor) aggregateReserve(wctx context.Context) (context.Context, context.CancelFunc) {
	if p.aggs == nil {
		return context.WithCancel(wctx)
	}
	return transformContext(wctx)
}

// applyAggregates applies the contributions of the batch's stored records to the aggregate table, per shard only
// up to the first record that is not done (stored, skipped or in the error table): Lambda retries from that record,
// so the ones after it come again (the contiguity rule of runtime/aggregate). A record whose contributions are not
// all applied fails: the lowest one is reported, and its data items are rewritten on the retry.
//
// Around it run the ledger's steps (see runtime/aggregate): BeginBatch per shard before the batch is processed
// (beginLedger: the shard state, give-up detection), MarkErrors before Apply (error markers; the contributions of
// records an earlier delivery sent to the error table are applied Ledgered), EndBatch after (the first record
// reported for retry). With Options.RecountAggregates it recounts instead (recountAggregates).
func (b *batch) applyAggregates(ctx context.Context) {
	if b.p.aggs == nil {
		return
	}
	if b.p.aggs.recount {
		b.recountAggregates(ctx)
		return
	}
	ledgers := b.markErrors(ctx)
	cut := map[string]bool{}
	var cs []aggr.Contribution
	var gaps []aggr.Gap
	for _, l := range ledgers {
		gaps = append(gaps, l.Gaps...)
	}
	for i := range b.recs {
		r := &b.recs[i]
		if cut[r.rec.ShardID] {
			continue
		}
		switch r.out {
		case outStored:
			l := ledgers[r.rec.ShardID]
			for _, c := range r.contribs {
				c.Ledgered = l != nil && l.Ledgered(c.Position)
				cs = append(cs, c)
			}
		case outSkipped, outErrorStored:
		default:
			cut[r.rec.ShardID] = true
		}
	}
	var writes, conflicts, failures int
	failures += b.ledgerFailures
	for _, res := range b.p.aggs.store.Apply(ctx, cs, gaps...) {
		writes += res.Writes
		conflicts += res.Conflicts
		if res.Err == nil {
			continue
		}
		failures++
		b.p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "aggregate item not updated, its records reported for retry",
			slog.String("shardId", res.Shard), slog.Int("records", len(res.Refs)), slog.String("error", res.Err.Error()))
		for _, ref := range res.Refs {
			r := &b.recs[ref]
			if r.out == outStored {
				r.out, r.err = outFailed, safeReason("aggregates not updated")
			}
		}
	}
	failures += b.endLedger(ctx, ledgers)
	if len(cs) == 0 && failures == 0 && len(b.ledgers) == 0 {
		return
	}
	b.p.emitAggregateMetrics(writes, conflicts, failures, nil)
}

// recountCounts are a recount's counts of records (Options.RecountAggregates), emitted with the batch's
// aggregate metrics: counted, and left uncounted because the ledger never saw them (unseen), because they lie
// before a give-up range the ledger dropped (forgotten), because their payload is unverified (unverified), or
// because the ledger holds no state for their shard (noLedger).
type recountCounts struct {
	recounted, unseen, forgotten, unverified, noLedger int
}

// emitAggregateMetrics writes the batch's aggregate metrics as one EMF line, with rc's (nil outside a recount:
// none of them is emitted).
func (p *Processor) emitAggregateMetrics(writes, conflicts, failures int, rc *recountCounts) {
	fn := p.functionName
	if fn == "" {
		fn = "unknown"
	}
	counts := []struct {
		name string
		n    int
	}{{MetricAggregateWrites, writes}, {MetricAggregateConflicts, conflicts}, {MetricAggregateFailures, failures}}
	if rc != nil {
		counts = append(counts, []struct {
			name string
			n    int
		}{{MetricAggregateRecounted, rc.recounted}, {MetricAggregateUnseen, rc.unseen}, {MetricAggregateUnverified, rc.unverified},
			{MetricAggregateForgotten, rc.forgotten}, {MetricAggregateNoLedger, rc.noLedger}}...)
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"_aws":{"Timestamp":`...)
	b = strconv.AppendInt(b, p.opts.Now().UnixMilli(), 10)
	b = append(b, `,"CloudWatchMetrics":[{"Namespace":"`+MetricNamespace+`","Dimensions":[["`+MetricDimensionFunctionName+`"]],"Metrics":[`...)
	for i, c := range counts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Name":"`+c.name+`","Unit":"Count"}`...)
	}
	b = append(b, `]}]},"`+MetricDimensionFunctionName+`":`...)
	b = strconv.AppendQuote(b, fn)
	for _, c := range counts {
		b = appendMetric(b, c.name, int64(c.n))
	}
	b = append(b, "}\n"...)
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	_, _ = p.opts.MetricsWriter.Write(b)
}
