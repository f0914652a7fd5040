// Package selftest proves a deployed pipeline end to end, through the same path a producer's record takes: it puts
// a canary record into the stream, waits until the processor has written its item to the table, puts a malformed
// canary and waits for it in the error table (when the pipeline has one), and deletes the canary items. A step that
// does not finish before the timeout fails with a *Failure naming the step, a Cause and the evidence seen (the
// error-table entry of a canary the transform rejected, the event source mapping's state and last processing result,
// the reads that failed).
//
// The construct runs it at every deployment that changes the pipeline (a CloudFormation custom resource backed by
// runtime/cmd/selftest) and on demand (`aws lambda invoke` on the same function, optionally on a schedule). It needs
// no CDK and talks to Kinesis and DynamoDB through small interfaces, so it runs against kinesalite and dynalite too.
//
// # Canaries
//
// Every run draws a random nonce. The canary's Kinesis partition key is processor.SelfTestPartitionKeyPrefix plus
// the nonce, which the processor counts apart (processor.MetricSelfTestRecordsToErrorTable): the malformed canary
// never fires the error-table alarm. The canary's payload is the user's (Config.Record) or, when the pipeline's
// configuration allows it, derived: a JSON object holding a "kdpSelfTest" marker with the nonce, and the payload fields
// the key attributes are read from. Its item's key is derived from the pipeline's key configuration: the event id,
// sequence number or partition key that PutRecord returns, payload fields, or the user's (Config.Key).
//
// # Touching only canary items
//
// The self-test reads and deletes items by key only (GetItem, DeleteItem), and every DeleteItem carries a condition
// that only the canary's own item satisfies: for the data table, the item's position attribute
// (processor.AttrPosition) must equal the canary record's shard and sequence number, or, when the item's partition
// key is the canary's event id, the item may have no position attribute (the processor leaves it out there: the key
// names the position, and no other record's item has that key); for the error table, the entry's shard and sequence
// number must be the canary's. Sequence numbers are unique in a shard, so no other record's item can match: a wrong
// key (a bug, or a Config.Key naming a real item) makes the delete fail its condition instead of deleting data. IAM cannot express this (see the README's
// Self-test section: with the default key, the canary's key exists only once PutRecord returns).
package selftest
