package engine

import "runtime"

// Get returns the item stored under key, or ErrNotFound. It reads the newest
// committed revision, takes only the read lock of the key's index shard
// (which a writer holds for a map insert at most), and allocates nothing.
// It never shows part of a transaction: a key's version whose commit is
// still being made visible, key by key, waits for the rest of it.
func (db *DB) Get(key string) (Item, error) {
	if db.closed.Load() {
		return Item{}, ErrClosed
	}
	if err := db.checkKey(key); err != nil {
		return Item{}, err
	}
	for spins := 0; ; spins++ {
		g := db.readGate()
		s, e := db.index.read(key)
		var v shown
		var k string
		if e != nil {
			e.vis.load(&v, db.entries.tab)
			k = db.entries.tab.key(e)
		}
		s.mu.RUnlock()
		if db.restoring.Load() != g {
			continue // a Restore began: read its state
		}
		if v.rev > db.committed.Load() {
			// publish stores the visible copies of a commit's keys one
			// by one, then its revision: until then another key of the
			// commit may still show what it held before.
			if spins >= 16 {
				runtime.Gosched()
			}
			continue
		}
		if e == nil {
			return Item{}, ErrNotFound
		}
		if at := db.readAt(); !v.live(at) {
			if v.ver != 0 {
				db.holdClock(at) // expired: it stays so
			}
			return Item{}, ErrNotFound
		}
		return v.item(k), nil
	}
}

// readGate returns the count of Restores begun (DB.restoring) once no
// Restore is under way, waiting for one that is to end. A reader that
// reads the state without the writer lock reads it between readGate and
// a second look at the count, and reads again if the count moved.
func (db *DB) readGate() uint64 {
	for {
		g := db.restoring.Load()
		if g&1 == 0 {
			return g
		}
		if done := db.restoreDone.Load(); done != nil {
			<-*done // this Restore's, stored before the count went odd, or a later one's
		}
	}
}

// Set stores value under key; see Tx.Set.
func (db *DB) Set(key, value string, opts *SetOptions) (it Item, err error) {
	err = db.update(func(tx *Tx) error {
		it, err = tx.Set(key, value, opts)
		return err
	})
	return it, err
}

// PutIfAbsent stores value under key if the key does not exist; see
// Tx.PutIfAbsent.
func (db *DB) PutIfAbsent(key, value string, opts *SetOptions) (it Item, err error) {
	err = db.update(func(tx *Tx) error {
		it, err = tx.PutIfAbsent(key, value, opts)
		return err
	})
	return it, err
}

// CompareAndSwap stores value under key if its revision is rev; see
// Tx.CompareAndSwap.
func (db *DB) CompareAndSwap(key string, rev int64, value string, opts *SetOptions) (it Item, err error) {
	err = db.update(func(tx *Tx) error {
		it, err = tx.CompareAndSwap(key, rev, value, opts)
		return err
	})
	return it, err
}

// Patch merges or appends value to the value under key; see Tx.Patch.
func (db *DB) Patch(key, value string) (it Item, err error) {
	err = db.update(func(tx *Tx) error {
		it, err = tx.Patch(key, value)
		return err
	})
	return it, err
}

// Increment adds delta to the integer under key, and returns the result and
// the revision it committed at; see Tx.Increment.
func (db *DB) Increment(key string, delta int64) (n, rev int64, err error) {
	err = db.update(func(tx *Tx) error {
		n, err = tx.Increment(key, delta)
		rev = tx.rev
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return n, rev, nil
}

// Delete removes key, and returns the revision the deletion committed at;
// see Tx.Delete.
func (db *DB) Delete(key string) (rev int64, err error) {
	err = db.update(func(tx *Tx) error {
		rev = tx.rev
		return tx.Delete(key)
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}
