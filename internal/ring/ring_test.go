package ring

import (
	"math/rand/v2"
	"testing"
)

// TestRing_Model: a ring holds what a slice used as a queue holds, in
// order, through random pushes, pops, trims, reserves and clears that make it
// wrap and then grow from a wrapped state; a slot a value left is cleared.
func TestRing_Model(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	wrappedGrowths := 0
	for round := range 200 {
		var r Ring[*int]
		var model []*int
		for step := range 2000 {
			switch op := rng.IntN(10); {
			case op < 6:
				v := new(int)
				*v = step
				if r.Len() == r.Cap() && r.head > 0 {
					wrappedGrowths++
				}
				r.Push(v)
				model = append(model, v)
			case op < 9 && len(model) > 0:
				slot := r.head
				r.Pop()
				model = model[1:]
				if r.buf[slot] != nil {
					t.Fatalf("round %d step %d: a popped slot still holds its value", round, step)
				}
			case op == 9 && rng.IntN(5) == 0:
				keep := rng.IntN(len(model) + 2)
				r.Trim(keep)
				model = model[max(0, len(model)-keep):]
			case op == 9 && rng.IntN(20) == 0:
				r.Clear()
				model = model[:0]
			case op == 9:
				r.Reserve(r.Len() + rng.IntN(40))
			}
			if r.Len() != len(model) {
				t.Fatalf("round %d step %d: %d values, want %d", round, step, r.Len(), len(model))
			}
			for i, v := range model {
				if *r.At(i) != v {
					t.Fatalf("round %d step %d: value %d is %d, want %d", round, step, i, **r.At(i), *v)
				}
			}
		}
	}
	if wrappedGrowths == 0 {
		t.Fatal("the ring never grew from a wrapped state")
	}
}

// TestRing_NoGrowthAtABound: a ring kept at a bound, a pop for every push,
// stops growing once it holds the bound.
func TestRing_NoGrowthAtABound(t *testing.T) {
	var r Ring[int]
	for i := range 1000 {
		r.Push(i)
	}
	c := r.Cap()
	for i := range 100_000 {
		r.Push(i)
		r.Pop()
	}
	if r.Cap() != c {
		t.Fatalf("the ring grew from %d to %d at a bound of 1,000", c, r.Cap())
	}
}

// TestRing_AtOutOfRange checks that At panics outside the values held,
// where a slot may hold a value popped or never pushed.
func TestRing_AtOutOfRange(t *testing.T) {
	var r Ring[int]
	panics := func(i int) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("At(%d) with %d values held did not panic", i, r.Len())
			}
		}()
		r.At(i)
	}
	panics(0)
	for i := range 20 {
		r.Push(i)
	}
	r.Pop()
	if *r.At(0) != 1 || *r.At(18) != 19 {
		t.Fatalf("front %d, back %d; want 1 and 19", *r.At(0), *r.At(18))
	}
	panics(19) // a slot beyond the back
	panics(-1)
}
