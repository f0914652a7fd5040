package processor

import (
	"strings"
	"testing"
)

// fuzzSeeds are payloads next to which the fuzz targets start: valid and hostile JSON (numbers at DynamoDB's
// limits, empty names, deep nesting, invalid UTF-8, unpaired surrogates, reserved and metadata names).
var fuzzSeeds = []string{
	`{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`,
	`{"a": 1e400}`, `{"a": 123456789012345678901234567890123456789}`, `{"": 1}`, `{"a": {"": null}}`,
	`null`, `[]`, `"s"`, `12`, `{"a":1} trailing`, "\xff\xfe", ``, `{"id": "x", "poison": true}`,
	strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40), `{"a": [1, 2, {"b": [true, false, null]}]}`,
	`{"n": -0.0e-1000}`, `{"n": 0.00000000000000000000000000000000000000000000000001}`,
	`{"s": "\ud800"}`, `{"s": "é", "t": "\u00e9"}`, `{"_kpos": "AAAA"}`, `{"_kinesisSequenceNumber": "99999999999999999999999999999999999999999999999999999999999999"}`,
	`{"x": 1, "r": {"deep": [1.50, "1.50"]}, "ttl": "no"}`, `{"id": 7, "n": 1.0, "m": 10e-1}`,
}

// FuzzHandle feeds a payload (in plain records and, with shape, KPL user records), a partition key, a batch shape
// and a configuration with faults (mode) through Handle, writing with the real SDK client to the stand-in answering
// as DynamoDB does on the wire, and checks the outcome from the stand-in's own storage (runCase): Handle must not
// panic nor report more than one known sequence number, and every acknowledged record must be stored exactly once,
// value for value, in the data table or in the error table. The committed corpus (testdata/fuzz/FuzzHandle) is
// replayed against dynalite by the integration tier.
func FuzzHandle(f *testing.F) {
	for i, seed := range fuzzSeeds {
		f.Add([]byte(seed), "pk", byte(i%8), byte(i*37))
	}
	f.Fuzz(func(t *testing.T, payload []byte, pk string, shape, mode byte) {
		runCase(t, handleCase{payload: payload, pk: pk, shape: shape, mode: mode}, standinBackend(mode))
	})
}
