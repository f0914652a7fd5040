package emfcount_test

import (
	"reflect"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/emfcount"
)

func TestCapture(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   map[string]int // nil: no counts
	}{
		{"nothing written", nil, nil},
		{"one line", []string{`{"_aws":{},"RecordsWritten":3,"RecordsToErrorTable":1}` + "\n"},
			map[string]int{"RecordsWritten": 3, "RecordsToErrorTable": 1}},
		{"a line in pieces", []string{`{"RecordsWrit`, `ten":2,"RecordsFailed"`, ":1}\n"},
			map[string]int{"RecordsWritten": 2, "RecordsFailed": 1, "RecordsToErrorTable": 0}},
		{"no newline yet", []string{`{"RecordsWritten":2}`}, nil},
		{"the last line wins", []string{"{\"RecordsWritten\":1}\n{\"RecordsSkipped\":4}\n"},
			map[string]int{"RecordsSkipped": 4, "RecordsToErrorTable": 0}},
		{"not JSON, and a line without record counts, passed over",
			[]string{"{\"RecordsRefused\":2}\nnot json\n{\"AggregateWrites\":9}\n"},
			map[string]int{"RecordsRefused": 2, "RecordsToErrorTable": 0}},
		{"self-test records count as sent to the error table",
			[]string{`{"RecordsToErrorTable":2,"SelfTestRecordsToErrorTable":1}` + "\n"},
			map[string]int{"RecordsToErrorTable": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c emfcount.Capture
			for _, w := range tt.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			got, ok := c.Last()
			if ok != (tt.want != nil) || (ok && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("Last() = %v, %v; want %v", got, ok, tt.want)
			}
			c.Reset()
			if got, ok := c.Last(); ok {
				t.Errorf("after Reset, Last() = %v", got)
			}
		})
	}
}

func TestCaptureRecounted(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   int
	}{
		{"nothing written", nil, 0},
		{"no line carries it", []string{"{\"RecordsWritten\":3}\n{\"AggregateWrites\":2}\n"}, 0},
		{"on the aggregates' line", []string{"{\"AggregateWrites\":2,\"AggregateRecounted\":2}\n{\"RecordsWritten\":3}\n"}, 2},
		{"on the record counts' line", []string{"{\"RecordsWritten\":3,\"AggregateRecounted\":1}\n"}, 1},
		{"added up over lines", []string{"{\"AggregateRecounted\":2}\n{\"AggregateRecounted\":", "3}\n"}, 5},
		{"a partial line does not count yet", []string{"{\"AggregateRecounted\":2}\n{\"AggregateRecounted\":3}"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c emfcount.Capture
			for _, w := range tt.writes {
				if _, err := c.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.Recounted(); got != tt.want {
				t.Errorf("Recounted() = %d, want %d", got, tt.want)
			}
			c.Reset()
			if got := c.Recounted(); got != 0 {
				t.Errorf("after Reset, Recounted() = %d", got)
			}
		})
	}
}

func TestCaptureUnverified(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   int
	}{
		{"nothing written", nil, 0},
		{"no line carries it", []string{"{\"RecordsWritten\":3}\n{\"AggregateUnseen\":2,\"AggregateRecounted\":1}\n"}, 0},
		{"on the aggregates' line", []string{"{\"AggregateRecounted\":0,\"AggregateUnverified\":2}\n{\"RecordsWritten\":3}\n"}, 2},
		{"added up over lines", []string{"{\"AggregateUnverified\":1}\n{\"AggregateUnverified\":", "4}\n"}, 5},
		{"a partial line does not count yet", []string{"{\"AggregateUnverified\":2}\n{\"AggregateUnverified\":3}"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c emfcount.Capture
			for _, w := range tt.writes {
				if _, err := c.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.Unverified(); got != tt.want {
				t.Errorf("Unverified() = %d, want %d", got, tt.want)
			}
			c.Reset()
			if got := c.Unverified(); got != 0 {
				t.Errorf("after Reset, Unverified() = %d", got)
			}
		})
	}
}
