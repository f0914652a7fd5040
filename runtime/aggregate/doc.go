// Package aggregate keeps windowed aggregates (count, sum, min, max per group and tumbling window) in a DynamoDB
// table, counting each record exactly once under the replays Lambda's Kinesis event source mapping makes. The
// processor (runtime/processor, Config.Aggregates) computes each record's contributions and calls Store.Apply after
// the batch's data items are durable and before it answers; Totals reads a total back.
//
// # Layout
//
// One item per aggregate, group, window and shard:
//
//	pk (S)           "<aggregate>#<window start, RFC 3339 UTC>#<group values as a JSON array>" (KeyText)
//	sk (S)           the shard id
//	aggregate (S)    the aggregate's name
//	windowStart (S)  the window's start, RFC 3339 UTC
//	group (L)        the group values, in GroupBy order
//	<measure> (N/S)  each measure by its name: counts and sums exact, min and max absent until a value is seen; a
//	                 number (N), or a string (S) holding the exact decimal when a sum needs more than DynamoDB's 38
//	                 significant digits or leaves its range (Totals reads both)
//	_kfence (B)      the position (shard, sequence number, sub-sequence number) of the last record applied
//
// The total of a group and window is the combination of its items (one per shard that saw records of it): counts
// and sums add, minima and maxima take the smallest and largest. Totals does it with one Query on pk. Windows
// start at whole multiples of the window since the Unix epoch; a record counts in the window of its own time (its
// arrival time in the stream by default, or a timestamp from its payload), however late it is processed, so a
// replay always lands in the same window.
//
// # Exactly once
//
// Write F(X) for item X's fence and "record r applies to X" for r's contribution being merged into X's measures.
// The invariant, for every item X of shard S:
//
//	(I) the records of S applied to X are exactly the records of S that contribute to X, were stored (not skipped,
//	    not sent to the error table) when processed, and lie at or before F(X).
//
// Apply keeps it: it reads X (strongly consistent), drops every contribution at or before F(X), merges the rest and
// writes X back with F(X) set to the last one merged, on the condition that F(X) is still what it read (or that X
// does not exist). The condition makes the read-merge-write atomic against any other writer (a redrive or replay
// running beside the pipeline, a duplicate invocation): a refused write is re-read and merged again (counted in
// Result.Conflicts). A write that DynamoDB applied but whose answer was lost (a timeout) is retried the same way:
// the re-read shows the new fence and nothing is merged twice.
//
// Merging only what is after F(X) is right only if nothing between F(X) and the first contribution merged is
// missing. The processor guarantees that with two rules:
//
//  1. Contiguity. Within a batch (one shard, in stream order), only the records before the first record that is
//     not stored (a transient failure: it is reported, and Lambda retries from it) contribute. Records after it are
//     not counted now, even when their data items are written: Lambda delivers them again with the retry.
//  2. Acknowledgement. A record is acknowledged only when its data items and all its contributions are durable: a
//     failed Apply fails the lowest record of that item's contributions, and the response reports it.
//
// Lambda delivers a shard's records in order from its checkpoint, and the checkpoint passes only acknowledged
// records. So when a batch starting at checkpoint c applies to X, every record of S before c that contributes to X
// is acknowledged, hence applied, hence at or before F(X) by (I); every record from c to the batch's cut is in the
// batch. The contributions after F(X) are therefore exactly the ones missing, and (I) holds after the write.
// Consequences, each tested (fence_sim_test.go, and the processor's and e2e tests):
//
//   - Partial-batch retries and bisection: Lambda retries from the reported record (or a half of the batch); what
//     was applied before is at or before the fences and skipped, what was not is applied.
//   - A crash or timeout between the data write and the aggregate write, or in the middle of the aggregate writes:
//     nothing is acknowledged, the batch comes again, each item applies what it lacks.
//   - Replays of records already counted (kdp replay of a window, redrive of a record the pipeline had stored, a
//     duplicate delivery): at or before every fence, never counted twice, whatever their order ("out of order" is
//     the normal case for a redrive: newer records were applied since).
//   - Records sent to the error table or skipped are not counted (they contribute nothing, and the fence passes
//     them). Redriving one later stores its data but does not count it: its position is at or before the fence,
//     and the fence cannot tell it from a counted record. It is never counted twice, but it stays uncounted.
//   - The redrive and replay commands run the processor with processor.Options.SkipAggregates: they write data
//     items only. They run records outside the mapping's order (a replay window may start after records the
//     pipeline has not applied yet; applying the window would move fences past those, and the pipeline would then
//     skip them), so the premise above does not hold for them. Records they replay that were counted stay counted
//     once; records the pipeline never counted (error table, given up) stay uncounted.
//   - Resharding: items are per shard; Lambda finishes a parent shard before its children, and a child's records
//     go to the child's own items.
//
// The limit: a record Lambda gives up on (MaximumRetryAttempts or MaximumRecordAge exhausted; it goes to the
// on-failure destination) breaks rule 2's premise, since the checkpoint then passes a record that is not
// acknowledged. Its contributions may be applied to some of its items (those written before the failure was
// reported) and not to others; the next batch moves the other items' fences past it. Redriving it then counts it
// nowhere twice, but may leave it uncounted in those other items: aggregates can undercount by exactly the records
// reported to the on-failure destination whose redrive found them at or before a fence. To avoid it, do not let
// the mapping give up while aggregates matter (retry until the record expires, and alarm on IteratorAge).
//
// ParallelizationFactor above 1 keeps order per partition key, not per shard: two concurrent batches of one shard
// would move one fence past each other's records. The construct refuses aggregates with a factor above 1 at synth.
// (Keying fences per shard and partition key would work, at one item per key and window: rarely worth it.)
//
// # Cost
//
// Per batch, each item a batch touches costs one strongly consistent read (0.5 read unit per 4 KB) and one write (a
// write unit per started KB; items are well under 1 KB): with batches of 100 and a few groups per window, a few
// writes per batch, against 100 data writes. A conflict adds one read and one write.
package aggregate
