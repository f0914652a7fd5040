package processor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB limits the processor checks items against before writing them.
const (
	// MaxItemSize is DynamoDB's item size limit in bytes (attribute names plus values).
	MaxItemSize = 400 * 1024
	// MaxNestingDepth is how deeply DynamoDB lets lists and maps nest.
	MaxNestingDepth = 32
	// MaxNumberDigits is how many significant digits a DynamoDB number holds.
	MaxNumberDigits = 38
	maxPartitionKey = 2048 // bytes of a partition key value
	maxSortKey      = 1024 // bytes of a sort key value
	maxKeyNameBytes = 255  // bytes of a key attribute's name
	maxNumberExp    = 125  // largest decimal exponent of a number's first significant digit
	minNumberExp    = -130 // smallest one
)

// number is a parsed DynamoDB number: sig significant digits (leading and trailing zeros trimmed; 0 for zero), exp
// the decimal exponent of the first significant digit, mant the mantissa as written.
type number struct {
	neg  bool
	sig  int
	exp  int
	mant string
}

// parseNumber parses a DynamoDB number string: an optional minus, digits with an optional fraction (".5" and "5."
// too), an optional exponent. It does not allocate.
func parseNumber(s string) (number, error) {
	var n number
	i := 0
	if i < len(s) && s[i] == '-' {
		n.neg = true
		i++
	}
	mstart := i
	first, last, dot, sawDigit := -1, -1, -1, false
	for ; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			sawDigit = true
			if c != '0' {
				if first < 0 {
					first = i
				}
				last = i
			}
			continue
		}
		if c == '.' && dot < 0 {
			dot = i
			continue
		}
		break
	}
	if !sawDigit {
		return n, fmt.Errorf("%q is not a number", abbreviate(s))
	}
	n.mant = s[mstart:i]
	if dot < 0 {
		dot = i
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if exp < 1e9 {
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return n, fmt.Errorf("%q is not a number", abbreviate(s))
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return n, fmt.Errorf("%q is not a number", abbreviate(s))
	}
	if first < 0 {
		return number{}, nil // zero, whatever its sign and exponent
	}
	if first < dot {
		n.exp = dot - first - 1 + exp
	} else {
		n.exp = dot - first + exp
	}
	n.sig = last - first + 1
	if first < dot && dot < last {
		n.sig--
	}
	return n, nil
}

// checkNumber reports why DynamoDB would reject number string s, or nil.
func checkNumber(s string) (number, error) {
	n, err := parseNumber(s)
	if err != nil {
		return n, err
	}
	switch {
	case n.sig == 0:
	case n.sig > MaxNumberDigits:
		return n, fmt.Errorf("number %s has %d significant digits, more than %d", abbreviate(s), n.sig, MaxNumberDigits)
	case n.exp > maxNumberExp:
		return n, fmt.Errorf("number %s is larger in magnitude than 9.9999999999999999999999999999999999999E+125", abbreviate(s))
	case n.exp < minNumberExp:
		return n, fmt.Errorf("number %s is smaller in magnitude than 1E-130", abbreviate(s))
	}
	return n, nil
}

// canonical returns a string equal for equal numbers.
func (n number) canonical() string {
	if n.sig == 0 {
		return "0"
	}
	var b strings.Builder
	if n.neg {
		b.WriteByte('-')
	}
	for i := 0; i < len(n.mant); i++ {
		if c := n.mant[i]; c != '.' && (b.Len() > 0 && !(b.Len() == 1 && n.neg) || c != '0') {
			b.WriteByte(c)
		}
	}
	d := strings.TrimRight(b.String(), "0")
	return d + "e" + strconv.Itoa(n.exp)
}

func abbreviate(s string) string {
	if len(s) > 64 {
		return s[:60] + "..."
	}
	return s
}

// validateItem reports why DynamoDB would reject item for a table with the given key attributes, or nil.
func validateItem(item Item, keys []KeyAttribute) error {
	for i, k := range keys {
		limit := maxPartitionKey
		what := "partition key"
		if i > 0 {
			limit, what = maxSortKey, "sort key"
		}
		if err := checkKey(item[k.Name], k, limit); err != nil {
			return fmt.Errorf("%s %s: %w", what, k.Name, err)
		}
	}
	size := 0
	for name, v := range item {
		if name == "" {
			return errors.New("an attribute name is empty")
		}
		n, err := valueSize(v, 1)
		if err != nil {
			return fmt.Errorf("attribute %s: %w", name, err)
		}
		size += len(name) + n
	}
	if size > MaxItemSize {
		return fmt.Errorf("item is about %d bytes, more than DynamoDB's %d", size, MaxItemSize)
	}
	return nil
}

func checkKey(v types.AttributeValue, k KeyAttribute, limit int) error {
	if v == nil {
		return errors.New("is missing")
	}
	var n int
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		if k.Type != AttributeTypeString {
			break
		}
		if x.Value == "" {
			return errors.New("is empty")
		}
		n = len(x.Value)
	case *types.AttributeValueMemberN:
		if k.Type != AttributeTypeNumber {
			break
		}
		if _, err := checkNumber(x.Value); err != nil {
			return err
		}
		return nil
	case *types.AttributeValueMemberB:
		if k.Type != AttributeTypeBinary {
			break
		}
		if len(x.Value) == 0 {
			return errors.New("is empty")
		}
		n = len(x.Value)
	}
	if n == 0 {
		return fmt.Errorf("is %s, want %s", avType(v), k.Type)
	}
	if n > limit {
		return fmt.Errorf("is %d bytes, more than %d", n, limit)
	}
	return nil
}

func avType(v types.AttributeValue) string {
	switch v.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberM:
		return "M"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func numberSize(sig int) int { return 3 + (sig+1)/2 }

// valueSize returns a conservative estimate of v's size as DynamoDB counts it, checking DynamoDB's rules on the way.
// depth is the nesting level of v if it is a list or a map (a top-level attribute's value is level 1).
func valueSize(v types.AttributeValue, depth int) (int, error) {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value), nil
	case *types.AttributeValueMemberN:
		n, err := checkNumber(x.Value)
		if err != nil {
			return 0, err
		}
		return numberSize(n.sig), nil
	case *types.AttributeValueMemberB:
		return len(x.Value), nil
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1, nil
	case *types.AttributeValueMemberM:
		if depth > MaxNestingDepth {
			return 0, fmt.Errorf("nested more than %d levels deep", MaxNestingDepth)
		}
		size := 3
		for name, e := range x.Value {
			if name == "" {
				return 0, errors.New("a nested attribute name is empty")
			}
			n, err := valueSize(e, depth+1)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			size += 1 + len(name) + n
		}
		return size, nil
	case *types.AttributeValueMemberL:
		if depth > MaxNestingDepth {
			return 0, fmt.Errorf("nested more than %d levels deep", MaxNestingDepth)
		}
		size := 3
		for i, e := range x.Value {
			n, err := valueSize(e, depth+1)
			if err != nil {
				return 0, fmt.Errorf("[%d]: %w", i, err)
			}
			size += 1 + n
		}
		return size, nil
	case *types.AttributeValueMemberSS:
		if len(x.Value) == 0 {
			return 0, errors.New("string set is empty")
		}
		seen := make(map[string]struct{}, len(x.Value))
		size := 1
		for _, s := range x.Value {
			if _, dup := seen[s]; dup {
				return 0, errors.New("string set holds duplicates")
			}
			seen[s] = struct{}{}
			size += 1 + len(s)
		}
		return size, nil
	case *types.AttributeValueMemberNS:
		if len(x.Value) == 0 {
			return 0, errors.New("number set is empty")
		}
		seen := make(map[string]struct{}, len(x.Value))
		size := 1
		for _, s := range x.Value {
			n, err := checkNumber(s)
			if err != nil {
				return 0, err
			}
			c := n.canonical()
			if _, dup := seen[c]; dup {
				return 0, errors.New("number set holds duplicates")
			}
			seen[c] = struct{}{}
			size += 1 + numberSize(n.sig)
		}
		return size, nil
	case *types.AttributeValueMemberBS:
		if len(x.Value) == 0 {
			return 0, errors.New("binary set is empty")
		}
		seen := make(map[string]struct{}, len(x.Value))
		size := 1
		for _, b := range x.Value {
			if _, dup := seen[string(b)]; dup {
				return 0, errors.New("binary set holds duplicates")
			}
			seen[string(b)] = struct{}{}
			size += 1 + len(b)
		}
		return size, nil
	case nil:
		return 0, errors.New("has no value")
	default:
		return 0, fmt.Errorf("has unsupported type %T", v)
	}
}

// itemKey returns a string equal for items with the same primary key (keys as validated by validateItem).
func itemKey(item Item, keys []KeyAttribute) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(0)
		}
		switch x := item[k.Name].(type) {
		case *types.AttributeValueMemberS:
			b.WriteString("S")
			b.WriteString(strconv.Itoa(len(x.Value)))
			b.WriteByte(':')
			b.WriteString(x.Value)
		case *types.AttributeValueMemberN:
			n, _ := parseNumber(x.Value)
			c := n.canonical()
			b.WriteString("N")
			b.WriteString(strconv.Itoa(len(c)))
			b.WriteByte(':')
			b.WriteString(c)
		case *types.AttributeValueMemberB:
			b.WriteString("B")
			b.WriteString(strconv.Itoa(len(x.Value)))
			b.WriteByte(':')
			b.Write(x.Value)
		}
	}
	return b.String()
}
