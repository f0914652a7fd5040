package dynamostandin

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A condition expression, as far as the stand-in evaluates them: top-level attributes (a name or a #placeholder),
// values (:placeholders), the comparators = <> < <= > >=, the functions attribute_exists, attribute_not_exists and
// begins_with, AND, OR, NOT and parentheses, with DynamoDB's precedence (NOT, then AND, then OR). Comparisons and
// begins_with follow DynamoDB: operands of different types (or a missing attribute) make them false; strings and
// binaries compare byte by byte, numbers by value. Anything else is a ValidationException.

type condToken struct {
	kind string // "name", "value", "op", "(", ")", ",", "word"
	text string
}

func lexCondition(s string) ([]condToken, error) {
	var out []condToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == ',':
			out = append(out, condToken{kind: string(c)})
			i++
		case c == '<' || c == '>' || c == '=':
			j := i + 1
			if j < len(s) && (s[j] == '=' || c == '<' && s[j] == '>') {
				j++
			}
			out = append(out, condToken{kind: "op", text: s[i:j]})
			i = j
		case c == '#' || c == ':' || isWordByte(c):
			j := i + 1
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			kind := "word"
			switch c {
			case '#':
				kind = "name"
			case ':':
				kind = "value"
			}
			out = append(out, condToken{kind: kind, text: s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("invalid ConditionExpression: syntax error at %q", s[i:])
		}
	}
	return out, nil
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// condParser evaluates a condition expression against an item while parsing it.
type condParser struct {
	toks   []condToken
	i      int
	names  map[string]string
	values map[string]types.AttributeValue
	item   Item // the item the table holds, nil for none
	used   map[string]bool
}

// evalCondition reports whether expr holds for old (the item the table holds under the key, nil for none).
func evalCondition(expr string, names map[string]string, values map[string]types.AttributeValue, old Item) (bool, error) {
	toks, err := lexCondition(expr)
	if err != nil {
		return false, err
	}
	p := &condParser{toks: toks, names: names, values: values, item: old, used: map[string]bool{}}
	ok, err := p.or()
	if err != nil {
		return false, err
	}
	if p.i != len(p.toks) {
		return false, fmt.Errorf("invalid ConditionExpression: unexpected token %q", p.toks[p.i].text+p.toks[p.i].kind)
	}
	for k := range names {
		if !p.used[k] {
			return false, fmt.Errorf("value provided in ExpressionAttributeNames unused in expressions: keys: {%s}", k)
		}
	}
	for k := range values {
		if !p.used[k] {
			return false, fmt.Errorf("value provided in ExpressionAttributeValues unused in expressions: keys: {%s}", k)
		}
	}
	return ok, nil
}

func (p *condParser) peek() condToken {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return condToken{}
}

func (p *condParser) word(w string) bool {
	t := p.peek()
	if t.kind == "word" && strings.EqualFold(t.text, w) {
		p.i++
		return true
	}
	return false
}

func (p *condParser) expect(kind string) error {
	if p.peek().kind != kind {
		return fmt.Errorf("invalid ConditionExpression: expected %s", kind)
	}
	p.i++
	return nil
}

func (p *condParser) or() (bool, error) {
	v, err := p.and()
	for err == nil && p.word("OR") {
		var r bool
		r, err = p.and()
		v = v || r
	}
	return v, err
}

func (p *condParser) and() (bool, error) {
	v, err := p.not()
	for err == nil && p.word("AND") {
		var r bool
		r, err = p.not()
		v = v && r
	}
	return v, err
}

func (p *condParser) not() (bool, error) {
	if p.word("NOT") {
		v, err := p.not()
		return !v, err
	}
	return p.primary()
}

func (p *condParser) primary() (bool, error) {
	t := p.peek()
	if t.kind == "(" {
		p.i++
		v, err := p.or()
		if err != nil {
			return false, err
		}
		return v, p.expect(")")
	}
	if t.kind == "word" && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == "(" {
		switch fn := strings.ToLower(t.text); fn {
		case "attribute_exists", "attribute_not_exists":
			p.i += 2
			v, _, err := p.operand(true)
			if err != nil {
				return false, err
			}
			if err := p.expect(")"); err != nil {
				return false, err
			}
			return (v != nil) == (fn == "attribute_exists"), nil
		case "begins_with":
			p.i += 2
			a, _, err := p.operand(true)
			if err != nil {
				return false, err
			}
			if err := p.expect(","); err != nil {
				return false, err
			}
			b, _, err := p.operand(false)
			if err != nil {
				return false, err
			}
			if err := p.expect(")"); err != nil {
				return false, err
			}
			return beginsWith(a, b), nil
		}
		return false, fmt.Errorf("invalid ConditionExpression: the function is not supported by the stand-in: %s", t.text)
	}
	a, _, err := p.operand(false)
	if err != nil {
		return false, err
	}
	op := p.peek()
	if op.kind != "op" {
		return false, fmt.Errorf("invalid ConditionExpression: expected a comparator")
	}
	p.i++
	b, _, err := p.operand(false)
	if err != nil {
		return false, err
	}
	return compare(op.text, a, b)
}

// operand reads an attribute path or a value placeholder and returns its value (nil for a missing attribute).
func (p *condParser) operand(pathOnly bool) (types.AttributeValue, bool, error) {
	t := p.peek()
	p.i++
	switch t.kind {
	case "name":
		name, ok := p.names[t.text]
		if !ok {
			return nil, false, fmt.Errorf("invalid ConditionExpression: an expression attribute name used in the document path is not defined; attribute name: %s", t.text)
		}
		p.used[t.text] = true
		return p.item[name], true, nil
	case "word":
		return p.item[t.text], true, nil
	case "value":
		if pathOnly {
			return nil, false, fmt.Errorf("invalid ConditionExpression: %s is not an attribute path", t.text)
		}
		v, ok := p.values[t.text]
		if !ok {
			return nil, false, fmt.Errorf("invalid ConditionExpression: an expression attribute value used in expression is not defined; attribute value: %s", t.text)
		}
		p.used[t.text] = true
		return v, false, nil
	}
	return nil, false, fmt.Errorf("invalid ConditionExpression: expected an operand")
}

func beginsWith(a, b types.AttributeValue) bool {
	switch x := a.(type) {
	case *types.AttributeValueMemberS:
		y, ok := b.(*types.AttributeValueMemberS)
		return ok && strings.HasPrefix(x.Value, y.Value)
	case *types.AttributeValueMemberB:
		y, ok := b.(*types.AttributeValueMemberB)
		return ok && bytes.HasPrefix(x.Value, y.Value)
	}
	return false
}

// compare applies a comparator; operands of different (or unordered) types compare false, except with <>.
func compare(op string, a, b types.AttributeValue) (bool, error) {
	c, comparable := order(a, b)
	switch op {
	case "=":
		return comparable && c == 0, nil
	case "<>":
		return !comparable || c != 0, nil
	case "<":
		return comparable && c < 0, nil
	case "<=":
		return comparable && c <= 0, nil
	case ">":
		return comparable && c > 0, nil
	case ">=":
		return comparable && c >= 0, nil
	}
	return false, fmt.Errorf("invalid ConditionExpression: unknown comparator %s", op)
}

func order(a, b types.AttributeValue) (int, bool) {
	switch x := a.(type) {
	case *types.AttributeValueMemberS:
		if y, ok := b.(*types.AttributeValueMemberS); ok {
			return strings.Compare(x.Value, y.Value), true
		}
	case *types.AttributeValueMemberB:
		if y, ok := b.(*types.AttributeValueMemberB); ok {
			return bytes.Compare(x.Value, y.Value), true
		}
	case *types.AttributeValueMemberN:
		if y, ok := b.(*types.AttributeValueMemberN); ok {
			if _, err := checkNumber(x.Value); err != nil {
				return 0, false
			}
			if _, err := checkNumber(y.Value); err != nil {
				return 0, false
			}
			return compareDecimals(parseDecimal(x.Value), parseDecimal(y.Value)), true
		}
	}
	return 0, false
}
