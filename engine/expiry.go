package engine

import (
	"time"

	"github.com/tidwall/btree"
)

// expiries orders the keys that have a TTL by expiry time, so that the
// sweeper finds the expired ones without looking at the others. It is
// guarded by DB.wmu.
type expiries struct {
	t *btree.BTreeG[expiring]
}

type expiring struct {
	at int64 // unix ns
	e  *entry
}

func newExpiries(tab *entryTable) *expiries {
	less := func(a, b expiring) bool {
		if a.at != b.at {
			return a.at < b.at
		}
		return tab.key(a.e) < tab.key(b.e)
	}
	return &expiries{t: btree.NewBTreeGOptions(less, btree.Options{NoLocks: true})}
}

func (x *expiries) add(at int64, e *entry)    { x.t.Set(expiring{at, e}) }
func (x *expiries) remove(at int64, e *entry) { x.t.Delete(expiring{at, e}) }

// sweepBatch is the most keys one sweep expires under one revision, so that
// writers wait for the sweeper only briefly.
const sweepBatch = 1024

// sweepBytes bounds the bytes of the keys one sweep expires (it takes one
// key at least), so that its record stays far below the largest a log or
// a raft entry takes: 1024 long keys would not.
const sweepBytes = 8 << 20

// sweepLoop removes expired keys every interval until Close.
func (db *DB) sweepLoop(interval time.Duration) {
	defer db.sweeping.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			for more := true; more; {
				_, more, _ = db.sweep()
			}
		}
	}
}

// sweep removes up to sweepBatch expired keys (and sweepBytes of keys) in
// one transaction, as changes of type expire, and returns how many it
// removed, and whether it stopped at those bounds (more may be due). Its
// error, the DB closed or the log failing, writers see too.
func (db *DB) sweep() (n int, more bool, err error) {
	err = db.update(func(tx *Tx) error {
		var due []*entry
		size := 0
		db.exp.t.Scan(func(x expiring) bool {
			if x.at > tx.now {
				return false
			}
			// The bound is checked with this key counted: one key over it
			// would make a record past the log's limit when the keys
			// are long (MaxKeySize near it). A key alone always fits.
			k := len(db.entries.tab.key(x.e))
			if len(due) == sweepBatch || len(due) > 0 && size+k > sweepBytes {
				more = true
				return false
			}
			due = append(due, x.e)
			size += k
			return true
		})
		if len(due) > 0 {
			db.holdClock(tx.now) // until the expiries are visible
		}
		for _, e := range due {
			tx.expire(e)
		}
		n = len(due)
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	db.stats.expired.Add(int64(n))
	return n, more, nil
}
