// Package replay runs a time window of a Kinesis stream through a Kinesis-to-DynamoDB pipeline's processor again:
// for records that were stored wrong (a transform or schema bug deployed for a while, an attribute that should have
// been computed, a table to rebuild from what the stream still holds). It is the library behind `kdp replay`.
//
// # What it reads
//
// Every shard of the pinned stream (ListShards, by stream name and ARN, as every call names it; on AWS with a FROM_TIMESTAMP shard filter at the
// window's start, so shards closed before it are left out) or only the shards chosen (Options.Shards). A shard
// starts only when every parent it has in the list (ParentShardId, AdjacentParentShardId: after a split, one parent;
// after a merge, two) is done: a key's records before a reshard are in a parent, its later records in a child, so
// parents go first. Shards without a parent relation run side by side (Options.Concurrency). A child of a shard
// that did not complete is not started (reported); a rerun replays both.
//
// In each shard, reading starts with an AT_TIMESTAMP iterator at Options.Since: the first record whose approximate
// arrival time is at or after it (on AWS, a time before the trim horizon starts at the trim horizon; a time after
// the last record gives an iterator at the tip). Kinesalite (the local emulator) supports AT_TIMESTAMP, but its
// GetShardIterator never answers when the shard holds no record at or after the time; so a GetShardIterator that
// does not answer within Options.IteratorTimeout falls back to TRIM_HORIZON, and records are skipped until the
// first one that arrived at or after Since: the same records as AT_TIMESTAMP gives. Reading stops at the first
// record that arrived after Options.Until (not processed), at the shard's end (a closed shard), or at its tip
// (GetRecords returns nothing and MillisBehindLatest is 0). Until defaults to the time the run starts, so records
// put during the run are left to the live pipeline.
//
// # What it writes
//
// Records run through the pipeline's own processor code and configuration (package runtime/processor, with
// Options.Config: the pipeline.json the function runs with) and the pipeline's tables, with
// processor.Options.ConditionalWrites forced on: an item is written only where its key holds no item, one from an
// earlier or the same record of the same shard, or one without a position; an item written by a later record, or
// from another shard, is left as it is and the replayed item counts as superseded, except an item written from one
// of the shard's ancestors (its parents, theirs, and so on): every record of a parent arrived before the parent
// closed, every record of a child after, so the child's record replaces that item (on the condition that the item
// is still the one read). So a replay never makes an item go back to an older version, even while the live
// pipeline writes the same keys, and a table rebuilt by a replay after a reshard ends at the children's versions; a
// record replayed again rewrites its own item (a configuration fix corrects items that way). Records that fail permanently go to the error table,
// as in the pipeline. Nothing is acknowledged, checkpointed or deleted anywhere: the live event source mapping's
// position is untouched. A replay can be interrupted and rerun: keys are deterministic and the conditions make a
// rerun end in the same state.
//
// Options.DryRun reads and transforms but writes nothing: the processor writes to a stand-in that reads the table
// to predict which items would be superseded, and accepts error items without writing them.
//
// # Sharing the stream
//
// Without enhanced fan-out, the replay shares each shard's read limits (5 GetRecords per second, 2 MiB per second)
// with the live event source mapping, which polls each shard about once a second. The replay calls GetRecords at
// most twice per second per shard (Options.ReadInterval), Options.Rate caps the records processed per second over
// all shards, and a throttled call (ProvisionedThroughputExceededException, LimitExceededException) is retried after
// a growing, jittered pause.
//
// # Retention
//
// Records older than the stream's retention period are gone. A window that starts before now minus the retention
// (DescribeStreamSummary) is reported (Summary.PastRetention): whatever the stream still holds of it is replayed,
// but the run is not complete.
//
// # Aggregates
//
// A replay runs a window out of the event source mapping's order, which the aggregates' fences rely on, so it never
// counts the way the pipeline does. With Options.AggregateTableName (--aggregate-table; required when the
// configuration has aggregates) it runs the processor with processor.Options.RecountAggregates: each record it
// stores is counted into the aggregates where the aggregate table's ledger shows the pipeline did not count it (sent
// to the error table, given up on by the event source mapping, or delivered and not acknowledged yet), exactly once,
// however often the window is replayed and whatever the pipeline does meanwhile; records the pipeline counted, or
// has not reached yet, are not counted (see package runtime/aggregate). Counts.Recounted counts the records
// recounted (processor.MetricAggregateRecounted). A dry run reads the aggregate table and writes nothing to it.
// Counts.Forgotten counts records stored and left uncounted because they lie before a give-up range the ledger
// dropped (processor.MetricAggregateForgotten): nothing tells whether the pipeline counted them; kdp replay names
// them and exits 1.
// Options.SkipAggregates (--skip-aggregates) stores data only: records the pipeline did not count stay uncounted.
package replay
