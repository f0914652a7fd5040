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
// # Declarative transform
//
// Config.Transform (TransformConfig) adapts the default transform without Go code: a JSON Schema the payload must
// satisfy, a filter, field selection (Include, Exclude, Rename), computed attributes and a time to live.
// Config.Validate compiles every expression and the schema and reports each problem on its own line, prefixed with
// the option ("transform.computed[2] (ProcessedValue): ..."); the construct runs it at synth time. The processor
// compiles them when it starts (New), never per record. Key attributes are read from the original payload (or the
// record's metadata), never from renamed or computed attributes.
//
// Expressions use github.com/expr-lang/expr (https://expr-lang.org/docs/language-definition). They see:
//   - every payload field as a top-level variable: strings, booleans, nil for null, numbers as int64 when written as
//     an integer that fits, else float64; objects as map[string]any and arrays as []any (same conversion inside).
//     A field the record lacks is nil: == and != work, "Field ?? default" supplies a default and "a?.b" reads
//     through it, but arithmetic, ordering and string functions on nil fail (the record goes to the error table).
//     A filter giving nil counts as false;
//   - payload: the whole payload as a map, for fields with names that are not identifiers ($env["my-field"] works
//     too) or that are shadowed by record or payload;
//   - record: the record's metadata: record.eventId, record.partitionKey, record.sequenceNumber, record.shardId
//     (strings), record.arrivalTime and record.processedAt (time.Time; processedAt is the batch's processing time,
//     the value of AttrProcessedAt);
//   - earlier computed attributes, by name (except ones named record or payload);
//   - expr's builtins (upper, lower, trim, split, replace, len, map, filter, now, date, duration, ...) and
//     iso8601(t) (RFC 3339 with nanoseconds, UTC), unixMillis(t) and unixSeconds(t).
//
// Results become attribute values: integers N (exact: 81 * 2 gives N "162"), floats N (shortest representation that
// round-trips: 0.1 * 3 gives "0.30000000000000004"; NaN and infinities are errors), strings S, booleans BOOL, nil
// NULL, time.Time S (RFC 3339 with nanoseconds, UTC), durations S ("1h30m0s"), maps M and lists L. Fields that are
// not computed keep their exact JSON numbers. An expression that fails at run time sends its record to the error
// table with the option, the message and the position as the reason; one whose type can never be stored (a
// function, the record itself) is rejected by Validate.
//
// # Building without expressions
//
// Expressions and the schema link github.com/expr-lang/expr and github.com/santhosh-tekuri/jsonschema/v6, about 3 MB
// of `bootstrap` (whose reflection also keeps the linker from dropping unused methods). Building with
// -tags kdp_noexpr (NoExprBuildTag) leaves both out; Include, Exclude, Rename, TTL, OmitMetadata and the key
// attributes work as without it, while Config.Validate (so New and ParseConfig too) rejects a configuration with
// computed attributes, a filter or a schema: "transform.filter: this processor was built with -tags kdp_noexpr,
// which leaves out expressions; rebuild without it". Config.NeedsExpressions tells which build a configuration needs.
//
// Start runs the default processor in Lambda; New and Handle let you build your own, with your own Transform. Each
// batch logs a summary with log/slog and writes one CloudWatch Embedded Metric Format line with the Metric* metrics.
package processor
