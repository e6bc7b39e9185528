package pubsub

// Position is a place in the stream of changes, between two events: a
// subscription from it delivers the matching events of revision Revision
// whose Index is Index or more, then those of the later revisions. It is
// exact inside a transaction that a Close cut: see Subscription.Position.
//
// Position{Revision: r + 1} is where FromRevision r starts; the zero
// Position means from now.
type Position struct {
	Revision int64 // the revision to go on in
	Index    int   // the index, among all the events of that revision's transaction, of the first one still owed
}

// before reports whether p comes before q in the stream.
func (p Position) before(q Position) bool {
	return p.Revision < q.Revision || p.Revision == q.Revision && p.Index < q.Index
}

// later returns the later of p and q.
func later(p, q Position) Position {
	if p.before(q) {
		return q
	}
	return p
}

// ring holds the positions of the events that may still be in a
// subscription's channel, oldest first: the first unread event's is where
// the reader is. It grows to the most events the channel has held at once.
type ring struct {
	buf     []Position
	head, n int
}

func (r *ring) push(p Position) {
	if r.n == len(r.buf) {
		buf := make([]Position, max(8, 2*len(r.buf)))
		for i := 0; i < r.n; i++ {
			buf[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = p
	r.n++
}

// keep drops all but the newest n positions.
func (r *ring) keep(n int) {
	if d := r.n - n; d > 0 {
		r.head = (r.head + d) % len(r.buf)
		r.n = n
	}
}

// oldest returns the oldest position; the ring is not empty.
func (r *ring) oldest() Position { return r.buf[r.head] }
