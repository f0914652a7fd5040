package processor

// SetLedgerPositions sets the aggregate store's aggregate.Store.LedgerPositions (the shard state's cap), so tests
// reach it with a few records.
func SetLedgerPositions(p *Processor, n int) {
	if p.aggs != nil {
		p.aggs.store.LedgerPositions = n
	}
}
