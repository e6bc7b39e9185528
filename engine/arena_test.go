package engine

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// checkArena fails the test if ArenaErr finds something wrong.
func checkArena(t *testing.T, db *DB) {
	t.Helper()
	require.NoError(t, ArenaErr(db))
}

func arenaValue(key string, round int) string {
	s := fmt.Sprintf("%s|%d|", key, round)
	return s + strings.Repeat("v", 200-len(s))
}

// TestArena_CountsAndCompaction overwrites and deletes keys until dead
// bytes call for compactions, and checks after each round that the counts
// match the entries, that every value reads back, and that the chunks in
// use stay within a bound of the live bytes.
func TestArena_CountsAndCompaction(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1, HistoryEvents: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	const keys = 40000 // 8 MB of values: 123 chunks
	want := map[string]string{}
	// Each round writes (1), deletes (-1) or leaves (0) key i: deleting
	// most keys but a few in every chunk leaves dead bytes that only a
	// compaction takes out; rewriting keys in place empties whole chunks.
	rounds := []func(i int) int{
		func(i int) int { return 1 },
		func(i int) int { return -int(one(i%8 != 0)) },
		func(i int) int { return int(one(i%2 == 0)) },
		func(i int) int { return -int(one(i%3 != 0)) },
		func(i int) int { return int(one(i%5 == 0)) },
		func(i int) int { return -int(one(i%16 != 1)) },
		func(i int) int { return 1 },
	}
	for round, op := range rounds {
		for i := range keys {
			key := fmt.Sprintf("k%06d", i)
			switch op(i) {
			case -1:
				if _, ok := want[key]; ok {
					_, err := db.Delete(key)
					require.NoError(t, err)
					delete(want, key)
				}
			case 1:
				want[key] = arenaValue(key, round)
				_, err := db.Set(key, want[key], nil)
				require.NoError(t, err)
			}
		}
		waitCompaction(db)
		t.Logf("round %d: %+v", round, db.vals.stats())
		checkArena(t, db)
		for i := range keys {
			key := fmt.Sprintf("k%06d", i)
			it, err := db.Get(key)
			if v, ok := want[key]; ok {
				require.NoError(t, err)
				require.Equal(t, v, it.Value)
			} else {
				require.ErrorIs(t, err, ErrNotFound)
			}
		}
	}
	st := db.vals.stats()
	require.Positive(t, st.compactions, "no compaction ran")
	// Dead bytes start a compaction once they pass the live ones and
	// compactMinDead; one round of overwrites adds the live bytes again.
	live := keys * 200
	require.LessOrEqual(t, st.chunks*defaultChunkSize, 3*live+(compactMinChunks+4)*defaultChunkSize,
		"%d chunks in use for %d live bytes", st.chunks, live)
}

// waitCompaction waits for the compaction that runs, if any, to end.
func waitCompaction(db *DB) {
	for db.arena().compacting.Load() {
		runtime.Gosched()
	}
}

// TestArena_CompactionPassesOverBlocksOfTheirOwn: a value too large for a
// chunk has a block of its own, which a compaction never chooses, even
// when the counts pass 2 GiB (a value may be up to 4 GiB).
func TestArena_CompactionPassesOverBlocksOfTheirOwn(t *testing.T) {
	tab := newEntryTable()
	a := newArena(&tab.chunks, 1<<10, 0)
	big := strings.Repeat("b", 100) // above 1 KiB / 16
	_, id := a.put(big, 1)
	require.Zero(t, id, "too large for a chunk")
	a.mu.Lock()
	defer a.mu.Unlock()
	id = a.solo(big, 1)
	a.count(id, len(big))
	require.Equal(t, unsafe.StringData(big), tab.chunks.base(id))
	require.Zero(t, a.choose(), "a block of its own, wholly live, chosen")
	if strconv.IntSize < 64 {
		t.Skip("a value of 3 GiB needs 64-bit ints")
	}
	gib3 := int64(3) << 30
	a.chunks[id].size, a.chunks[id].live = gib3, gib3 // as a 3 GiB value's
	require.Zero(t, a.choose(), "a 3 GiB block chosen")
	// Emptied, it is used again, its base let go.
	require.Equal(t, id, a.moved(id, int(gib3), 0, 0))
	a.reuse(id, 1)
	require.Nil(t, tab.chunks.base(id))
}

// An arena of the default size makes larger chunks as its full chunks
// add up, about a chunksAbout-th of their bytes, up to maxChunkSize; one
// whose size was set keeps it.
func TestArena_ChunksGrowWithTheStore(t *testing.T) {
	tab := newEntryTable()
	a := newArena(&tab.chunks, 0, 0)
	for _, c := range []struct{ full, want int }{
		{0, defaultChunkSize},
		{chunksAbout*defaultChunkSize*2 - 1, defaultChunkSize},
		{chunksAbout * defaultChunkSize * 2, 2 * defaultChunkSize},
		{chunksAbout * defaultChunkSize * 7, 4 * defaultChunkSize},
		{chunksAbout * maxChunkSize, maxChunkSize},
	} {
		a.fullBytes = c.full
		require.Equal(t, c.want, a.chunkFor(), "full chunks of %d bytes", c.full)
		a.next(&a.writer, 1)
		require.Equal(t, c.want, cap(a.writer.buf))
	}
	fixed := newArena(&tab.chunks, 4096, 0)
	fixed.fullBytes = chunksAbout * maxChunkSize
	require.Equal(t, 4096, fixed.chunkFor())
}

// TestArena_ChunkEmptiedByTheWriteThatFilledItUsedAgain: a key rewritten
// in place, alone in its chunks, empties each chunk with the very commit
// whose value no longer fitted in it (and so closed it): that chunk is
// used again at once, as any emptied chunk is once every commit that
// could hold a value in it is visible, not left for a compaction, which
// a store whose live bytes are many may not run for a long while.
func TestArena_ChunkEmptiedByTheWriteThatFilledItUsedAgain(t *testing.T) {
	// No compaction: every chunk in use is one the counts let go of, or
	// not.
	db, err := Open("", WithChunks(&Options{SweepInterval: -1, HistoryEvents: 1}, 1<<10, 1<<30))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	for i := range 20000 { // some 90 chunks' worth of counts
		n, _, err := db.Increment("n", 1)
		require.NoError(t, err)
		require.Equal(t, int64(i+1), n)
	}
	for i := range 2000 { // some 120 chunks' worth of values
		_, err := db.Set("v", arenaValue("v", i)[:60], nil)
		require.NoError(t, err)
	}
	checkArena(t, db)
	require.LessOrEqual(t, ArenaChunks(db), 4, "%s", ArenaStats(db))
}
