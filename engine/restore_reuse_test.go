package engine_test

import (
	"bytes"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// TestReplica_RestoreReusesEntriesOnceUnread: a Restore takes the old
// state's entries out as deletions would. A range begun before it still
// reads the old state to its end, however many of the new state's keys
// are made meanwhile; once it ends, the old entries are used again for
// every key of the next Restore, which makes the table of entries no
// larger.
func TestReplica_RestoreReusesEntriesOnceUnread(t *testing.T) {
	const keys = 5000
	backup := func(prefix string) *bytes.Buffer {
		src, err := engine.Open("", &engine.Options{SweepInterval: -1})
		require.NoError(t, err)
		defer func() { require.NoError(t, src.Close()) }()
		for i := range keys {
			k := fmt.Sprintf("%s%05d", prefix, i)
			_, err := src.Set(k, "v:"+k, nil)
			require.NoError(t, err)
		}
		var b bytes.Buffer
		_, err = src.Backup(&b)
		require.NoError(t, err)
		return &b
	}
	a, b := backup("a"), backup("b")

	// Small chunks, so that each state fills many.
	db, ctl, _ := openSim(t, engine.WithChunkSize(&engine.Options{}, 4096))
	require.NoError(t, ctl.Restore(bytes.NewReader(a.Bytes())))
	seq, err := db.Range("", "", nil)
	require.NoError(t, err)
	next, stop := iter.Pull2(seq)
	defer stop()
	readSoFar := 0
	read := func(n int) int {
		got := 0
		for range n {
			it, err, ok := next()
			if !ok {
				break
			}
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("a%05d", got+readSoFar), it.Key)
			require.Equal(t, "v:"+it.Key, it.Value)
			got++
		}
		return got
	}
	readSoFar = read(keys / 2)

	// The old state's entries are pinned by the range: the new state's
	// keys take entries of their own.
	require.NoError(t, ctl.Restore(bytes.NewReader(b.Bytes())))
	readSoFar += read(keys)
	require.Equal(t, keys, readSoFar, "the range begun before the Restore read the old state")
	require.NoError(t, engine.ArenaErr(db))
	stop()

	// Unread now, the old entries are used again for the new keys, every
	// one of them.
	// And the chunks of their keys and values too: the arena holds one
	// state, and the allocators' chunks not yet full.
	slabs := engine.EntrySlabs(db)
	var chunks []int
	for range 4 {
		reused := engine.EntriesReused(db)
		require.NoError(t, ctl.Restore(bytes.NewReader(b.Bytes())))
		require.Equal(t, int64(keys), engine.EntriesReused(db)-reused, "old entries used again for a Restore's keys")
		require.NoError(t, engine.ArenaErr(db))
		chunks = append(chunks, engine.ArenaChunks(db))
	}
	require.Equal(t, slabs, engine.EntrySlabs(db), "a Restore took new slabs with the old entries unread")
	t.Logf("chunks in use after each Restore: %v", chunks)
	require.LessOrEqual(t, chunks[3], chunks[0]+2, "the old states' chunks were not used again")
	seq, err = db.Range("", "", nil)
	require.NoError(t, err)
	n := 0
	for it, err := range seq {
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("b%05d", n), it.Key)
		require.Equal(t, "v:"+it.Key, it.Value)
		n++
	}
	require.Equal(t, keys, n)
}

// TestReplica_RestoreToAnOlderRevisionFreesTheOldBlocks: a Restore may
// take the revision back below the one at which the old state's blocks
// were filled. Those blocks are used again all the same once the old
// entries are unread: no commit that could hold a value in them is to
// come. Values too large for a chunk (blocks of their own) and in chunks.
func TestReplica_RestoreToAnOlderRevisionFreesTheOldBlocks(t *testing.T) {
	const keys = 1000
	src, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	for i := range keys {
		_, err := src.Set(fmt.Sprintf("k%05d", i), "v", nil)
		require.NoError(t, err)
	}
	var snap bytes.Buffer
	_, err = src.Backup(&snap)
	require.NoError(t, err)
	require.NoError(t, src.Close())

	db, ctl, _ := openSim(t, engine.WithChunkSize(&engine.Options{}, 4096))
	require.NoError(t, ctl.Restore(bytes.NewReader(snap.Bytes())))
	fresh := engine.ArenaChunks(db)

	// Past the snapshot's revision, as a follower: new keys with values
	// in chunks and of their own (the chunks' largest is 256 bytes).
	rev := db.Revision()
	for i := range keys {
		value := strings.Repeat("c", 100)
		if i%2 == 0 {
			value = strings.Repeat("s", 1000)
		}
		rev++
		require.NoError(t, ctl.ApplyCommitted(&wal.Tx{Revision: rev, Time: time.Now().UnixNano(),
			Writes: []wal.Write{{Kind: wal.KindPut, Key: fmt.Sprintf("n%05d", i), Value: value, Created: true}}}))
	}
	require.Greater(t, engine.ArenaChunks(db), fresh+keys/2, "the values of their own are blocks")

	// A range reads the state across the Restore, so its entries are
	// released only after it, at the snapshot's older revision.
	seq, err := db.Range("", "", nil)
	require.NoError(t, err)
	next, stop := iter.Pull2(seq)
	_, err, ok := next()
	require.True(t, ok)
	require.NoError(t, err)
	require.NoError(t, ctl.Restore(bytes.NewReader(snap.Bytes())))
	stop()
	require.NoError(t, ctl.Restore(bytes.NewReader(snap.Bytes()))) // reclaims what the range held
	require.NoError(t, engine.ArenaErr(db))
	t.Logf("blocks in use: %d after the first Restore, %d after the last", fresh, engine.ArenaChunks(db))
	require.LessOrEqual(t, engine.ArenaChunks(db), fresh+2, "the old state's blocks were not used again")
}
