// Package localrun plays the Kinesis event source mapping locally, without AWS: it polls a stream on kinesalite
// (or any Kinesis-compatible endpoint) and invokes a function with batches of records as Lambda does, either in this
// process (InProcess, through aws-lambda-go's handler code path) or as the real `bootstrap` binary under
// aws-lambda-rie (RIE). Tests and the local demo (examples/local-demo, `make local`) use it to prove the pipeline
// end to end. Its semantics follow the Lambda developer guide and behaviour recorded on real AWS (marked [R]: LocalStack's
// parity snapshots of the Kinesis event source mapping, validated against AWS in November 2025).
//
// # Semantics
//
// A Runner lists the stream's shards and polls each shard in its own goroutine, in sequence-number order, one batch
// in flight per shard. A child shard of a resharding is read from its trim horizon once its parents are done.
//
//   - Batching: a batch holds at most BatchSize records and at most about 6 MB of event payload. Without a batching
//     window the runner invokes with what one GetRecords returned; with MaximumBatchingWindow it keeps reading until
//     the batch is full or the window has passed. Starting position: TRIM_HORIZON, LATEST or AT_TIMESTAMP for a
//     shard without a checkpoint; checkpoints and iterators last between calls of Run and Drain.
//   - Filters (FilterPatterns, at most 5, any may match): only `data` can be matched; a record whose data is not JSON
//     is dropped; dropped records are checkpointed, never retried, never sent to OnFailure. The runner evaluates
//     Lambda's filter rule syntax: exact values (strings, numbers by value, booleans, null, ""), prefix, suffix and
//     equals-ignore-case (also inside prefix and suffix), anything-but (values, or equals-ignore-case), numeric
//     (=, <, <=, >, >=, ranges), exists, $or, nested fields, arrays matching when any element does. Any other
//     pattern (wildcard, cidr, anything-but prefix or suffix, a field besides data) fails New.
//   - The event is the events.KinesisEvent Lambda sends (base64 data, eventID "shardId:sequenceNumber", ARNs,
//     region, arrival time in seconds with milliseconds). Each invocation gets FunctionTimeout as its deadline.
//   - Counting: a batch starts with no attempt and no invocation whenever the checkpoint moves. An invocation that
//     fails without moving the checkpoint uses a retry attempt: MaximumRetryAttempts n gives a batch n+1 invocations
//     (-1: until the records expire). [R] BatchSize 3, MaximumRetryAttempts 3, the last record always reported: the
//     partial failure of its batch moved the checkpoint past the two records before it and used nothing; alone, it
//     was invoked 4 more times (5 deliveries), and the on-failure record says approximateInvokeCount 4, batchSize 1.
//   - ReportBatchItemFailures: the records before the lowest reported one are acknowledged and the records from it
//     on retried alone, as a new batch when the checkpoint moved. With BisectBatchOnFunctionError this is the
//     documented bisection "at the returned sequence number", which uses no retry. Success [R]: no body, null, "",
//     [], {}, no batchItemFailures key, batchItemFailures null or []. Invalid [R]: an identifier that is not a
//     string, empty or null, an item without itemIdentifier; also an identifier of no record of the batch, a
//     batchItemFailures key in another case or not a list, any other value than an object: the whole batch failed,
//     functionError null. Without ReportBatchItemFailures the response is ignored.
//   - A function error (error, panic, crash, timeout) fails the whole batch: with BisectBatchOnFunctionError a batch
//     of two records or more is split in halves, retried in order, keeping their counts (splitting uses no retry);
//     otherwise it uses a retry attempt and is retried after RetryDelay, doubling up to 32 times.
//   - MaximumRecordAge: before each invocation, the leading records older than this are given up on.
//   - Giving up sends one redrive.FailureRecord per batch to OnFailure, then moves the checkpoint past its records.
//     As AWS sends it [R]: responseContext {statusCode 200, executedVersion "$LATEST", functionError "Unhandled"
//     after a function error, null after a partial failure or an invalid response}; no responseContext when records
//     expired; approximateInvokeCount the invocations since the checkpoint last moved, at least 1; times in UTC with
//     milliseconds. SQSSink and FileSink write the SQS message body; S3Sink the whole invocation record with the
//     event as a JSON string in "payload", under "aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/<time>-<UUID>".
//     Without OnFailure the records are discarded, as Lambda does; Stats counts them either way.
//
// # Where real Lambda differs
//
// Unconfirmed on AWS; the runner takes the reading that never hides a failure (it never gives up on fewer records
// than AWS might, and names each one):
//
//   - An invalid response is not bisected: the whole batch is retried and given up on.
//   - Each piece of a bisected batch given up on gets its own on-failure record with its exact range; AWS may
//     consolidate them into one record whose range also spans records that succeeded (its batchSize then counts
//     fewer records than the range holds). Likewise a range can span records the filters dropped: batchSize counts
//     only the records given up on.
//   - A partial failure at a batch's first record is a failed attempt of the whole batch, not halved, with bisect on
//     too; halves of a bisected batch keep its invocation count.
//
// Not emulated (Runner.Warnings lists the ones set):
//
//   - ParallelizationFactor above 1 (Lambda then keeps order per partition key only), tumbling windows, enhanced
//     fan-out consumers; the runner runs factor 1 on a shared-throughput iterator.
//   - Without BisectBatchOnFunctionError, Lambda reads a retry from the checkpoint, so it may carry newer records;
//     the runner retries exactly the remaining records.
//   - Lambda's checkpoints survive restarts; its retry delays, polling rate (about one GetRecords per shard per second
//     when idle) and throttling of its own invocations are its own. MaximumRecordAge below AWS's 60 s is accepted
//     (with a warning) for tests. The requestId is random; functionArn is Options.FunctionARN.
//   - RIE is one execution environment, so invocations through it are serialized across shards. InProcess cannot
//     stop a handler that ignores its context: it reports the timeout when the handler returns, and the handler's
//     late writes still happen (idempotent writes make this harmless for the processor).
//   - kinesalite never answers an AT_TIMESTAMP GetShardIterator when no record in the shard is that recent (the call
//     hangs until its context ends); real Kinesis returns an iterator.
package localrun
