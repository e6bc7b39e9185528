package main

import (
	"fmt"
	"io"
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
