package engine

import (
	"slices"
	"sync/atomic"

	"github.com/tidwall/btree"
)

// pagedTree is an ordered set of tree items kept in pages of up to
// pageCap items, sorted, under a B-tree of the pages (one item a page,
// the page's first): the layout docs/engine.md ("Leaf pages") measures
// against the B-tree of items. The pages are in blocks of pagesPerBlock,
// arrays that hold no pointer, so that the collector marks one object
// for some 16,000 keys, where a B-tree of the items themselves is two
// objects (a node and its items) for every 170 keys or so.
//
// A copy (Copy) is read-only and shares the pages of the tree it was
// made from; the tree writes a page it shares with a copy into a new
// page first (copy-on-write, by generation: a page made since the last
// copy is the tree's alone). A page the tree no longer uses waits, if a
// copy may hold it, until the copies made before are released
// (release), then it is used again. Copies are read without a lock; the
// tree and release are for one goroutine at a time, as the B-tree is.
type pagedTree struct {
	less  func(a, b treeItem) bool
	upper *btree.BTreeG[pageRef] // a page's first item, and its id
	store *pageStore             // shared with the copies
	gen   uint64                 // copies made so far, plus one: a page of gen is the tree's alone
	max   int                    // items a page holds before it splits: pageCap (tests make it small)
	copy  bool                   // read-only: a copy
}

// pageCap is the most items a page holds: with its header, a page is 4
// KiB.
const pageCap = 255

// page is a run of items in order. Pages are in blocks and named by id.
type page struct {
	n     int32
	_     int32
	gen   uint64 // the tree's generation when the page was made
	items [pageCap]treeItem
}

// pagesPerBlock is the pages of a block: 256 KiB, one object for the
// collector, with no pointer to scan.
const pagesPerBlock = 64

type pageBlock [pagesPerBlock]page

// pageRef is a page in the B-tree of pages: ordered by lo, its first item.
type pageRef struct {
	lo treeItem
	id uint32
}

// pageStore holds the pages of a tree and of its copies.
type pageStore struct {
	blocks  atomic.Pointer[[]*pageBlock] // by id / pagesPerBlock; nil: released
	used    []int32                      // pages in use (or waiting) in each block
	free    []uint32                     // ids of pages to use again
	retired []retiredPage                // pages the tree let go that a copy may still hold
}

// retiredPage is a page let go at the tree's generation gen: copies made
// before it (generation below gen) may hold it.
type retiredPage struct {
	id  uint32
	gen uint64
}

func newPagedTree(less func(a, b treeItem) bool) *pagedTree {
	t := &pagedTree{less: less, store: &pageStore{}, gen: 1, max: pageCap}
	t.upper = btree.NewBTreeGOptions(func(a, b pageRef) bool { return less(a.lo, b.lo) },
		btree.Options{NoLocks: true, Degree: treeDegree})
	empty := []*pageBlock{}
	t.store.blocks.Store(&empty)
	return t
}

// page returns the page id, from blocks, a load of pageStore.blocks.
func pageAt(blocks []*pageBlock, id uint32) *page {
	return &blocks[id/pagesPerBlock][id%pagesPerBlock]
}

func (t *pagedTree) page(id uint32) *page { return pageAt(*t.store.blocks.Load(), id) }

// search returns the first place in p whose item is not less than it.
func (t *pagedTree) search(p *page, it treeItem) int {
	lo, hi := 0, int(p.n)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.less(p.items[m], it) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// locate returns the page where it is or would go: the last whose first
// item is not above it, or the first page. ok is false if there is none.
func (t *pagedTree) locate(it treeItem) (ref pageRef, ok bool) {
	t.upper.Descend(pageRef{lo: it}, func(r pageRef) bool {
		ref, ok = r, true
		return false
	})
	if !ok {
		ref, ok = t.upper.Min()
	}
	return ref, ok
}

// Get returns the item equal to it, if there is one.
func (t *pagedTree) Get(it treeItem) (treeItem, bool) {
	ref, ok := t.locate(it)
	if !ok {
		return treeItem{}, false
	}
	p := t.page(ref.id)
	if i := t.search(p, it); i < int(p.n) && !t.less(it, p.items[i]) {
		return p.items[i], true
	}
	return treeItem{}, false
}

// Set inserts it, or replaces the item equal to it; it returns the item
// replaced.
func (t *pagedTree) Set(it treeItem) (prev treeItem, replaced bool) {
	t.mustWrite()
	ref, ok := t.locate(it)
	if !ok {
		t.startPage(it)
		return treeItem{}, false
	}
	p := t.page(ref.id)
	i := t.search(p, it)
	if i < int(p.n) && !t.less(it, p.items[i]) {
		p = t.writable(&ref)
		prev, p.items[i] = p.items[i], it
		if i == 0 {
			t.upper.Set(pageRef{lo: it, id: ref.id}) // equal: replaces the ref
		}
		return prev, true
	}
	if int(p.n) == t.max {
		if i == int(p.n) && t.isLast(ref) {
			// Past the last item: a new page, so that items set in
			// order fill their pages.
			t.startPage(it)
			return treeItem{}, false
		}
		if t.spill(ref, i, it) {
			return treeItem{}, false
		}
		p = t.writable(&ref)
		id, q := t.newPage()
		h := int(p.n) / 2
		q.n = int32(copy(q.items[:], p.items[h:p.n]))
		clear(p.items[h:p.n])
		p.n = int32(h)
		qref := pageRef{lo: q.items[0], id: id}
		t.upper.Set(qref)
		if i > h {
			t.insertAt(qref, q, i-h, it) // never at q's front
			return treeItem{}, false
		}
	} else {
		p = t.writable(&ref)
	}
	t.insertAt(ref, p, i, it)
	return treeItem{}, false
}

// spill puts it at place i of ref's page, which is full, by moving items
// into a neighbour that has room: the page after, or else the one
// before. It reports false if neither has room enough to be worth the
// move (a sixteenth of a page), and the page is to split. Splits alone
// leave pages about 69% full after random inserts; spills first, about
// 86% (TestPagedTree_RandomInsertsFillPages).
func (t *pagedTree) spill(ref pageRef, i int, it treeItem) bool {
	minRoom := max(2, t.max/16)
	if next, ok := t.beside(ref, t.upper.Ascend); ok && t.max-int(t.page(next.id).n) >= minRoom {
		p, q := t.writable(&ref), t.writable(&next)
		k := (t.max - int(q.n)) / 2 // half of q's room: q keeps some for it
		copy(q.items[k:int(q.n)+k], q.items[:q.n])
		copy(q.items[:k], p.items[int(p.n)-k:p.n])
		q.n += int32(k)
		p.n -= int32(k)
		clear(p.items[p.n:])
		t.rename(&next, q.items[0])
		if i <= int(p.n) {
			t.insertAt(ref, p, i, it)
		} else {
			t.insertAt(next, q, i-int(p.n), it) // never at q's front
		}
		return true
	}
	if prev, ok := t.beside(ref, t.upper.Descend); ok && t.max-int(t.page(prev.id).n) >= minRoom {
		q, p := t.writable(&prev), t.writable(&ref)
		k := (t.max - int(q.n)) / 2
		copy(q.items[q.n:], p.items[:k])
		q.n += int32(k)
		copy(p.items[:], p.items[k:p.n])
		p.n -= int32(k)
		clear(p.items[p.n:])
		t.rename(&ref, p.items[0])
		if i < k {
			t.insertAt(prev, q, int(q.n)-k+i, it) // never at q's front: it held items before
		} else {
			t.insertAt(ref, p, i-k, it)
		}
		return true
	}
	return false
}

// insertAt puts it at place i of ref's page p, which is writable and has
// room. Only the first page takes an item at its front, which renames it.
func (t *pagedTree) insertAt(ref pageRef, p *page, i int, it treeItem) {
	copy(p.items[i+1:p.n+1], p.items[i:p.n])
	p.items[i] = it
	p.n++
	if i == 0 {
		t.rename(&ref, it)
	}
}

// rename names ref's page in the B-tree by lo, its new first item, which
// keeps the page's place among the others.
func (t *pagedTree) rename(ref *pageRef, lo treeItem) {
	t.upper.Delete(*ref)
	ref.lo = lo
	t.upper.Set(*ref)
}

// Load adds it, fastest when it comes after every item in the tree, as
// in a load of items in order; else it is Set.
func (t *pagedTree) Load(it treeItem) {
	t.mustWrite()
	ref, ok := t.upper.Max()
	if !ok {
		t.startPage(it)
		return
	}
	switch p := t.page(ref.id); {
	case !t.less(p.items[p.n-1], it):
		t.Set(it)
	case int(p.n) == t.max:
		t.startPage(it)
	default:
		p = t.writable(&ref)
		p.items[p.n] = it
		p.n++
	}
}

// startPage puts it alone into a new page.
func (t *pagedTree) startPage(it treeItem) {
	id, p := t.newPage()
	p.items[0], p.n = it, 1
	t.upper.Set(pageRef{lo: it, id: id})
}

// Delete removes the item equal to it, and returns it.
func (t *pagedTree) Delete(it treeItem) (treeItem, bool) {
	t.mustWrite()
	ref, ok := t.locate(it)
	if !ok {
		return treeItem{}, false
	}
	p := t.page(ref.id)
	i := t.search(p, it)
	if i == int(p.n) || t.less(it, p.items[i]) {
		return treeItem{}, false
	}
	p = t.writable(&ref)
	old := p.items[i]
	copy(p.items[i:p.n-1], p.items[i+1:p.n])
	p.n--
	p.items[p.n] = treeItem{}
	if p.n == 0 {
		t.upper.Delete(ref)
		t.retire(ref.id)
		return old, true
	}
	if i == 0 {
		// The new first item is above the old and below the next page's.
		t.rename(&ref, p.items[0])
	}
	if int(p.n) < t.max/4 {
		t.merge(ref, p)
	}
	return old, true
}

// merge joins p, a page of few items, with the page after it, or else
// with the one before, if their items fit in one.
func (t *pagedTree) merge(ref pageRef, p *page) {
	if next, ok := t.beside(ref, t.upper.Ascend); ok && int(p.n+t.page(next.id).n) <= t.max {
		q := t.page(next.id)
		copy(p.items[p.n:], q.items[:q.n])
		p.n += q.n
		t.upper.Delete(next)
		t.retire(next.id)
		return
	}
	if prev, ok := t.beside(ref, t.upper.Descend); ok && int(p.n+t.page(prev.id).n) <= t.max {
		q := t.writable(&prev)
		copy(q.items[q.n:], p.items[:p.n])
		q.n += p.n
		t.upper.Delete(ref)
		t.retire(ref.id)
	}
}

// beside returns the page next to ref in the order that walk (the
// B-tree's Ascend or Descend) goes, if there is one.
func (t *pagedTree) beside(ref pageRef, walk func(pageRef, func(pageRef) bool)) (r pageRef, ok bool) {
	walk(ref, func(x pageRef) bool {
		if x.id == ref.id {
			return true
		}
		r, ok = x, true
		return false
	})
	return r, ok
}

// isLast reports whether ref is the last page.
func (t *pagedTree) isLast(ref pageRef) bool {
	last, _ := t.upper.Max()
	return last.id == ref.id
}

// writable returns ref's page for the tree to write: the page itself if
// no copy holds it, else a new page with its items, which ref and the
// B-tree then name.
func (t *pagedTree) writable(ref *pageRef) *page {
	p := t.page(ref.id)
	if p.gen == t.gen {
		return p
	}
	id, q := t.newPage()
	q.n, q.items = p.n, p.items
	t.retire(ref.id)
	ref.id = id
	t.upper.Set(*ref) // equal: replaces the ref
	return q
}

// newPage returns a new, empty page of the tree and its id.
func (t *pagedTree) newPage() (uint32, *page) {
	s := t.store
	blocks := *s.blocks.Load()
	if len(s.free) == 0 {
		b := slices.Index(blocks, nil)
		if b < 0 {
			b = len(blocks)
		}
		nb := slices.Clone(blocks)
		if b == len(nb) {
			nb = append(nb, nil)
			s.used = append(s.used, 0)
		}
		nb[b] = new(pageBlock)
		s.blocks.Store(&nb)
		blocks = nb
		for i := pagesPerBlock - 1; i >= 0; i-- {
			s.free = append(s.free, uint32(b*pagesPerBlock+i))
		}
	}
	id := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.used[id/pagesPerBlock]++
	p := pageAt(blocks, id)
	p.n, p.gen = 0, t.gen
	return id, p
}

// retire lets go of page id: at once if no copy holds it, else once the
// copies made before now are released.
func (t *pagedTree) retire(id uint32) {
	if t.page(id).gen == t.gen {
		t.freePage(id)
		return
	}
	t.store.retired = append(t.store.retired, retiredPage{id: id, gen: t.gen})
}

// freePage makes page id free to use again, and lets its block go if
// none of its pages is in use.
func (t *pagedTree) freePage(id uint32) {
	s := t.store
	p := t.page(id)
	clear(p.items[:p.n])
	p.n = 0
	b := id / pagesPerBlock
	s.free = append(s.free, id)
	if s.used[b]--; s.used[b] > 0 {
		return
	}
	s.free = slices.DeleteFunc(s.free, func(f uint32) bool { return f/pagesPerBlock == b })
	nb := slices.Clone(*s.blocks.Load())
	nb[b] = nil
	s.blocks.Store(&nb)
}

// Copy returns a read-only copy of the tree as it is now. Its generation
// (copyGen) says which of the pages the tree lets go later it may hold;
// release them once the copy is done with (release).
func (t *pagedTree) Copy() *pagedTree {
	t.mustWrite()
	c := *t
	c.upper = t.upper.Copy()
	c.copy = true
	t.gen++
	return &c
}

// copyGen returns the generation of a copy: release needs the lowest
// among the copies still in use.
func (t *pagedTree) copyGen() uint64 { return t.gen }

// release uses again the pages let go that no copy of generation oldest
// or above holds: pass the lowest generation among the copies still in
// use, or the tree's own (copyGen of the tree) if none is.
func (t *pagedTree) release(oldest uint64) {
	t.mustWrite()
	s := t.store
	n := 0
	for _, r := range s.retired {
		if r.gen > oldest {
			break
		}
		t.freePage(r.id)
		n++
	}
	s.retired = slices.Delete(s.retired, 0, n)
}

func (t *pagedTree) mustWrite() {
	if t.copy {
		panic("engine: a write to a copy of the tree")
	}
}

// Ascend calls fn with each item not less than pivot, in order, until fn
// returns false.
func (t *pagedTree) Ascend(pivot treeItem, fn func(treeItem) bool) {
	start, ok := t.locate(pivot)
	if !ok {
		return
	}
	blocks := *t.store.blocks.Load()
	first := true
	t.upper.Ascend(start, func(r pageRef) bool {
		p := pageAt(blocks, r.id)
		i := 0
		if first {
			i, first = t.search(p, pivot), false
		}
		for ; i < int(p.n); i++ {
			if !fn(p.items[i]) {
				return false
			}
		}
		return true
	})
}

// Descend calls fn with each item not greater than pivot, in reverse
// order, until fn returns false.
func (t *pagedTree) Descend(pivot treeItem, fn func(treeItem) bool) {
	start, ok := t.locate(pivot)
	if !ok {
		return
	}
	blocks := *t.store.blocks.Load()
	first := true
	t.upper.Descend(start, func(r pageRef) bool {
		p := pageAt(blocks, r.id)
		i := int(p.n) - 1
		if first {
			first = false
			i = t.search(p, pivot)
			if i == int(p.n) || t.less(pivot, p.items[i]) {
				i--
			}
		}
		for ; i >= 0; i-- {
			if !fn(p.items[i]) {
				return false
			}
		}
		return true
	})
}

// Scan calls fn with every item, in order, until fn returns false.
func (t *pagedTree) Scan(fn func(treeItem) bool) {
	if first, ok := t.upper.Min(); ok {
		t.Ascend(first.lo, fn) // a page's lo is its first item
	}
}

// Reverse calls fn with every item, in reverse order, until fn returns
// false.
func (t *pagedTree) Reverse(fn func(treeItem) bool) {
	if last, ok := t.upper.Max(); ok {
		p := t.page(last.id)
		t.Descend(p.items[p.n-1], fn)
	}
}
