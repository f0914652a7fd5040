//go:build !kdp_noexpr

package processor

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"testing"
)

// ratOfDecimal is d's value as math/big computes it from the coefficient and exponent (the oracle's reading).
func ratOfDecimal(d decimal) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(d.exp, -d.exp))), nil)
	if d.exp >= 0 {
		return new(big.Rat).SetInt(new(big.Int).Mul(d.coef, p))
	}
	return new(big.Rat).SetFrac(d.coef, p)
}

// finiteDecimal reports whether r has a finite decimal form: its reduced denominator is 2^i × 5^j.
func finiteDecimal(r *big.Rat) bool {
	den := new(big.Int).Set(r.Denom())
	for _, f := range []int64{2, 5} {
		m, q := big.NewInt(f), new(big.Int)
		for new(big.Int).Rem(den, m).Sign() == 0 {
			den.Set(q.Quo(den, m))
		}
	}
	return den.Cmp(big.NewInt(1)) == 0
}

// FuzzDecimalArith checks the exact decimal arithmetic of aggregate expressions against math/big.Rat: a op b for
// numbers a = ma × 10^ea and b = mb × 10^eb written as text (as payloads and literals write them), every result
// normalized, quotients and powers exact when finite and refused otherwise, remainders truncated, comparisons and
// conversions for expr's functions exact.
func FuzzDecimalArith(f *testing.F) {
	f.Add(int64(1), int16(-1), int64(2), int16(-1), uint8(0))
	f.Add(int64(1), int16(0), int64(3), int16(0), uint8(3))
	f.Add(int64(9223372036854775807), int16(0), int64(1), int16(0), uint8(0))
	f.Add(int64(-75), int16(-1), int64(2), int16(0), uint8(4))
	f.Add(int64(11), int16(-1), int64(2), int16(0), uint8(5))
	f.Add(int64(2), int16(0), int64(-3), int16(0), uint8(5))
	f.Add(int64(-9223372036854775808), int16(-300), int64(7), int16(300), uint8(6))
	f.Add(int64(12345678901234567), int16(-17), int64(0), int16(0), uint8(7))
	f.Fuzz(func(t *testing.T, ma int64, ea int16, mb int64, eb int16, op uint8) {
		ea, eb = ea%300, eb%300
		at, bt := fmt.Sprintf("%de%d", ma, ea), fmt.Sprintf("%dE%+d", mb, eb)
		a, err := parseExactNumber(at)
		if err != nil {
			t.Fatalf("parse %s: %v", at, err)
		}
		b, err := parseExactNumber(bt)
		if err != nil {
			t.Fatalf("parse %s: %v", bt, err)
		}
		ra, _ := new(big.Rat).SetString(at)
		rb, _ := new(big.Rat).SetString(bt)
		if ratOfDecimal(a).Cmp(ra) != 0 || ratOfDecimal(b).Cmp(rb) != 0 {
			t.Fatalf("parse %s, %s = %s, %s", at, bt, a, b)
		}
		check := func(name string, got decimal, err error, want *big.Rat) {
			t.Helper()
			if want == nil {
				if err == nil {
					t.Fatalf("%s %s %s = %s, want an error", at, name, bt, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s %s %s: %v, want %s", at, name, bt, err, want.RatString())
			}
			if got.coef.Sign() == 0 && got.exp != 0 || got.coef.Sign() != 0 && new(big.Int).Rem(got.coef, big.NewInt(10)).Sign() == 0 {
				t.Fatalf("%s %s %s = %v×10^%d, not normalized", at, name, bt, got.coef, got.exp)
			}
			if r := ratOfDecimal(got); r.Cmp(want) != 0 {
				t.Fatalf("%s %s %s = %s, want %s", at, name, bt, got, want.RatString())
			}
			if r, ok := new(big.Rat).SetString(got.String()); !ok || r.Cmp(want) != 0 {
				t.Fatalf("%s %s %s: String %q, want %s", at, name, bt, got.String(), want.RatString())
			}
		}
		switch op % 8 {
		case 0:
			got, err := decAdd(a, b)
			check("+", got, err, new(big.Rat).Add(ra, rb))
		case 1:
			got, err := decSub(a, b)
			check("-", got, err, new(big.Rat).Sub(ra, rb))
		case 2:
			got, err := decMul(a, b)
			check("*", got, err, new(big.Rat).Mul(ra, rb))
		case 3:
			got, err := decQuo(a, b)
			var want *big.Rat
			if rb.Sign() != 0 {
				if q := new(big.Rat).Quo(ra, rb); finiteDecimal(q) {
					want = q
				}
			}
			check("/", got, err, want)
		case 4:
			got, err := decMod(a, b)
			var want *big.Rat
			if rb.Sign() != 0 {
				q := new(big.Rat).Quo(ra, rb)
				trunc := new(big.Int).Quo(q.Num(), q.Denom()) // toward zero
				want = new(big.Rat).Sub(ra, new(big.Rat).Mul(rb, new(big.Rat).SetInt(trunc)))
			}
			check("%", got, err, want)
		case 5:
			n := mb % 9 // a small integral exponent, -8 to 8
			nb, _ := parseExactNumber(strconv.FormatInt(n, 10))
			got, err := decPow(a, nb)
			want := big.NewRat(1, 1)
			for range max(n, -n) {
				want.Mul(want, ra)
			}
			if n < 0 {
				if want.Sign() == 0 {
					want = nil
				} else if want.Inv(want); !finiteDecimal(want) {
					want = nil
				}
			}
			if err != nil && errors.Is(err, errDecimalSize) {
				return // beyond the bounds: refused, as it should be
			}
			check(fmt.Sprintf("** %d (b ignored)", n), got, err, want)
		case 6:
			if got, want := decCmp(a, b), ra.Cmp(rb); got != want {
				t.Fatalf("cmp(%s, %s) = %d, want %d", at, bt, got, want)
			}
		case 7:
			v, err := nativeNumber(a)
			switch x := v.(type) {
			case int:
				if ratOfDecimal(a).Cmp(new(big.Rat).SetInt64(int64(x))) != 0 {
					t.Fatalf("native(%s) = %d", at, x)
				}
			case float64:
				r, _ := new(big.Rat).SetString(strconv.FormatFloat(x, 'g', -1, 64))
				if r.Cmp(ra) != 0 {
					t.Fatalf("native(%s) = %v, not its value", at, x)
				}
			case nil:
				if err == nil {
					t.Fatalf("native(%s): nil without an error", at)
				}
				if ra.IsInt() && ra.Num().IsInt64() {
					t.Fatalf("native(%s): %v, but it is an int64", at, err)
				}
			}
		}
	})
}
