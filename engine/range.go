package engine

import (
	"fmt"
	"github.com/livekv/livekv/pattern"
	"iter"
)

// Range yields the items whose keys k satisfy start <= k < end, in key
// order (or reverse order with opts.Reverse); an empty end means no upper
// bound. The scan reads one consistent snapshot, taken when the loop
// starts, whatever writers do meanwhile. It yields a non-nil error, once and
// last, only if the scan could not run (a closed DB, bad options).
//
//	for it, err := range db.Range("a", "b", nil) { ... }
func (db *DB) Range(start, end string, opts *RangeOptions) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		if db.closed.Load() {
			yield(Item{}, ErrClosed)
			return
		}
		o, err := rangeOptions(opts)
		if err != nil {
			yield(Item{}, err)
			return
		}
		db.stats.scans.Add(1)
		t, rev := db.snapshot()
		defer db.readers.close(rev)
		scan(t, rev, db.now(), start, end, o, yield)
	}
}

// Prefix yields the items whose keys start with prefix; see Range.
func (db *DB) Prefix(prefix string, opts *RangeOptions) iter.Seq2[Item, error] {
	return db.Range(prefix, pattern.PrefixEnd(prefix), opts)
}

// Range is DB.Range within the transaction: a write transaction sees its
// own writes made before the loop started.
func (tx *Tx) Range(start, end string, opts *RangeOptions) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		if err := tx.check(false); err != nil {
			yield(Item{}, err)
			return
		}
		o, err := rangeOptions(opts)
		if err != nil {
			yield(Item{}, err)
			return
		}
		tx.db.stats.scans.Add(1)
		t := tx.snap
		if tx.writable {
			t = tx.db.order.copy(func() {})
		}
		scan(t, tx.rev, tx.now, start, end, o, yield)
	}
}

// Prefix is DB.Prefix within the transaction.
func (tx *Tx) Prefix(prefix string, opts *RangeOptions) iter.Seq2[Item, error] {
	return tx.Range(prefix, pattern.PrefixEnd(prefix), opts)
}

func rangeOptions(opts *RangeOptions) (RangeOptions, error) {
	if opts == nil {
		return RangeOptions{}, nil
	}
	if opts.Limit < 0 {
		return RangeOptions{}, fmt.Errorf("%w: negative limit %d", ErrInvalidOptions, opts.Limit)
	}
	return *opts, nil
}

func probe(key string) treeItem {
	k0, k1 := abbrev(key)
	return treeItem{k0: k0, k1: k1, e: &entry{key: key}}
}

// scanBatch is how many tree items a scan gathers before it reads their
// versions. Reading a batch in passes (all the entries, then all the
// versions) lets the processor fetch many of them from memory at once
// instead of one cache miss after another; see BenchmarkDB_Range_1000.
const scanBatch = 32

// scan walks the tree copy t between start and end, yielding each key's
// live version as of rev.
func scan(t treeCopy, rev, now int64, start, end string, o RangeOptions, yield func(Item, error) bool) {
	var (
		batch [scanBatch]treeItem
		heads [scanBatch]*version
		keys  [scanBatch]string
		n     int // items in batch
		sent  int // items yielded
		done  bool
	)
	flush := func() bool {
		for i := 0; i < n; i++ {
			e := batch[i].e
			heads[i], keys[i] = e.head.Load(), e.key
		}
		for i := 0; i < n; i++ {
			heads[i] = heads[i].at(rev)
		}
		for i := 0; i < n && !done; i++ {
			v := heads[i]
			if !v.live(now) {
				continue
			}
			// v.item, written out: the call would cost a third of the scan.
			it := Item{Key: keys[i], Revision: v.rev, CreateRevision: v.createRev, Version: v.ver}
			if !o.KeysOnly {
				it.Value = v.value
			}
			if v.expires != 0 {
				it.ExpiresAt = v.expiresAt()
			}
			if !yield(it, nil) {
				done = true
				break
			}
			sent++
			done = o.Limit > 0 && sent >= o.Limit
		}
		n = 0
		return !done
	}
	gather := func(ti treeItem) bool {
		batch[n] = ti
		n++
		return n < scanBatch || flush()
	}
	lo, hi := probe(start), probe(end)
	if !o.Reverse {
		t.Ascend(lo, func(ti treeItem) bool {
			if end != "" && !lessTreeItem(ti, hi) {
				return false
			}
			return gather(ti)
		})
	} else {
		visit := func(ti treeItem) bool {
			if lessTreeItem(ti, lo) {
				return false
			}
			if end != "" && !lessTreeItem(ti, hi) {
				return true // the end key itself: a reverse range excludes it
			}
			return gather(ti)
		}
		if end == "" {
			t.Reverse(visit)
		} else {
			t.Descend(hi, visit)
		}
	}
	if !done {
		flush()
	}
}
