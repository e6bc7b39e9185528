package engine_test

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// TestDB_OpensFirstLogFormat opens a folder whose log was written before
// transaction records ended in a trailer byte (segment format 1), as an
// older build left it: a put, a put with an expiry, and a delete last, a
// record that ends in zero bytes. The database holds what it wrote, takes
// new writes, and reopens with both.
func TestDB_OpensFirstLogFormat(t *testing.T) {
	seg := append([]byte("LIVEKVW"), wal.SegmentVersionNoTrailer)
	seg = binary.LittleEndian.AppendUint64(seg, 1)
	seg = binary.LittleEndian.AppendUint32(seg, crc32.Checksum(seg, crc32.MakeTable(crc32.Castagnoli)))
	far := int64(4102444800000000000) // 2100-01-01
	for _, tx := range []wal.Tx{
		{Revision: 1, Time: 1, Writes: []wal.Write{{Kind: wal.KindPut, Key: "a", Value: "1", Created: true}}},
		{Revision: 2, Time: 2, Writes: []wal.Write{{Kind: wal.KindPut, Key: "b", Value: "2", Expires: far, Created: true}}},
		{Revision: 3, Time: 3, Writes: []wal.Write{{Kind: wal.KindPut, Key: "c", Value: "3", Created: true}}},
		{Revision: 4, Time: 4, Writes: []wal.Write{{Kind: wal.KindDelete, Key: "c"}}},
	} {
		payload := wal.AppendTx(nil, &tx)
		seg = wal.AppendRecord(seg, wal.TypeTx, payload[:len(payload)-1]) // the first format: no trailer
	}
	fs := vfs.NewMemFS()
	fs.WriteFile("db/wal/00000000000000000001.log", seg)

	check := func(db *engine.DB, keys map[string]string) {
		t.Helper()
		for k, v := range keys {
			it, err := db.Get(k)
			require.NoError(t, err, k)
			require.Equal(t, v, it.Value, k)
		}
		_, err := db.Get("c")
		require.ErrorIs(t, err, engine.ErrNotFound)
	}
	db, err := engine.Open("db", &engine.Options{FS: fs})
	require.NoError(t, err)
	check(db, map[string]string{"a": "1", "b": "2"})
	it, err := db.Get("b")
	require.NoError(t, err)
	require.Equal(t, far, it.ExpiresAt.UnixNano())
	_, err = db.Set("d", "4", nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	db, err = engine.Open("db", &engine.Options{FS: fs})
	require.NoError(t, err)
	check(db, map[string]string{"a": "1", "b": "2", "d": "4"})
	require.NoError(t, db.Close())
	rep, err := wal.Check("db", &wal.Options{FS: fs})
	require.NoError(t, err)
	require.Equal(t, wal.Report{Segments: 2, Records: 5, LastRevision: 5}, rep, "no snapshot: the second open read the old segment again")
}
