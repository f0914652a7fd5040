package redrive_test

import (
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{"plain", "shardId-000000000000", "shardId-000000000000"},
		{"spaces and punctuation", `stream ARN "x" is bad: 1..9`, `stream ARN "x" is bad: 1..9`},
		{"non-ASCII letters", "Größe überschritten 値", "Größe überschritten 値"},
		{"ESC clear screen", "\x1b[2J\x1b[Hleft behind: none", `\x1b[2J\x1b[Hleft behind: none`},
		{"CR and LF", "a\rb\nc", `a\rb\nc`},
		{"tab and NUL", "a\tb\x00", `a\tb\x00`},
		{"DEL", "a\x7f", `a\x7f`},
		{"C1 CSI and NEL", "a\u009b2Jb\u0085", `a\u009b2Jb\u0085`},
		{"bidi override and isolate", "abc\u202edcba\u2066x\u2069", `abc\u202edcba\u2066x\u2069`},
		{"zero width and BOM", "a\u200bb\ufeff", `a\u200bb\ufeff`},
		{"invalid UTF-8", "a\xffb\xc3", `a\xffb\xc3`},
		{"backslash stays unambiguous", `a\x1b`, `a\\x1b`},
		{"replacement character as text", "a\ufffdb", "a\ufffdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redrive.Escape(tt.give); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}
