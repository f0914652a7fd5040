package processor

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/smithy-go"
)

// reasonError is a failure the processor describes twice: in full (Error, the error table's reason, which may quote
// values from the record) and for logs (the attribute path and the rule broken, never a value).
type reasonError struct {
	full, log string
	err       error // wrapped, if any
}

// Error returns the full reason.
func (e *reasonError) Error() string { return e.full }

// Unwrap returns the wrapped error.
func (e *reasonError) Unwrap() error { return e.err }

func (e *reasonError) logReason() string { return e.log }

// logReasoner is an error with a form for logs.
type logReasoner interface{ logReason() string }

// reason returns an error whose full reason is full and whose log form is log.
func reason(log, full string) error { return &reasonError{full: full, log: log} }

// safeReason returns an error whose message names no value: the same in both forms.
func safeReason(msg string) error { return &reasonError{full: msg, log: msg} }

// prefixReason prefixes both forms of err's reason with prefix (which must name no value); an err without a log
// form keeps none.
func prefixReason(prefix string, err error) error {
	var lr logReasoner
	if !errors.As(err, &lr) {
		return &reasonError{full: prefix + ": " + err.Error(), log: prefix + ": " + reasonWithheld, err: err}
	}
	return &reasonError{full: prefix + ": " + err.Error(), log: prefix + ": " + lr.logReason(), err: err}
}

// writeFailure gives a write path's error a log form: its message, with the text of a DynamoDB error (which may
// quote an item, as a ValidationException's does) replaced by its error code. Network and deadline errors name no
// value.
func writeFailure(err error) error {
	if err == nil {
		return nil
	}
	var lr logReasoner
	if errors.As(err, &lr) {
		return err
	}
	log := err.Error()
	var ae smithy.APIError
	if errors.As(err, &ae) {
		log = strings.Replace(log, ae.Error(), "DynamoDB error "+ae.ErrorCode(), 1)
		if !strings.Contains(log, "DynamoDB error "+ae.ErrorCode()) {
			log = "DynamoDB error " + ae.ErrorCode()
		}
	}
	return &reasonError{full: err.Error(), log: log, err: err}
}

// reasonWithheld stands in a log line for a reason the processor cannot vouch for (a transform's own error, an
// expression's message): it may quote the record.
const reasonWithheld = "(reason withheld from logs, as it may quote the record: see the error table for permanent failures)"

// logReason returns what a log line may say about err: the log form of the outermost reason that has one; for any
// other error (a transform's own error, permanent or transient, which may quote the record), a placeholder.
// Failures of the processor's own (throttling, network, deadlines) carry a log form.
func logReason(err error) string {
	if err == nil {
		return "unknown"
	}
	var lr logReasoner
	if errors.As(err, &lr) {
		return lr.logReason()
	}
	return reasonWithheld
}

// Bounds of the names quoted in paths.
const maxPathName = 64

// pathName formats an attribute name for a path in a reason: as is when it is valid UTF-8, printable and short;
// otherwise quoted with Go escapes, cut after maxPathName bytes with its length.
func pathName(name string) string {
	plain := len(name) <= maxPathName && utf8.ValidString(name)
	for _, r := range name {
		if !plain {
			break
		}
		plain = strconv.IsPrint(r) && r != '.' && r != '[' && r != '"'
	}
	if plain && name != "" {
		return name
	}
	if len(name) <= maxPathName {
		return strconv.QuoteToASCII(name)
	}
	cut := name[:maxPathName]
	return strconv.QuoteToASCII(cut) + "...(" + strconv.Itoa(len(name)) + " bytes)"
}
