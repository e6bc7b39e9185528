package engine

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// TestIndexShard_Size: readers of one shard touch its lock and counter on
// every Get; at a cache line's size, two neighbouring shards share at most
// one line whatever the array's alignment.
func TestIndexShard_Size(t *testing.T) {
	require.Equal(t, uintptr(64), unsafe.Sizeof(indexShard{}))
}

// TestIDTable_SharedHash: keys whose hashes are equal (forced here; a
// 64-bit seeded hash almost never does it) are each found, and each
// removed alone, in any order.
func TestIDTable_SharedHash(t *testing.T) {
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}} {
		var it idTable
		tab := newEntryTable()
		es := newEntries(tab)
		newEntry := func(key string) *entry {
			e := es.take()
			e.setKey(block(tab, key), len(key))
			return e
		}
		const h = 42 << 32
		ents := []*entry{newEntry("a"), newEntry("b"), newEntry("c")}
		for _, e := range ents {
			require.Nil(t, it.find(tab, h, tab.key(e)))
			it.insert(h, e.id)
		}
		it.insert(7<<32, newEntry("d").id) // another hash, untouched
		left := map[string]bool{"a": true, "b": true, "c": true}
		for _, i := range order {
			for _, e := range ents {
				if left[tab.key(e)] {
					require.Same(t, e, it.find(tab, h, tab.key(e)), tab.key(e))
				}
			}
			require.True(t, it.delete(h, ents[i].id))
			delete(left, tab.key(ents[i]))
			require.Nil(t, it.find(tab, h, tab.key(ents[i])))
			// Deleting an entry that is not there changes nothing.
			require.False(t, it.delete(h, ents[i].id))
		}
		require.EqualValues(t, 1, it.n)
		checkIDTable(t, &it)
		require.Equal(t, "d", tab.key(it.find(tab, 7<<32, "d")))
	}
}

// checkIDTable checks t's shape: every part named by a row of
// 1<<(depth-part's depth) directory entries starting at a multiple of
// that, holding only hashes whose top bits name those entries, its count
// right, no fuller than idTableFill/idTableFillDiv unless it cannot grow,
// every slot reachable from its home (the slots between are in use).
func checkIDTable(t *testing.T, it *idTable) {
	t.Helper()
	if it.n == 0 {
		if it.dir != nil {
			t.Fatal("an emptied table keeps its parts")
		}
		return
	}
	if len(it.dir) != 1<<it.depth {
		t.Fatalf("%d directory entries at depth %d", len(it.dir), it.depth)
	}
	total := int32(0)
	for first := 0; first < len(it.dir); {
		p := it.dir[first]
		span := 1 << (it.depth - p.depth)
		if first%span != 0 {
			t.Fatalf("part at depth %d starts at entry %d", p.depth, first)
		}
		for i := first; i < first+span; i++ {
			if it.dir[i] != p {
				t.Fatalf("entry %d of a row of %d from %d names another part", i, span, first)
			}
		}
		n := int32(0)
		for i, s := range p.slots {
			if s == 0 {
				continue
			}
			n++
			if got := int(s >> (64 - it.depth)); it.depth > 0 && (got < first || got >= first+span) {
				t.Fatalf("slot %x in the part of entries [%d, %d)", s, first, first+span)
			}
			for j := p.home(s); j != i; j = p.next(j) {
				if p.slots[j] == 0 {
					t.Fatalf("slot %d unreachable from its home %d", i, p.home(s))
				}
			}
		}
		if n != p.n {
			t.Fatalf("part counts %d slots, holds %d", p.n, n)
		}
		if int(n)*idTableFillDiv > len(p.slots)*idTableFill {
			t.Fatalf("part of %d slots holds %d", len(p.slots), n)
		}
		total += n
		first += span
	}
	if total != it.n {
		t.Fatalf("table counts %d, parts hold %d", it.n, total)
	}
}

// TestIDTable_Model runs random inserts, deletes and lookups against a Go
// map, with parts small enough to split and a directory small enough to
// reach its cap. Hashes are drawn so that homes crowd, tags repeat, many
// keys share their whole hash and runs wrap past a part's end; parts
// grow, split and shrink on the way. After every step each key in the
// model is found, and the table's shape holds (checkIDTable).
func TestIDTable_Model(t *testing.T) {
	defer func(m int, d uint8) { idPartMax, idDirDepthMax = m, d }(idPartMax, idDirDepthMax)
	idPartMax, idDirDepthMax = 32, 5
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		tab := newEntryTable()
		es := newEntries(tab)
		var it idTable
		type kv struct {
			h uint64
			e *entry
		}
		model := map[string]kv{}
		var keys []string // the model's keys, in the order added
		deepest := uint8(0)
		// Every key of the seed in one block: "k%05d", by step.
		var all strings.Builder
		for step := range 3000 {
			fmt.Fprintf(&all, "k%05d", step)
		}
		ref := block(tab, all.String())
		hashOf := func() uint64 {
			switch r.IntN(4) {
			case 0: // one of 4 hashes: parts cannot split them apart
				return ^uint64(r.IntN(4)) << 58
			case 1: // a tag another key may have
				return uint64(r.IntN(16))<<60 | uint64(r.IntN(3))<<32
			case 2: // crowded at a part's end: runs wrap
				return uint64(r.IntN(8))<<61 | (1<<61-1)&^(uint64(r.IntN(4))<<50)
			default:
				return r.Uint64()
			}
		}
		for step := range 3000 {
			grow := step < 1500
			switch {
			case len(keys) == 0 || (grow && r.IntN(3) > 0) || (!grow && r.IntN(4) == 0):
				key := fmt.Sprintf("k%05d", step)
				e := es.take()
				e.setKey(ref+uint64(6*step), len(key))
				require.Equal(t, key, tab.key(e))
				h := hashOf()
				require.Nil(t, it.find(tab, h, key))
				it.insert(h, e.id)
				model[key] = kv{h, e}
				keys = append(keys, key)
			default:
				i := r.IntN(len(keys))
				key := keys[i]
				keys[i] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
				require.True(t, it.delete(model[key].h, model[key].e.id), key)
				require.Nil(t, it.find(tab, model[key].h, key), key)
				require.False(t, it.delete(model[key].h, model[key].e.id), key)
				delete(model, key)
			}
			require.EqualValues(t, len(model), it.n)
			if step%50 == 0 || len(model) < 20 {
				for key, v := range model {
					if got := it.find(tab, v.h, key); got != v.e {
						t.Fatalf("seed %d step %d: %q found as %p, want %p", seed, step, key, got, v.e)
					}
				}
				n := 0
				it.each(func(id uint32) { n++ })
				require.Equal(t, len(model), n, "each")
				checkIDTable(t, &it)
			}
			deepest = max(deepest, it.depth)
		}
		require.Equal(t, idDirDepthMax, deepest, "seed %d: the directory stops at its cap", seed)
		for _, key := range keys {
			require.True(t, it.delete(model[key].h, model[key].e.id))
		}
		checkIDTable(t, &it)
	}
}

// TestIDTable_Reserve: a reserved table takes n ids without growing or
// splitting a part.
func TestIDTable_Reserve(t *testing.T) {
	for _, n := range []int{1, 1000, 3000, 100000} {
		var it idTable
		it.reserve(n)
		parts := slices.Clone(it.dir)
		for i := range uint32(n) {
			it.insert(uint64(i)*0x9e3779b97f4a7c15, i)
		}
		require.Equal(t, parts, it.dir, "n=%d", n)
		checkIDTable(t, &it)
	}
}

// TestIDTable_Fill: however many keys a table holds, its parts are at
// least 60% full (8 bytes a slot: at most 13.3 bytes a key), whether the
// keys came one by one or into a reserved table. Parts that doubled
// were about 37% full right after they had, which hashes spreading keys
// evenly made them all do at about the same time.
func TestIDTable_Fill(t *testing.T) {
	slots := func(it *idTable) int {
		n := 0
		for i, p := range it.dir {
			if i == 0 || it.dir[i-1] != p {
				n += len(p.slots)
			}
		}
		return n
	}
	r := rand.New(rand.NewPCG(3, 4))
	var it idTable
	for i := range uint32(300_000) {
		it.insert(r.Uint64(), i)
		if n := int(i) + 1; n >= 10_000 && n%5_000 == 0 {
			require.GreaterOrEqual(t, float64(n)/float64(slots(&it)), 0.59, "%d keys inserted one by one", n)
		}
	}
	checkIDTable(t, &it)
	for _, n := range []int{10_000, 50_000, 123_456, 300_000} {
		var it idTable
		it.reserve(n)
		for i := range uint32(n) {
			it.insert(r.Uint64(), i)
		}
		require.GreaterOrEqual(t, float64(n)/float64(slots(&it)), 0.59, "%d keys into a reserved table", n)
		checkIDTable(t, &it)
	}
}

// BenchmarkIDTable_Insert inserts b.N ids into one table, as a shard of a
// growing store does, and reports the longest single insert (max-µs):
// what a reader of the shard may wait for, as the insert holds its lock.
func BenchmarkIDTable_Insert(b *testing.B) {
	b.ReportAllocs()
	var it idTable
	var worst time.Duration
	for i := range uint32(b.N) {
		start := time.Now()
		it.insert(uint64(i)*0x9e3779b97f4a7c15, i)
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Nanoseconds())/1e3, "max-µs")
}

// TestTreeItem_Order: a tree item is 16 bytes with no pointer, and keys
// order as their bytes do whether they differ within the 12 bytes kept
// inline, after them, or only in length or trailing zero bytes, which the
// inline bytes pad with. Ranges and gets over such keys, before and after
// half are deleted, see exactly the keys in byte order.
func TestTreeItem_Order(t *testing.T) {
	require.Equal(t, uintptr(16), unsafe.Sizeof(treeItem{}))
	require.False(t, hasPointers(reflect.TypeFor[treeItem]()))

	keys := map[string]bool{}
	for _, k := range []string{"a", "a\x00", "a\x00\x00", "b", "\x00", "\xff",
		"abcdefghijk", "abcdefghijkl", "abcdefghijkl\x00", "abcdefghijklm", "abcdefghijkm",
		"abcdefgh", "abcdefgh\x00", "abcdefgh\xff", "abcdefghijkl\xff", "abcdefghijklmnopq", "abcdefghijklmnopr"} {
		keys[k] = true
	}
	r := rand.New(rand.NewPCG(12, 12))
	const alphabet = "\x00\x01ab\xfe\xff"
	for len(keys) < 3000 {
		b := []byte("abcdefghijkl")[:r.IntN(13)]
		for range r.IntN(9) {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		if len(b) > 0 {
			keys[string(b)] = true
		}
	}
	want := slices.Sorted(maps.Keys(keys))

	db, err := Open("", nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	for _, k := range slices.Collect(maps.Keys(keys)) { // map order: not sorted
		_, err := db.Set(k, "v:"+k, nil)
		require.NoError(t, err)
	}
	// The sort's three-way comparison agrees with the tree's order, on
	// every pair of neighbours in it and on random pairs.
	tab := db.entries.tab
	items := make([]treeItem, len(want))
	for i, k := range want {
		items[i] = makeTreeItem(tab, db.index.get(k))
	}
	for n := range 20_000 {
		i, j := n%len(items), r.IntN(len(items))
		if n < len(items)-1 {
			j = i + 1
		}
		c := compareTreeItem(tab, items[i], items[j])
		require.Equal(t, cmp.Compare(want[i], want[j]), c, "%q and %q", want[i], want[j])
		require.Equal(t, c < 0, lessTreeItem(tab, items[i], items[j]))
	}
	check := func(want []string) {
		t.Helper()
		checkAll(t, db, want)
		// A range from each key to the next one holds exactly that key.
		for i := 0; i+1 < len(want); i += 7 {
			seq, err := db.Range(want[i], want[i+1], nil)
			require.NoError(t, err)
			n := 0
			for it, err := range seq {
				require.NoError(t, err)
				require.Equal(t, want[i], it.Key)
				n++
			}
			require.Equal(t, 1, n, "range [%q, %q)", want[i], want[i+1])
		}
	}
	check(want)
	var kept []string
	for i, k := range want {
		if i%2 == 0 {
			_, err := db.Delete(k)
			require.NoError(t, err)
		} else {
			kept = append(kept, k)
		}
	}
	check(kept)
}

// TestOrdered_LoadFillsPages: a store loaded from a snapshot, at Open
// and by Replica.Restore, has its tree's pages nearly full, and holds
// every key, in order. Keys of 14 bytes, set in random order.
func TestOrdered_LoadFillsPages(t *testing.T) {
	const n = 100_000
	dir := t.TempDir()
	db, err := Open(dir, &Options{SweepInterval: -1, Sync: SyncNever})
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(3, 3))
	for _, i := range r.Perm(n) {
		_, err := db.Set(fmt.Sprintf("key:%010d", i), fmt.Sprint(i), nil)
		require.NoError(t, err)
	}
	require.NoError(t, db.Checkpoint())
	var backup bytes.Buffer
	_, err = db.Backup(&backup)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	check := func(db *DB, how string) {
		t.Helper()
		// Gathered under the tree's lock, checked after it.
		var keys []string
		db.order.mu.Lock()
		pages := db.order.tree.upper.Len()
		db.order.tree.Scan(func(ti treeItem) bool {
			keys = append(keys, db.entries.tab.key(db.entries.tab.at(ti.id)))
			return true
		})
		db.order.mu.Unlock()
		require.True(t, slices.IsSorted(keys), "%s: keys out of order", how)
		require.Len(t, slices.Compact(keys), n, "%s: keys missing or twice", how)
		fill := float64(n) / float64(pages*pageCap)
		t.Logf("%s: %d pages, %.3f full", how, pages, fill)
		require.Greater(t, fill, 0.95, "%s: pages not filled", how)
		for _, i := range []int{0, 1, n / 2, n - 1} {
			it, err := db.Get(fmt.Sprintf("key:%010d", i))
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(i), it.Value)
		}
	}

	db, err = Open(dir, &Options{SweepInterval: -1, Sync: SyncNever})
	require.NoError(t, err)
	check(db, "Open")
	require.NoError(t, db.Close())

	fdb, rep, err := OpenReplica(&Options{Replicator: refuseAll{}})
	require.NoError(t, err)
	defer func() { require.NoError(t, fdb.Close()) }()
	require.NoError(t, rep.Restore(&backup))
	check(fdb, "Restore")
}

// refuseAll is a Replicator for a replica that only restores: it refuses
// every write.
type refuseAll struct{}

func (refuseAll) Append(*wal.Tx) error    { return errors.New("no writes here") }
func (refuseAll) WaitDurable(int64) error { return errors.New("no writes here") }

// BenchmarkIndex_PutAll puts 1M entries into an empty index reserved for
// them, in batches of indexLoadBatch, as a snapshot's loader does: what
// Open spends on the index, most of it waiting for the slots' memory.
func BenchmarkIndex_PutAll(b *testing.B) {
	const n = 1_000_000
	db, err := Open("", &Options{SweepInterval: -1})
	require.NoError(b, err)
	defer db.Close()
	es := make([]*entry, n)
	for i := range es {
		key := fmt.Sprintf("key:%08d", i)
		_, err := db.Set(key, "v", nil)
		require.NoError(b, err)
		es[i] = db.index.get(key)
	}
	b.ReportAllocs()
	for b.Loop() {
		ix := newIndex(db.entries.tab)
		ix.reserve(n)
		var by [indexShards][]hashedEntry
		for i := 0; i < n; i += indexLoadBatch {
			ix.putAll(es[i:min(i+indexLoadBatch, n)], &by)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/key")
}

// each calls fn with every id in the table.
func (t *idTable) each(fn func(id uint32)) {
	for i, p := range t.dir {
		if i > 0 && t.dir[i-1] == p {
			continue // a part's entries are in a row
		}
		for _, s := range p.slots {
			if s != 0 {
				fn(slotID(s))
			}
		}
	}
}
