package aggregate

import (
	"bytes"
	"fmt"
	"math/big"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// This file is the fake's DynamoDB wire behaviour, written from DynamoDB's documented semantics and independent of
// the package's code: condition expressions, placeholder checks, set and NULL validation, copies.

func validation(format string, args ...any) error {
	return &smithy.GenericAPIError{Code: "ValidationException", Message: fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

// validateItem rejects what DynamoDB rejects in an item: empty sets, duplicated set members, NULL false, numbers
// that do not parse.
func validateItem(item map[string]types.AttributeValue) error {
	for name, v := range item {
		if err := validateValue(v); err != nil {
			return validation("One or more parameter values were invalid: %s: %v", name, err)
		}
	}
	return nil
}

func validateValue(v types.AttributeValue) error {
	switch x := v.(type) {
	case *types.AttributeValueMemberBS:
		if len(x.Value) == 0 {
			return fmt.Errorf("an empty set is not allowed")
		}
		seen := map[string]bool{}
		for _, b := range x.Value {
			if seen[string(b)] {
				return fmt.Errorf("input collection contains duplicates")
			}
			seen[string(b)] = true
		}
	case *types.AttributeValueMemberSS:
		if len(x.Value) == 0 {
			return fmt.Errorf("an empty set is not allowed")
		}
	case *types.AttributeValueMemberNULL:
		if !x.Value {
			return fmt.Errorf("NULL must be true")
		}
	case *types.AttributeValueMemberN:
		if _, ok := new(big.Rat).SetString(x.Value); !ok {
			return fmt.Errorf("number %q", x.Value)
		}
	case *types.AttributeValueMemberM:
		for _, e := range x.Value {
			if err := validateValue(e); err != nil {
				return err
			}
		}
	case *types.AttributeValueMemberL:
		for _, e := range x.Value {
			if err := validateValue(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// deepCopy copies an item; binary sets come back in reverse order (DynamoDB keeps no set order).
func deepCopy(item map[string]types.AttributeValue) map[string]types.AttributeValue {
	out := make(map[string]types.AttributeValue, len(item))
	for k, v := range item {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v types.AttributeValue) types.AttributeValue {
	switch x := v.(type) {
	case *types.AttributeValueMemberB:
		return &types.AttributeValueMemberB{Value: bytes.Clone(x.Value)}
	case *types.AttributeValueMemberBS:
		bs := make([][]byte, len(x.Value))
		for i, b := range x.Value {
			bs[len(bs)-1-i] = bytes.Clone(b)
		}
		return &types.AttributeValueMemberBS{Value: bs}
	case *types.AttributeValueMemberM:
		return &types.AttributeValueMemberM{Value: deepCopy(x.Value)}
	case *types.AttributeValueMemberL:
		l := make([]types.AttributeValue, len(x.Value))
		for i, e := range x.Value {
			l[i] = copyValue(e)
		}
		return &types.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberS:
		return &types.AttributeValueMemberS{Value: x.Value}
	case *types.AttributeValueMemberN:
		return &types.AttributeValueMemberN{Value: x.Value}
	case *types.AttributeValueMemberNULL:
		return &types.AttributeValueMemberNULL{Value: x.Value}
	case *types.AttributeValueMemberBOOL:
		return &types.AttributeValueMemberBOOL{Value: x.Value}
	}
	return v
}

// condEval evaluates a condition expression (a recursive-descent parse evaluated as it goes).
type condEval struct {
	toks   []string
	i      int
	names  map[string]string
	values map[string]types.AttributeValue
	item   map[string]types.AttributeValue
	used   map[string]bool
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case strings.ContainsRune("(),", rune(c)):
			toks = append(toks, string(c))
			i++
		case c == '<' || c == '>' || c == '=':
			j := i + 1
			if j < len(s) && (s[j] == '=' || c == '<' && s[j] == '>') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '#' || s[j] == ':' || s[j] >= 'a' && s[j] <= 'z' ||
				s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			if j == i {
				return nil, validation("Invalid ConditionExpression: Syntax error; token: %q", s[i:])
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

// evalCondition evaluates expr against old (nil when there is no item), as DynamoDB does: a missing attribute
// compares false, operands of different types compare false (<> true), every placeholder given must be used.
func evalCondition(expr string, names map[string]string, values map[string]types.AttributeValue, old map[string]types.AttributeValue) (bool, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return false, err
	}
	e := &condEval{toks: toks, names: names, values: values, item: old, used: map[string]bool{}}
	v, err := e.or()
	if err != nil {
		return false, err
	}
	if e.i != len(toks) {
		return false, validation("Invalid ConditionExpression: Syntax error; token: %q", toks[e.i])
	}
	for k := range names {
		if !e.used[k] {
			return false, validation("Value provided in ExpressionAttributeNames unused in expressions: keys: {%s}", k)
		}
	}
	for k := range values {
		if !e.used[k] {
			return false, validation("Value provided in ExpressionAttributeValues unused in expressions: keys: {%s}", k)
		}
	}
	return v, nil
}

func (e *condEval) peek() string {
	if e.i < len(e.toks) {
		return e.toks[e.i]
	}
	return ""
}

func (e *condEval) or() (bool, error) {
	v, err := e.and()
	for err == nil && strings.EqualFold(e.peek(), "OR") {
		e.i++
		var w bool
		w, err = e.and()
		v = v || w
	}
	return v, err
}

func (e *condEval) and() (bool, error) {
	v, err := e.not()
	for err == nil && strings.EqualFold(e.peek(), "AND") {
		e.i++
		var w bool
		w, err = e.not()
		v = v && w
	}
	return v, err
}

func (e *condEval) not() (bool, error) {
	if strings.EqualFold(e.peek(), "NOT") {
		e.i++
		v, err := e.not()
		return !v, err
	}
	return e.primary()
}

func (e *condEval) expect(t string) error {
	if e.peek() != t {
		return validation("Invalid ConditionExpression: expected %q at %q", t, e.peek())
	}
	e.i++
	return nil
}

func (e *condEval) primary() (bool, error) {
	t := e.peek()
	if t == "(" {
		e.i++
		v, err := e.or()
		if err != nil {
			return false, err
		}
		return v, e.expect(")")
	}
	if fn := strings.ToLower(t); fn == "attribute_exists" || fn == "attribute_not_exists" {
		e.i++
		if err := e.expect("("); err != nil {
			return false, err
		}
		v, isPath, err := e.operand()
		if err != nil {
			return false, err
		}
		if !isPath {
			return false, validation("Invalid ConditionExpression: %s takes a path", fn)
		}
		if err := e.expect(")"); err != nil {
			return false, err
		}
		return (v != nil) == (fn == "attribute_exists"), nil
	}
	a, _, err := e.operand()
	if err != nil {
		return false, err
	}
	op := e.peek()
	e.i++
	b, _, err := e.operand()
	if err != nil {
		return false, err
	}
	c, ok := compareValues(a, b)
	switch op {
	case "=":
		return ok && c == 0, nil
	case "<>":
		return !ok || c != 0, nil
	case "<":
		return ok && c < 0, nil
	case "<=":
		return ok && c <= 0, nil
	case ">":
		return ok && c > 0, nil
	case ">=":
		return ok && c >= 0, nil
	}
	return false, validation("Invalid ConditionExpression: Syntax error; token: %q", op)
}

// operand returns an operand's value (nil for a missing attribute) and whether it is a path.
func (e *condEval) operand() (types.AttributeValue, bool, error) {
	t := e.peek()
	e.i++
	switch {
	case strings.HasPrefix(t, "#"):
		n, ok := e.names[t]
		if !ok {
			return nil, false, validation("Invalid ConditionExpression: An expression attribute name used in the document path is not defined; attribute name: %s", t)
		}
		e.used[t] = true
		return e.item[n], true, nil
	case strings.HasPrefix(t, ":"):
		v, ok := e.values[t]
		if !ok {
			return nil, false, validation("Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: %s", t)
		}
		e.used[t] = true
		return v, false, nil
	case t == "" || strings.ContainsAny(t, "(),<>="):
		return nil, false, validation("Invalid ConditionExpression: Syntax error; token: %q", t)
	}
	return e.item[t], true, nil
}

// compareValues orders two scalars of one type (S by bytes, N by value, B by bytes); ok is false otherwise.
func compareValues(a, b types.AttributeValue) (int, bool) {
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
			p, ok1 := new(big.Rat).SetString(x.Value)
			q, ok2 := new(big.Rat).SetString(y.Value)
			if ok1 && ok2 {
				return p.Cmp(q), true
			}
		}
	}
	return 0, false
}
