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
// Items are checked as DynamoDB will store them: every string, attribute name and map key must be valid UTF-8 (the
// SDK sends invalid bytes as U+FFFD, so two keys differing only there would become one item), typed nil values and
// NULL false are rejected, and a JSON escape of an unpaired UTF-16 surrogate fails its record instead of becoming
// U+FFFD. Such a record fails permanently with the attribute's path and the rule broken as the reason. A panic inside
// a transform is a transient failure: a bug, not a fact about the record, so the records wait in the stream for the
// fix. When a BatchWriteItem answer's UnprocessedItems cannot be matched to the request, nothing of it counts as
// stored: its items are written one by one with PutItem.
//
// Log lines never quote a value from a record: they name the attribute path and the rule broken. A reason the
// processor cannot vouch for (a transform's own error, permanent or transient, a transform's panic value,
// expression messages) is withheld from logs; the error table keeps every permanent failure's reason in full. Every error item fits DynamoDB's 400 KB by construction: each
// field taken from the record is bounded (a KPL user record's partition key, bounded only by its aggregate, is kept
// up to MaxErrorPartitionKey bytes with its size and SHA-256), and one that is not valid UTF-8 is stored as binary.
//
// # Positions and conditional writes
//
// Every data item has a position: the shard, sequence number and sub-sequence number of the record that wrote it.
// Where the key does not name it, the item carries it as AttrPosition ("_kpos", binary), set by the processor after
// the transform and never taken from a payload or a transform (a transform's item holding it, or a payload holding it
// under the default transform, fails its record: "attribute name _kpos is reserved"). It encodes the record's
// position (EncodePosition, DecodePosition):
//
//	[len(shardID)] shardID [len(m)] m [sub, 4 bytes big-endian]
//
// where m is the decimal sequence number's magnitude, big-endian without leading zero bytes, and sub the KPL user
// record's index (0 for a plain record). Two positions of one shard compare byte-wise as Kinesis orders the records
// (a shorter magnitude is a smaller number). A record without a shard id (its event id is not
// "shardId:sequenceNumber") or whose sequence number is not a decimal string (hand-made events only) fails
// permanently: its position cannot be recorded. A plain record whose event id is "shardId:sequenceNumber#<n>" (a KPL
// user record rebuilt from its error item, as redrive does) takes sub-sequence number n.
//
// Under the default key (the partition key is the record's event id, SourceEventID) and the processor's own
// transform (DefaultTransform, declarative or not), the key names the position (PositionFromEventID:
// "shardId:sequenceNumber" or "shardId:sequenceNumber#n"), and the item does not carry AttrPosition: 55 bytes of
// every item, billed on every write and in storage. That is sound because no other record ever writes that key: only
// the record itself, replayed or redriven, writes the same item, so later-wins within a shard holds trivially. Where
// the processor reads a stored item's position (an insert-only write telling a rerun from another record's item), an
// item without AttrPosition under such a key has the position its key names; so does an item written before
// positions existed (it has only AttrSequenceNumber), which under an event-id key is its record's own. Items keep
// AttrPosition when the key is anything else (a business key from the payload, the sequence number, the partition
// key), when a user's Transform builds them (it may key them by anything), when the event id does not name the
// record's position exactly (hand-made events), and when they are written insert-only (their position is marked
// unverified, see below, so that a verified write replaces them).
//
// Sequence numbers are ordered within a shard only. Options.ConditionalWrites puts each item on the condition
// "attribute_not_exists(_kpos) OR begins_with(_kpos, 0x00) OR (begins_with(_kpos, shard prefix) AND _kpos <= position)",
// with the record's position as the values whether or not the item carries it: it overwrites an item of the same
// shard written by a record not later than this one (its own included, and items without AttrPosition: under an
// event-id key the record's own, in this version's or an earlier version's format), never one of a later record, and
// never one written from another shard (after a reshard, the
// child shards hold a key's newer records): the replayed item then counts as superseded (stored) and is logged with
// the table and the reason. Options.InsertOnly writes each item only where its key is free; a key holding the same
// record's item (same position) counts as stored, any other refuses the record (MetricRecordsRefused). An item
// written insert-only carries its position marked unverified (UnverifiedPosition: a 0 byte first): its sequence
// number is only what an unverifiable source claimed, so a conditional write replaces it whatever it claims (a
// forged source naming a far-future sequence number must not outrank the key's real records), and the pipeline's own
// writes replace it as they replace any item. The metadata attributes (AttrSequenceNumber and the others) are for
// reading: no condition uses them.
//
// # Metadata
//
// Config.Metadata lists the metadata attributes the default transform writes: AttrSequenceNumber, AttrPartitionKey,
// AttrArrivalTime, AttrProcessedAt (AllMetadata). By default only AttrArrivalTime (about 43 bytes): under the default
// key the key names the shard and the sequence number, so an item can still be traced to its record, its log lines
// and its error-table entry; the arrival time tells when it entered the stream. The others cost about 78
// (sequence number), 20 plus the partition key, and 42 (processed-at) bytes an item; list them to get them back. An
// empty list writes none.
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
// -tags kdp_noexpr (NoExprBuildTag) leaves both out; Include, Exclude, Rename, TTL, Metadata and the key
// attributes work as without it, while Config.Validate (so New and ParseConfig too) rejects a configuration with
// computed attributes, a filter or a schema: "transform.filter: this processor was built with -tags kdp_noexpr,
// which leaves out expressions; rebuild without it". Config.NeedsExpressions tells which build a configuration needs.
//
// # Aggregates
//
// Config.Aggregates (AggregateConfig) keeps windowed counts, sums, minima and maxima per group in the aggregate table
// (Options.AggregateTableName, EnvAggregateTableName). Each record's contributions are computed from its payload
// before the transform runs (a record whose time or values cannot be read goes to the error table); after the
// batch's data and error writes, the contributions of the stored records up to the first record not done are applied
// with runtime/aggregate's fenced writes, and a record whose contributions are not durable is reported like one
// whose items are not. runtime/aggregate argues why that counts each stored record exactly once. Aggregate metrics
// (MetricAggregateWrites, MetricAggregateConflicts, MetricAggregateFailures) go on their own EMF line, only when
// aggregates are configured. Around the aggregate writes run the ledger's steps (BeginBatch before the batch's
// writes, MarkErrors before Apply, EndBatch after), which let the tools that run records out of order (kdp
// redrive, kdp replay) count exactly once: Options.RecountAggregates counts each stored record only where the
// pipeline did not (aggregate.Store.Recount, MetricAggregateRecounted), never moving a fence. A record whose payload
// the stream did not vouch for (Options.Unverified, InsertOnly) is never recounted unless Options.RecountUnverified:
// anyone able to write its source could forge the values counted (MetricAggregateUnverified counts them).
// Options.SkipAggregates turns aggregates off (data items only).
//
// Aggregate expressions (AggregateValue.Expression, AggregateMeasure.Expression) see what Transform's see, but
// compute exactly: payload numbers reach them as json.Number, float literals are read from their source text, and
// +, -, *, /, %, **, unary minus, the comparisons (arrays and objects compare their numbers by value), in, sum,
// mean, median, abs, ceil, floor and round compute in exact decimals, int truncates exactly (an error beyond
// int64), float gives a float64 only when it holds the number (or the text) exactly, fromJSON keeps
// numbers exact, string and toJSON write a number's exact shortest form; expr's other functions get a number as an
// int or float64 only when that holds it exactly. A value DynamoDB cannot hold, a
// quotient with no finite decimal form (1 / 3), or a number a function cannot take exactly sends the record to the
// error table with the expression in the reason. Transform's expressions are unchanged.
//
// Start runs the default processor in Lambda; New and Handle let you build your own, with your own Transform. Each
// batch logs a summary with log/slog and writes one CloudWatch Embedded Metric Format line with the Metric* metrics.
//
// The fuzz targets (FuzzHandle, FuzzHandleAggregate) check the processor against an independent oracle: the real SDK
// client writing to a stand-in that behaves as DynamoDB on the wire, read back by the stand-in's own keys; their
// committed seed corpus (testdata/fuzz) is replayed against dynalite by the integration tier (-tags integration).
package processor
