package engine

import (
	"github.com/livekv/livekv/pubsub"
	"sync/atomic"
	"time"
)

// Item is one key and its value as of some revision. Items are values: they
// stay valid and unchanged whatever happens to the key afterwards.
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
// (prev) is kept only as long as some open snapshot may need it.
type version struct {
	value     string
	rev       int64
	createRev int64
	ver       int64
	expires   int64 // unix nanoseconds; 0 means no expiry
	kind      pubsub.Type
	prev      atomic.Pointer[version]
}

// deleted reports whether v is a tombstone (a delete or an expiry).
func (v *version) deleted() bool { return v.kind == pubsub.Delete || v.kind == pubsub.Expire }

// live reports whether v is a value that has not expired at now.
func (v *version) live(now int64) bool {
	return v != nil && !v.deleted() && (v.expires == 0 || now < v.expires)
}

// at returns the newest version in the chain starting at v whose revision
// is at most rev, or nil.
func (v *version) at(rev int64) *version {
	for v != nil && v.rev > rev {
		v = v.prev.Load()
	}
	return v
}

// shown returns v as a reader sees it; a nil v is a key that does not exist.
func (v *version) shown() shown {
	if v == nil || v.deleted() {
		return shown{}
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
