package processor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

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

// errNotNumber is parseNumber's failure; checkNumber adds the value to the full reason.
var errNotNumber = errors.New("not a number")

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
		return n, errNotNumber
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
			return n, errNotNumber
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return n, errNotNumber
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

// checkNumber reports why DynamoDB would reject number string s, or nil. The error's full reason quotes the number
// (abbreviated); its log form does not.
func checkNumber(s string) (number, error) {
	n, err := parseNumber(s)
	if err != nil {
		return n, reason("is not a number", strconv.Quote(abbreviate(s))+" is not a number")
	}
	var rule string
	switch {
	case n.sig == 0:
	case n.sig > MaxNumberDigits:
		rule = fmt.Sprintf("has %d significant digits, more than %d", n.sig, MaxNumberDigits)
	case n.exp > maxNumberExp:
		rule = "is larger in magnitude than 9.9999999999999999999999999999999999999E+125"
	case n.exp < minNumberExp:
		rule = "is smaller in magnitude than 1E-130"
	}
	if rule != "" {
		return n, reason("number "+rule, "number "+abbreviate(s)+" "+rule)
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

// abbreviate cuts s to at most 64 bytes (at a character boundary), escaping what is not valid UTF-8.
func abbreviate(s string) string {
	if len(s) > 64 {
		cut := 60
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	if !utf8.ValidString(s) {
		q := strconv.Quote(s)
		return q[1 : len(q)-1]
	}
	return s
}

// maxAttrName is the longest attribute name DynamoDB accepts, in bytes ("less than 64 KB").
const maxAttrName = 64*1024 - 1

// itemError is why DynamoDB would reject an item: the rule an attribute breaks (naming no value), an optional
// detail quoting the value (for the error table only), and the attribute's path, built while unwinding.
type itemError struct {
	rev    []string // path segments, innermost first
	rule   string
	detail string
}

func (e *itemError) at(seg string) *itemError {
	e.rev = append(e.rev, seg)
	return e
}

func (e *itemError) path() string {
	var b strings.Builder
	for i := len(e.rev) - 1; i >= 0; i-- {
		seg := e.rev[i]
		if b.Len() > 0 && seg[0] != '[' && seg[0] != '<' {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// reason converts e to a reasonError: "attribute <path>: <rule>", the detail in the full reason only.
func (e *itemError) reason() error {
	log := "attribute " + e.path() + ": " + e.rule
	full := log
	if e.detail != "" {
		full += " (" + e.detail + ")"
	}
	return reason(log, full)
}

func ruleErr(rule string) *itemError { return &itemError{rule: rule} }

// numberErr converts checkNumber's failure for number string s: the rule, and the value as the detail.
func numberErr(s string, err error) *itemError {
	var re *reasonError
	rule := err.Error()
	if errors.As(err, &re) {
		rule = re.log
	}
	return &itemError{rule: rule, detail: "value " + abbreviate(s)}
}

// validateItem reports why DynamoDB would reject item for a table with the given key attributes, or nil. Typed nil
// values and strings that are not valid UTF-8 are rejected like DynamoDB's own rules: the SDK would send the latter
// with each invalid byte replaced by U+FFFD, storing something else than the item. The error's log form names the
// attribute's path and the rule, never a value.
func validateItem(item Item, keys []KeyAttribute) error {
	for i, k := range keys {
		limit := maxPartitionKey
		what := "partition key"
		if i > 0 {
			limit, what = maxSortKey, "sort key"
		}
		if err := checkKey(item[k.Name], k, limit); err != nil {
			return prefixReason(what+" "+pathName(k.Name), err)
		}
	}
	size := 0
	for name, v := range item {
		if err := checkName(name); err != nil {
			return err.at(pathName(name)).reason()
		}
		n, err := valueSize(v, 1)
		if err != nil {
			return err.at(pathName(name)).reason()
		}
		size += len(name) + n
	}
	if size > MaxItemSize {
		return safeReason(fmt.Sprintf("item is about %d bytes, more than DynamoDB's %d", size, MaxItemSize))
	}
	return nil
}

// checkName reports why DynamoDB would reject an attribute name (or a map key), or nil.
func checkName(name string) *itemError {
	switch {
	case name == "":
		return ruleErr("the name is empty")
	case len(name) > maxAttrName:
		return ruleErr(fmt.Sprintf("the name is %d bytes, more than %d", len(name), maxAttrName))
	case !utf8.ValidString(name):
		return ruleErr("the name is not valid UTF-8")
	}
	return nil
}

// checkKey reports why DynamoDB would reject v as the value of key attribute k (limit: its size limit in bytes).
func checkKey(v types.AttributeValue, k KeyAttribute, limit int) error {
	if v == nil {
		return safeReason("is missing")
	}
	if isNilValue(v) {
		return safeReason(fmt.Sprintf("is a nil %s", avType(v)))
	}
	var n int
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		if k.Type != AttributeTypeString {
			break
		}
		if x.Value == "" {
			return safeReason("is empty")
		}
		if !utf8.ValidString(x.Value) {
			return safeReason("is not valid UTF-8")
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
			return safeReason("is empty")
		}
		n = len(x.Value)
	}
	if n == 0 {
		return safeReason(fmt.Sprintf("is %s, want %s", avType(v), k.Type))
	}
	if n > limit {
		return safeReason(fmt.Sprintf("is %d bytes, more than %d", n, limit))
	}
	return nil
}

// isNilValue reports whether v is a typed nil pointer (a user transform's (*types.AttributeValueMemberS)(nil)).
func isNilValue(v types.AttributeValue) bool {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return x == nil
	case *types.AttributeValueMemberN:
		return x == nil
	case *types.AttributeValueMemberB:
		return x == nil
	case *types.AttributeValueMemberBOOL:
		return x == nil
	case *types.AttributeValueMemberNULL:
		return x == nil
	case *types.AttributeValueMemberM:
		return x == nil
	case *types.AttributeValueMemberL:
		return x == nil
	case *types.AttributeValueMemberSS:
		return x == nil
	case *types.AttributeValueMemberNS:
		return x == nil
	case *types.AttributeValueMemberBS:
		return x == nil
	case *types.UnknownUnionMember:
		return x == nil
	}
	return false
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
func valueSize(v types.AttributeValue, depth int) (int, *itemError) {
	if v == nil {
		return 0, ruleErr("has no value")
	}
	if isNilValue(v) {
		return 0, ruleErr(fmt.Sprintf("is a nil %s (a typed nil pointer)", avType(v)))
	}
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		if !utf8.ValidString(x.Value) {
			return 0, invalidUTF8(x.Value)
		}
		return len(x.Value), nil
	case *types.AttributeValueMemberN:
		n, err := checkNumber(x.Value)
		if err != nil {
			return 0, numberErr(x.Value, err)
		}
		return numberSize(n.sig), nil
	case *types.AttributeValueMemberB:
		return len(x.Value), nil
	case *types.AttributeValueMemberBOOL:
		return 1, nil
	case *types.AttributeValueMemberNULL:
		if !x.Value {
			return 0, ruleErr("is NULL false: a NULL value must be true")
		}
		return 1, nil
	case *types.AttributeValueMemberM:
		if depth > MaxNestingDepth {
			return 0, ruleErr(fmt.Sprintf("is nested more than %d levels deep", MaxNestingDepth))
		}
		size := 3
		for name, e := range x.Value {
			if err := checkName(name); err != nil {
				return 0, err.at(pathName(name))
			}
			n, err := valueSize(e, depth+1)
			if err != nil {
				return 0, err.at(pathName(name))
			}
			size += 1 + len(name) + n
		}
		return size, nil
	case *types.AttributeValueMemberL:
		if depth > MaxNestingDepth {
			return 0, ruleErr(fmt.Sprintf("is nested more than %d levels deep", MaxNestingDepth))
		}
		size := 3
		for i, e := range x.Value {
			n, err := valueSize(e, depth+1)
			if err != nil {
				return 0, err.at("[" + strconv.Itoa(i) + "]")
			}
			size += 1 + n
		}
		return size, nil
	case *types.AttributeValueMemberSS:
		if len(x.Value) == 0 {
			return 0, ruleErr("string set is empty")
		}
		seen := make(map[string]struct{}, len(x.Value))
		size := 1
		for i, s := range x.Value {
			if !utf8.ValidString(s) {
				return 0, invalidUTF8(s).at("<" + strconv.Itoa(i) + ">")
			}
			if _, dup := seen[s]; dup {
				return 0, ruleErr("string set holds duplicates")
			}
			seen[s] = struct{}{}
			size += 1 + len(s)
		}
		return size, nil
	case *types.AttributeValueMemberNS:
		if len(x.Value) == 0 {
			return 0, ruleErr("number set is empty")
		}
		seen := make(map[string]struct{}, len(x.Value))
		size := 1
		for i, s := range x.Value {
			n, err := checkNumber(s)
			if err != nil {
				return 0, numberErr(s, err).at("<" + strconv.Itoa(i) + ">")
			}
			c := n.canonical()
			if _, dup := seen[c]; dup {
				return 0, ruleErr("number set holds duplicates")
			}
			seen[c] = struct{}{}
			size += 1 + numberSize(n.sig)
		}
		return size, nil
	case *types.AttributeValueMemberBS:
		if len(x.Value) == 0 {
			return 0, ruleErr("binary set is empty")
		}
		seen := make(map[string]struct{}, len(x.Value))
		size := 1
		for _, b := range x.Value {
			if _, dup := seen[string(b)]; dup {
				return 0, ruleErr("binary set holds duplicates")
			}
			seen[string(b)] = struct{}{}
			size += 1 + len(b)
		}
		return size, nil
	default:
		return 0, ruleErr(fmt.Sprintf("has unsupported type %T", v))
	}
}

// invalidUTF8 is the failure of a string that is not valid UTF-8: the offset of its first invalid byte.
func invalidUTF8(s string) *itemError {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		i += size
	}
	return ruleErr(fmt.Sprintf("string is not valid UTF-8 (byte %d of %d)", i, len(s)))
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
