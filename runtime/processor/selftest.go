package processor

import "strings"

// SelfTestPartitionKeyPrefix starts the Kinesis partition key of every record the pipeline's self-test puts (package
// runtime/selftest). The processor handles such records like any other (written, or stored in the error table), but
// counts the ones stored in the error table under MetricSelfTestRecordsToErrorTable instead of
// MetricRecordsToErrorTable, so the self-test's malformed canary does not fire the error-table alarm on every run.
// The prefix is reserved: a producer's malformed record with such a partition key is still stored in the error table
// and logged, but counted under the self-test's metric.
const SelfTestPartitionKeyPrefix = "kdp-selftest-"

// MetricSelfTestRecordsToErrorTable counts self-test records (SelfTestPartitionKeyPrefix) stored in the error table
// (Count).
const MetricSelfTestRecordsToErrorTable = "SelfTestRecordsToErrorTable"

// isSelfTest reports whether r was put by the self-test. A user record of a KPL aggregate never is: the self-test
// puts plain records.
func isSelfTest(r *Record) bool {
	return !r.Aggregated && strings.HasPrefix(r.PartitionKey, SelfTestPartitionKeyPrefix)
}
