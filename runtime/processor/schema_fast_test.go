//go:build !kdp_noexpr

package processor

import (
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestFastSchema checks that the schema pre-check never accepts a value the library rejects, that it accepts the
// common valid cases (so it is in use) and that it steps aside for schemas with keywords it does not handle.
func TestFastSchema(t *testing.T) {
	schemas := []struct {
		schema string
		fast   bool // whether a fastSchema is built
	}{
		{`true`, true},
		{`false`, true},
		{`{}`, true},
		{`{"type": "object", "required": ["Timestamp", "Value", "Category"], "properties": {
			"Timestamp": {"type": "string"}, "Value": {"type": "integer"}, "Category": {"enum": ["A", "B", "C"]}}}`, true},
		{`{"properties": {"Timestamp": {"type": "string", "format": "date-time"}, "Value": {"type": ["integer", "null"]}}}`, true},
		{`{"properties": {"Value": {"type": "number"}, "Tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 3}, "minItems": 1, "maxItems": 2}}}`, true},
		{`{"$schema": "http://json-schema.org/draft-07/schema#", "properties": {"Tags": {"items": {"type": "string", "pattern": "^[a-z]+$"}}}}`, true},
		{`{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "properties": {"Value": {"type": "integer"}}, "additionalProperties": false}`, true},
		{`{"additionalProperties": {"type": ["string", "boolean"]}, "properties": {"n": {"const": null}, "b": {"const": true}}}`, true},
		{`{"properties": {"Value": {"enum": [1, 2, "x", null, false]}}}`, true},
		{`{"properties": {"Value": {"const": 81}}}`, true},
		{`{"properties": {"Value": {"minimum": 0}}}`, false},
		{`{"properties": {"Value": {"$ref": "#/$defs/v"}}, "$defs": {"v": {"type": "integer"}}}`, false},
		{`{"anyOf": [{"required": ["Value"]}, {"required": ["Category"]}]}`, false},
		{`{"unevaluatedProperties": false, "properties": {"Value": {}}}`, false},
		{`{"prefixItems": [{"type": "string"}]}`, false},
		{`{"properties": {"Tags": {"uniqueItems": true}}}`, false},
	}
	payloads := []string{
		`{"Timestamp": "2024-06-01T12:00:00Z", "Value": 81, "Category": "A"}`,
		`{"Timestamp": "2024-06-01T12:00:00Z", "Value": 81, "Category": "A", "Note": "x"}`,
		`{"Timestamp": "yesterday", "Value": 81.5, "Category": "D"}`,
		`{"Timestamp": 5, "Value": -3, "Category": "B"}`,
		`{"Value": 1.0e2, "Category": "C", "Timestamp": "t"}`,
		`{"Value": 1e2}`, `{"Value": 81.5}`, `{"Value": -0.5e-3}`, `{"Value": null}`, `{"Value": 1}`, `{"Value": 2.0}`, `{"Value": "x"}`, `{"Value": false}`, `{"Value": 81}`,
		`{"Tags": []}`, `{"Tags": ["a"]}`, `{"Tags": ["a", "bb"]}`, `{"Tags": ["a", "bb", "c"]}`, `{"Tags": ["", "a"]}`,
		`{"Tags": ["abcd"]}`, `{"Tags": ["Ab"]}`, `{"Tags": ["日本語"]}`, `{"Tags": [1]}`, `{"Tags": "a"}`,
		`{"n": null, "b": true, "s": "x", "t": false}`, `{"n": 0, "b": "true"}`, `{"x": 1}`, `{"x": {"y": []}}`,
		`{}`, `{"Category": "A"}`,
	}
	for _, sc := range schemas {
		sch, err := compileSchema([]byte(sc.schema))
		if err != nil {
			t.Fatalf("%s: %v", sc.schema, err)
		}
		fs := newFastSchema(sch)
		if (fs != nil) != sc.fast {
			t.Errorf("%s: fast schema built %v, want %v", sc.schema, fs != nil, sc.fast)
		}
		if fs == nil {
			continue
		}
		accepted := 0
		for _, p := range payloads {
			data, err := decodeObject([]byte(p))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			libErr := sch.Validate(data)
			if fs.valid(data) {
				accepted++
				if libErr != nil {
					t.Errorf("schema %s, payload %s: pre-check accepts, library says %v", sc.schema, p, libErr)
				}
			}
		}
		if sc.schema != `false` && accepted == 0 {
			t.Errorf("schema %s: pre-check accepts nothing", sc.schema)
		}
	}
}

// FuzzFastSchema looks for a payload the pre-check accepts and the library rejects, under schemas exercising every
// keyword the pre-check handles.
func FuzzFastSchema(f *testing.F) {
	schemas := []string{
		`{"type": "object", "required": ["Timestamp", "Value", "Category"], "properties": {
			"Timestamp": {"type": "string", "format": "date-time"}, "Value": {"type": "integer"}, "Category": {"enum": ["A", "B", "C"]}}}`,
		`{"properties": {"Value": {"type": ["number", "null"]}, "Tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^[a-z]+$"}, "minItems": 1, "maxItems": 2}}}`,
		`{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "properties": {"Value": {"type": "integer"}}, "additionalProperties": false}`,
		`{"additionalProperties": {"type": ["string", "boolean"]}, "properties": {"n": {"const": null}, "b": {"const": true}, "e": {"enum": [1, "x", null]}}}`,
	}
	var compiled []*jsonschema.Schema
	for _, s := range schemas {
		sch, err := compileSchema([]byte(s))
		if err != nil {
			f.Fatalf("%s: %v", s, err)
		}
		if newFastSchema(sch) == nil {
			f.Fatalf("%s: no pre-check built", s)
		}
		compiled = append(compiled, sch)
	}
	for _, seed := range []string{
		`{"Timestamp": "2024-06-01T12:00:00Z", "Value": 81, "Category": "A"}`, `{"Value": 2.0}`, `{"Value": 1e2}`,
		`{"Tags": ["ab", "c"]}`, `{"Tags": ["日本"]}`, `{"n": null, "b": true, "e": 1}`, `{"e": 1.0}`, `{"Value": -0}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		data, err := decodeObject(payload)
		if err != nil {
			return
		}
		for i, sch := range compiled {
			if newFastSchema(sch).valid(data) {
				if err := sch.Validate(data); err != nil {
					t.Fatalf("schema %d, payload %s: pre-check accepts, library says %v", i, payload, err)
				}
			}
		}
	})
}
