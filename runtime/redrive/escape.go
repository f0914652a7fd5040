package redrive

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s safe to print on a terminal or in a log line read by a person: every rune that is not printable
// (control characters such as ESC, CR and LF, C1 controls, Unicode format characters such as the bidirectional
// overrides and isolates, unassigned and private-use code points) is written as a Go escape (\x1b, \n, \u202e), every
// byte that is not valid UTF-8 as \xNN, and a backslash as \\ so that an escape in the output always means an
// escaped rune. Printable text, including spaces and non-ASCII letters, is kept as it is.
//
// Everything the redrive command prints that comes from an on-failure message, an S3 object or an error-table entry
// (sources, shard ids, sequence numbers, reasons) goes through Escape: such text is written by whoever can write
// the queue, the bucket or the table, and raw escape sequences could rewrite what the operator sees.
func Escape(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || r == '\\' || !printable(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[i])&0xf, 16))
		case r == '\\':
			b.WriteString(`\\`)
		case printable(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\u202e', '\n'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// printable reports whether r prints as itself: a letter, mark, number, punctuation, symbol or the ASCII space
// (unicode.IsPrint), and not a format character (bidirectional controls are category Cf, which IsPrint already
// excludes; checked again here because they are what makes text lie).
func printable(r rune) bool {
	return unicode.IsPrint(r) && !unicode.Is(unicode.Cf, r)
}
