package engine

import (
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

func TestVisible_StoreLoad(t *testing.T) {
	var x visible
	var s shown
	tab := newEntryTable()
	x.load(&s, tab)
	require.Equal(t, shown{}, s, "an entry never committed has nothing visible")
	require.False(t, s.live(0))

	long := strings.Repeat("v", 70000)
	for _, tc := range []struct {
		name string
		v    *version
		want shown
	}{
		{"put", &version{value: "hello", rev: 3, createRev: 2, ver: 2, kind: pubsub.Put},
			shown{value: "hello", rev: 3, created: 2, ver: 2}},
		{"empty value", &version{value: "", rev: 4, createRev: 2, ver: 3, kind: pubsub.Patch},
			shown{rev: 4, created: 2, ver: 3}},
		{"long value, expiry", &version{value: long, rev: 5, createRev: 2, ver: 4, expires: 99, kind: pubsub.Put},
			shown{value: long, rev: 5, created: 2, ver: 4, expires: 99}},
		{"delete", &version{rev: 6, kind: pubsub.Delete}, shown{rev: 6}},
		{"recreated", &version{value: "again", rev: 7, createRev: 7, ver: 1, kind: pubsub.Put},
			shown{value: "again", rev: 7, created: 7, ver: 1}},
		{"expire", &version{rev: 8, kind: pubsub.Expire}, shown{rev: 8}},
	} {
		x.store(tc.v, block(tab, tc.v.value))
		x.load(&s, tab)
		require.Equal(t, tc.want, s, tc.name)
		require.Equal(t, tc.want.ver != 0, s.live(0), tc.name)
		require.Zero(t, x.seq.Load()&seqOne, "%s: the sequence is even after a store", tc.name)
	}
}

func TestVisible_TryLoad_DuringStore(t *testing.T) {
	var x visible
	tab := newEntryTable()
	x.store(&version{value: "old", rev: 1, createRev: 1, ver: 1, kind: pubsub.Put}, block(tab, "old"))
	x.seq.Add(seqOne) // a store under way
	_, _, _, _, _, ok := x.tryLoad(tab)
	require.False(t, ok, "a reader must not take fields while the sequence is odd")
	x.seq.Add(seqOne)
	value, rev, created, ver, expires, ok := x.tryLoad(tab)
	require.True(t, ok)
	require.Equal(t, shown{value: "old", rev: 1, created: 1, ver: 1}, shown{value, rev, created, ver, expires})
}

func BenchmarkVisible_Load(b *testing.B) {
	var x visible
	tab := newEntryTable()
	x.store(&version{value: "hello", rev: 3, createRev: 3, ver: 1, kind: pubsub.Put}, block(tab, "hello"))
	var s shown
	b.ReportAllocs()
	for b.Loop() {
		x.load(&s, tab)
	}
	if s.rev != 3 {
		b.Fatal(s)
	}
}

// TestEntry_Layout: a scan reads an entry's key (its reference and
// length) and visible copy and nothing else, and prefetch fetches its
// first 64 bytes; a field moved in front of them, or grown, would make
// every scan touch a line it did not prefetch. An entry is one line, and
// in its slab, where the entries start on a line, takes one line alone.
// Neither an entry nor a slab holds a pointer: the collector scans
// nothing in a slab (the heads are kept apart, in slabHeads).
func TestEntry_Layout(t *testing.T) {
	var e entry
	require.Zero(t, unsafe.Offsetof(e.kref))
	require.Less(t, unsafe.Offsetof(e.kg), unsafe.Offsetof(e.vis))
	require.Equal(t, uintptr(64), unsafe.Sizeof(e))
	var s entrySlab
	require.Zero(t, unsafe.Offsetof(s.entries)%64)
	require.False(t, hasPointers(reflect.TypeFor[entry]()), "an entry holds a pointer")
	require.Equal(t, uintptr(256<<10), unsafe.Sizeof(s), "a slab is a whole number of pages")
	require.False(t, hasPointers(reflect.TypeFor[entrySlab]()), "a slab holds a pointer: the collector would scan it")

	tab := newEntryTable()
	es := newEntries(tab)
	for range entrySlabMax + 3 {
		e := es.take()
		slab := tab.load()[e.id>>entrySlabBits]
		require.Same(t, &slab.entries[e.place()-1], e)
		// A slab is a large object, which the runtime puts on a page of
		// its own: each entry is one line of the cache, as prefetch and
		// scans take it.
		require.Zero(t, uintptr(unsafe.Pointer(e))%64, "an entry straddles two lines")
	}
}

// hasPointers reports whether a value of type t holds a pointer.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Map, reflect.Slice, reflect.String,
		reflect.Chan, reflect.Func, reflect.Interface:
		return true
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// block makes s a block of tab's, as the arena does with its chunks, and
// returns the reference to s.
func block(tab *entryTable, s string) uint64 {
	if s == "" {
		return 0
	}
	id := uint32(len(*tab.chunks.list.Load())) // set grows the list
	tab.chunks.set(id, unsafe.StringData(s))
	return uint64(id) << 32
}

// TestPlainWords: the atomic integers hold their word and nothing else,
// so that plain, plainU and plainU32 name it; and storeFresh and setKeyFresh leave
// an entry as store and setKey do, whatever it held before, for a live
// value and a deletion.
func TestPlainWords(t *testing.T) {
	require.Equal(t, unsafe.Sizeof(int64(0)), unsafe.Sizeof(atomic.Int64{}))
	require.Equal(t, unsafe.Sizeof(uint64(0)), unsafe.Sizeof(atomic.Uint64{}))
	require.Equal(t, unsafe.Sizeof(uint32(0)), unsafe.Sizeof(atomic.Uint32{}))
	var a atomic.Int64
	*plain(&a) = -7
	require.Equal(t, int64(-7), a.Load())
	var u atomic.Uint64
	*plainU(&u) = 1<<63 | 5
	require.Equal(t, uint64(1<<63|5), u.Load())
	var u32 atomic.Uint32
	*plainU32(&u32) = 1<<31 | 3
	require.Equal(t, uint32(1<<31|3), u32.Load())

	for _, v := range []*version{
		{value: "hello", rev: 9, createRev: 3, ver: 4, expires: 1 << 60},
		{rev: 10, kind: pubsub.Delete},
	} {
		var atomicE, plainE entry
		for _, e := range []*entry{&atomicE, &plainE} { // each held something else before
			e.setKey(1<<40|8, 3)
			e.vis.store(&version{value: "old value", rev: 2, createRev: 1, ver: 1, expires: 5}, 1<<33|64)
		}
		atomicE.setKey(2<<32|16, 5)
		atomicE.vis.store(v, 3<<32|128)
		plainE.setKeyFresh(2<<32|16, 5)
		plainE.vis.storeFresh(v, 3<<32|128)
		require.Equal(t, atomicE.kref.Load(), plainE.kref.Load())
		require.Equal(t, atomicE.kg.Load(), plainE.kg.Load())
		require.Equal(t, atomicE.vis.seq.Load(), plainE.vis.seq.Load())
		require.Equal(t, atomicE.vis.ref.Load(), plainE.vis.ref.Load())
		require.Equal(t, atomicE.vis.rev.Load(), plainE.vis.rev.Load())
		require.Equal(t, atomicE.vis.created.Load(), plainE.vis.created.Load())
		require.Equal(t, atomicE.vis.ver.Load(), plainE.vis.ver.Load())
		require.Equal(t, atomicE.vis.expires.Load(), plainE.vis.expires.Load())
	}
}
