//go:build !kdp_noexpr

package processor

import (
	"encoding/json"
	"reflect"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fastSchema is a conservative, allocation-free pre-check of a compiled JSON Schema for the keywords most schemas
// use (type, enum, const, required, properties, additionalProperties, items, string lengths, pattern, format, item
// counts). It only ever answers "certainly valid": when it cannot tell (a value it does not understand, a number in
// an enum) or the value looks invalid, the record goes through jsonschema's Schema.Validate, which decides and
// produces the error. So results and error messages are the library's; only valid records skip its per-value
// allocations. A schema using any other keyword (reference, combinator, numeric bound, ...) gets no fastSchema.
type fastSchema struct {
	sch *jsonschema.Schema

	types    uint8 // fastType bits; 0: any type
	enum     []any // nil: no enum; only string, bool and nil values are matched here
	hasEnum  bool
	constVal any
	hasConst bool

	required   []string
	properties map[string]*fastSchema
	additional *fastSchema // additionalProperties as a schema
	noExtra    bool        // additionalProperties: false

	items *fastSchema // items (draft < 2020) or items (2020-12) as one schema for every element
}

// fastSchemaFields are the Schema fields a fastSchema handles or that do not affect validation.
var fastSchemaFields = map[string]bool{
	"DraftVersion": true, "Location": true, "ID": true, "Anchor": true,
	"Bool": true, "Types": true, "Enum": true, "Const": true, "Format": true,
	"Required": true, "Properties": true, "AdditionalProperties": true,
	"MinItems": true, "MaxItems": true, "Items": true, "Items2020": true,
	"MinLength": true, "MaxLength": true, "Pattern": true,
	"Title": true, "Description": true, "Default": true, "Comment": true, "ReadOnly": true, "WriteOnly": true,
	"Examples": true, "Deprecated": true,
}

// newFastSchema returns the fastSchema of s, or nil if s uses a keyword it does not handle.
func newFastSchema(s *jsonschema.Schema) *fastSchema {
	return buildFastSchema(s, 0)
}

func buildFastSchema(s *jsonschema.Schema, depth int) *fastSchema {
	if s == nil || depth > 64 {
		return nil
	}
	rv := reflect.ValueOf(s).Elem()
	rt := rv.Type()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if !f.IsExported() || fastSchemaFields[f.Name] {
			continue
		}
		if !rv.Field(i).IsZero() {
			return nil
		}
	}
	fs := &fastSchema{sch: s}
	if s.Types != nil {
		for _, t := range s.Types.ToStrings() {
			fs.types |= fastTypeBits[t]
		}
	}
	if s.Enum != nil {
		fs.hasEnum = true
		fs.enum = s.Enum.Values
	}
	if s.Const != nil {
		fs.hasConst = true
		fs.constVal = *s.Const
	}
	fs.required = s.Required
	if len(s.Properties) > 0 {
		fs.properties = make(map[string]*fastSchema, len(s.Properties))
		for name, ps := range s.Properties {
			if fs.properties[name] = buildFastSchema(ps, depth+1); fs.properties[name] == nil {
				return nil
			}
		}
	}
	switch a := s.AdditionalProperties.(type) {
	case nil:
	case bool:
		fs.noExtra = !a
	case *jsonschema.Schema:
		if fs.additional = buildFastSchema(a, depth+1); fs.additional == nil {
			return nil
		}
	default:
		return nil
	}
	items := s.Items2020
	if s.DraftVersion < 2020 {
		if s.Items2020 != nil {
			return nil
		}
		switch it := s.Items.(type) {
		case nil:
		case *jsonschema.Schema:
			items = it
		default:
			return nil
		}
	} else if s.Items != nil {
		return nil
	}
	if items != nil {
		if fs.items = buildFastSchema(items, depth+1); fs.items == nil {
			return nil
		}
	}
	return fs
}

// valid reports whether v certainly satisfies the schema; false means "ask the library".
func (fs *fastSchema) valid(v any) bool {
	s := fs.sch
	if s.Bool != nil {
		return *s.Bool
	}
	t := fastTypeOf(v)
	if t == 0 {
		return false
	}
	if fs.types != 0 && fs.types&t == 0 && !(t == fastNumber && fs.types&fastInteger != 0 && fastIsInteger(v)) {
		return false
	}
	if fs.hasConst && !fastEquals(v, fs.constVal) {
		return false
	}
	if fs.hasEnum {
		matched := false
		for _, e := range fs.enum {
			if fastEquals(v, e) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	if s.Format != nil && s.Format.Validate(v) != nil {
		return false
	}
	switch v := v.(type) {
	case map[string]any:
		for _, name := range fs.required {
			if _, ok := v[name]; !ok {
				return false
			}
		}
		for name, pv := range v {
			if ps, ok := fs.properties[name]; ok {
				if !ps.valid(pv) {
					return false
				}
			} else if fs.noExtra {
				return false
			} else if fs.additional != nil && !fs.additional.valid(pv) {
				return false
			}
		}
	case []any:
		if s.MinItems != nil && len(v) < *s.MinItems || s.MaxItems != nil && len(v) > *s.MaxItems {
			return false
		}
		if fs.items != nil {
			for _, e := range v {
				if !fs.items.valid(e) {
					return false
				}
			}
		}
	case string:
		if s.MinLength != nil || s.MaxLength != nil {
			n := utf8.RuneCountInString(v)
			if s.MinLength != nil && n < *s.MinLength || s.MaxLength != nil && n > *s.MaxLength {
				return false
			}
		}
		if s.Pattern != nil && !s.Pattern.MatchString(v) {
			return false
		}
	}
	return true
}

// JSON types as bits.
const (
	fastNull uint8 = 1 << iota
	fastBoolean
	fastNumber
	fastInteger
	fastString
	fastArray
	fastObject
)

var fastTypeBits = map[string]uint8{"null": fastNull, "boolean": fastBoolean, "number": fastNumber,
	"integer": fastInteger, "string": fastString, "array": fastArray, "object": fastObject}

// fastTypeOf is the JSON type of the values the processor decodes, 0 for any other (the library decides those).
func fastTypeOf(v any) uint8 {
	switch v.(type) {
	case nil:
		return fastNull
	case bool:
		return fastBoolean
	case string:
		return fastString
	case json.Number:
		return fastNumber
	case map[string]any:
		return fastObject
	case []any:
		return fastArray
	}
	return 0
}

// fastIsInteger reports whether a json.Number is certainly an integer: an optional minus sign and digits.
func fastIsInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok || len(n) == 0 {
		return false
	}
	s := string(n)
	if s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// fastEquals reports whether v certainly equals the enum or const value e; false for numbers, objects and arrays.
func fastEquals(v, e any) bool {
	switch v := v.(type) {
	case nil:
		return e == nil
	case bool:
		b, ok := e.(bool)
		return ok && b == v
	case string:
		s, ok := e.(string)
		return ok && s == v
	}
	return false
}
