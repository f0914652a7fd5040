package redrive

import (
	"fmt"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// AggregateMode says what a redrive or a replay does with the configuration's aggregates.
type AggregateMode string

// Aggregate modes.
const (
	// AggregatesNone: the configuration has no aggregates.
	AggregatesNone AggregateMode = ""
	// AggregatesRecount: each record stored is counted into the aggregates where the pipeline did not count it,
	// exactly once (processor.Options.RecountAggregates). A dry run writes nothing to the aggregate table: it only
	// counts what it would recount.
	AggregatesRecount AggregateMode = "recount"
	// AggregatesSkip: the records stored are not counted (processor.Options.SkipAggregates): data only.
	AggregatesSkip AggregateMode = "skip"
)

// AggregateModeOf returns what a redrive or replay with cfg does with its aggregates, skip being its
// SkipAggregates.
func AggregateModeOf(cfg processor.Config, skip bool) AggregateMode {
	switch {
	case len(cfg.Aggregates) == 0:
		return AggregatesNone
	case skip:
		return AggregatesSkip
	default:
		return AggregatesRecount
	}
}

// CheckAggregates reports a configuration with aggregates run without the aggregate table's name (table) and
// without skipping them (skip): the records stored would be counted nowhere. Redrive and replay both check it.
func CheckAggregates(cfg processor.Config, table string, skip bool) error {
	if n := len(cfg.Aggregates); n > 0 && table == "" && !skip {
		return fmt.Errorf("aggregate table name is required: the configuration has %d aggregates (or skip them: the records stored then stay uncounted)", n)
	}
	return nil
}

// aggregateOptions sets po's aggregate options for a run with o's: the aggregate table, and a recount (or, with
// SkipAggregates, none). Set after the caller's options: a redrive never counts in the pipeline's fenced order.
func aggregateOptions(po *processor.Options, table string, skip, unseen bool) {
	po.AggregateTableName = table
	po.SkipAggregates, po.RecountAggregates, po.RecountUnseen = skip, !skip, unseen && !skip
}
