package engine

import (
	"github.com/livekv/livekv/pubsub"
	"sync/atomic"
	"time"
)

// Item is one key and its value as of some revision. Items are values: they
// stay valid and unchanged whatever happens to the key afterwards.
//
// A Key or Value of up to 4 KiB shares memory with other keys and values:
// kept long after the store has moved on, it keeps a chunk of it in use,
// 256 KiB, or in a store of more than 128 MiB about a 256th of the
// store, up to 4 MiB. Clone it (strings.Clone) to keep its bytes alone.
type Item struct {
	Key   string
	Value string

	// Revision is the revision of the transaction that last changed the key
	// (its "mod revision"). CompareAndSwap compares against it.
	Revision int64

	// CreateRevision is the revision at which the key was created. A key
	// that is deleted (or expires) and set again gets a new CreateRevision.
	CreateRevision int64

	// Version counts the changes made to the key since it was created,
	// starting at 1. Several writes to one key within one transaction count
	// as one change.
	Version int64

	// ExpiresAt is when the key expires; the zero Time means never.
	ExpiresAt time.Time
}

// version is one immutable state of a key. The chain of older versions
// (prev) is kept only as long as some open snapshot may need it, and a
// key's newest version only while a writer or a snapshot needs it as an
// object: once it is committed and visible, and no open snapshot reads
// below it, the entry's visible copy (vis) is all that is kept of it
// (entryTable.head goes back to nil).
type version struct {
	value     string
	rev       int64
	createRev int64
	ver       int64
	expires   int64 // unix nanoseconds; 0 means no expiry
	kind      pubsub.Type
	chunk     uint32 // the arena's block that holds value (a chunk, or its own from publish on); 0: none yet
	prev      atomic.Pointer[version]
}

// deleted reports whether v is a tombstone (a delete or an expiry).
func (v *version) deleted() bool { return v.kind == pubsub.Delete || v.kind == pubsub.Expire }

// at returns the newest version in the chain starting at v whose revision
// is at most rev, or nil.
func (v *version) at(rev int64) *version {
	for v != nil && v.rev > rev {
		v = v.prev.Load()
	}
	return v
}

// shown returns v as a reader sees it; a nil v is a key that does not
// exist, and a tombstone keeps only its revision, as the visible copy does.
func (v *version) shown() shown {
	if v == nil {
		return shown{}
	}
	if v.deleted() {
		return shown{rev: v.rev}
	}
	return shown{value: v.value, rev: v.rev, created: v.createRev, ver: v.ver, expires: v.expires}
}

func (v *version) item(key string) Item {
	it := Item{Key: key, Value: v.value, Revision: v.rev, CreateRevision: v.createRev, Version: v.ver}
	if v.expires != 0 {
		it.ExpiresAt = expiresAt(v.expires)
	}
	return it
}

// expiresAt is kept out of line so that scan loops, which build items
// themselves, stay small.
//
//go:noinline
func expiresAt(unixNano int64) time.Time { return time.Unix(0, unixNano) }

// newest returns e's newest version as a writer, holding DB.wmu, sees it:
// its own or another transaction's uncommitted write if there is one,
// otherwise the committed version in vis. ver is 0 when the key has no
// value (rev still says which revision left it so).
func (e *entry) newest(tab *entryTable) shown {
	if h := tab.head(e); h != nil {
		return h.shown()
	}
	var s shown
	e.vis.load(&s, tab)
	return s
}

// at returns e as a snapshot at revision rev sees it (ver 0: no value).
// The visible copy is read first: if it is at or below rev, it is the
// newest committed version the snapshot can see, and anything in the
// chain is newer. Otherwise the chain holds what rev saw: the snapshot
// was open when the newer version became visible, so the version before
// it was linked into the chain then (DB.publish), and the chain is loaded
// after the visible copy, so it is at least that new.
func (e *entry) at(rev int64, tab *entryTable) shown {
	var s shown
	if e.vis.load(&s, tab); s.rev <= rev {
		return s
	}
	return tab.head(e).at(rev).shown()
}

// before reports what e held before a write that found old as its head:
// whether the key had a value (expired or not) and that value's expiry. A
// nil old on an entry the write did not create means the committed version
// in vis was the newest, and that is always a value: a tombstone's version
// stays in head until its entry is buried.
func (e *entry) before(old *version, created bool) (present bool, expires int64) {
	switch {
	case old != nil:
		return !old.deleted(), old.expires
	case created:
		return false, 0
	default:
		return true, e.vis.expires.Load()
	}
}

// committed returns the committed version in vis as an object, for a
// chain that a snapshot still reads; vis must hold a value. Only publish
// calls it, holding pub.mu: vis does not change meanwhile (besides
// publish, only recovery and Restore store it, with no commit queued).
func (x *visible) committed(tab *entryTable) *version {
	var s shown
	x.load(&s, tab)
	return &version{value: s.value, rev: s.rev, createRev: s.created, ver: s.ver, expires: s.expires, kind: pubsub.Put}
}
