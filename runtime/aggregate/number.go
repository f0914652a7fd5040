package aggregate

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// DynamoDB's number limits: 38 significant digits, magnitudes from 1E-130 to 9.99...E+125.
const (
	maxDigits = 38
	maxExp    = 125 // largest exponent of the leading digit
	minExp    = -130
)

// Number is an exact decimal number: coefficient × 10^exponent. The zero value is 0. Sums, minima and maxima of
// Numbers are exact, as DynamoDB's own numbers are; a result DynamoDB cannot hold (more than 38 significant digits,
// or out of its range) is an error, never a rounded value.
type Number struct {
	coef big.Int
	exp  int
}

// ParseNumber parses a decimal number as JSON and DynamoDB write it: an optional minus, digits with an optional
// fraction, an optional exponent ("12", "-0.5", "1.5E+3"). It must fit DynamoDB (38 significant digits, magnitude
// 1E-130 to 9.99...E+125, or zero).
func ParseNumber(s string) (*Number, error) {
	n, err := parseDecimal(s)
	if err != nil {
		return nil, err
	}
	if err := n.check(); err != nil {
		return nil, err
	}
	return n, nil
}

func parseDecimal(s string) (*Number, error) {
	bad := errors.New("not a decimal number")
	i := 0
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	var digits strings.Builder
	frac, sawDigit, sawDot := 0, false, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			digits.WriteByte(c)
			if sawDot {
				frac++
			}
		case c == '.' && !sawDot:
			sawDot = true
		default:
			goto exponent
		}
	}
exponent:
	if !sawDigit {
		return nil, bad
	}
	exp := 0
	if i < len(s) {
		if s[i] != 'e' && s[i] != 'E' {
			return nil, bad
		}
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || s[i+1:] == "" || e > 1_000_000 || e < -1_000_000 {
			return nil, bad
		}
		exp = e
	}
	if digits.Len() > 1000 {
		return nil, errors.New("more than 1000 digits")
	}
	n := &Number{exp: exp - frac}
	n.coef.SetString(digits.String(), 10)
	if neg {
		n.coef.Neg(&n.coef)
	}
	n.normalize()
	return n, nil
}

var ten = big.NewInt(10)

// normalize removes trailing zeros of the coefficient (zero has exponent 0), so equal numbers have equal forms.
func (n *Number) normalize() {
	if n.coef.Sign() == 0 {
		n.exp = 0
		return
	}
	var q, r big.Int
	for {
		q.QuoRem(&n.coef, ten, &r)
		if r.Sign() != 0 {
			return
		}
		n.coef.Set(&q)
		n.exp++
	}
}

// digits returns the number of significant digits (0 for zero).
func (n *Number) digits() int {
	if n.coef.Sign() == 0 {
		return 0
	}
	s := n.coef.String()
	return len(strings.TrimPrefix(s, "-"))
}

// check reports why DynamoDB could not store n, or nil.
func (n *Number) check() error {
	d := n.digits()
	if d == 0 {
		return nil
	}
	if d > maxDigits {
		return fmt.Errorf("has %d significant digits, more than DynamoDB's %d", d, maxDigits)
	}
	lead := n.exp + d - 1
	if lead > maxExp {
		return errors.New("is larger in magnitude than DynamoDB's 9.9999999999999999999999999999999999999E+125")
	}
	if lead < minExp {
		return errors.New("is smaller in magnitude than DynamoDB's 1E-130")
	}
	return nil
}

// NewInt returns the Number v.
func NewInt(v int64) *Number {
	n := &Number{}
	n.coef.SetInt64(v)
	n.normalize()
	return n
}

// Add returns a + b, exactly.
func Add(a, b *Number) *Number {
	out := &Number{}
	x, y := a, b
	if x.exp < y.exp {
		x, y = y, x
	}
	// x has the larger exponent: scale x's coefficient down to y's exponent.
	var scaled big.Int
	scaled.Exp(ten, big.NewInt(int64(x.exp-y.exp)), nil)
	scaled.Mul(&scaled, &x.coef)
	out.coef.Add(&scaled, &y.coef)
	out.exp = y.exp
	out.normalize()
	return out
}

// Cmp compares a and b: -1, 0 or +1.
func Cmp(a, b *Number) int {
	return Add(a, Neg(b)).coef.Sign()
}

// Neg returns -a.
func Neg(a *Number) *Number {
	out := &Number{exp: a.exp}
	out.coef.Neg(&a.coef)
	return out
}

// String formats n as DynamoDB and JSON read it: plain digits for moderate exponents, else with an exponent
// ("1E+200"). Equal numbers give equal strings.
func (n *Number) String() string {
	if n == nil {
		return "<nil>"
	}
	if n.coef.Sign() == 0 {
		return "0"
	}
	s := n.coef.String()
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	var out string
	switch {
	case n.exp >= 0 && n.exp <= 20:
		out = digits + strings.Repeat("0", n.exp)
	case n.exp < 0 && -n.exp <= 40:
		k := -n.exp
		if k >= len(digits) {
			out = "0." + strings.Repeat("0", k-len(digits)) + digits
		} else {
			out = digits[:len(digits)-k] + "." + digits[len(digits)-k:]
		}
	default:
		out = digits + "E" + strconv.Itoa(n.exp)
		if n.exp > 0 {
			out = digits + "E+" + strconv.Itoa(n.exp)
		}
	}
	if neg {
		return "-" + out
	}
	return out
}
