package engine

import (
	"fmt"
	"github.com/livekv/livekv/pattern"
	"iter"
)

// Range returns the items whose keys k satisfy start <= k < end, in key
// order (or reverse order with opts.Reverse); an empty end means no upper
// bound. Bad options (ErrInvalidOptions) and a closed DB (ErrClosed) are
// returned here, before any loop runs. Each loop over the iterator reads
// one consistent snapshot, taken when the loop starts, whatever writers do
// meanwhile; it yields a non-nil error, once and last, only if the DB was
// closed by then.
//
//	items, err := db.Range("a", "b", nil)
//	if err != nil { ... }
//	for it, err := range items { ... }
func (db *DB) Range(start, end string, opts *RangeOptions) (iter.Seq2[Item, error], error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	o, err := rangeOptions(opts)
	if err != nil {
		return nil, err
	}
	return func(yield func(Item, error) bool) {
		if db.closed.Load() {
			yield(Item{}, ErrClosed)
			return
		}
		db.stats.scans.Add(1)
		s := db.snapshot()
		defer db.closeSnapshot(s)
		at := db.readAt()
		db.holdClock(at) // the keys it finds expired stay so
		scan(s.t, s.rev, at, nil, start, end, o, yield)
	}, nil
}

// Prefix returns the items whose keys start with prefix; see Range.
func (db *DB) Prefix(prefix string, opts *RangeOptions) (iter.Seq2[Item, error], error) {
	return db.Range(prefix, pattern.PrefixEnd(prefix), opts)
}

// Range is DB.Range within the transaction. A write transaction's loop
// shows every key as it was when the loop began: with the transaction's
// own writes made before then, and none that its body makes (a key it
// deletes or changes is shown as it was, a key it creates is not shown).
// A transaction that has ended gives ErrTxDone, from Range or, if it ends
// before the loop, as the loop's only item.
func (tx *Tx) Range(start, end string, opts *RangeOptions) (iter.Seq2[Item, error], error) {
	if err := tx.check(false); err != nil {
		return nil, err
	}
	o, err := rangeOptions(opts)
	if err != nil {
		return nil, err
	}
	return func(yield func(Item, error) bool) {
		if err := tx.check(false); err != nil {
			yield(Item{}, err)
			return
		}
		tx.db.stats.scans.Add(1)
		t := tx.snap
		var loop *txLoop
		if tx.writable {
			var p pin
			t, p = tx.db.order.copy(func() {})
			defer tx.db.order.unpin(p)
			// A scan reads the newest version of every key it passes,
			// and which keys it passes depends on every write before it.
			tx.read = tx.rev - 1
			loop = tx.startLoop(o.Reverse)
			defer tx.endLoop(loop)
		}
		tx.db.holdClock(tx.at)
		scan(t, tx.rev, tx.at, loop, start, end, o, yield)
	}, nil
}

// Prefix is DB.Prefix within the transaction.
func (tx *Tx) Prefix(prefix string, opts *RangeOptions) (iter.Seq2[Item, error], error) {
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

// probe returns a search key for key, resolved in tab, and the entry
// behind it, which the caller gives back with tab.unprobe.
func probe(tab *entryTable, key string) (treeItem, *entry) {
	k0, k1 := abbrev(key)
	e := tab.probe(key)
	return treeItem{k0: k0, k1: k1, id: e.id}, e
}

// scanBatch is how many entries a scan gathers before it reads them.
const scanBatch = 32

// scan walks the tree copy t between start and end, yielding each key's
// live version as of rev. A write transaction's scan has its loop: it
// reads the versions the transaction has written itself, which are not
// yet visible, as they were when the loop began.
func scan(t treeCopy, rev, now int64, loop *txLoop, start, end string, o RangeOptions, yield func(Item, error) bool) {
	sc := scanner{rev: rev, now: now, loop: loop, o: o, yield: yield, slabs: t.tab.load(), tab: t.tab}
	lo, loe := probe(t.tab, start)
	defer t.tab.unprobe(loe)
	var hi treeItem // no end: no search key for it
	if end != "" {
		var hie *entry
		hi, hie = probe(t.tab, end)
		defer t.tab.unprobe(hie)
	}
	if !o.Reverse {
		t.Ascend(lo, func(ti treeItem) bool {
			if end != "" && !lessTreeItem(t.tab, ti, hi) {
				return false
			}
			return sc.add(ti.id)
		})
	} else {
		visit := func(ti treeItem) bool {
			if lessTreeItem(t.tab, ti, lo) {
				return false
			}
			if end != "" && !lessTreeItem(t.tab, ti, hi) {
				return true // the end key itself: a reverse range excludes it
			}
			return sc.add(ti.id)
		}
		if end == "" {
			t.Reverse(visit)
		} else {
			t.Descend(hi, visit)
		}
	}
	sc.finish()
}

// scanner turns the entries of a scan into items. On a large store nearly
// every entry is a cache miss, and a TLB miss too, so it works on batches
// of entries, one batch behind the tree: when a batch is gathered it is
// prefetched, which starts all of its misses at once and waits for none,
// and the batch gathered before it, whose misses have had the time of a
// batch to arrive, is read into items and yielded. Building a whole
// batch's items before yielding any also keeps each item's stores well
// ahead of the wider loads that copy it out to yield, which would wait for
// the stores to leave the store buffer. Each of these was measured on the
// workload of BenchmarkDB_Range_1000 (docs/engine.md).
type scanner struct {
	rev, now int64
	loop     *txLoop // a write transaction's loop; nil for a snapshot's
	o        RangeOptions
	yield    func(Item, error) bool
	sent     int  // items yielded
	done     bool // yield said stop, or the limit was reached

	// The batch being gathered, and the one prefetched before it, by
	// their entries' ids, resolved in slabs: storing an id needs no write
	// barrier while the collector marks, as a pointer would.
	batch [2][scanBatch]uint32
	n     [2]int
	cur   int // the batch being gathered
	slabs slabList
	tab   *entryTable // resolves keys and values
}

// add gathers the entry id and reports whether the scan goes on.
func (sc *scanner) add(id uint32) bool {
	b := &sc.batch[sc.cur]
	b[sc.n[sc.cur]] = id
	sc.n[sc.cur]++
	if sc.n[sc.cur] < scanBatch {
		return true
	}
	var es [scanBatch]*entry // on the stack: no write barrier
	for i, id := range b {
		es[i] = sc.slabs.at(id)
	}
	prefetch(&es, scanBatch)
	sc.cur ^= 1
	sc.emit(sc.batch[sc.cur][:sc.n[sc.cur]])
	sc.n[sc.cur] = 0
	return !sc.done
}

// finish yields everything still in the pipeline, in order.
func (sc *scanner) finish() {
	for range 2 {
		sc.cur ^= 1
		sc.emit(sc.batch[sc.cur][:sc.n[sc.cur]])
	}
}

// emit yields the live items of es. The items are built in a local array,
// not in the scanner: the compiler knows that a store there is a store to
// the stack, which needs no write barrier. While the collector marks, a
// barrier on each item's key and value slows scans measurably
// (BenchmarkRange1000_Interleaved/gc=busy in bench/; figures in
// docs/engine.md).
func (sc *scanner) emit(ids []uint32) {
	if sc.done {
		return
	}
	var (
		items [scanBatch]Item
		keep  [scanBatch]bool // items[i] is live
	)
	for i, id := range ids {
		e := sc.slabs.at(id)
		value, rev, created, ver, expires, ok := e.vis.tryLoad(sc.tab)
		if !ok || rev > sc.rev || sc.loop != nil {
			items[i], keep[i] = sc.slow(e)
			continue
		}
		keep[i] = liveAt(ver, expires, sc.now)
		it := &items[i]
		it.Key = sc.tab.key(e)
		if !sc.o.KeysOnly {
			it.Value = value
		}
		it.Revision, it.CreateRevision, it.Version = rev, created, ver
		if expires != 0 {
			it.ExpiresAt = expiresAt(expires)
		}
	}
	if l := sc.loop; l != nil && len(ids) > 0 {
		// The batch is read: the body's writes to its keys need nothing
		// kept for this loop from now on, nor do what it kept for them.
		l.passed = sc.tab.key(sc.slabs.at(ids[len(ids)-1]))
		for _, id := range ids {
			delete(l.before, id)
		}
	}
	for i := range ids {
		if !keep[i] {
			continue
		}
		if !sc.yield(items[i], nil) {
			sc.done = true
			return
		}
		sc.sent++
		if sc.o.Limit > 0 && sc.sent >= sc.o.Limit {
			sc.done = true
			return
		}
	}
}

// slow builds e's item when the quick read of emit does not do: a store
// was under way, the key changed after the snapshot (its version is in the
// entry's chain), or the scan's own transaction wrote it. It reports
// whether the key is live.
func (sc *scanner) slow(e *entry) (Item, bool) {
	var v shown
	if sc.loop != nil {
		v = sc.loop.shown(e, sc.tab)
	} else {
		v = e.at(sc.rev, sc.tab)
	}
	it := v.item(sc.tab.key(e))
	if sc.o.KeysOnly {
		it.Value = ""
	}
	return it, v.live(sc.now)
}
