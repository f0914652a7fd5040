//go:build !kdp_noexpr

package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// decimal is an exact decimal number, coef × 10^exp, with no trailing zeros in coef (zero has exp 0): the value of
// every number an aggregate expression computes (see exactPatcher). A value, not a pointer: expr dereferences
// pointers in places (array literals, ??), which would copy a struct holding a big.Int.
type decimal struct {
	coef *big.Int // never nil, never modified
	exp  int
}

// zeroDecimal is 0.
var zeroDecimal = decimal{coef: new(big.Int)}

// Bounds of the numbers aggregate expressions compute with. DynamoDB's numbers have 38 significant digits and
// magnitudes from 1E-130 to 1E+126, so a sum or product of two of them needs at most a few hundred digits; the bounds
// only stop a record (1e99999 + 1, x ** 100000) from costing megabytes.
const (
	maxDecimalDigits = 1000
	maxDecimalExp    = 100_000
)

var errDecimalSize = fmt.Errorf("needs more than %d digits (or an exponent beyond ±%d) to compute exactly", maxDecimalDigits, maxDecimalExp)

var (
	bigTen  = big.NewInt(10)
	bigFive = big.NewInt(5)
	bigOne  = big.NewInt(1)
)

// newDecimal returns coef × 10^exp, normalized, or errDecimalSize when out of the bounds. coef is not kept.
func newDecimal(coef *big.Int, exp int) (decimal, error) {
	if coef.Sign() == 0 {
		return zeroDecimal, nil
	}
	var d decimal
	if coef.IsInt64() { // the common case, without big divisions
		c := coef.Int64()
		for c%10 == 0 {
			c /= 10
			exp++
		}
		d = decimal{coef: big.NewInt(c), exp: exp}
	} else {
		d = decimal{coef: new(big.Int).Set(coef), exp: exp}
		var q, r big.Int
		for d.coef.Bit(0) == 0 { // a multiple of 10 is even
			q.QuoRem(d.coef, bigTen, &r)
			if r.Sign() != 0 {
				break
			}
			d.coef.Set(&q)
			d.exp++
		}
	}
	if digitsBound(d.coef) > maxDecimalDigits+1 || d.exp > maxDecimalExp || d.exp < -maxDecimalExp {
		return decimal{}, errDecimalSize
	}
	return d, nil
}

// digitsBound is an upper bound of x's decimal digits (at most one more than the count).
func digitsBound(x *big.Int) int { return x.BitLen()*30103/100000 + 1 }

// digits is the number of decimal digits of d's coefficient (0 for zero).
func (d decimal) digits() int {
	if d.coef.IsInt64() {
		n := 0
		for c := d.coef.Int64(); c != 0; c /= 10 {
			n++
		}
		return n
	}
	return len(strings.TrimPrefix(d.coef.String(), "-"))
}

// parseExactNumber parses a JSON number or an expression's float literal ("12", "-0.5", "1.5e3", ".5", "1_000.5")
// exactly.
func parseExactNumber(s string) (decimal, error) {
	text := s
	if strings.Contains(text, "_") {
		text = strings.ReplaceAll(text, "_", "")
	}
	mant, expText := text, ""
	if i := strings.IndexAny(text, "eE"); i >= 0 {
		mant, expText = text[:i], text[i+1:]
	}
	exp, farExp := 0, false
	if len(mant) < len(text) {
		e, err := strconv.Atoi(expText)
		if err != nil && !errors.Is(err, strconv.ErrRange) || expText == "" {
			return decimal{}, fmt.Errorf("%q is not a decimal number", s)
		}
		if err != nil || e > maxDecimalExp || e < -maxDecimalExp {
			farExp = true // zero whatever its exponent (0e-1000000); any other number too far to compute
		} else {
			exp = e
		}
	}
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(strings.TrimPrefix(mant, "-"), "+")
	whole, frac, _ := strings.Cut(mant, ".")
	if whole+frac == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return decimal{}, fmt.Errorf("%q is not a decimal number", s)
	}
	var coef big.Int
	if len(whole)+len(frac) <= 18 { // fits an int64: no big parsing
		var c int64
		for _, part := range []string{whole, frac} {
			for i := 0; i < len(part); i++ {
				c = c*10 + int64(part[i]-'0')
			}
		}
		coef.SetInt64(c)
	} else {
		digits := strings.TrimLeft(whole+frac, "0")
		if len(digits) > maxDecimalDigits {
			return decimal{}, errDecimalSize
		}
		if digits != "" {
			coef.SetString(digits, 10)
		}
	}
	if farExp {
		if coef.Sign() == 0 {
			return zeroDecimal, nil
		}
		return decimal{}, errDecimalSize
	}
	if neg {
		coef.Neg(&coef)
	}
	return newDecimal(&coef, exp-len(frac))
}

// String formats d as a decimal: plain digits for moderate exponents, else with an exponent ("1E+200", "5E-50").
func (d decimal) String() string {
	if d.coef.Sign() == 0 {
		return "0"
	}
	digits := d.coef.String()
	sign := ""
	if strings.HasPrefix(digits, "-") {
		sign, digits = "-", digits[1:]
	}
	switch {
	case d.exp >= 0 && d.exp <= 20:
		return sign + digits + strings.Repeat("0", d.exp)
	case d.exp < 0 && -d.exp <= 40:
		k := -d.exp
		if k >= len(digits) {
			return sign + "0." + strings.Repeat("0", k-len(digits)) + digits
		}
		return sign + digits[:len(digits)-k] + "." + digits[len(digits)-k:]
	case d.exp > 0:
		return sign + digits + "E+" + strconv.Itoa(d.exp)
	}
	return sign + digits + "E" + strconv.Itoa(d.exp)
}

// asDecimal returns v's exact value when v is a number: a decimal, a json.Number (a payload number), an integer or
// a float64 (a builtin's result, read as its shortest decimal form, as the processor stores float64 values: 0.1 is
// 0.1). ok is false for anything else (strings, times, durations, nil, ...).
func asDecimal(v any) (d decimal, ok bool, err error) {
	switch x := v.(type) {
	case decimal:
		return x, true, nil
	case json.Number:
		d, err := parseExactNumber(string(x))
		return d, true, err
	case int:
		return decimalInt(new(big.Int).SetInt64(int64(x)))
	case int8:
		return decimalInt(new(big.Int).SetInt64(int64(x)))
	case int16:
		return decimalInt(new(big.Int).SetInt64(int64(x)))
	case int32:
		return decimalInt(new(big.Int).SetInt64(int64(x)))
	case int64:
		return decimalInt(new(big.Int).SetInt64(x))
	case uint:
		return decimalInt(new(big.Int).SetUint64(uint64(x)))
	case uint8:
		return decimalInt(new(big.Int).SetUint64(uint64(x)))
	case uint16:
		return decimalInt(new(big.Int).SetUint64(uint64(x)))
	case uint32:
		return decimalInt(new(big.Int).SetUint64(uint64(x)))
	case uint64:
		return decimalInt(new(big.Int).SetUint64(x))
	case float32:
		return decimalFloat(float64(x), 32)
	case float64:
		return decimalFloat(x, 64)
	}
	return decimal{}, false, nil
}

func decimalInt(i *big.Int) (decimal, bool, error) {
	d, err := newDecimal(i, 0)
	return d, true, err
}

func decimalFloat(f float64, bits int) (decimal, bool, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return decimal{}, true, fmt.Errorf("%v is not a finite number", f)
	}
	d, err := parseExactNumber(strconv.FormatFloat(f, 'g', -1, bits))
	return d, true, err
}

// align returns a's and b's coefficients scaled to their smaller exponent, and that exponent.
func align(a, b decimal) (x, y *big.Int, exp int, err error) {
	lo := min(a.exp, b.exp)
	scale := func(d decimal) (*big.Int, error) {
		n := d.exp - lo
		if n == 0 {
			return d.coef, nil
		}
		if digitsBound(d.coef)+n > maxDecimalDigits+1 {
			return nil, errDecimalSize
		}
		p := new(big.Int).Exp(bigTen, big.NewInt(int64(n)), nil)
		return p.Mul(p, d.coef), nil
	}
	if x, err = scale(a); err != nil {
		return nil, nil, 0, err
	}
	if y, err = scale(b); err != nil {
		return nil, nil, 0, err
	}
	return x, y, lo, nil
}

func decAdd(a, b decimal) (decimal, error) {
	x, y, exp, err := align(a, b)
	if err != nil {
		return decimal{}, err
	}
	return newDecimal(new(big.Int).Add(x, y), exp)
}

func decSub(a, b decimal) (decimal, error) {
	x, y, exp, err := align(a, b)
	if err != nil {
		return decimal{}, err
	}
	return newDecimal(new(big.Int).Sub(x, y), exp)
}

func decMul(a, b decimal) (decimal, error) {
	if digitsBound(a.coef)+digitsBound(b.coef) > 2*maxDecimalDigits+2 {
		return decimal{}, errDecimalSize
	}
	return newDecimal(new(big.Int).Mul(a.coef, b.coef), a.exp+b.exp)
}

func decNeg(a decimal) decimal { return decimal{coef: new(big.Int).Neg(a.coef), exp: a.exp} }

var errDivZero = errors.New("division by zero")

// decQuo returns a / b exactly: an error when b is zero or the quotient has no finite decimal form (1/3).
func decQuo(a, b decimal) (decimal, error) {
	if b.coef.Sign() == 0 {
		return decimal{}, errDivZero
	}
	if a.coef.Sign() == 0 {
		return zeroDecimal, nil
	}
	num, den := new(big.Int).Set(a.coef), new(big.Int).Abs(b.coef)
	g := new(big.Int).GCD(nil, nil, new(big.Int).Abs(num), den)
	num.Quo(num, g)
	den.Quo(den, g)
	// The quotient is a finite decimal iff den is 2^t2 × 5^t5; then num/den = num × 2^(k-t2) × 5^(k-t5) / 10^k.
	t2 := int(den.TrailingZeroBits())
	den.Rsh(den, uint(t2))
	t5 := 0
	var q, r big.Int
	for den.Cmp(bigOne) != 0 {
		q.QuoRem(den, bigFive, &r)
		if r.Sign() != 0 {
			return decimal{}, fmt.Errorf("%s / %s has no finite decimal form", a, b)
		}
		den.Set(&q)
		t5++
	}
	k := max(t2, t5)
	num.Lsh(num, uint(k-t2))
	num.Mul(num, new(big.Int).Exp(bigFive, big.NewInt(int64(k-t5)), nil))
	if b.coef.Sign() < 0 {
		num.Neg(num)
	}
	return newDecimal(num, a.exp-b.exp-k)
}

// decMod returns a % b exactly, truncated as Go's % and math.Mod are (the sign of a): 7 % 3 = 1, -7.5 % 2 = -1.5.
func decMod(a, b decimal) (decimal, error) {
	if b.coef.Sign() == 0 {
		return decimal{}, errDivZero
	}
	x, y, exp, err := align(a, b)
	if err != nil {
		return decimal{}, err
	}
	return newDecimal(new(big.Int).Rem(x, y), exp)
}

// decTrunc returns a's integral part, truncated toward zero (as int() truncates: -2.7 is -2).
func decTrunc(a decimal) *big.Int {
	if a.exp >= 0 {
		p := new(big.Int).Exp(bigTen, big.NewInt(int64(a.exp)), nil)
		return p.Mul(p, a.coef)
	}
	if a.digits()+a.exp <= 0 { // |a| < 1, without computing a large power of ten
		return new(big.Int)
	}
	p := new(big.Int).Exp(bigTen, big.NewInt(int64(-a.exp)), nil)
	return p.Quo(a.coef, p)
}

// decFloor, decCeil and decRound return the integer below, above or nearest a (halves away from zero, as
// math.Round), exactly.
func decFloor(a decimal) decimal {
	return decIntegral(a, func(t *big.Int, frac int) { t.Sub(t, big.NewInt(int64(frac))) }, -1)
}

func decCeil(a decimal) decimal {
	return decIntegral(a, func(t *big.Int, frac int) { t.Add(t, big.NewInt(int64(frac))) }, 1)
}

func decRound(a decimal) decimal {
	if a.exp >= 0 {
		return a
	}
	half := decimal{coef: bigFive, exp: -1}
	if a.coef.Sign() < 0 {
		half = decNeg(half)
	}
	s, err := decAdd(a, half)
	if err != nil { // cannot happen: a has a fraction, so at most 1000 digits and an exponent near 0
		return a
	}
	return decimal{coef: decTrunc(s), exp: 0}.norm()
}

// decIntegral truncates a, then steps once toward dir (adjust adds or subtracts 1) when a had a fraction on dir's
// side of zero.
func decIntegral(a decimal, adjust func(t *big.Int, frac int), dir int) decimal {
	if a.exp >= 0 {
		return a
	}
	t := decTrunc(a)
	if a.coef.Sign() == dir { // a fraction was cut on dir's side: one more step
		adjust(t, 1)
	}
	return decimal{coef: t, exp: 0}.norm()
}

// norm is d normalized (no trailing zeros); d's exponent is 0 and its coefficient at most 1001 digits, so it fits.
func (d decimal) norm() decimal {
	n, err := newDecimal(d.coef, d.exp)
	if err != nil {
		return d
	}
	return n
}

// decPow returns a ** b exactly for an integral b (a negative b divides: 2 ** -2 = 0.25, 3 ** -1 fails).
func decPow(a, b decimal) (decimal, error) {
	if b.exp < 0 {
		return decimal{}, fmt.Errorf("%s ** %s: an exact power needs an integral exponent", a, b)
	}
	if b.coef.Sign() == 0 {
		return newDecimal(bigOne, 0)
	}
	if a.coef.Sign() == 0 {
		if b.coef.Sign() < 0 {
			return decimal{}, errDivZero
		}
		return zeroDecimal, nil
	}
	nb, _, _, err := align(b, zeroDecimal) // b's integral value
	if err != nil || !nb.IsInt64() {
		return decimal{}, errDecimalSize
	}
	n := nb.Int64()
	neg := n < 0
	if neg {
		n = -n
	}
	if n > maxDecimalExp || int64(new(big.Int).Abs(a.coef).BitLen()-1)*n > maxDecimalDigits*34/10 || int64(a.exp)*n > maxDecimalExp || int64(a.exp)*n < -maxDecimalExp {
		return decimal{}, errDecimalSize
	}
	p, err := newDecimal(new(big.Int).Exp(a.coef, big.NewInt(n), nil), a.exp*int(n))
	if err != nil || !neg {
		return p, err
	}
	one, err := newDecimal(bigOne, 0)
	if err != nil {
		return decimal{}, err
	}
	return decQuo(one, p)
}

// decCmp compares a and b: -1, 0 or +1. It never fails: magnitudes too far apart to align compare by their leading
// digit's exponent.
func decCmp(a, b decimal) int {
	sa, sb := a.coef.Sign(), b.coef.Sign()
	if sa != sb || sa == 0 {
		return cmpInt(sa, sb)
	}
	la, lb := a.exp+a.digits(), b.exp+b.digits() // the exponent after the leading digit
	if la != lb {
		if la > lb {
			return sa
		}
		return -sa
	}
	x, y, _, err := align(a, b)
	if err != nil { // cannot happen: equal leading exponents keep the scaling within the bounds
		return 0
	}
	return x.Cmp(y)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// toNative converts a value for expr's own functions and operators, which compute in int and float64: numbers
// (deeply, in arrays and objects) become an int, or a float64 when not integral or beyond int64, only when that
// holds the exact value; otherwise an error, never a rounded value.
func toNative(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := toNative(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := toNative(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case decimal, json.Number:
		d, _, err := asDecimal(v)
		if err != nil {
			return nil, err
		}
		return nativeNumber(d)
	}
	return v, nil
}

func nativeNumber(d decimal) (any, error) {
	if d.exp >= 0 && d.digits()+d.exp <= 19 {
		i := new(big.Int).Exp(bigTen, big.NewInt(int64(d.exp)), nil)
		if i.Mul(i, d.coef); i.IsInt64() {
			return int(i.Int64()), nil
		}
	}
	f, err := strconv.ParseFloat(d.String(), 64)
	if err == nil {
		if back, _, err := decimalFloat(f, 64); err == nil && decCmp(back, d) == 0 {
			return f, nil
		}
	}
	return nil, fmt.Errorf("the number %s has no exact int or float64 form, which expr's functions compute with", d)
}
