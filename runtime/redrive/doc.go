// Package redrive brings the records a Kinesis-to-DynamoDB pipeline failed on back into its table, through the same
// processor code and configuration as the pipeline (package runtime/processor), idempotently, and without trusting
// what it reads.
//
// It reads from three places:
//
//   - the SQS on-failure destination (Redriver.DLQ): each message is the event source mapping's invocation record,
//     naming a stream, a shard and a range of sequence numbers but holding no data. A message naming another stream
//     than the pinned one (Options.StreamARN) is left in the queue (OutcomeForeignStream). Otherwise the records are
//     read back from the pinned stream (GetShardIterator AT_SEQUENCE_NUMBER at the first sequence number, then
//     GetRecords up to the last), turned into the events.KinesisEvent Lambda would have sent, and handled by a
//     processor.Processor. The message is deleted only when every record of the range is stored (in the data table,
//     or in the error table for records that fail permanently, exactly as the pipeline would) and the read provably
//     covered the whole range: the first record read is the range's first, the last is its last, and their count is
//     the on-failure record's batchSize (after an expired iterator is renewed, records trimmed meanwhile would
//     otherwise be skipped unnoticed); otherwise it stays in the queue and the reason is reported. A range that can
//     no longer be read in full (past the stream's retention: the shard or the sequence number is gone, or some of
//     its records were trimmed) is reported with its shard and sequence numbers and its message is never deleted;
//     the records still readable are processed all the same. A message wrapped in an SNS notification (an SNS
//     destination with an SQS subscription) is unwrapped first.
//   - the S3 on-failure destination (Redriver.S3): each object (under "aws/lambda/" by default; the construct's
//     command passes "aws/lambda/<mapping UUID>/") is the invocation record plus the whole event as "payload" (an
//     escaped JSON string, as AWS writes it, or a JSON object, as LocalStack does). An object naming another stream,
//     in its range or in a payload record, is kept (OutcomeForeignStream). Before anything is written, the range is
//     read from the stream: where the stream still holds records of the range, they are the source, and the payload
//     must equal them record by record (data, partition key, sequence number; no record the stream lacks where it
//     holds the range), else nothing of the object is written (OutcomePayloadDiffers). The stream's records are then
//     written; payload records older than anything the stream still holds (past its retention, or the whole range
//     when the shard is gone) are written insert-only (see below). An object counts as recovered when every record
//     of its range is stored: read from the stream, or, for the part past retention, from a payload that covers the
//     range exactly. An object without a payload is read back from the stream like an SQS message. Objects are kept
//     after success unless S3Input.Delete is set: the bucket's lifecycle rules decide when they go.
//   - the error table (Redriver.Errors): each entry's stored payload (raw, or gzip-compressed) is rebuilt into the
//     record it was (same event id, sequence number, partition key and arrival time, so default keys are the same)
//     and handled; the entry is deleted only after its record is stored, with a condition on its failedAt so a newer
//     failure of the same record written meanwhile is never lost. A record that fails again stays in the error table,
//     rewritten by the processor with the new reason. An entry whose payload is stored in parts
//     (processor.PayloadEncodingParts) is reassembled from its part items (BatchGetItem), checked against its size
//     and SHA-256, and handled; the part items are not entries (the scan skips them) and are deleted with their entry,
//     after it. An entry whose payload was truncated (by earlier processor versions) cannot be re-processed: it is
//     reported and kept, as is one whose parts are missing or do not add up. Entries can be chosen by reason (a
//     substring) and by failure time. With Options.StreamARN, each entry is looked up in the stream by its shard and
//     sequence number first (see below).
//
// # Trust model
//
// The redrive runs with the operator's credentials, often broader than the pipeline's, and writes into the
// pipeline's table. What it reads was written by others:
//
//   - the on-failure queue: the event source mapping sends to it, and so can anyone with sqs:SendMessage on it;
//   - the on-failure bucket: the mapping writes to it with the processor function's role (which has s3:PutObject on
//     it), and so can anything that holds that role or another grant on the bucket;
//   - the error table: the processor function's role writes it (dynamodb:PutItem, BatchWriteItem), and so can
//     anything that holds that role.
//
// So the command believes only the pinned stream, which producers write and which is the pipeline's input anyway:
//
//   - A queue message is a pointer. Only its shard and range are used, only on the pinned stream: a forged message
//     can at worst replay real records of the pipeline's own stream, which conditional writes make harmless (an item
//     is never overwritten by a record older than the one it was written from, processor.Options.ConditionalWrites).
//   - An object's payload is believed only as far as the stream confirms it. Records the stream still holds are read
//     from the stream and written conditionally; a payload that disagrees writes nothing. Payload records past the
//     stream's retention cannot be confirmed: they are written insert-only (processor.Options.InsertOnly), on the
//     condition that their key holds no item. An insert that finds the same record's item (same position,
//     processor.AttrPosition, or under the default event-id key an item without one, whose key names the record:
//     a rerun) counts as stored; one that finds another record's item is refused: not
//     written, its source kept, OutcomeRefused. What an insert writes carries an unverified position
//     (processor.UnverifiedPosition): a later verified redrive of the key replaces it whatever sequence number the
//     source claimed, so a forged far-future position never outranks the key's real records. A range the stream
//     rejects for another reason than its age (a sequence number the shard never produced) reads as past retention
//     too: the unverified mark is what keeps such a forgery from sticking.
//   - Shard ids must be canonical ("shardId-" and 12 digits, ValidShardID): Kinesis also resolves short forms such as
//     "shardId-0", which would have real records written under event ids no record has.
//   - An error entry is believed only as far as the stream confirms it, when the stream is pinned: the stream's
//     record at the entry's shard and sequence number must carry the entry's payload (for a KPL user record, the
//     user record at its index in the aggregate), and is then written conditionally, from the stream's copy. An
//     entry the stream no longer holds, and every entry when no stream is pinned, are written insert-only. An entry
//     that does not name a record consistently (its id, shardId and sequenceNumber disagree, or a shard id is not
//     canonical) is not redriven: OutcomeInvalid, kept. Entries carry no stream ARN: the pin is what ties them to a stream.
//
// Insert-only bounds the damage, it does not remove it. It still lets a forged record with a NEW key in (nothing
// tells a forged new key from a real one once the stream has forgotten it), and it refuses legitimate upserts of
// unverified records: a record keyed by a business id whose item a later (or earlier) record already wrote, such as
// the "latest per category" item of examples/custom-processor, is refused, not merged. Options.AllowOverwriteUnverified
// writes unverified records conditionally instead, as verified ones are; its risk is that a forged object or entry
// then overwrites real items (those written from earlier records of the shard it claims, and items without a
// position). Use it only for sources you trust, after looking at what was refused.
//
// Everything the command prints from a message, an object or an entry goes through Escape first.
//
// # Running
//
// Every run can be a dry run (Options.DryRun): it reads the sources and the stream and runs the transform, but
// writes, deletes and sends nothing (the processor writes to a stand-in that accepts every item, and answers an
// insert as the table would, so refusals are predicted), and reports what it would do. Reading an SQS message is not
// free of effects even then: it raises the message's receive count, and the message stays invisible until the run
// releases it at the end. Options.Rate limits the records processed per second, including the records read from
// the stream, whose shard the live event source mapping also reads (5 GetRecords per second per shard): a throttled
// read (ProvisionedThroughputExceededException) is retried after a growing pause. Options.Progress receives running
// counts.
//
// Each source ends with one Outcome; Summary counts them, and Summary.Unrecovered tells whether anything was left
// behind. Idempotency comes from the processor: item keys are deterministic, so a record processed twice (by the
// pipeline and by a redrive, or by two redrives) rewrites the same item, and every write is conditional on the item's
// position as described above.
//
// # Aggregates
//
// A redrive runs records out of the stream's order, which the aggregates' fences rely on, so it never counts the
// way the pipeline does. With Options.AggregateTableName (the command's --aggregate-table; required when the
// configuration has aggregates) it runs the processor with processor.Options.RecountAggregates: each record it
// stores is counted into the aggregates where the aggregate table's ledger shows the pipeline did not count it (sent
// to the error table, given up on by the event source mapping), exactly once, however often it is redriven and
// whatever the pipeline does meanwhile (see package runtime/aggregate). RecordCounts.Recounted counts those records
// (processor.MetricAggregateRecounted). A dry run reads the aggregate table and writes nothing to it: it counts what
// it would recount. Options.SkipAggregates (--skip-aggregates) stores data only: the records it stores stay
// uncounted (a later replay of their window with the aggregate table counts them, while the stream holds them).
//
// Records the stream cannot vouch for (payload records past its retention, error entries it does not confirm) are
// stored insert-only but never counted by default (processor.Options.Unverified): a forged entry, message or
// object at a position the ledger shows uncounted would otherwise count the forger's values. RecordCounts.Unverified
// names them (processor.MetricAggregateUnverified), their source is kept and the outcome is OutcomeFailed, as for
// records the ledger never saw (RecordCounts.Unseen). Options.CountUnverified (--count-unverified; it needs the pin,
// so that entries the stream still holds are verified, not taken on their word) counts them on
// the operator's word.
//
// A record the ledger cannot place is stored, not counted, and its source kept (the run exits 1), counted in
// RecordCounts: Unseen, a record at or before the last one the ledger saw delivered that is not marked, in no
// give-up range and not in flight (the pipeline counted it, or its whole batch was given up while none of its
// attempts reached the aggregate table); Forgotten, such a record before the end of a give-up range the ledger
// dropped (aggregate.MaxLedgerGaps), which nothing tells from a counted one; NoLedger, a record of a shard the
// ledger holds no state for (aggregate.RecountNoLedger: no attempt on the shard ever reached the aggregate table,
// or the record predates the ledger), which nothing tells from a counted one either.
//
// Options.CountUnseen (--count-unseen, dlq and s3 only) counts the unseen records of an on-failure range on the
// range's word. That is right only if the range holds nothing but records of a batch given up before any of its
// attempts reached the ledger: the range must start at the mapping's checkpoint (the first record of the last
// attempt) and hold no record an earlier attempt acknowledged. What AWS documents (as of this writing):
//
//   - The on-failure record of a Kinesis mapping carries KinesisBatchInfo (shardId, startSequenceNumber,
//     endSequenceNumber, approximateArrivalOfFirstRecord, approximateArrivalOfLastRecord, batchSize, streamArn):
//     https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html
//   - With ReportBatchItemFailures, Lambda checkpoints before the lowest sequence number reported and retries all
//     records from there; with BisectBatchOnFunctionError as well, "the batch is bisected at the returned sequence
//     number and Lambda retries only the remaining records"; a function error bisects whatever the response type:
//     https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html
//   - With BisectBatchOnFunctionError, batchSize "could be greater than 1 since Lambda consolidates failed messages
//     metadata when writing to the OnFailure destination":
//     https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-eventsourcemapping.html#cfn-lambda-eventsourcemapping-bisectbatchonfunctionerror
//
// AWS does not say whether startSequenceNumber is the first record of the last attempt (after partial successes or
// bisection, the retried remainder) or of the batch first read, nor that a consolidated range is contiguous and
// holds only failed records; the construct turns both ReportBatchItemFailures and bisection on. So the assumption
// may fail, and a range reaching back over records the pipeline counted would make --count-unseen count them
// twice. The ledger shows it when the given-up batch reached the ledger in any attempt: the range's last record
// (or, for a range naming the batch first read of which bisection gave up only the first part, its first record) is
// then in flight, in a give-up range or marked, not unseen (aggregate.Store.Seen). Such a range is not trusted: its
// unseen records stay uncounted and reported, as without CountUnseen, its source is kept, and the reason says why.
// A range whose first and last records the ledger never saw is still taken on its word: if Lambda consolidated one
// range over halves that succeeded and halves given up while the aggregate table was unreachable, or a range's
// middle only reached the ledger, its counted records would count twice (no such range is documented; a dry run
// shows how many records a run would recount).
package redrive
