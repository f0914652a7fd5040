package processor

import "strconv"

// MetricAggregateNoLedger counts records a redrive or replay stored but did not count because the aggregate ledger
// holds no state for their shard (aggregate.RecountNoLedger: the pipeline never ran the ledger there, so nothing
// tells counted from uncounted) (Count). Emitted on its own line, only when not zero.
const MetricAggregateNoLedger = "AggregateNoLedger"

// emitAggregateNoLedger writes n, the records of a recount left uncounted for want of their shard's ledger state
// (MetricAggregateNoLedger), as one EMF line; nothing when n is 0.
func (p *Processor) emitAggregateNoLedger(n int) {
	if n == 0 {
		return
	}
	fn := p.functionName
	if fn == "" {
		fn = "unknown"
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"_aws":{"Timestamp":`...)
	b = strconv.AppendInt(b, p.opts.Now().UnixMilli(), 10)
	b = append(b, `,"CloudWatchMetrics":[{"Namespace":"`+MetricNamespace+`","Dimensions":[["`+MetricDimensionFunctionName+`"]],"Metrics":[`+
		`{"Name":"`+MetricAggregateNoLedger+`","Unit":"Count"}]}]},"`+MetricDimensionFunctionName+`":`...)
	b = strconv.AppendQuote(b, fn)
	b = appendMetric(b, MetricAggregateNoLedger, int64(n))
	b = append(b, "}\n"...)
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	_, _ = p.opts.MetricsWriter.Write(b)
}
