package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names of an aggregate item (see the package documentation for the layout).
const (
	// AttrPartitionKey is the aggregate table's partition key (S): KeyText(name, windowStart, group).
	AttrPartitionKey = "pk"
	// AttrSortKey is the aggregate table's sort key (S): the shard id the item counts records of.
	AttrSortKey = "sk"
	// AttrAggregate holds the aggregate's name (S).
	AttrAggregate = "aggregate"
	// AttrWindowStart holds the window's start, RFC 3339 in UTC (S).
	AttrWindowStart = "windowStart"
	// AttrGroup holds the group values, in GroupBy order (L of S, N, BOOL or NULL).
	AttrGroup = "group"
	// AttrFence holds the position (B, the processor's EncodePosition) of the latest record of the shard applied to
	// the item: every record of the shard at or before it that counts towards the item has been applied, none after.
	AttrFence = "_kfence"
)

// reserved are the attribute names measures cannot take.
var reserved = map[string]bool{AttrPartitionKey: true, AttrSortKey: true, AttrAggregate: true, AttrWindowStart: true,
	AttrGroup: true, AttrFence: true}

// Kind is what a measure computes.
type Kind string

// Kinds of measures.
const (
	KindCount Kind = "count" // the number of records
	KindSum   Kind = "sum"   // the exact sum of a value (records without the value add nothing)
	KindMin   Kind = "min"   // the smallest value (absent until a record has the value)
	KindMax   Kind = "max"   // the largest value
)

// Measure is one measure of an aggregate: an attribute of its items.
type Measure struct {
	// Name is the attribute's name.
	Name string `json:"name"`
	// Kind is what it computes.
	Kind Kind `json:"kind"`
}

// MaxKeyBytes is the longest partition key KeyText may return: DynamoDB's limit for a partition key.
const MaxKeyBytes = 2048

var namePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// CheckName reports why name cannot name an aggregate, or nil: 1 to 64 letters, digits, '_' or '-', starting with a
// letter (so the partition key's '#' separators stay unambiguous).
func CheckName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("name %q must be 1 to 64 letters, digits, '_' or '-', starting with a letter", name)
	}
	return nil
}

// CheckMeasure reports why m cannot be a measure, or nil.
func CheckMeasure(m Measure) error {
	var errs []error
	if !namePattern.MatchString(m.Name) {
		errs = append(errs, fmt.Errorf("name %q must be 1 to 64 letters, digits, '_' or '-', starting with a letter", m.Name))
	} else if reserved[m.Name] {
		errs = append(errs, fmt.Errorf("name %q is reserved (an attribute of every aggregate item)", m.Name))
	}
	switch m.Kind {
	case KindCount, KindSum, KindMin, KindMax:
	default:
		errs = append(errs, fmt.Errorf("kind %q is not count, sum, min or max", m.Kind))
	}
	return errors.Join(errs...)
}

// GroupValue converts a decoded JSON value (string, json.Number, float64, int, int64, bool or nil) into a group value:
// a string, a *Number, a bool or nil. Objects and arrays cannot group.
func GroupValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool:
		return x, nil
	case string:
		if !utf8.ValidString(x) {
			return nil, errors.New("is not valid UTF-8")
		}
		return x, nil
	case *Number:
		return x, nil
	case json.Number:
		return ParseNumber(string(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("is not a finite number")
		}
		return ParseNumber(strconv.FormatFloat(x, 'g', -1, 64))
	case int:
		return NewInt(int64(x)), nil
	case int64:
		return NewInt(x), nil
	}
	return nil, fmt.Errorf("is a %T: group values are strings, numbers, booleans or null", v)
}

// WindowStart returns the start of the tumbling window of the given length holding t: windows start at whole
// multiples of the window since the Unix epoch (for a window dividing a day, at UTC midnight and every window after).
func WindowStart(t time.Time, window time.Duration) time.Time {
	w := int64(window / time.Second)
	if w <= 0 {
		return t.UTC()
	}
	s := t.Unix()
	start := s - ((s%w)+w)%w
	return time.Unix(start, 0).UTC()
}

// KeyText returns an item's partition key: "<name>#<window start, RFC 3339 UTC>#<group values as a JSON array>",
// numbers in their exact shortest form (so 1.0 and 1 group together). Group values must come from GroupValue.
func KeyText(name string, windowStart time.Time, group []any) (string, error) {
	var b bytes.Buffer
	b.WriteString(name)
	b.WriteByte('#')
	b.WriteString(windowStart.UTC().Format(time.RFC3339))
	b.WriteString("#[")
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i, v := range group {
		if i > 0 {
			b.WriteByte(',')
		}
		switch x := v.(type) {
		case *Number:
			b.WriteString(x.String())
		case nil:
			b.WriteString("null")
		case bool:
			b.WriteString(strconv.FormatBool(x))
		case string:
			if err := enc.Encode(x); err != nil {
				return "", fmt.Errorf("group value %d: %w", i, err)
			}
			b.Truncate(b.Len() - 1) // Encode's newline
		default:
			return "", fmt.Errorf("group value %d is a %T (use GroupValue)", i, v)
		}
	}
	b.WriteByte(']')
	if b.Len() > MaxKeyBytes {
		return "", fmt.Errorf("the item key would be %d bytes, more than DynamoDB's %d (group values too long)", b.Len(), MaxKeyBytes)
	}
	return b.String(), nil
}

// groupAV returns group values as an L attribute.
func groupAV(group []any) types.AttributeValue {
	l := make([]types.AttributeValue, len(group))
	for i, v := range group {
		switch x := v.(type) {
		case *Number:
			l[i] = &types.AttributeValueMemberN{Value: x.String()}
		case bool:
			l[i] = &types.AttributeValueMemberBOOL{Value: x}
		case string:
			l[i] = &types.AttributeValueMemberS{Value: x}
		default:
			l[i] = &types.AttributeValueMemberNULL{Value: true}
		}
	}
	return &types.AttributeValueMemberL{Value: l}
}

// state is the measures of one item: one value per measure, nil while a min, max or sum has no value yet.
type state []*Number

// decodeState reads measures from an item.
func decodeState(item map[string]types.AttributeValue, measures []Measure) (state, error) {
	s := make(state, len(measures))
	for i, m := range measures {
		av, ok := item[m.Name]
		if !ok {
			continue
		}
		v, err := measureValue(av)
		if err != nil {
			return nil, fmt.Errorf("measure %s: %w", m.Name, err)
		}
		s[i] = v
	}
	return s, nil
}

// merge adds one record's values (per measure; nil where the record has none) to s.
func (s state) merge(measures []Measure, values []*Number) {
	for i, m := range measures {
		if m.Kind == KindCount {
			if s[i] == nil {
				s[i] = NewInt(1)
			} else {
				s[i] = Add(s[i], NewInt(1))
			}
			continue
		}
		if i >= len(values) || values[i] == nil {
			continue
		}
		v := values[i]
		switch {
		case s[i] == nil:
			s[i] = v
		case m.Kind == KindSum:
			s[i] = Add(s[i], v)
		case m.Kind == KindMin && Cmp(v, s[i]) < 0:
			s[i] = v
		case m.Kind == KindMax && Cmp(v, s[i]) > 0:
			s[i] = v
		}
	}
}

// combine merges another item's measures into s (the totals over shards).
func (s state) combine(measures []Measure, o state) {
	for i, m := range measures {
		switch {
		case o[i] == nil:
		case s[i] == nil:
			s[i] = o[i]
		case m.Kind == KindCount || m.Kind == KindSum:
			s[i] = Add(s[i], o[i])
		case m.Kind == KindMin && Cmp(o[i], s[i]) < 0:
			s[i] = o[i]
		case m.Kind == KindMax && Cmp(o[i], s[i]) > 0:
			s[i] = o[i]
		}
	}
}
