package processor

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxParseDepth bounds how deeply a payload may nest before decoding gives up (DynamoDB stops at 32 anyway).
const maxParseDepth = 1000

// jsonParser decodes JSON (RFC 8259) into the values encoding/json produces with UseNumber: map[string]any, []any,
// string, json.Number, bool and nil. It is a small recursive-descent parser: several times faster than
// encoding/json's reflection-based decoder, with fewer allocations. Input must be valid UTF-8 (checked by the caller).
type jsonParser struct {
	b     []byte
	i     int
	depth int
}

// errorf returns a parse error naming no value: the message and the offset.
func (p *jsonParser) errorf(format string, args ...any) error {
	return safeReason(fmt.Sprintf(format+" at offset %d", append(args, p.i)...))
}

func (p *jsonParser) unexpected() error {
	if p.i >= len(p.b) {
		return safeReason("unexpected end of input")
	}
	r, _ := utf8.DecodeRune(p.b[p.i:])
	return reason(fmt.Sprintf("invalid character at offset %d", p.i), fmt.Sprintf("invalid character %q at offset %d", r, p.i))
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (any, error) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.unexpected()
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.unexpected()
}

func (p *jsonParser) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		for k := 0; k < len(lit) && p.i < len(p.b) && p.b[p.i] == lit[k]; k++ {
			p.i++
		}
		return p.unexpected()
	}
	p.i += len(lit)
	return nil
}

func (p *jsonParser) object() (map[string]any, error) {
	if p.depth++; p.depth > maxParseDepth {
		return nil, p.errorf("nested more than %d levels", maxParseDepth)
	}
	p.i++ // '{'
	m := make(map[string]any)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.depth--
		return m, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.unexpected()
		}
		k, err := p.string()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.unexpected()
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		if done, err := p.separator('}'); done || err != nil {
			return m, err
		}
	}
}

func (p *jsonParser) array() ([]any, error) {
	if p.depth++; p.depth > maxParseDepth {
		return nil, p.errorf("nested more than %d levels", maxParseDepth)
	}
	p.i++ // '['
	l := []any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return l, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		if done, err := p.separator(']'); done || err != nil {
			return l, err
		}
	}
}

// separator consumes what follows a member of an object or array: a comma (more members follow) or the closing
// bracket (done, one level up). Anything else is an error.
func (p *jsonParser) separator(closing byte) (done bool, err error) {
	p.ws()
	if p.i >= len(p.b) {
		return false, p.unexpected()
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, nil
	case closing:
		p.i++
		p.depth--
		return true, nil
	}
	return false, p.unexpected()
}

func (p *jsonParser) number() (json.Number, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case digits() == 0:
		return "", p.unexpected()
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return "", p.unexpected()
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return "", p.unexpected()
		}
	}
	return json.Number(p.b[start:p.i]), nil
}

// string decodes the string starting at the opening quote at p.i.
func (p *jsonParser) string() (string, error) {
	p.i++ // '"'
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' {
			return p.escapedString(start)
		}
		if c < 0x20 {
			return "", p.unexpected()
		}
		p.i++
	}
	return "", p.unexpected()
}

// escapedString continues decoding a string that holds escapes, from its first escape at p.i.
func (p *jsonParser) escapedString(start int) (string, error) {
	buf := make([]byte, 0, p.i-start+16)
	buf = append(buf, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.unexpected()
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++ // '\\'
		if p.i >= len(p.b) {
			return "", p.unexpected()
		}
		switch e := p.b[p.i]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4(p.i + 1)
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			p.i += 4
			if utf16.IsSurrogate(r) {
				// A valid pair makes one rune. An unpaired surrogate is not a character: encoding/json turns it
				// into U+FFFD, which would make different payloads (and keys) equal; the record fails instead.
				r2, ok := rune(-1), false
				if p.i+2 < len(p.b) && p.b[p.i+1] == '\\' && p.b[p.i+2] == 'u' {
					r2, ok = p.hex4(p.i + 3)
				}
				dec := utf16.DecodeRune(r, r2)
				if !ok || dec == utf8.RuneError {
					return "", p.errorf("a \\u escape is an unpaired UTF-16 surrogate, not a character")
				}
				r = dec
				p.i += 6
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.unexpected()
		}
		p.i++
	}
	return "", p.unexpected()
}

func (p *jsonParser) hex4(at int) (rune, bool) {
	if at+4 > len(p.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[at:at+4]), 16, 32)
	return rune(v), err == nil
}
