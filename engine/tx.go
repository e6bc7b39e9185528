package engine

import (
	"fmt"
	"github.com/livekv/livekv/pubsub"
	"slices"
	"strconv"
	"time"
)

// Tx is a transaction: a write transaction inside Update, or a read-only
// snapshot inside View. A Tx must not be used after its function returns,
// nor from several goroutines at once.
type Tx struct {
	db       *DB
	writable bool
	done     bool
	rev      int64 // write: the revision it commits as; read: the snapshot's
	now      int64 // the clock when the transaction began, in unix ns
	at       int64 // the time its reads judge expiry at (DB.readAt)

	// A write transaction records each entry it changes once, with the
	// version it found, so that a rollback can restore it.
	writes []txWrite

	// read is the newest revision of another transaction that a write
	// transaction read: a key's newest version, which may still be
	// waiting for its fsync. Whatever the transaction returns, it returns
	// only once read is durable (see DB.write).
	read int64

	// applied marks a transaction that Replica.ApplyCommitted replays:
	// durable already, it goes to neither the log nor the replicator.
	applied bool

	snap  treeCopy // read: the snapshot's tree
	probe *entry   // read: a search key for snap, taken at the first Get

	// loops are the Range loops of a write transaction still running.
	loops []*txLoop

	// nwrites and gets count the transaction's writes and point reads,
	// added to the DB's counters when it ends: writes only if it commits.
	nwrites, gets int64
}

// txLoop is a Range loop of a write transaction: it shows every key as it
// was when the loop began, so each write the loop's body makes to a key
// the loop has not read yet keeps, here, what the key held before it. A
// key the loop has read (up to passed) needs nothing kept: a loop that
// rewrites every key it walks keeps no more than a batch's.
type txLoop struct {
	before  map[uint32]shown // by entry id; nil until the first write
	passed  string           // the last key the loop has read, in its order; "" (no key) before
	reverse bool             // the loop walks down
}

// behind reports whether the loop has read key, or has gone past it.
func (l *txLoop) behind(key string) bool {
	if l.passed == "" {
		return false
	}
	if l.reverse {
		return key >= l.passed
	}
	return key <= l.passed
}

// startLoop registers a Range loop of a write transaction; endLoop, once
// it ends.
func (tx *Tx) startLoop(reverse bool) *txLoop {
	l := &txLoop{reverse: reverse}
	tx.loops = append(tx.loops, l)
	return l
}

func (tx *Tx) endLoop(l *txLoop) {
	if i := slices.Index(tx.loops, l); i >= 0 {
		tx.loops = slices.Delete(tx.loops, i, i+1)
	}
}

// shown returns e as the loop shows it: as it was when the loop began.
func (l *txLoop) shown(e *entry, tab *entryTable) shown {
	if v, ok := l.before[e.id]; ok {
		return v
	}
	return e.newest(tab)
}

type txWrite struct {
	e *entry
	// old is head before the transaction: nil if the entry is new, or if
	// its newest version was the committed one in vis (entry.before).
	old     *version
	created bool // the transaction put e into the index
}

func (tx *Tx) check(write bool) error {
	switch {
	case tx.done:
		return ErrTxDone
	case write && !tx.writable:
		return ErrReadOnly
	}
	return nil
}

// Revision is the revision a write transaction will commit as, or the
// revision a read-only transaction sees.
func (tx *Tx) Revision() int64 { return tx.rev }

// Now is the time the transaction reads and writes at, by the DB's clock
// (Options.Now): what it reads has not expired at Now, and a TTL it
// writes counts from Now, so a key with ExpiresAt e has e.Sub(tx.Now())
// left. On a replica (OpenReplica) a key is there until its expiry
// commits, so what it reads may have expired at Now, with no time left.
func (tx *Tx) Now() time.Time { return time.Unix(0, tx.now) }

// lookup returns the key's entry (nil if it has none) and its newest
// version as a write transaction sees it, with ver 0 if that is not a live
// value.
func (tx *Tx) lookup(key string) (*entry, shown) {
	e := tx.db.index.get(key)
	if e == nil {
		return nil, shown{}
	}
	v := e.newest(tx.db.entries.tab)
	if v.rev != tx.rev {
		tx.read = max(tx.read, v.rev)
	}
	if !v.live(tx.at) {
		if v.ver != 0 {
			tx.db.holdClock(tx.at) // expired: it stays so
		}
		return e, shown{}
	}
	return e, v
}

// Get returns the item stored under key, or ErrNotFound.
func (tx *Tx) Get(key string) (Item, error) {
	if err := tx.check(false); err != nil {
		return Item{}, err
	}
	tx.gets++
	if err := tx.db.checkKey(key); err != nil {
		return Item{}, err
	}
	if !tx.writable {
		k0, k1 := abbrev(key)
		if tx.probe == nil {
			tx.probe = tx.snap.tab.probe(key) // given back when View ends
		} else {
			tx.snap.tab.reprobe(tx.probe, key)
		}
		ti, ok := tx.snap.Get(treeItem{k0: k0, k1: k1, id: tx.probe.id})
		if !ok {
			return Item{}, ErrNotFound
		}
		e := tx.snap.entry(ti)
		v := e.at(tx.rev, tx.snap.tab)
		if !v.live(tx.at) {
			if v.ver != 0 {
				tx.db.holdClock(tx.at) // expired: it stays so
			}
			return Item{}, ErrNotFound
		}
		return v.item(tx.snap.tab.key(e)), nil
	}
	_, v := tx.lookup(key)
	if v.ver == 0 {
		return Item{}, ErrNotFound
	}
	return v.item(key), nil
}

// write makes v the key's newest version. cur is the key's live version
// (ver 0 if none) and e its entry (nil if the key has none yet).
func (tx *Tx) write(key string, e *entry, cur shown, v *version) {
	v.rev = tx.rev
	if cur.ver != 0 {
		v.createRev, v.ver = cur.created, cur.ver+1
		if cur.rev == tx.rev { // written before in this transaction: one change
			v.ver = cur.ver
		}
	} else {
		v.createRev, v.ver = tx.rev, 1
	}
	v.value, v.chunk = tx.db.vals.put(v.value, tx.rev)
	if e != nil {
		for _, l := range tx.loops {
			if l.behind(key) {
				continue
			}
			if _, ok := l.before[e.id]; !ok {
				if l.before == nil {
					l.before = make(map[uint32]shown)
				}
				l.before[e.id] = e.newest(tx.db.entries.tab)
			}
		}
	}
	created := false
	if e == nil {
		e = tx.db.allocEntry(tx.db.vals.putKey(key))
		created = true
	}
	// A nil old on an entry that exists leaves v.prev nil: the version
	// before v is the committed one in vis, which publish links into the
	// chain if a snapshot still needs it.
	old := tx.db.entries.tab.head(e)
	if old != nil && old.rev == tx.rev {
		v.prev.Store(old.prev.Load())
	} else {
		v.prev.Store(old)
		tx.writes = append(tx.writes, txWrite{e: e, old: old, created: created})
	}
	tx.db.entries.tab.setHead(e, v)
	if created {
		tx.db.index.put(e)
		tx.db.order.add(e)
	}
	tx.nwrites++
}

// Set stores value under key, replacing any value it had. Without a TTL the
// key never expires, even if it had a TTL before.
func (tx *Tx) Set(key, value string, opts *SetOptions) (Item, error) {
	if err := tx.check(true); err != nil {
		return Item{}, err
	}
	exp, err := tx.validate(key, value, opts)
	if err != nil {
		return Item{}, err
	}
	e, cur := tx.lookup(key)
	v := &version{value: value, expires: exp, kind: pubsub.Put}
	tx.write(key, e, cur, v)
	return v.item(key), nil
}

// PutIfAbsent stores value under key only if the key does not exist;
// otherwise it returns ErrConflict and changes nothing.
func (tx *Tx) PutIfAbsent(key, value string, opts *SetOptions) (Item, error) {
	return tx.CompareAndSwap(key, 0, value, opts)
}

// CompareAndSwap stores value under key only if the key's Revision is rev;
// rev 0 means the key must not exist. Otherwise it returns ErrConflict and
// changes nothing.
func (tx *Tx) CompareAndSwap(key string, rev int64, value string, opts *SetOptions) (Item, error) {
	if err := tx.check(true); err != nil {
		return Item{}, err
	}
	if rev < 0 {
		return Item{}, fmt.Errorf("%w: negative revision %d", ErrInvalidOptions, rev)
	}
	exp, err := tx.validate(key, value, opts)
	if err != nil {
		return Item{}, err
	}
	e, cur := tx.lookup(key)
	if cur.ver == 0 && rev != 0 || cur.ver != 0 && cur.rev != rev {
		return Item{}, ErrConflict
	}
	v := &version{value: value, expires: exp, kind: pubsub.Put}
	tx.write(key, e, cur, v)
	return v.item(key), nil
}

// Patch changes the value under key with value: when both the stored value
// and value are JSON objects they are merged as RFC 7396 says (a null member
// removes a field); otherwise value is appended to the stored string. A
// missing key is created with value. The key keeps its expiry.
func (tx *Tx) Patch(key, value string) (Item, error) {
	if err := tx.check(true); err != nil {
		return Item{}, err
	}
	if _, err := tx.validate(key, value, nil); err != nil {
		return Item{}, err
	}
	e, cur := tx.lookup(key)
	v := &version{value: value, kind: pubsub.Patch}
	if cur.ver != 0 {
		v.value = patch(cur.value, value)
		v.expires = cur.expires
		if err := tx.db.checkValue("patched value", key, v.value); err != nil {
			return Item{}, err
		}
	}
	tx.write(key, e, cur, v)
	return v.item(key), nil
}

// Increment adds delta to the integer stored under key and returns the
// result. A missing key counts as 0. A value that is not a base-10 int64 is
// ErrNotInteger, a result that overflows is ErrOverflow; either changes
// nothing. The key keeps its expiry.
func (tx *Tx) Increment(key string, delta int64) (int64, error) {
	if err := tx.check(true); err != nil {
		return 0, err
	}
	if err := tx.db.checkKey(key); err != nil {
		return 0, err
	}
	e, cur := tx.lookup(key)
	var n, exp int64
	if cur.ver != 0 {
		var err error
		if n, err = strconv.ParseInt(cur.value, 10, 64); err != nil {
			return 0, fmt.Errorf("%w: %q holds %.32q", ErrNotInteger, key, cur.value)
		}
		exp = cur.expires
	}
	if delta > 0 && n > maxInt64-delta || delta < 0 && n < minInt64-delta {
		return 0, fmt.Errorf("%w: %d%+d", ErrOverflow, n, delta)
	}
	n += delta
	v := &version{value: strconv.FormatInt(n, 10), expires: exp, kind: pubsub.Increment}
	if err := tx.db.checkValue("incremented value", key, v.value); err != nil {
		return 0, err
	}
	tx.write(key, e, cur, v)
	return n, nil
}

const (
	maxInt64 = 1<<63 - 1
	minInt64 = -1 << 63
)

// Delete removes key, or returns ErrNotFound if it does not exist.
func (tx *Tx) Delete(key string) error {
	if err := tx.check(true); err != nil {
		return err
	}
	if err := tx.db.checkKey(key); err != nil {
		return err
	}
	e, cur := tx.lookup(key)
	if cur.ver == 0 {
		return ErrNotFound
	}
	tx.write(key, e, cur, &version{kind: pubsub.Delete})
	return nil
}

// expire writes a tombstone for an expired key; the sweeper calls it.
func (tx *Tx) expire(e *entry) {
	tx.write(tx.db.entries.tab.key(e), e, shown{}, &version{kind: pubsub.Expire})
}

func (tx *Tx) validate(key, value string, opts *SetOptions) (int64, error) {
	if err := tx.db.checkKey(key); err != nil {
		return 0, err
	}
	if err := tx.db.checkValue("value", key, value); err != nil {
		return 0, err
	}
	return tx.db.expiry(opts, tx.now)
}

// checkValue returns ErrTooLarge for a value over MaxValueSize; what names
// it in the message.
func (db *DB) checkValue(what, key, value string) error {
	if len(value) > db.opts.MaxValueSize {
		return fmt.Errorf("%w: %s of %q is %d bytes, limit %d", ErrTooLarge, what, key, len(value), db.opts.MaxValueSize)
	}
	return nil
}

func (db *DB) checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > db.opts.MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes, limit %d", ErrTooLarge, len(key), db.opts.MaxKeySize)
	}
	return nil
}
