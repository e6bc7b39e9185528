// Package ring is a queue kept in a ring buffer: values go in at the back
// and leave from the front, and any of them is read in place by its place
// from the front. Nothing moves as values come and go; the buffer grows
// only when every slot holds a value (it doubles), or when asked to
// (Reserve).
package ring

// Ring is a queue of T. The zero Ring is empty and ready to use.
type Ring[T any] struct {
	buf  []T
	head int // the front's slot
	n    int // values held
}

// Len returns how many values the ring holds.
func (r *Ring[T]) Len() int { return r.n }

// Cap returns how many values the ring can hold before it grows.
func (r *Ring[T]) Cap() int { return len(r.buf) }

// At returns the i-th value from the front, in place; it panics unless
// 0 <= i < Len().
func (r *Ring[T]) At(i int) *T {
	if uint(i) >= uint(r.n) {
		panic("ring: index out of range")
	}
	j := r.head + i
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	return &r.buf[j]
}

// Push adds v at the back; a full ring first doubles (to 16 at first).
func (r *Ring[T]) Push(v T) {
	if r.n == len(r.buf) {
		r.grow(max(2*len(r.buf), 16))
	}
	r.n++
	*r.At(r.n - 1) = v
}

// Pop removes the front value and clears its slot, so that nothing it
// points to is kept alive by the ring. The ring must not be empty.
func (r *Ring[T]) Pop() {
	var zero T
	r.buf[r.head] = zero
	if r.head++; r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
}

// Trim removes values from the front, as Pop does, until at most n are left.
func (r *Ring[T]) Trim(n int) {
	for r.n > n {
		r.Pop()
	}
}

// Reserve makes room for at least n values in all.
func (r *Ring[T]) Reserve(n int) {
	if n > len(r.buf) {
		r.grow(n)
	}
}

// Clear removes every value, keeping the room.
func (r *Ring[T]) Clear() {
	clear(r.buf)
	r.head, r.n = 0, 0
}

// grow moves the values into a buffer of size slots, the front first.
func (r *Ring[T]) grow(size int) {
	buf := make([]T, size)
	k := copy(buf, r.buf[r.head:])
	copy(buf[k:], r.buf[:r.head])
	r.buf, r.head = buf, 0
}
