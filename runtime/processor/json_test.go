package processor

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceDecode decodes like the processor must: one JSON object, numbers as json.Number, by encoding/json.
func referenceDecode(raw []byte) (map[string]any, bool) {
	if !utf8.Valid(raw) || !json.Valid(raw) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	// encoding/json turns an unpaired surrogate escape into U+FFFD; the processor refuses it. Any U+FFFD in the
	// result that the payload does not spell (literally or as an escape after an even run of backslashes) is one.
	spelled := strings.Count(string(raw), "\uFFFD") + escapedFFFD(raw)
	if countFFFD(m) > spelled {
		return nil, false
	}
	return m, true
}

// escapedFFFD counts the \ufffd escapes (any case) of raw that are not themselves escaped: preceded by an even
// run of backslashes.
func escapedFFFD(raw []byte) int {
	n := 0
	for i := 0; i+6 <= len(raw); i++ {
		if raw[i] != '\\' || raw[i+1] != 'u' || !strings.EqualFold(string(raw[i+2:i+6]), "fffd") {
			continue
		}
		run := 0
		for j := i - 1; j >= 0 && raw[j] == '\\'; j-- {
			run++
		}
		if run%2 == 0 {
			n++
		}
	}
	return n
}

// countFFFD counts U+FFFD in the keys and strings of a decoded JSON value.
func countFFFD(v any) int {
	switch x := v.(type) {
	case string:
		return strings.Count(x, "\uFFFD")
	case map[string]any:
		n := 0
		for k, e := range x {
			n += strings.Count(k, "\uFFFD") + countFFFD(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += countFFFD(e)
		}
		return n
	}
	return 0
}

// FuzzDecodeObject checks the hand-written parser against encoding/json.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `{"a":"\u00e9\ud83d\ude00\ud800x\\\/\b\f\n\r\t\""}`, `{"a":[1,-0.5e+3,true,false,null,{"b":[]}]}`,
		`{"a":1,"a":2}`, ` {"a" : { } } `, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":"\x01"}`, `{"a":tru}`, `{"a":1}}`,
		`[]`, `"s"`, `{"\ud800":"\udc00"}`, `{"a":"\ud800\ufffd\\ufffd\uFFFD�"}`, `{"a":"\udfff\ud800"}`, `{"a":"\u12"}`, `{"a":1e}`, `{,}`, `{"a":1,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := decodeObject(raw)
		want, ok := referenceDecode(raw)
		if ok != (err == nil) {
			t.Fatalf("decodeObject(%q) error %v, encoding/json accepts: %v", raw, err, ok)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeObject(%q) = %#v, encoding/json gives %#v", raw, got, want)
		}
	})
}

func TestDecodeDepth(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000)
	if _, err := decodeObject([]byte(deep)); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("err = %v", err)
	}
}
