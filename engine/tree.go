package engine

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// treeItem is an entry in the ordered tree, by its id in the entryTable:
// the collector has no pointer to mark in the tree's nodes. The first 12
// bytes of the key are kept inline, big-endian, so that most comparisons
// never leave the node (abbreviated keys); the full key breaks ties. With
// the id that makes 16 bytes an item, no padding (TestTreeItem_Order).
type treeItem struct {
	k0 uint64 // the key's bytes 0 to 7
	k1 uint32 // its bytes 8 to 11
	id uint32
}

func makeTreeItem(tab *entryTable, e *entry) treeItem {
	k0, k1 := abbrev(tab.key(e))
	return treeItem{k0: k0, k1: k1, id: e.id}
}

// abbrev packs the first 12 bytes of key, padded with zeros, into two
// integers that order as the bytes do.
func abbrev(key string) (k0 uint64, k1 uint32) {
	var b [12]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint32(b[8:])
}

// lessTreeItem orders items by key, resolving their ids in tab only when
// their abbreviated keys are equal.
func lessTreeItem(tab *entryTable, a, b treeItem) bool {
	if a.k0 != b.k0 {
		return a.k0 < b.k0
	}
	if a.k1 != b.k1 {
		return a.k1 < b.k1
	}
	return tab.key(tab.at(a.id)) < tab.key(tab.at(b.id))
}

// compareTreeItem is lessTreeItem as a three-way comparison, for sorting:
// one call where two calls of lessTreeItem would read both keys twice.
func compareTreeItem(tab *entryTable, a, b treeItem) int {
	if c := cmp.Compare(a.k0, b.k0); c != 0 {
		return c
	}
	if c := cmp.Compare(a.k1, b.k1); c != 0 {
		return c
	}
	return strings.Compare(tab.key(tab.at(a.id)), tab.key(tab.at(b.id)))
}

// freshBatch is how many new keys wait before they are sorted and inserted
// into the tree together. Sorted inserts walk nearby paths, which is cheaper
// than inserting each key as it comes; see BenchmarkSet.
const freshBatch = 16384

// ordered keeps every entry in key order for range scans. New keys are not
// inserted one by one: they wait in a batch that is sorted and inserted when
// it is full or when a scan needs the tree.
type ordered struct {
	tab   *entryTable // resolves the items' ids
	mu    sync.Mutex  // guards tree, fresh, snap, flushes, freshRemoved, gens and limbo
	tree  *pagedTree  // entries in key order
	fresh []treeItem  // new entries not yet in tree
	snap  *pagedTree  // a copy of tree, if tree has not changed since

	// gens counts the copies in use by their generation (copyGen): the
	// tree's pages let go, and the entries taken out, since the oldest
	// was made wait for it. An entry taken out while the tree's
	// generation was g may still be reached through a copy below g.
	gens map[uint64]int
	// flushes counts the batches of new entries put into the tree.
	flushes int64
	// freshRemoved counts the entries taken out while fresh held any:
	// only then may fresh hold one that is gone, whose entry a flush must
	// read (a cache miss each) to skip it.
	freshRemoved int
	// limbo holds the entries taken out, in the order they were, until
	// reclaim hands them back to be used again; waiting is its length.
	limbo   []removedEntry
	waiting atomic.Int64
}

// removedEntry is an entry taken out of the tree: at the tree's
// generation gen, and while the batch of new entries was empty (flushes
// f) or not (f is the next).
type removedEntry struct {
	gen     uint64
	flushes int64
	id      uint32
}

// treeDegree sizes the nodes of the B-tree of pages (pagedTree): up to
// 255 pages a node, against the library's 63. Each node is two objects
// for the collector to mark; at 10M keys, a B-tree of the items
// themselves at the library's size took half of a full collection's
// time (docs/engine.md, "Entries without pointers").
const treeDegree = 128

func newOrdered(tab *entryTable) *ordered {
	less := func(a, b treeItem) bool { return lessTreeItem(tab, a, b) }
	return &ordered{tab: tab, tree: newPagedTree(less), gens: make(map[uint64]int)}
}

// add records a new entry.
func (o *ordered) add(e *entry) {
	o.mu.Lock()
	o.fresh = append(o.fresh, makeTreeItem(o.tab, e))
	if len(o.fresh) >= freshBatch {
		o.flushLocked()
	}
	o.mu.Unlock()
}

// loadAll records new entries in key order, each above every key added
// so far, as a snapshot's items are: appended, they fill the tree's pages
// (TestOrdered_LoadFillsPages).
func (o *ordered) loadAll(es []*entry) {
	o.mu.Lock()
	for _, e := range es {
		o.tree.Load(makeTreeItem(o.tab, e))
	}
	o.snap = nil
	o.mu.Unlock()
}

// remove takes an entry out of the order, and marks it gone so that a
// batch still holding e skips it. It marks it under the lock: a copy made
// before, whose revision may still read e, has it; one made after reads
// at a revision that e's removal is visible at.
func (o *ordered) remove(e *entry) {
	o.mu.Lock()
	e.markGone()
	if _, ok := o.tree.Delete(makeTreeItem(o.tab, e)); ok {
		o.snap = nil
	}
	// The batch of new entries may hold e, so e waits for the batch to go
	// into the tree, which skips it now that it is gone.
	f := o.flushes
	if len(o.fresh) > 0 {
		f++
		o.freshRemoved++
	}
	o.limbo = append(o.limbo, removedEntry{id: e.id, gen: o.tree.copyGen(), flushes: f})
	o.waiting.Store(int64(len(o.limbo)))
	o.mu.Unlock()
}

// reclaim appends to free the entries taken out that nothing can reach
// any more, and returns it: no copy in use may hold them (one made before
// they were taken out is of a generation below their removal's), nor the batch
// of new entries. The index and the writers cannot either: an entry
// leaves the index before it leaves the tree, under DB.wmu and the
// shard's lock, which Get holds while it reads an entry (index.read).
// db.wmu is held.
func (o *ordered) reclaim(free []uint32) []uint32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	oldest := o.oldestLocked()
	n := 0
	for _, r := range o.limbo {
		if r.gen > oldest || r.flushes > o.flushes {
			break
		}
		free = append(free, r.id)
		n++
	}
	clear(o.limbo[:n])
	o.limbo = o.limbo[n:]
	if len(o.limbo) == 0 {
		o.limbo = nil // let the backing array go
	}
	o.waiting.Store(int64(len(o.limbo)))
	o.tree.release(oldest)
	return free
}

func (o *ordered) flushLocked() {
	if len(o.fresh) == 0 {
		return
	}
	// Sorting the items, not the entries, compares the inline abbreviated
	// keys and rarely touches the keys themselves.
	slices.SortFunc(o.fresh, func(a, b treeItem) int { return compareTreeItem(o.tab, a, b) })
	check := o.freshRemoved > 0 // an entry is in fresh before it can be taken out
	for i, ti := range o.fresh {
		if !check || !o.tab.at(ti.id).gone() {
			o.tree.Set(ti)
		}
		o.fresh[i] = treeItem{}
	}
	o.fresh, o.freshRemoved = o.fresh[:0], 0
	o.snap = nil
	o.flushes++
}

// copy returns a read-only copy of the tree holding every entry added so
// far, pinned: the caller must unpin it when done, and until then no
// entry the copy holds is used again for another key. Copies are
// copy-on-write and shared until the tree changes. before runs first,
// under the lock: a revision read there is one that every entry
// committed at or below it is in the copy.
func (o *ordered) copy(before func()) (treeCopy, pin) {
	o.mu.Lock()
	defer o.mu.Unlock()
	before()
	o.flushLocked()
	if o.snap == nil {
		o.snap = o.tree.Copy()
	}
	p := pin(o.snap.copyGen())
	o.gens[uint64(p)]++
	return treeCopy{o.snap, o.tab}, p
}

// oldestLocked returns the generation of the oldest copy in use, or the
// tree's own when none is: what the pages let go and the entries taken
// out since then wait for. o.mu is held.
func (o *ordered) oldestLocked() uint64 {
	oldest := o.tree.copyGen()
	for g := range o.gens {
		oldest = min(oldest, g)
	}
	return oldest
}

// pin is what unpin needs to release a copy: its generation.
type pin uint64

// unpin releases a copy that copy returned; its items must no longer be
// read. The last copy of its generation lets go the pages the tree let
// go that only it and older ones held: a store that gains keys and is
// read, and never reclaims an entry (reclaim), would otherwise keep every
// page a copy made it write anew.
func (o *ordered) unpin(p pin) {
	o.mu.Lock()
	if o.gens[uint64(p)]--; o.gens[uint64(p)] == 0 {
		delete(o.gens, uint64(p))
		o.tree.release(o.oldestLocked())
	}
	o.mu.Unlock()
}

// treeCopy is a read-only copy of the ordered tree, with the table that
// resolves its items.
type treeCopy struct {
	*pagedTree
	tab *entryTable
}

// entry returns the entry of an item of the copy.
func (t treeCopy) entry(ti treeItem) *entry { return t.tab.at(ti.id) }
