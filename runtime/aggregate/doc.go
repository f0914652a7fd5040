// Package aggregate keeps windowed aggregates (count, sum, min, max per group and tumbling window) in a DynamoDB
// table, counting each record exactly once under the replays Lambda's Kinesis event source mapping makes, and
// under the redrives and replays of this module's tools. The processor (runtime/processor, Config.Aggregates)
// computes each record's contributions and calls Store.Apply after the batch's data items are durable and before
// it answers, around the ledger's steps (Store.BeginBatch, Store.MarkErrors, Store.EndBatch); redrive and replay
// run it with processor.Options.RecountAggregates, which calls Store.Recount per stored record. Totals reads a
// total back.
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
// and the ledger's attributes (_kfence counts records applied in fence order; an item only recounts wrote has none):
//
//	_kset (BS)       positions counted out of fence order (by a recount, or by the pipeline for a record it had
//	                 sent to the error table) and not archived; absent when none. On an item with an archive, a list
//	                 of binaries (L) instead, possibly empty: a writer older than the archive, which cannot see
//	                 archived positions, then refuses the item ("not a binary set") instead of counting them again
//	_karch (B)       the archive watermark: every position counted out of fence order that is not in _kset is at
//	                 or below it, in the item's archive bucket for that position; absent when nothing was archived
//	_kfirst (B)      the first position applied in fence order (every later one is after it)
//	_kgaps (M)       per give-up range ("<hex start>-<hex end>") ending after _kfirst: the item's fence when its
//	                 fence first moved past the range's end (B), or NULL when it had none; absent when none.
//	                 A pipeline write keeps at most MaxItemCrossings, dropping those of ranges the shard state no
//	                 longer lists (the lowest ends first): only listed ranges' crossings are read
//	_kver (N)        the item's version, one higher on every write (items written before it have only _kfence)
//
// The ledger keeps two more kinds of items in the same table (partition keys starting with '_': aggregate names
// start with a letter, so they never collide, and Totals never reads them):
//
//	pk "_shard", sk <shard id>: the shard's state
//	  pending (B)    the first record delivered and not acknowledged (absent when all are)
//	  delivered (B)  the last record of the last batch that began (BeginBatch)
//	  processed (B)  the last record of the last batch whose outcomes reached MarkErrors (or a bound just below
//	                 the record MarkErrors cut it at: see 2. below)
//	  begun (B)      the highest first record of a batch that began: errs may lack marks below it (a state
//	                 written without it, by an older version, gets the later of delivered and processed, at or
//	                 after every batch that pruned errs, before this delivery's first record is taken)
//	  errs (BS)      records marked as sent to the error table, at or after the last batch's first
//	  unstored (BS)  records delivered that no delivery has stored or sent to the error table yet
//	  gaps (L)       give-up ranges {s (B), e (B)}: records from s up to e (excluded) were delivered, never
//	                 acknowledged, and passed by the mapping (at most MaxLedgerGaps, the newest)
//	  forgot (B)     the end of the newest give-up range dropped from gaps: CountUnseen counts nothing before it
//	  _kver (N)      its version
//	pk "_error#<hex position>", sk <shard id>: an error marker, attributes shard (S) and position (B): the
//	  pipeline sent that record to the error table and did not count it
//	pk "_kset#<hex SHA-256 of an aggregate item's pk>", sk "<shard id>#<bucket, 2 hex digits>": an archive
//	  bucket of that item (ArchiveBuckets of them, a position's bucket the first byte of its SHA-256)
//	  item (S)       the aggregate item's pk (checked on every read)
//	  _kset (BS)     positions moved out of the item's _kset (it only ever grows)
//	  _kver (N)      its version
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
//	(I) the records of S applied to X in fence order (that is, not through X's set, below) are exactly the records
//	    of S that contribute to X, were stored (not skipped, not sent to the error table) when processed, are not in
//	    X's set, and lie at or before F(X) — up to the give-up ranges the ledger records (see Recounts).
//
// Apply keeps it: it reads X (strongly consistent), drops every contribution at or before F(X) or in X's set (or
// its archive: see Recounts), merges the rest and writes X back with F(X) set to the last one merged, on the
// condition that X's version is still what it read (or that X does not exist). The condition makes the read-merge-write atomic against any other writer (a redrive or replay
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
// Consequences, each tested (fence_sim_test.go, ledger_test.go, and the processor's and e2e tests):
//
//   - Partial-batch retries and bisection: Lambda retries from the reported record (or a half of the batch); what
//     was applied before is at or before the fences and skipped, what was not is applied.
//   - A crash or timeout between the data write and the aggregate write, or in the middle of the aggregate writes:
//     nothing is acknowledged, the batch comes again, each item applies what it lacks.
//   - Records already counted that come again (a duplicate delivery): at or before every fence, or in the item's
//     set, never counted twice. Records the mapping gave up on that come again (a duplicate from a checkpoint
//     before the range) count by the range's rule, through the set (Recounts, step 3).
//   - Resharding: items are per shard; Lambda finishes a parent shard before its children, and a child's records
//     go to the child's own items.
//
// # Recounts: redrive and replay
//
// The fence cannot tell "counted" from "passed without counting": a record sent to the error table, or one the
// mapping gave up on (MaximumRetryAttempts or MaximumRecordAge; it goes to the on-failure destination), is at or
// before the fences once later records are applied. Redrive and replay run records outside the mapping's order,
// so they must never move a fence either. The ledger tells the cases apart, with GetItem and PutItem only (no
// transactions, no Query). Per batch of a shard, the pipeline:
//
//  1. BeginBatch, before it writes anything: reads the shard state; if pending is set and the batch starts after
//     it, the mapping gave up on [pending, first): a gap is added. It writes pending = first, delivered = the
//     later of delivered and last, begun = the later of begun and first, and prunes errs and unstored below first.
//     A delivery behind pending, or from it but ending before delivered (a duplicate: the mapping delivers at
//     least once), leaves pending as it is, here and in EndBatch, so a give-up not detected yet still is. A
//     duplicate when nothing is pending moves pending back to its first record: every record before the next
//     batch's is counted, marked or in a gap, so the range the next batch then records is false, and safe (see
//     EndBatch below). A delivery starting before begun and at or before processed repeats records whose marks
//     may be pruned (rewound: LoadMarkers, step 2). Begun, not pending, tells it: pending is the delivery's own
//     first record when its state write was applied and the answer lost (the retry reads its own write), or when
//     a duplicate died after BeginBatch and comes again; any read of the retries saying rewound counts.
//  2. MarkErrors, after the data and error writes: a record sent to the error table is marked when no earlier
//     delivery can have stored it (it is after processed, or in unstored): its position goes to errs, the state
//     is written (processed = the later of processed and last; unstored gains the records that failed on their
//     first delivery and loses those stored or sent to the error table now), then its error marker. A record of
//     errs that is stored now (the bug was fixed between two deliveries) contributes Ledgered: applied iff not in
//     the item's set, and added to it. A rewound delivery (step 1: it repeats records whose marks may be pruned
//     from errs) reads the markers of its stored records at or before processed (LoadMarkers): a marked one is
//     Ledgered too. Errs and unstored hold at most Store.LedgerPositions positions together
//     (MaxLedgerPositions): at the first record needing a new one when none is left, the delivery is cut: nothing
//     from there changes in the state, processed stays just below it, and its records sent to the error table are
//     not marked but failed for retry (Batch.Unmarked; the processor reports the first, and counts nothing after
//     it, as after any failed record). The retry starts there (or before), BeginBatch prunes everything below it,
//     and MarkErrors marks them as first deliveries: every record sent to the error table gets its marker. A
//     record sent to the error table that an earlier delivery may have stored (not after processed, not in
//     unstored: the transform's verdict changed between two deliveries, a deployment during a retry) is not
//     marked, since that delivery may have counted it; it gets a give-up range of its own, [p, p+0x00), written
//     with the state before Apply, so each item's crossing of it tells whether it was counted there (a recount
//     then counts it where it was not, by the range's rule). A record that already has a marker (a rewound
//     delivery, its mark pruned from errs) gets none: MarkErrors reads the markers of such records first.
//  3. Apply: a contribution applies iff its position is not in the item's set and (Ledgered, or after the fence).
//     A contribution of a record in a gap (only a duplicate delivers one: the mapping passed it) applies as a
//     recount of it would (marked if Ledgered, else by the gap's rule below), through the set, and moves no fence:
//     processed may have passed the range before any of its deliveries reached MarkErrors, so a record of it the
//     duplicate sends to the error table gets no marker, and a fence moved past it would put it at or before the
//     range's crossing, where no recount counts it. As for a recount, an item's set takes at most
//     MaxRecountedPositions: a record beyond is left to the redrive (which reports it).
//     When a write moves an item's fence past a gap's end for the first time, the item records the crossing: its
//     fence before (or the last position of the gap the write applies, if later), NULL if it had none; a gap
//     ending at or before the item's _kfirst needs none (so a new item does not copy every old gap).
//  4. EndBatch, once the response is decided: pending = the first record reported for retry (absent if none).
//
// Every state write is conditional on the state's version, every item write on the item's (or, for an item
// written before versions, on having none and on its fence). A recount of the record at position p (Recount,
// one record's contributions) reads the shard state and p's marker, then decides, per item X, in one conditional
// write (p added to X's set, the fence unchanged):
//
//   - no state: the pipeline never ran the ledger there: nothing (RecountNoLedger; kdp redrive reports it and
//     keeps its source);
//   - marker (marked): apply iff p is not in X's set;
//   - p in a gap G: apply iff p is not in X's set and p is after X's crossing of G (NULL, or G ends at or
//     before X's _kfirst: nothing of G was counted in X in fence order), or, before X crossed G, after X's fence
//     (or X does not exist);
//   - pending <= p <= delivered (in flight: the pipeline may still be retrying it): apply iff p is not in X's set
//     and p is after X's fence; the pipeline's retry then finds p in the set. If an item's fence is already past
//     p, the state and the marker are read again after the items: the pipeline may have marked p (sent to the
//     error table), or recorded a give-up range holding it, and moved past it since the first reads (MarkErrors
//     writes the marker, and BeginBatch the range, before Apply moves a fence); p is then recounted as marked, or
//     by the range's rule;
//   - p <= delivered and Store.CountUnseen (unseen: the caller vouches that the mapping gave p up while none of
//     its batch's attempts reached BeginBatch, a DynamoDB outage; kdp redrive --count-unseen, on the word of the
//     on-failure range): apply iff p is not in X's set;
//   - p <= delivered, before forgot (forgotten: p may lie in a give-up range the state dropped): nothing, and
//     the result says so (RecountForgotten);
//   - otherwise the pipeline counted p (or has not reached it: a replay ahead of it): nothing.
//
// The archive. An item's set would outgrow DynamoDB's 400 KB (a redrive of an hour of records sent to the error
// table by a bad deployment puts hundreds of thousands into one item of an hourly aggregate), so a write that
// would take _kset past MaxRecountedPositions first moves its lowest positions (down to half the limit, all of
// them when the additions alone pass it) to their archive buckets: each bucket is read, united with its
// positions and written on the condition that its version is unchanged (re-read on a conflict; idempotent). Only
// then is the item written, without them and with _karch raised to the highest moved, on the condition that
// the item is still what was read, as every item write. Additions always go to _kset, never straight to a
// bucket; additions that still do not fit wait for the next write (Apply and RecountBatch loop until all are
// written). A position is counted in the item out of fence order iff it is in _kset, or at or below _karch and
// in its bucket; so a writer, after reading the item, reads the bucket of each position at or below _karch that
// it would otherwise apply (strongly consistent), and treats membership there as membership in _kset. Why
// single-item atomicity survives:
//
//   - Buckets hold only counted positions: an archive moves positions of _kset as read, and sets only ever grow
//     (a position leaves _kset only in a write that raises _karch to at least it).
//   - Additions serialize on the item's version: a writer that finds p in neither place and writes p to _kset
//     wins only if no other write came between its read of the item and its write, so nobody counted p in
//     between; an archive counts nothing (it copies counted positions).
//   - A bucket is written before the watermark that covers it: a reader that sees _karch at or above p in the
//     item read its bucket after the write that raised it, hence after p reached the bucket; below _karch a
//     position absent from _kset and from its bucket was never counted out of fence order.
//   - A crash (or a refused item write) after the buckets and before the item leaves positions in both places,
//     which changes nothing: membership is the union; the next write archives them again, idempotently.
//
// RecountBatch does this for a whole batch of a redrive or replay at once: shard states read once, markers once
// per record, and each item read and written once for every record counted into it (records sharing an item
// would otherwise refuse each other's writes).
//
// Why each record counts exactly once:
//
//   - A position counted out of fence order is in that item's set or archive, and every writer checks both first.
//   - A position counted in fence order is at or before the fence; a recount applies only after the fence
//     (in flight), after the crossing (a gap: the fence when the pipeline moved past the range, before any later
//     record was applied; records of the range at or before it were counted then, by (I), none after), or a marked
//     record, which the pipeline counts only through the set: its marker is written after its position is in errs,
//     and a stored record of errs is Ledgered.
//   - A record is marked only if no delivery stored it before (after processed, or in unstored, both written
//     before Apply), so a marked record was never counted in fence order.
//   - A record of a gap is counted in fence order only by the deliveries before the mapping passed it, in
//     stream order from the checkpoint: a record of the gap at or before its crossing that they did not count
//     was sent to the error table by a delivery that reached MarkErrors first, hence marked. Duplicates
//     delivering the gap later count its records through the set by the recount's own rule, so the crossing
//     still says what the fence-order writes counted, and a record a duplicate sends to the error table
//     unmarked stays after it (a recount counts it).
//   - The conditional writes make each item's read-decide-write atomic against the pipeline, other recounts and a
//     lost answer; items decide independently, so a crash between items leaves the rest to the next recount, which
//     decides the same way.
//   - EndBatch is not needed for safety: if it fails after a batch the mapping acknowledged, pending stays at the
//     batch's first record and the next batch records a false gap over records the pipeline counted; their
//     crossings are at or after them (they are at or before the fences), so a recount counts none of them. The
//     same holds for the false range after a duplicate moved pending back (step 1). It keeps errs (only BeginBatch
//     prunes them, below the new first record), so a record marked in a delivery whose response was lost after
//     EndBatch is still Ledgered when the mapping delivers it again; a delivery starting before the first record
//     of a later batch (begun) reads markers instead, whatever pending says.
//
// Residuals (a recount counts nothing, so the record stays uncounted; it is never counted twice, except through
// the last one and through CountUnseen given a range over records the pipeline counted):
//
//   - A batch the mapping gives up on though none of its attempts reached BeginBatch (every attempt died before
//     its first request to the aggregate table, or that table refused every one): the give-up is not detected,
//     and nothing in the table tells its records from counted ones. Only the on-failure range names them:
//     Store.CountUnseen counts them on its word (an outsider able to write the queue or bucket could otherwise
//     forge a range over counted records).
//   - An item holds at most MaxRecountedPositions positions in its set plus as many in each of its ArchiveBuckets
//     buckets (about a million records counted out of fence order per aggregate, group, window and shard): a
//     recount of a record whose bucket is full and finds no room in the set is reported (ErrItemFull), not
//     counted there, and its source kept. (The pipeline's own additions of a delivery's marked records are written even
//     then: the set grows past its limit, as before the archive; a duplicate's records of a give-up range are
//     left to the redrive, which reports them.)
//   - Give-up ranges older than the newest MaxLedgerGaps are dropped from the state (forgot keeps the newest
//     end dropped). A recount of a record before forgot that is not marked, in no gap and not in flight cannot
//     tell counted from uncounted: it counts nothing and reports it (RecountForgotten; Store.CountUnseen
//     does not count it either), and kdp redrive keeps its source and exits 1.
//   - (Not a count lost, but a stall.) A single KPL aggregate whose user records sent to the error table outnumber
//     Store.LedgerPositions cannot be marked: Lambda redelivers the whole aggregate, whose earlier user records'
//     marks fill the state again each time, until the mapping gives up on it (a give-up range, recounted by a
//     redrive of its on-failure record).
//   - Records sent to the error table or given up before the ledger ran (an earlier version of this package) have
//     no marker and lie in no gap.
//   - The limits count positions, not bytes. Positions of today's 56-digit sequence numbers are about 50 bytes,
//     so a full shard state (MaxLedgerPositions) stays near 250 KB; Kinesis allows sequence numbers of up to 129
//     digits, and with those a full state or a full set with MaxItemCrossings crossings would pass DynamoDB's
//     400 KB: its writes would fail and the shard stall (retried, reported, nothing counted twice).
//   - CountUnseen checks a range's first and last records against the ledger (Store.Seen), not every record: a
//     range whose middle the ledger saw but whose ends it did not is still taken on its word. RecountUnverified
//     takes payloads on the operator's word: two forged sources of one position with different times land in two
//     windows, two items, and count twice.
//   - A RecountBatch call given the same position twice under two refs, into an item whose set and bucket are
//     full, reports the second copy as already counted (not ErrItemFull).
//   - Only the mapping may run the pipeline mode (Store.Apply with the ledger): a tool replaying records through
//     it out of order could count in fence order a record whose mark was pruned, and a recount would count it
//     again. Redrive and replay use processor.Options.RecountAggregates. A redrive never recounts a record whose
//     payload the stream did not vouch for (processor.Options.Unverified) unless the operator says so
//     (processor.Options.RecountUnverified, kdp redrive --count-unverified): a forged source at a marked or
//     given-up position would count its own values.
//
// ParallelizationFactor above 1 keeps order per partition key, not per shard: two concurrent batches of one shard
// would move one fence past each other's records. The construct refuses aggregates with a factor above 1 at synth.
// (Keying fences per shard and partition key would work, at one item per key and window: rarely worth it.)
//
// # Cost
//
// Per batch, each item a batch touches costs one strongly consistent read (0.5 read unit per 4 KB) and one write (a
// write unit per started KB; items are well under 1 KB): with batches of 100 and a few groups per window, a few
// writes per batch, against 100 data writes. A conflict adds one read and one write. The ledger adds, per batch,
// one strongly consistent read and two or three writes of the shard state (BeginBatch, MarkErrors when the batch
// has records not seen before or errors, EndBatch), and one write per record sent to the error table (its marker);
// a rewound delivery (a duplicate, or, after an upgrade from a state without begun, a delivery at or before
// processed that starts before the delivered position of then) reads one marker per stored record at or before
// processed.
// A recount costs, per record, one strongly consistent read (its marker) and, per RecountBatch call, one read of
// each shard's state and, where it may count, one read and at most one write per item (Recount alone: all of it
// per record). Sets and crossings grow items by about 50 bytes per position recounted or
// marked record stored, and per give-up range crossed. The archive costs nothing until an item's set reaches
// MaxRecountedPositions; then a write that archives reads and writes each bucket it moves positions to (half the
// set: up to 256 buckets, each up to 200 KB, so once per 2,000 positions added), and a position at or below the
// watermark that the item and its rule would apply costs one strongly consistent read of its bucket (one per
// bucket per write); positions the fence or _kset decide (nearly all of the pipeline's) cost nothing more.
package aggregate
