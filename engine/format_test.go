package engine_test

import (
	"os"
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
	// testdata/segment-v1.log was made once, with wal's codec while it was
	// still exported, and is kept byte for byte: the header "LIVEKVW",
	// version 1 (segmentVersionNoTrailer), first revision 1 and its
	// crc32c, then one transaction record (type 1) for each of
	//
	//	{Revision: 1, Time: 1, Writes: {Put "a" = "1", Created}}
	//	{Revision: 2, Time: 2, Writes: {Put "b" = "2", Expires: 4102444800000000000 (2100-01-01), Created}}
	//	{Revision: 3, Time: 3, Writes: {Put "c" = "3", Created}}
	//	{Revision: 4, Time: 4, Writes: {Delete "c"}}
	//
	// each appended as wal.AppendRecord(seg, wal.TypeTx, p[:len(p)-1])
	// with p := wal.AppendTx(nil, &tx): the current payload less its last
	// byte, the trailer that format 1 did not have.
	seg, err := os.ReadFile("testdata/segment-v1.log")
	require.NoError(t, err)
	far := int64(4102444800000000000) // 2100-01-01
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
