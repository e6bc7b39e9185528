package pubsub

// Position is a place in the stream of changes, between two events: a
// subscription from it delivers the matching events of revision Revision
// whose Index is Index or more, then those of the later revisions. It is
// exact inside a transaction that a Close cut: see Subscription.Position.
//
// Position{Revision: r + 1} (After(r)) is where FromRevision r starts,
// for r above 0; the zero Position means from now.
type Position struct {
	Revision int64 // the revision to go on in
	Index    int   // the index, among all the events of that revision's transaction, of the first one still owed
}

// After returns the position right after revision rev: every event of a
// later revision. After(0) is the start of the stream, where
// FromRevision 0 means from now: resume with From: After(rev) from a
// revision held that may be 0 (Subscription.Revision before any change,
// an Initial load of a store with none).
func After(rev int64) Position { return Position{Revision: rev + 1} }

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
