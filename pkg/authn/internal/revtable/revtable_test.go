package revtable

import (
	"math/rand/v2"
	"testing"
)

// TestTableAgainstAMap runs random inserts, raises and sweeps on a small
// table, where runs often wrap around its end, and checks after each step
// that it holds exactly what a map holds.
func TestTableAgainstAMap(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3, 4} {
		r := rand.New(rand.NewPCG(seed, 0))
		var tb Table
		tb.Init(64)
		model := map[uint64]uint32{}
		for step := range 20_000 {
			// Keys share low bits often, so that runs are long.
			k := uint64(r.IntN(200))<<8 | uint64(r.IntN(4))<<62 | 1
			switch op := r.IntN(10); {
			case op < 6 && len(model) < 48:
				exp := uint32(r.IntN(1000))
				if !tb.Raise(k, exp) {
					tb.Insert(k, exp)
					model[k] = exp
				} else {
					model[k] = max(model[k], exp)
				}
			case op < 9:
				exp := uint32(r.IntN(1000))
				if _, ok := model[k]; ok != tb.Raise(k, exp) {
					t.Fatalf("seed %d step %d: Raise(%x) disagrees with the model", seed, step, k)
				} else if ok {
					model[k] = max(model[k], exp)
				}
			default:
				now := uint32(r.IntN(1000))
				soonest := tb.Sweep(now)
				want := uint32(1 << 31)
				for mk, exp := range model {
					if exp < now {
						delete(model, mk)
					} else {
						want = min(want, exp)
					}
				}
				if len(model) > 0 && soonest != want {
					t.Fatalf("seed %d step %d: Sweep returned %d, want %d", seed, step, soonest, want)
				}
			}
			if tb.Len() != len(model) {
				t.Fatalf("seed %d step %d: Len = %d, model %d", seed, step, tb.Len(), len(model))
			}
			for mk, exp := range model {
				if i, ok := tb.find(mk); !ok || tb.exps[i] != exp {
					t.Fatalf("seed %d step %d: %x missing or wrong expiry", seed, step, mk)
				}
			}
		}
	}
}

// TestSize checks that a table of Size(n) slots holds n entries at three
// quarters load.
func TestSize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 47, 48, 49, 100, 1_000_000, 1_500_000, 1_572_864, 1_572_865} {
		s := Size(n)
		if s&(s-1) != 0 || s < 64 || s/4*3 < n || (s > 64 && s/8*3 >= n) {
			t.Errorf("Size(%d) = %d", n, s)
		}
	}
}
