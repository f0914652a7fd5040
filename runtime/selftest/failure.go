package selftest

import (
	"fmt"
	"strings"
	"time"
)

// Step is a step of the self-test.
type Step string

// The steps, in order.
const (
	StepSetup         Step = "setup"          // reading the configuration
	StepPutCanary     Step = "put-canary"     // PutRecord of the canary
	StepPutMalformed  Step = "put-malformed"  // PutRecord of the malformed canary
	StepWaitItem      Step = "wait-item"      // waiting for the canary's item in the table
	StepWaitMalformed Step = "wait-malformed" // waiting for the malformed canary in the error table
	StepCleanup       Step = "cleanup"        // deleting the canary items
)

// Cause says why a step failed.
type Cause string

// The causes of a failure.
const (
	// CauseInvalidConfiguration: the self-test's configuration or environment is wrong (a bug or a bad prop).
	CauseInvalidConfiguration Cause = "invalid-configuration"
	// CausePutFailed: PutRecord failed (permissions, the stream's key, the stream's state).
	CausePutFailed Cause = "put-failed"
	// CauseCanaryRejected: the canary reached the error table instead of the table: the transform (or DynamoDB's
	// rules) rejected it. The evidence holds the error table's reason.
	CauseCanaryRejected Cause = "canary-rejected"
	// CauseItemNotWritten: the canary's item did not reach the table before the timeout: the mapping is disabled
	// or behind, the function fails or cannot write. The evidence holds the mapping's state when readable.
	CauseItemNotWritten Cause = "item-not-written"
	// CauseMalformedNotInErrorTable: the malformed canary did not reach the error table before the timeout.
	CauseMalformedNotInErrorTable Cause = "malformed-not-in-error-table"
	// CauseCleanupFailed: a canary item could not be deleted (it stays in the table).
	CauseCleanupFailed Cause = "cleanup-failed"
)

// Failure is why a run failed: the step, the cause, how long the step waited and what it saw.
type Failure struct {
	Step     Step
	Cause    Cause
	Waited   time.Duration
	Evidence []string
	Err      error
}

// Error describes the failure on one line: step, cause, wait, evidence and the underlying error.
func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "self-test failed at %s: %s", f.Step, f.Cause)
	if f.Waited > 0 {
		fmt.Fprintf(&b, " after %s", f.Waited.Round(time.Second))
	}
	if f.Err != nil {
		fmt.Fprintf(&b, ": %v", f.Err)
	}
	if len(f.Evidence) > 0 {
		b.WriteString("; seen: ")
		b.WriteString(strings.Join(f.Evidence, "; "))
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (f *Failure) Unwrap() error { return f.Err }
