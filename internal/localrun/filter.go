package localrun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits of event filtering on a Kinesis event source mapping.
const (
	// MaxFilters is how many filters a mapping accepts without a quota increase.
	MaxFilters = 5
	// MaxFilterPatternLength is the longest pattern Lambda accepts, in characters.
	MaxFilterPatternLength = 4096
)

// filterSet is the compiled FilterCriteria of a mapping: a record is kept when any filter matches.
type filterSet []*patternNode

// compileFilters compiles the mapping's filter patterns, reporting every problem at once.
func compileFilters(patterns []string) (filterSet, error) {
	var errs []error
	if len(patterns) > MaxFilters {
		errs = append(errs, fmt.Errorf("%d filters: a mapping accepts at most %d", len(patterns), MaxFilters))
	}
	var fs filterSet
	for i, p := range patterns {
		if n := utf8.RuneCountInString(p); n > MaxFilterPatternLength {
			errs = append(errs, fmt.Errorf("filter %d: pattern of %d characters, at most %d", i+1, n, MaxFilterPatternLength))
			continue
		}
		node, err := compilePattern(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("filter %d: %w", i+1, err))
			continue
		}
		fs = append(fs, node)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return fs, nil
}

// keep reports whether a record whose data is data passes the filters: without filters every record does;
// otherwise its data must be JSON (valid UTF-8) and match at least one filter.
func (fs filterSet) keep(data []byte) bool {
	if len(fs) == 0 {
		return true
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false
	}
	event := map[string]any{"data": v}
	for _, f := range fs {
		if f.match(event) {
			return true
		}
	}
	return false
}

// patternNode is an object of a pattern: every field must match (AND), and at least one of each $or group.
type patternNode struct {
	fields []fieldPattern
	ors    [][]*patternNode
}

// fieldPattern is one key of a pattern object: a nested object or a list of matchers (any of which may match).
type fieldPattern struct {
	name     string
	nested   *patternNode
	matchers []matcher
}

// compilePattern parses one filter pattern. Kinesis mappings filter on `data` only.
func compilePattern(src string) (*patternNode, error) {
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("pattern is not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("pattern has data after its JSON object")
	}
	obj, ok := v.(map[string]any)
	if !ok || len(obj) == 0 {
		return nil, errors.New("pattern must be a non-empty JSON object")
	}
	if err := onlyData(obj); err != nil {
		return nil, err
	}
	return compileObject(obj, "")
}

// onlyData checks that a pattern's top level (and the top level of its $or branches) names only `data`.
func onlyData(obj map[string]any) error {
	for k, v := range obj {
		if k == "$or" {
			list, ok := v.([]any)
			if !ok {
				return errors.New("$or must be a list of pattern objects")
			}
			for _, b := range list {
				if bo, ok := b.(map[string]any); ok {
					if err := onlyData(bo); err != nil {
						return err
					}
				}
			}
			continue
		}
		if k != "data" {
			return fmt.Errorf("field %q: Kinesis event source mappings filter on data only", k)
		}
	}
	return nil
}

func compileObject(obj map[string]any, path string) (*patternNode, error) {
	n := &patternNode{}
	var errs []error
	for _, k := range sortedNames(obj) {
		v := obj[k]
		at := joinPath(path, k)
		if k == "$or" {
			list, ok := v.([]any)
			if !ok || len(list) < 2 {
				errs = append(errs, fmt.Errorf("%s: $or needs a list of at least two pattern objects", at))
				continue
			}
			var group []*patternNode
			for i, b := range list {
				bo, ok := b.(map[string]any)
				if !ok || len(bo) == 0 {
					errs = append(errs, fmt.Errorf("%s[%d]: not a non-empty pattern object", at, i))
					continue
				}
				sub, err := compileObject(bo, path)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				group = append(group, sub)
			}
			n.ors = append(n.ors, group)
			continue
		}
		switch tv := v.(type) {
		case map[string]any:
			if len(tv) == 0 {
				errs = append(errs, fmt.Errorf("%s: empty object", at))
				continue
			}
			sub, err := compileObject(tv, at)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			n.fields = append(n.fields, fieldPattern{name: k, nested: sub})
		case []any:
			if len(tv) == 0 {
				errs = append(errs, fmt.Errorf("%s: an empty list matches nothing (null is matched by [null])", at))
				continue
			}
			var ms []matcher
			for i, e := range tv {
				m, err := compileMatcher(e)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s[%d]: %w", at, i, err))
					continue
				}
				ms = append(ms, m)
			}
			n.fields = append(n.fields, fieldPattern{name: k, matchers: ms})
		default:
			errs = append(errs, fmt.Errorf("%s: a value must be in a list, as in [%s]", at, jsonText(v)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return n, nil
}

// match reports whether the object obj (a decoded JSON value) matches n.
func (n *patternNode) match(v any) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, f := range n.fields {
		if !f.match(obj) {
			return false
		}
	}
	for _, group := range n.ors {
		if !slices.ContainsFunc(group, func(b *patternNode) bool { return b.match(obj) }) {
			return false
		}
	}
	return true
}

func (f fieldPattern) match(obj map[string]any) bool {
	v, present := obj[f.name]
	if f.nested != nil {
		if !present {
			return false
		}
		if list, ok := v.([]any); ok { // an array of objects matches when one element does
			for _, e := range list {
				if f.nested.match(e) {
					return true
				}
			}
			return false
		}
		return f.nested.match(v)
	}
	leaves := leafValues(v, present)
	for _, m := range f.matchers {
		if m.match(leaves) {
			return true
		}
	}
	return false
}

// leafValues returns the scalar values of a field: the value itself, or the scalars of an array. An absent field,
// an object and an empty array have none.
func leafValues(v any, present bool) []any {
	if !present {
		return nil
	}
	switch tv := v.(type) {
	case map[string]any:
		return nil
	case []any:
		var out []any
		for _, e := range tv {
			switch e.(type) {
			case map[string]any, []any:
			default:
				out = append(out, e)
			}
		}
		return out
	default:
		return []any{v}
	}
}

// matcherKind is a comparison of the filter rule syntax.
type matcherKind int

const (
	matchExact           matcherKind = iota // "x", 5, true, null
	matchPrefix                             // {"prefix": "x"}
	matchPrefixFold                         // {"prefix": {"equals-ignore-case": "x"}}
	matchSuffix                             // {"suffix": "x"}
	matchSuffixFold                         // {"suffix": {"equals-ignore-case": "x"}}
	matchEqualsFold                         // {"equals-ignore-case": "x"}
	matchAnythingBut                        // {"anything-but": "x" | 5 | ["x", 5]}
	matchNumeric                            // {"numeric": [">", 0, "<=", 5]}
	matchExists                             // {"exists": true|false}
	matchAnythingButFold                    // {"anything-but": {"equals-ignore-case": "x" | ["x"]}}
)

// matcher is one element of a leaf list.
type matcher struct {
	kind   matcherKind
	values []any    // exact and anything-but: the values (string, float64, bool, nil)
	text   string   // prefix, suffix, equals-ignore-case
	texts  []string // anything-but equals-ignore-case
	exists bool
	ops    []numericOp
}

type numericOp struct {
	op    string
	value float64
}

func compileMatcher(e any) (matcher, error) {
	switch tv := e.(type) {
	case nil, string, bool:
		return matcher{kind: matchExact, values: []any{tv}}, nil
	case json.Number:
		f, err := number(tv)
		if err != nil {
			return matcher{}, err
		}
		return matcher{kind: matchExact, values: []any{f}}, nil
	case []any:
		return matcher{}, errors.New("a list inside a list is not a comparison")
	case map[string]any:
		if len(tv) != 1 {
			return matcher{}, fmt.Errorf("a comparison object has exactly one operator, got %s", jsonText(tv))
		}
		for op, arg := range tv {
			return compileOperator(op, arg)
		}
	}
	return matcher{}, fmt.Errorf("unexpected value %s", jsonText(e))
}

func compileOperator(op string, arg any) (matcher, error) {
	switch op {
	case "prefix", "suffix":
		fold, foldKind := matchPrefixFold, matchPrefix
		if op == "suffix" {
			fold, foldKind = matchSuffixFold, matchSuffix
		}
		switch a := arg.(type) {
		case string:
			return matcher{kind: foldKind, text: a}, nil
		case map[string]any:
			if s, ok := a["equals-ignore-case"].(string); ok && len(a) == 1 {
				return matcher{kind: fold, text: s}, nil
			}
		}
		return matcher{}, fmt.Errorf("%s takes a string or {\"equals-ignore-case\": string}, got %s", op, jsonText(arg))
	case "equals-ignore-case":
		s, ok := arg.(string)
		if !ok {
			return matcher{}, fmt.Errorf("equals-ignore-case takes a string, got %s", jsonText(arg))
		}
		return matcher{kind: matchEqualsFold, text: s}, nil
	case "anything-but":
		return compileAnythingBut(arg)
	case "numeric":
		return compileNumeric(arg)
	case "exists":
		b, ok := arg.(bool)
		if !ok {
			return matcher{}, fmt.Errorf("exists takes true or false, got %s", jsonText(arg))
		}
		return matcher{kind: matchExists, exists: b}, nil
	case "wildcard", "cidr":
		return matcher{}, fmt.Errorf("operator %q is not supported by Lambda event filtering", op)
	}
	return matcher{}, fmt.Errorf("unknown operator %q", op)
}

func compileAnythingBut(arg any) (matcher, error) {
	scalar := func(v any) (any, error) {
		switch tv := v.(type) {
		case string:
			return tv, nil
		case json.Number:
			return number(tv)
		}
		return nil, fmt.Errorf("anything-but compares strings and numbers, got %s", jsonText(v))
	}
	switch a := arg.(type) {
	case []any:
		if len(a) == 0 {
			return matcher{}, errors.New("anything-but needs at least one value")
		}
		m := matcher{kind: matchAnythingBut}
		for _, v := range a {
			s, err := scalar(v)
			if err != nil {
				return matcher{}, err
			}
			m.values = append(m.values, s)
		}
		return m, nil
	case map[string]any:
		if v, ok := a["equals-ignore-case"]; ok && len(a) == 1 {
			m := matcher{kind: matchAnythingButFold}
			switch tv := v.(type) {
			case string:
				m.texts = []string{tv}
			case []any:
				for _, e := range tv {
					s, ok := e.(string)
					if !ok {
						return matcher{}, fmt.Errorf("anything-but equals-ignore-case takes strings, got %s", jsonText(e))
					}
					m.texts = append(m.texts, s)
				}
			}
			if len(m.texts) == 0 {
				return matcher{}, fmt.Errorf("anything-but equals-ignore-case takes a string or a list of strings, got %s", jsonText(v))
			}
			return m, nil
		}
		return matcher{}, fmt.Errorf("anything-but %s is not supported here (only values and equals-ignore-case)", jsonText(a))
	default:
		s, err := scalar(a)
		if err != nil {
			return matcher{}, err
		}
		return matcher{kind: matchAnythingBut, values: []any{s}}, nil
	}
}

func compileNumeric(arg any) (matcher, error) {
	list, ok := arg.([]any)
	if !ok || (len(list) != 2 && len(list) != 4) {
		return matcher{}, fmt.Errorf("numeric takes [op, number] or [op, number, op, number], got %s", jsonText(arg))
	}
	m := matcher{kind: matchNumeric}
	for i := 0; i < len(list); i += 2 {
		op, ok := list[i].(string)
		n, isNum := list[i+1].(json.Number)
		if !ok || !isNum {
			return matcher{}, fmt.Errorf("numeric takes operator-number pairs, got %s", jsonText(arg))
		}
		switch op {
		case "=", "<", "<=", ">", ">=":
		default:
			return matcher{}, fmt.Errorf("numeric operator %q is not one of =, <, <=, >, >=", op)
		}
		f, err := number(n)
		if err != nil {
			return matcher{}, err
		}
		m.ops = append(m.ops, numericOp{op: op, value: f})
	}
	if len(m.ops) == 2 {
		lo, hi := m.ops[0], m.ops[1]
		if (lo.op != ">" && lo.op != ">=") || (hi.op != "<" && hi.op != "<=") || lo.value >= hi.value {
			return matcher{}, fmt.Errorf("numeric range %s must be a lower bound (> or >=) then a greater upper bound (< or <=)", jsonText(arg))
		}
	}
	return m, nil
}

func number(n json.Number) (float64, error) {
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("number %s is out of range", n)
	}
	return f, nil
}

// match reports whether the matcher accepts a field with these leaf values (none: absent, an object or empty).
func (m matcher) match(leaves []any) bool {
	if m.kind == matchExists {
		return (len(leaves) > 0) == m.exists
	}
	for _, v := range leaves {
		if m.matchOne(normalize(v)) {
			return true
		}
	}
	return false
}

// normalize turns decoded numbers into float64.
func normalize(v any) any {
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		if err != nil {
			return n.String() // out of float64 range: compare as text, never equal to a pattern number
		}
		return f
	}
	return v
}

func (m matcher) matchOne(v any) bool {
	s, isString := v.(string)
	switch m.kind {
	case matchExact:
		return v == m.values[0]
	case matchPrefix:
		return isString && strings.HasPrefix(s, m.text)
	case matchSuffix:
		return isString && strings.HasSuffix(s, m.text)
	case matchPrefixFold:
		return isString && len(s) >= len(m.text) && strings.EqualFold(s[:len(m.text)], m.text)
	case matchSuffixFold:
		return isString && len(s) >= len(m.text) && strings.EqualFold(s[len(s)-len(m.text):], m.text)
	case matchEqualsFold:
		return isString && strings.EqualFold(s, m.text)
	case matchAnythingBut:
		for _, x := range m.values {
			if v == x {
				return false
			}
		}
		return true
	case matchAnythingButFold:
		if !isString {
			return true
		}
		for _, x := range m.texts {
			if strings.EqualFold(s, x) {
				return false
			}
		}
		return true
	case matchNumeric:
		f, ok := v.(float64)
		if !ok {
			return false
		}
		for _, op := range m.ops {
			if !compare(f, op) {
				return false
			}
		}
		return true
	}
	return false
}

func compare(f float64, op numericOp) bool {
	switch op.op {
	case "=":
		return f == op.value
	case "<":
		return f < op.value
	case "<=":
		return f <= op.value
	case ">":
		return f > op.value
	case ">=":
		return f >= op.value
	}
	return false
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func sortedNames(obj map[string]any) []string {
	return slices.Sorted(maps.Keys(obj))
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
