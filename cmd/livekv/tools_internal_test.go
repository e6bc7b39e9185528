package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// A key that expires between the reading of its line and the writing of
// its batch is skipped, as one expired when read is: the load goes on,
// and counts it.
func TestLoadFrom_KeyExpiringBeforeItsBatch(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	r, w := io.Pipe()
	exp := time.Now().Add(100 * time.Millisecond)
	go func() {
		fmt.Fprintf(w, "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"t\",\"value\":\"x\",\"expiresAt\":%q}\n", exp.Format(time.RFC3339Nano))
		time.Sleep(time.Until(exp) + 50*time.Millisecond) // the rest of a large dump still coming
		w.Close()
	}()
	loaded, skipped, err := loadFrom(db, r, &engine.Options{MaxKeySize: engine.DefaultMaxKeySize, MaxValueSize: engine.DefaultMaxValueSize})
	require.NoError(t, err)
	require.Equal(t, 1, loaded)
	require.Equal(t, 1, skipped)
	_, err = db.Get("t")
	require.ErrorIs(t, err, engine.ErrNotFound)
}

// firstMissing names the outermost folder of a path that does not exist,
// which removeIfCreated then removes with everything under it.
func TestFirstMissing(t *testing.T) {
	dir := t.TempDir()
	require.Equal(t, "", firstMissing(dir))
	deep := filepath.Join(dir, "a", "b", "c")
	require.Equal(t, filepath.Join(dir, "a"), firstMissing(deep))
	require.NoError(t, os.MkdirAll(deep, 0o755))
	removeIfCreated(filepath.Join(dir, "a"))
	_, err := os.Stat(filepath.Join(dir, "a"))
	require.ErrorIs(t, err, os.ErrNotExist)
	removeIfCreated("") // nothing made: nothing removed
	_, err = os.Stat(dir)
	require.NoError(t, err)
}

// watchSyncs records the folders syncDir is asked to sync, in order, and
// calls seen with each, until the test ends.
func watchSyncs(t *testing.T, seen func(dir string)) *[]string {
	var dirs []string
	old := syncDir
	syncDir = func(dir string) error {
		dirs = append(dirs, dir)
		if seen != nil {
			seen(dir)
		}
		return old(dir)
	}
	t.Cleanup(func() { syncDir = old })
	return &dirs
}

// TestCopyFolder_SyncsFolders: the copy check --repair keeps before it
// changes anything is durable when copyFolder returns: each folder of the
// copy is synced after the folders in it, and the folder it is in last.
func TestCopyFolder_SyncsFolders(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	db, err := engine.Open(src, nil)
	require.NoError(t, err)
	_, err = db.Set("k", "v", nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	dst := filepath.Join(t.TempDir(), "copy")
	dirs := watchSyncs(t, nil)
	require.NoError(t, copyFolder(src, dst))
	require.Equal(t, []string{filepath.Join(dst, "wal"), filepath.Join(dst, "snap"), dst, filepath.Dir(dst)}, *dirs)
}

// TestBackup_SyncsFolderAfterRename: backup -o FILE syncs FILE's folder
// once FILE has its name, so that a crash after it reports the backup
// cannot take the name away.
func TestBackup_SyncsFolderAfterRename(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", revisionTrailer)
		io.WriteString(w, "backup bytes")
		w.Header().Set(revisionTrailer, "7")
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "out", "b.backup")
	require.NoError(t, os.Mkdir(filepath.Dir(file), 0o755))
	named := false
	dirs := watchSyncs(t, func(dir string) {
		_, err := os.Stat(file)
		named = err == nil
	})
	require.NoError(t, backup([]string{"--addr", srv.URL, "--api-key", "k", "-o", file}))
	require.Equal(t, []string{filepath.Dir(file)}, *dirs)
	require.True(t, named, "the folder was synced before the file had its name")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, "backup bytes", string(b))
}

// TestStoredKey_WholeOrNone: a key whose writing fails leaves no api-key
// file, nor a file of its own, so that the next serve makes a whole key
// rather than take what was cut short; one written is read back whole.
func TestStoredKey_WholeOrNone(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "api-key")
	syncFile = func(*os.File) error { return fmt.Errorf("disk full") }
	_, _, err := storedKey(file)
	syncFile = (*os.File).Sync
	require.ErrorContains(t, err, "disk full")
	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, names)

	key, created, err := storedKey(file)
	require.NoError(t, err)
	require.True(t, created)
	require.Len(t, key, 32)
	again, created, err := storedKey(file)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, key, again)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

// stopWhen is a context that is cancelled once stop says so, whenever
// its Err is asked.
type stopWhen struct {
	context.Context
	stop func() bool
}

func (c stopWhen) Err() error {
	if c.stop() {
		return context.Canceled
	}
	return c.Context.Err()
}

// TestCopyFolderUntil_StopsWithinAFile: dump --salvage's copy stops
// within a file once its context is cancelled (Ctrl-C), not after the
// file: a folder's snapshot or log segment may take long to copy.
func TestCopyFolderUntil_StopsWithinAFile(t *testing.T) {
	src := t.TempDir()
	const size = 32 << 20
	require.NoError(t, os.WriteFile(filepath.Join(src, "big"), make([]byte, size), 0o600))
	dst := filepath.Join(t.TempDir(), "copy")
	ctx := stopWhen{Context: context.Background(), stop: func() bool {
		_, err := os.Stat(filepath.Join(dst, "big")) // its copy has begun
		return err == nil
	}}
	err := copyFolderUntil(ctx, src, dst)
	require.ErrorIs(t, err, context.Canceled)
	st, err := os.Stat(filepath.Join(dst, "big"))
	require.NoError(t, err)
	require.Less(t, st.Size(), int64(size), "the copy went on to the end of the file")
}

// TestBackupURL: --addr given as to the client commands, ws:// and
// wss:// URLs of the API included (as $LIVEKV_ADDR may hold for them),
// names the server's /backup over http or https.
func TestBackupURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080":               "http://127.0.0.1:8080/backup",
		"http://h:1":                   "http://h:1/backup",
		"https://h:1/kv":               "https://h:1/backup",
		"ws://h:1/kv":                  "http://h:1/backup",
		"ws://h:1/kv/ws":               "http://h:1/backup",
		"wss://h:1":                    "https://h:1/backup",
		"wss://h:1/base/kv/":           "https://h:1/base/backup",
		"http://[::1]:8080/kv":         "http://[::1]:8080/backup",
		"https://example.com/proxy/kv": "https://example.com/proxy/backup",
	} {
		got, err := backupURL(addr)
		require.NoError(t, err, addr)
		require.Equal(t, want, got, addr)
	}
}

// TestClientAddr: the limits count a client by its IPv4 address, or by
// the /64 network of its IPv6 one, whatever its port.
func TestClientAddr(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:5000":              "192.0.2.7",
		"[::ffff:192.0.2.7]:5000":     "192.0.2.7",
		"[2001:db8:1:2::1]:5000":      "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::9]:6000": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:5000":      "2001:db8:1:3::/64",
		"[fe80::1%eth0]:80":           "fe80::/64",
		"not an address":              "not an address",
	} {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.RemoteAddr = remote
		require.Equal(t, want, clientAddr(r), remote)
	}
}

// copyFolder copies the files under src, but its LOCK, to dst, which must
// be missing or empty, and syncs them, the folders of the copy, and dst's
// own folder: once it returns, a crash keeps the whole copy.
func copyFolder(src, dst string) error {
	return copyFolderUntil(context.Background(), src, dst)
}
