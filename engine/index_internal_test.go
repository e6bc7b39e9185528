package engine

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestIndexShard_Size: readers of one shard touch its lock and counter on
// every Get; at a cache line's size, two neighbouring shards share at most
// one line whatever the array's alignment.
func TestIndexShard_Size(t *testing.T) {
	require.Equal(t, uintptr(64), unsafe.Sizeof(indexShard{}))
}

// TestIndexShard_SharedHash: keys whose hashes are equal (forced here; a
// 64-bit seeded hash almost never does it) are each found, and each
// removed alone, in any order.
func TestIndexShard_SharedHash(t *testing.T) {
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}} {
		s := &indexShard{m: map[uint64]uint32{}}
		tab := newEntryTable()
		es := newEntries(tab)
		newEntry := func(key string) *entry {
			e := es.take()
			e.setKey(block(tab, key), len(key))
			return e
		}
		const h = 42
		ents := []*entry{newEntry("a"), newEntry("b"), newEntry("c")}
		for _, e := range ents {
			require.Nil(t, s.find(tab, h, tab.key(e)))
			s.insert(tab, h, e)
		}
		s.insert(tab, 7, newEntry("d")) // another hash, untouched
		left := map[string]bool{"a": true, "b": true, "c": true}
		for _, i := range order {
			for _, e := range ents {
				if left[tab.key(e)] {
					require.Same(t, e, s.find(tab, h, tab.key(e)), tab.key(e))
				}
			}
			s.delete(tab, h, ents[i])
			delete(left, tab.key(ents[i]))
			require.Nil(t, s.find(tab, h, tab.key(ents[i])))
			// Deleting an entry that is not there changes nothing.
			s.delete(tab, h, ents[i])
		}
		require.Len(t, s.m, 1)
		require.Nil(t, s.more, "emptied, it is let go")
		require.Equal(t, "d", tab.key(s.find(tab, 7, "d")))
	}
}
