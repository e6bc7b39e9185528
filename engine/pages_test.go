package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func lessByK0(a, b treeItem) bool { return a.k0 < b.k0 }

func itemOf(k uint64) treeItem { return treeItem{k0: k, id: uint32(k)} }

func TestPagedTree_Layout(t *testing.T) {
	require.Equal(t, uintptr(4096), unsafe.Sizeof(page{}))
	require.Equal(t, uintptr(256<<10), unsafe.Sizeof(pageBlock{}))
}

// items returns what fn visits.
func visited(walk func(func(treeItem) bool)) []uint64 {
	var out []uint64
	walk(func(ti treeItem) bool {
		out = append(out, ti.k0)
		return true
	})
	return out
}

// checkPages checks t's shape: pages in order, each named by its first
// item, none empty, none free or released while the tree holds it, and
// the store's counts.
func checkPages(t *testing.T, tr *pagedTree, held []*pagedTree) {
	t.Helper()
	s := tr.store
	blocks := *s.blocks.Load()
	free := map[uint32]bool{}
	for _, id := range s.free {
		require.False(t, free[id], "page %d free twice", id)
		free[id] = true
	}
	retired := map[uint32]bool{}
	for _, r := range s.retired {
		require.False(t, free[r.id], "page %d retired and free", r.id)
		retired[r.id] = true
	}
	inUse := map[uint32]bool{}
	for _, c := range append([]*pagedTree{tr}, held...) {
		var last *treeItem
		c.upper.Scan(func(r pageRef) bool {
			require.True(t, blocks[r.id/pagesPerBlock] != nil, "page %d in a released block", r.id)
			require.False(t, free[r.id], "page %d free while a tree holds it", r.id)
			p := pageAt(blocks, r.id)
			require.Positive(t, p.n, "an empty page")
			require.Equal(t, r.lo, p.items[0], "a page named by another item than its first")
			for i := 0; i < int(p.n); i++ {
				if last != nil {
					require.True(t, tr.less(*last, p.items[i]), "out of order")
				}
				last = &p.items[i]
			}
			if c == tr {
				require.False(t, retired[r.id], "page %d retired while the tree holds it", r.id)
				require.LessOrEqual(t, int(p.n), tr.max)
				inUse[r.id] = true
			}
			return true
		})
	}
	for b, blk := range blocks {
		used := 0
		for i := range pagesPerBlock {
			id := uint32(b*pagesPerBlock + i)
			if !free[id] && blk != nil {
				used++
			}
			if blk == nil {
				require.False(t, free[id] || inUse[id] || retired[id], "page %d of a released block", id)
			}
		}
		require.Equal(t, used, int(s.used[b]), "block %d's count", b)
	}
}

// The paged tree against a sorted slice: sets, replacements, deletes,
// loads, and copies that keep what they held whatever the tree does after
// them, with pages small enough to split and merge all the time.
func TestPagedTree_Model(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		tr := newPagedTree(lessByK0)
		tr.max = 2 + r.IntN(6)
		var model []uint64
		type held struct {
			c    *pagedTree
			want []uint64
		}
		var copies []held
		keys := uint64(50 + r.IntN(400))
		for step := range 3000 {
			switch op := r.IntN(100); {
			case op < 45:
				k := r.Uint64N(keys)
				prev, replaced := tr.Set(itemOf(k))
				i, found := slices.BinarySearch(model, k)
				require.Equal(t, found, replaced)
				if found {
					require.Equal(t, k, prev.k0)
				} else {
					model = slices.Insert(model, i, k)
				}
			case op < 80:
				k := r.Uint64N(keys)
				old, ok := tr.Delete(itemOf(k))
				i, found := slices.BinarySearch(model, k)
				require.Equal(t, found, ok)
				if found {
					require.Equal(t, k, old.k0)
					model = slices.Delete(model, i, i+1)
				}
			case op < 85:
				k := keys + uint64(step)
				if len(model) == 0 || model[len(model)-1] < k {
					tr.Load(itemOf(k))
					model = append(model, k)
				}
			case op < 90:
				copies = append(copies, held{tr.Copy(), slices.Clone(model)})
			case op < 95 && len(copies) > 0:
				i := r.IntN(len(copies))
				require.Equal(t, orEmpty(copies[i].want), orEmpty(visited(copies[i].c.Scan)))
				copies = slices.Delete(copies, i, i+1)
				oldest := tr.copyGen()
				for _, h := range copies {
					oldest = min(oldest, h.c.copyGen())
				}
				tr.release(oldest)
			default:
				pivot := r.Uint64N(keys + 10)
				i, _ := slices.BinarySearch(model, pivot)
				require.Equal(t, orEmpty(model[i:]), orEmpty(visited(func(fn func(treeItem) bool) { tr.Ascend(itemOf(pivot), fn) })))
				j, found := slices.BinarySearch(model, pivot)
				if found {
					j++
				}
				want := slices.Clone(model[:j])
				slices.Reverse(want)
				require.Equal(t, orEmpty(want), orEmpty(visited(func(fn func(treeItem) bool) { tr.Descend(itemOf(pivot), fn) })))
				if r.IntN(4) == 0 {
					all := slices.Clone(model)
					slices.Reverse(all)
					require.Equal(t, orEmpty(all), orEmpty(visited(tr.Reverse)))
				}
				_, ok := tr.Get(itemOf(pivot))
				_, inModel := slices.BinarySearch(model, pivot)
				require.Equal(t, inModel, ok)
			}
			if step%50 == 0 {
				require.Equal(t, orEmpty(model), orEmpty(visited(tr.Scan)))
				hs := make([]*pagedTree, len(copies))
				for i, h := range copies {
					require.Equal(t, orEmpty(h.want), orEmpty(visited(h.c.Scan)), "seed %d step %d: a copy changed", seed, step)
					hs[i] = h.c
				}
				checkPages(t, tr, hs)
			}
		}
		// With every copy released, every page let go is free again, and
		// with every item deleted, so is every block.
		copies = nil
		tr.release(tr.copyGen())
		require.Empty(t, tr.store.retired)
		for _, k := range model {
			_, ok := tr.Delete(itemOf(k))
			require.True(t, ok)
		}
		tr.release(tr.copyGen())
		checkPages(t, tr, nil)
		for b, blk := range *tr.store.blocks.Load() {
			require.True(t, blk == nil, "seed %d: block %d kept with no page in use", seed, b)
		}
	}
}

func orEmpty(s []uint64) []uint64 {
	if s == nil {
		return []uint64{}
	}
	return s
}

// Items loaded in order fill their pages; items set in order do too.
func TestPagedTree_InOrderFillsPages(t *testing.T) {
	for _, set := range []bool{false, true} {
		tr := newPagedTree(lessByK0)
		for k := range uint64(100_000) {
			if set {
				tr.Set(itemOf(k))
			} else {
				tr.Load(itemOf(k))
			}
		}
		pages := tr.upper.Len()
		require.Equal(t, (100_000+pageCap-1)/pageCap, pages, "set %v", set)
	}
}

// A copy stays as it was, and its pages are not used again, while the
// tree changes every item and the copy is read on another goroutine.
func TestPagedTree_CopyReadWhileWritten(t *testing.T) {
	tr := newPagedTree(lessByK0)
	for k := range uint64(20_000) {
		tr.Load(itemOf(2 * k))
	}
	c := tr.Copy()
	want := visited(c.Scan)
	done := make(chan []uint64)
	go func() {
		var last []uint64
		for range 20 {
			last = visited(c.Scan)
		}
		done <- last
	}()
	r := rand.New(rand.NewPCG(1, 2))
	for range 50_000 {
		k := r.Uint64N(40_000)
		if r.IntN(2) == 0 {
			tr.Set(itemOf(k))
		} else {
			tr.Delete(itemOf(k))
		}
		tr.release(c.copyGen()) // the copy is in use: nothing it holds is freed
	}
	require.Equal(t, want, <-done)
	require.Equal(t, want, visited(c.Scan))
}

// Pages that deletes leave nearly empty merge with their neighbours: a
// tree of full pages with nine items in ten deleted at random holds its
// items in a fraction of the pages it had.
func TestPagedTree_DeletesMergePages(t *testing.T) {
	tr := newPagedTree(lessByK0)
	const n = 100_000
	for k := range uint64(n) {
		tr.Load(itemOf(k))
	}
	before := tr.upper.Len()
	r := rand.New(rand.NewPCG(5, 5))
	for _, k := range r.Perm(n)[:n*9/10] {
		_, ok := tr.Delete(itemOf(uint64(k)))
		require.True(t, ok)
	}
	after := tr.upper.Len()
	t.Logf("%d pages, then %d for a tenth of the items", before, after)
	require.Less(t, after, before/2, "pages a quarter full or less merge")
	checkPages(t, tr, nil)
}

// Items set in random order fill their pages to about 85%, where splits
// alone fill them to about 69%: a page that is full gives items to a
// neighbour with room before it splits.
func TestPagedTree_RandomInsertsFillPages(t *testing.T) {
	tr := newPagedTree(lessByK0)
	const n = 200_000
	r := rand.New(rand.NewPCG(8, 8))
	for _, k := range r.Perm(n) {
		tr.Set(itemOf(uint64(k)))
	}
	fill := float64(n) / float64(tr.upper.Len()*pageCap)
	t.Logf("%d pages, %.1f%% full", tr.upper.Len(), 100*fill)
	require.Greater(t, fill, 0.8)
	checkPages(t, tr, nil)
	require.Equal(t, n, len(visited(tr.Scan)))
}
