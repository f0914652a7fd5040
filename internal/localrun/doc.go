// Package localrun plays the Kinesis event source mapping locally, without AWS: it polls a stream on kinesalite
// (or any Kinesis-compatible endpoint) and invokes a function with batches of records as Lambda does, either in this
// process (InProcess, through aws-lambda-go's handler code path) or as the real `bootstrap` binary under
// aws-lambda-rie (RIE). Tests and the local demo (examples/local-demo) use it to prove the pipeline end to end.
//
// # Semantics
//
// A Runner lists the stream's shards and polls each shard in its own goroutine, in sequence-number order, one batch
// in flight per shard (ParallelizationFactor 1). A child shard of a resharding is read from its trim horizon once
// its parents are done.
//
//   - Batching: a batch holds at most BatchSize records and at most about 6 MB of event payload. Without a batching
//     window the runner invokes with what one GetRecords returned; with MaximumBatchingWindow it keeps reading until
//     the batch is full or the window has passed.
//   - Starting position: TRIM_HORIZON, LATEST or AT_TIMESTAMP for a shard without a checkpoint. The runner keeps its
//     checkpoints and iterators between calls of Run and Drain.
//   - The event is the events.KinesisEvent Lambda sends: base64 data, eventID "shardId:sequenceNumber",
//     eventSourceARN, awsRegion, eventName "aws:kinesis:record", approximate arrival time in seconds with
//     milliseconds. Each invocation gets FunctionTimeout as its deadline.
//   - Success: the checkpoint moves past the batch's last record.
//   - A function error (error, panic, crash, timeout) fails the whole batch. With BisectBatchOnFunctionError the
//     batch is split in two halves, retried in order, without consuming a retry attempt; otherwise it is retried
//     after RetryDelay (doubling per attempt).
//   - ReportBatchItemFailures: an empty or null batchItemFailures list is a success. Otherwise the checkpoint moves
//     to just before the lowest reported sequence number and the records from there on are retried; this counts as a
//     retry attempt of those records. An itemIdentifier that is missing, empty, or not a sequence number of the batch
//     fails the whole batch. Without ReportBatchItemFailures the response is ignored.
//   - MaximumRetryAttempts: a batch that has failed more than this many times is given up on.
//     MaximumRecordAge: before each invocation, the leading records older than this are given up on.
//   - Giving up sends one redrive.FailureRecord per batch to OnFailure (the documented SQS/SNS on-failure message:
//     shard id, start and end sequence numbers, batch size, approximate arrival of the first and last record,
//     condition, invoke count; times in UTC with milliseconds) and only then moves the checkpoint past those records.
//     SQSSink sends it to a queue as Lambda does, FileSink to a file as JSON lines. Without OnFailure the records are
//     discarded, as Lambda does; Stats counts them either way.
//
// # Where real Lambda differs
//
//   - Lambda re-reads from the checkpoint after a failure, so a retried batch may also carry newer records; the
//     runner retries exactly the unacknowledged records of the failed batch.
//   - Lambda's checkpoints survive restarts and are shared by its pollers; the runner's live in memory.
//   - Lambda runs up to one execution environment per shard (more with ParallelizationFactor); RIE is one
//     environment, so invocations through it are serialized across shards. InProcess invokes concurrently.
//   - Lambda stops a function at its timeout; InProcess cannot stop a handler that ignores its context: it reports
//     the timeout when the handler returns, and the handler's late writes still happen (idempotent writes make this
//     harmless for the processor).
//   - Lambda's retry delays, polling rate (about one GetRecords per shard per second when idle), throttling of its
//     own invocations, tumbling windows, event filtering, enhanced fan-out consumers and KPL de-aggregation in the
//     poller are not reproduced; MaximumRecordAge accepts values below AWS's 60 s minimum for tests.
//   - kinesalite never answers an AT_TIMESTAMP GetShardIterator when no record in the shard is that recent (the call
//     hangs until its context ends); real Kinesis returns an iterator.
//   - The on-failure record's requestId is random, functionArn is Options.FunctionARN, and responseContext.statusCode
//     is 200 after an invocation (0 when records expired before one).
package localrun
