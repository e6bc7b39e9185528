package adapter

import (
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/livekv/livekv/engine"
)

// ErrQuotaExceeded is what a Quota returns to refuse a write; the client
// gets code 507 (Insufficient Storage), over WebSocket and REST.
var ErrQuotaExceeded = errors.New("quota exceeded")

// A Quota bounds what keys may hold. With Options.Quota set, every write
// the adapter runs (set, patch, increment, compare-and-swap, delete; over
// WebSocket and REST; with a token or an API key) runs in a transaction
// that measures its key before and after the write and asks Charge before
// committing.
type Quota interface {
	// Charge is called from inside the write's transaction, so for one
	// write at a time, with the change the write makes to key: bytes is
	// the change in len(key)+len(value) (a missing key holds 0; negative
	// when the value shrinks or the key goes) and keys is 1 when the
	// write creates key, -1 when it deletes it, else 0. It returns nil to
	// let the write commit, having counted it, or an error that wraps
	// ErrQuotaExceeded (any other error: code 500) to refuse it: then
	// nothing is written. Charge must not use the DB, whose writer lock
	// the transaction holds. A write that Charge accepted but that then
	// fails to commit (a disk error) stays counted: a Quota may count
	// more than the DB holds, never less. A DBX batch (or mset) whose
	// transaction fails after Charge accepted some of its writes gives
	// them back before it rolls back, the last first, calling Charge
	// again (in the transaction) with bytes and keys negated, which
	// Charge must accept: the give-back of a delete counts its key (and
	// bytes) again, and refused, it would leave the Quota counting less
	// than the DB holds. (A PrefixQuota is given them back otherwise.)
	Charge(key string, bytes, keys int64) error
}

// QuotaLimit bounds the keys that start with Prefix: their number and
// their bytes (of keys and values together).
type QuotaLimit struct {
	Prefix   string
	MaxKeys  int64
	MaxBytes int64
}

// QuotaUsage is what the keys under a prefix hold.
type QuotaUsage struct {
	Keys  int64
	Bytes int64
}

// PrefixQuota is a Quota over key prefixes: a write is refused if it
// would take the keys under one of its prefixes past their MaxKeys or
// MaxBytes. A write that frees room, or keeps its key's size, is never
// refused, even over a limit (after the limits were lowered). The totals
// are kept in memory, counted from the DB by NewPrefixQuota, so that they
// follow the DB across restarts. Writes that bypass the adapter (the Go
// API, a key's expiry) are not counted as they happen: before it refuses
// a write, the adapter has the quota count the prefix again from the
// write's transaction (at most every recountEvery a prefix), so that keys
// gone by expiry cannot hold an app at its limit.
type PrefixQuota struct {
	limits []QuotaLimit

	mu      sync.Mutex
	used    []QuotaUsage // guarded by mu; one per limit
	counted []time.Time  // guarded by mu; when each limit's prefix was last counted
}

// recountEvery bounds how often a refusal counts a prefix again: each
// count reads its keys, up to MaxKeys, under the writer lock.
const recountEvery = 100 * time.Millisecond

// recounter is a Quota that can count again what the keys under key's
// prefixes hold, from tx, in which a write made the change d to key;
// it reports whether it did.
type recounter interface {
	recount(tx *engine.Tx, key string, d QuotaUsage) (bool, error)
}

// NewPrefixQuota counts what db holds under each limit's prefix (a scan
// of them) and returns a quota for an adapter over db. Make it before the
// adapter serves: writes made during the scan are not counted.
func NewPrefixQuota(db *engine.DB, limits ...QuotaLimit) (*PrefixQuota, error) {
	q := &PrefixQuota{limits: limits, used: make([]QuotaUsage, len(limits)), counted: make([]time.Time, len(limits))}
	for i, l := range limits {
		if l.Prefix == "" || l.MaxKeys < 0 || l.MaxBytes < 0 {
			return nil, fmt.Errorf("%w: quota for %q: an empty prefix or a negative limit", ErrInvalidOptions, l.Prefix)
		}
		err := db.View(func(tx *engine.Tx) error {
			u, _, err := countPrefix(tx, l.Prefix, -1)
			q.used[i] = u
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return q, nil
}

// countPrefix is what the keys that start with prefix hold in tx; with
// most at 0 or more, it stops once it has read most + 1 keys, and whole
// is false.
func countPrefix(tx *engine.Tx, prefix string, most int64) (u QuotaUsage, whole bool, err error) {
	items, err := tx.Prefix(prefix, nil)
	if err != nil {
		return u, false, err
	}
	return countItems(items, most)
}

// countItems is countPrefix over items.
func countItems(items iter.Seq2[engine.Item, error], most int64) (u QuotaUsage, whole bool, err error) {
	for it, err := range items {
		if err != nil {
			return u, false, err
		}
		u.Keys++
		u.Bytes += int64(len(it.Key) + len(it.Value))
		if most >= 0 && u.Keys > most {
			return u, false, nil // over the limit: the rest need not be read
		}
	}
	return u, true, nil
}

// recount implements recounter: the prefixes of key whose last count
// ended recountEvery ago or more are counted from tx, less d, which
// Charge adds again. A count stops past MaxKeys keys (and recountEvery
// runs from its end), so that it holds the writer lock for a bounded
// time: the write it stopped for is over the limit anyway, and the count
// kept is left as it was, since a part of it would be below what the DB
// holds.
func (q *PrefixQuota) recount(tx *engine.Tx, key string, d QuotaUsage) (bool, error) {
	did := false
	for i, l := range q.limits {
		if !strings.HasPrefix(key, l.Prefix) {
			continue
		}
		q.mu.Lock()
		due := time.Since(q.counted[i]) >= recountEvery
		q.mu.Unlock()
		if !due {
			continue
		}
		u, whole, err := countPrefix(tx, l.Prefix, l.MaxKeys)
		q.mu.Lock()
		q.counted[i] = time.Now()
		if err == nil && whole {
			q.used[i] = QuotaUsage{Keys: u.Keys - d.Keys, Bytes: u.Bytes - d.Bytes}
			did = true
		}
		q.mu.Unlock()
		if err != nil {
			return did, err
		}
	}
	return did, nil
}

// Charge implements Quota.
func (q *PrefixQuota) Charge(key string, bytes, keys int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, l := range q.limits {
		if !strings.HasPrefix(key, l.Prefix) {
			continue
		}
		u := q.used[i]
		if keys > 0 && u.Keys+keys > l.MaxKeys {
			return fmt.Errorf("%w: %q holds %d keys, at most %d", ErrQuotaExceeded, l.Prefix, u.Keys, l.MaxKeys)
		}
		if bytes > 0 && u.Bytes+bytes > l.MaxBytes {
			return fmt.Errorf("%w: %q holds %d bytes of keys and values, at most %d; this write adds %d",
				ErrQuotaExceeded, l.Prefix, u.Bytes, l.MaxBytes, bytes)
		}
	}
	for i, l := range q.limits {
		if strings.HasPrefix(key, l.Prefix) {
			q.used[i].Keys += keys
			q.used[i].Bytes += bytes
		}
	}
	return nil
}

// giver is a Quota that takes back what it counted for a write that then
// rolled back, without Charge's checks: the give-back of a delete counts
// a key again, which Charge would refuse past a limit as a new key.
type giver interface {
	giveBack(key string, bytes, keys int64)
}

// giveBack implements giver: it takes back the bytes and keys it counted
// for a write to key.
func (q *PrefixQuota) giveBack(key string, bytes, keys int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, l := range q.limits {
		if strings.HasPrefix(key, l.Prefix) {
			q.used[i].Keys -= keys
			q.used[i].Bytes -= bytes
		}
	}
}

// Usage returns what the keys under prefix hold, as counted; zero for a
// prefix without a limit.
func (q *PrefixQuota) Usage(prefix string) QuotaUsage {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, l := range q.limits {
		if l.Prefix == prefix {
			return q.used[i]
		}
	}
	return QuotaUsage{}
}
