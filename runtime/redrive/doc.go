// Package redrive brings the records a Kinesis-to-DynamoDB pipeline failed on back into its table, through the same
// processor code and configuration as the pipeline (package runtime/processor), idempotently.
//
// It reads from three places:
//
//   - the SQS on-failure destination (Redriver.DLQ): each message is the event source mapping's invocation record,
//     naming a shard and a range of sequence numbers but holding no data. The records are read back from the stream
//     (GetShardIterator AT_SEQUENCE_NUMBER at the first sequence number, then GetRecords up to the last), turned into
//     the events.KinesisEvent Lambda would have sent, and handled by a processor.Processor. The message is deleted
//     only when every record of the range is stored (in the data table, or in the error table for records that fail
//     permanently, exactly as the pipeline would) and the read provably covered the whole range: the first record
//     read is the range's first, the last is its last, and their count is the on-failure record's batchSize (after
//     an expired iterator is renewed, records trimmed meanwhile would otherwise be skipped unnoticed); otherwise it
//     stays in the queue and the reason is reported. A range that can no longer be read in full (past the stream's
//     retention: the shard or the sequence number is gone, or some of its records were trimmed) is reported with
//     its shard and sequence numbers and its message is never deleted; the records still readable are processed
//     all the same. A message wrapped in an SNS notification
//     (an SNS destination with an SQS subscription) is unwrapped first.
//   - the S3 on-failure destination (Redriver.S3): each object (under "aws/lambda/" by default) is the invocation
//     record plus the whole event as "payload"; the payload's records are handled as they are, so a range past
//     retention is no obstacle. A payload that does not cover its range exactly (records of the range's shard, the
//     first its start, the last its end, as many as its batchSize) is handled all the same, and then the range is
//     read back from the stream as for an SQS message: the object counts as recovered only if that read is complete.
//     An object without a payload is read back from the stream the same way. Objects are kept after success unless
//     S3Input.Delete is set: the bucket's lifecycle rules decide when they go.
//   - the error table (Redriver.Errors): each entry's stored payload (raw, or gzip-compressed) is rebuilt into the
//     record it was (same event id, sequence number, partition key and arrival time, so default keys are the same)
//     and handled; the entry is deleted only after its record is stored, with a condition on its failedAt so a newer
//     failure of the same record written meanwhile is never lost. A record that fails again stays in the error table,
//     rewritten by the processor with the new reason. An entry whose payload is stored in parts
//     (processor.PayloadEncodingParts) is reassembled from its part items (BatchGetItem), checked against its size
//     and SHA-256, and handled; the part items are not entries (the scan skips them) and are deleted with their entry,
//     after it. An entry whose payload was truncated (by earlier processor versions) cannot be re-processed: it is
//     reported and kept, as is one whose parts are missing or do not add up. Entries can be chosen by reason (a
//     substring) and by failure time.
//
// Every run can be a dry run (Options.DryRun): it reads the sources and the stream and runs the transform, but
// writes, deletes and sends nothing (the processor writes to a stand-in that accepts every item), and reports what it
// would do. Reading an SQS message is not free of effects even then: it raises the message's receive count, and the
// message stays invisible until the run releases it at the end. Options.Rate limits the records processed per
// second; Options.Progress receives running counts.
//
// Each source ends with one Outcome; Summary counts them, and Summary.Unrecovered tells whether anything was left
// behind. Idempotency comes from the processor: item keys are deterministic, so a record processed twice (by the
// pipeline and by a redrive, or by two redrives) rewrites the same item. Every redrive replays records from the past,
// so its processor writes conditionally (processor.Options.ConditionalWrites, one PutItem per item): an item is never
// overwritten by a record older than the one it was written from (processor.AttrSequenceNumber), and a record whose
// items are all superseded that way counts as stored.
package redrive
