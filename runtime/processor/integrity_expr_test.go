//go:build !kdp_noexpr

package processor

import (
	"strings"
	"testing"
)

// TestLogsNeverQuoteValuesExpr: schema and expression failures quote values in the error table's reason, never in
// the logs (issue 12, finding 4).
func TestLogsNeverQuoteValuesExpr(t *testing.T) {
	schema := Config{Transform: &TransformConfig{Schema: []byte(`{"type":"object","properties":{"ok":{"type":"number"},"code":{"type":"string","pattern":"^[0-9]+$"}}}`)}}
	filter := Config{Transform: &TransformConfig{Filter: `ok == 1 || int(code) > 0`}}
	computed := Config{Transform: &TransformConfig{Computed: []ComputedAttribute{{Name: "c", Expression: `ok == 1 ? 1 : int(code)`}}}}
	checkNoValuesLogged(t, []hostileCase{
		{name: "schema pattern", cfg: schema, payload: `{"code":"MARKER-SCHEMA-77"}`, marker: "MARKER-SCHEMA-77", inReason: true},
		{name: "filter", cfg: filter, payload: `{"code":"MARKER-FILTER-88"}`, marker: "MARKER-FILTER-88", inReason: true},
		{name: "computed", cfg: computed, payload: `{"code":"MARKER-COMPUTED-99"}`, marker: "MARKER-COMPUTED-99", inReason: true},
	}, nil)
}

// TestExpressionMakesInvalidUTF8 (issue 12, finding 1): an expression can make a string that is not valid UTF-8 out
// of a valid one (slicing "é" between its bytes); the item is checked as produced, so the record fails permanently
// instead of being stored with U+FFFD.
func TestExpressionMakesInvalidUTF8(t *testing.T) {
	cfg := Config{Transform: &TransformConfig{Computed: []ComputedAttribute{{Name: "initial", Expression: `name[0:1]`}}}}
	out := runBatch(t, cfg, nil, payloads{`{"name":"abc"}`, `{"name":"é"}`})
	if out.failure != "" {
		t.Fatalf("reported %s", out.failure)
	}
	if got := out.reason(id(1)); !strings.Contains(got, "attribute initial: string is not valid UTF-8 (byte 0 of 1)") {
		t.Errorf("reason %q", got)
	}
	if len(out.dataItems(seq(0), 0)) != 1 || len(out.dataItems(seq(1), 0)) != 0 {
		t.Errorf("data table holds %d items, want only record 0's", len(out.db.tables[testTable]))
	}
}

// TestSchemaFailureLogForm: schemaFailure keeps the library's full messages for the error table and names only the
// location and the keyword for logs.
func TestSchemaFailureLogForm(t *testing.T) {
	sch, err := compileSchema([]byte(`{"type":"object","properties":{"code":{"type":"string","pattern":"^[0-9]+$"},"n":{"type":"integer"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	data, err := decodeObject([]byte(`{"code":"MARKER-PATTERN-5","n":"MARKER-TYPE-6"}`))
	if err != nil {
		t.Fatal(err)
	}
	verr := sch.Validate(data)
	if verr == nil {
		t.Fatal("the payload matches the schema")
	}
	got := schemaFailure(verr)
	if !IsPermanent(got) || got.Error() != schemaReason(verr) {
		t.Errorf("full reason %q, want %q (permanent)", got, schemaReason(verr))
	}
	if want := "does not match the schema: at '/code': pattern; at '/n': type"; logReason(got) != want {
		t.Errorf("log form %q, want %q", logReason(got), want)
	}
}
