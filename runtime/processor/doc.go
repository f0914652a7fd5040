// Package processor is the Lambda side of a Kinesis-to-DynamoDB pipeline: it turns batches of Kinesis records into
// DynamoDB items without losing or duplicating any.
//
// For each batch, Processor.Handle decodes every record's payload as a JSON object, runs a Transform (DefaultTransform
// unless Options.Transform says otherwise), checks each item against DynamoDB's rules (size, numbers, nesting,
// attribute names, key attributes), removes duplicate keys (the record with the later sequence number wins) and writes
// the items with BatchWriteItem, 25 per request, several requests in flight, retrying throttling and unprocessed items
// with exponential backoff and full jitter until shortly before the invocation's deadline. A request DynamoDB rejects
// as invalid is retried item by item to find the culprit.
//
// Every record ends in one of four places:
//   - stored: all its items are in the data table;
//   - skipped: the transform returned ErrSkip (or no item);
//   - the error table: it failed permanently (not a JSON object, an item DynamoDB would reject, an error made with
//     Permanent), and its error item, holding the raw payload and the reason, is stored;
//   - reported: anything else (a transient error, throttling past the deadline, a failed error-item write, a permanent
//     failure without an error table). Handle reports the lowest such sequence number as the one batch item failure,
//     so Lambda retries from there. Item keys are deterministic, so retried records rewrite the same items.
//
// Records written by the Kinesis Producer Library in its aggregated format (see package runtime/kpl) are split into
// their user records, each processed like a plain record with its own partition key and an event id ending in
// "#<sub-sequence number>"; counts and metrics are per user record. An aggregate that cannot be read (a checksum
// mismatch, truncated, an invalid message) goes to the error table whole. A failed user record reports its aggregate's
// sequence number, so Lambda retries the whole aggregate and its stored user records rewrite the same items.
//
// Start runs the default processor in Lambda; New and Handle let you build your own, with your own Transform. Each
// batch logs a summary with log/slog and writes one CloudWatch Embedded Metric Format line with the Metric* metrics.
package processor
