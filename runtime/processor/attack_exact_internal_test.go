//go:build !kdp_noexpr

package processor

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestAttackExactIntegralAgainstRat: decFloor, decCeil and decRound (halves away from zero) of random decimals,
// against math/big: floor is the Euclidean quotient of the fraction's numerator by its denominator.
func TestAttackExactIntegralAgainstRat(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 1))
	for range 3000 {
		text := fmt.Sprintf("%d.%de%d", rng.IntN(2_000_001)-1_000_000, rng.IntN(1000), rng.IntN(30)-20)
		if rng.IntN(4) == 0 {
			text = fmt.Sprintf("%d.5", rng.IntN(21)-10) // halves
		}
		d, err := parseExactNumber(text)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := new(big.Rat).SetString(text)
		floor := new(big.Int).Div(r.Num(), r.Denom()) // Euclidean: rounds toward -inf for a positive divisor
		ceil := new(big.Int).Neg(new(big.Int).Div(new(big.Int).Neg(r.Num()), r.Denom()))
		abs := new(big.Rat).Abs(r)
		abs.Add(abs, big.NewRat(1, 2))
		round := new(big.Int).Div(abs.Num(), abs.Denom())
		if r.Sign() < 0 {
			round.Neg(round)
		}
		for _, c := range []struct {
			name string
			got  decimal
			want *big.Int
		}{{"floor", decFloor(d), floor}, {"ceil", decCeil(d), ceil}, {"round", decRound(d), round}} {
			g, ok := new(big.Rat).SetString(c.got.String())
			if !ok || g.Cmp(new(big.Rat).SetInt(c.want)) != 0 {
				t.Errorf("%s(%s) = %s, want %s", c.name, text, c.got, c.want)
			}
		}
	}
}
