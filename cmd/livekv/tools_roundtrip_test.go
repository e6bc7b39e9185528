package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// storedItems opens dir, with the options o (nil: the defaults), and
// returns its items by key.
func storedItems(t *testing.T, dir string, o *engine.Options) map[string]engine.Item {
	db, err := engine.Open(dir, o)
	require.NoError(t, err)
	defer db.Close()
	out := map[string]engine.Item{}
	for it, err := range enginetest.Items(db.Range("", "", nil)) {
		require.NoError(t, err)
		out[it.Key] = it
	}
	return out
}

// dumpFolder runs livekv dump of dir and returns what it wrote.
func dumpFolder(t *testing.T, bin, dir string, flags ...string) *bytes.Buffer {
	t.Helper()
	var dumped, stderr bytes.Buffer
	cmd := exec.Command(bin, append(append([]string{"dump"}, flags...), dir)...)
	cmd.Stdout, cmd.Stderr = &dumped, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	return &dumped
}

// dump then load keeps every key and value byte for byte: lines, bytes
// that are not UTF-8 (in base64), HTML characters, a value of 1 MiB that
// JSON escapes six times over (\u0001).
func TestDumpLoad_RoundTrip(t *testing.T) {
	bin := build(t)
	src := filepath.Join(t.TempDir(), "src")
	db, err := engine.Open(src, nil)
	require.NoError(t, err)
	want := map[string]string{
		"nl\nkey":     "line1\nline2\r\n",
		"bad\xffutf8": "v\xfe\xff",
		"html<>&":     "<b>&amp;</b>",
		"badval":      "v\xfe\xff",
		"big":         strings.Repeat("\x01", 1<<20-16), // a line of 6 MiB
		"bigbin":      string(bytes.Repeat([]byte{0xff, 0}, (1<<20-16)/2)),
		"ctl\x00\x01": "\x00\x1f",
		"u2028\u2028": "\u2029",
	}
	_, err = db.Update(func(tx *engine.Tx) error {
		for k, v := range want {
			if _, err := tx.Set(k, v, nil); err != nil {
				return err
			}
		}
		_, err := tx.Set("ttl", "x", &engine.SetOptions{TTL: time.Hour})
		return err
	})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	dumped := dumpFolder(t, bin, src)

	dst := filepath.Join(t.TempDir(), "dst")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "load", dst)
	cmd.Stdin, cmd.Stderr = bytes.NewReader(dumped.Bytes()), &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "load: %s %s", out, stderr.String())

	got := storedItems(t, dst, nil)
	for k, v := range want {
		it, ok := got[k]
		if !ok {
			t.Errorf("key %q missing after dump|load", k)
			continue
		}
		if it.Value != v {
			t.Errorf("key %q: value changed by dump|load (%d bytes -> %d bytes)", k, len(v), len(it.Value))
		}
	}
	require.Contains(t, got, "ttl")
	require.False(t, got["ttl"].ExpiresAt.IsZero())
	if len(got) != len(want)+1 {
		t.Errorf("%d keys after load, want %d", len(got), len(want)+1)
	}
}

// A folder made with larger limits than the defaults dumps, and loads,
// with those limits given (without them, each refuses, naming them).
func TestLoad_LargerLimits(t *testing.T) {
	bin := build(t)
	src := filepath.Join(t.TempDir(), "src")
	db, err := engine.Open(src, &engine.Options{MaxKeySize: 2048, MaxValueSize: 2 << 20})
	require.NoError(t, err)
	key, value := strings.Repeat("k", 2000), strings.Repeat("\x01", 2<<20)
	_, err = db.Set(key, value, nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	out, err := exec.Command(bin, "dump", src).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "--max-key-size")
	dumped := dumpFolder(t, bin, src, "--max-key-size", "2048", "--max-value-size", "2097152")

	dst := filepath.Join(t.TempDir(), "dst")
	cmd := exec.Command(bin, "load", dst)
	cmd.Stdin = bytes.NewReader(dumped.Bytes())
	out, err = cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), "--max-value-size")

	dst = filepath.Join(t.TempDir(), "dst2")
	cmd = exec.Command(bin, "load", "--max-key-size", "2048", "--max-value-size", "2097152", dst)
	cmd.Stdin = bytes.NewReader(dumped.Bytes())
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	got := storedItems(t, dst, &engine.Options{MaxKeySize: 2048, MaxValueSize: 2 << 20})
	require.Len(t, got, 1)
	require.True(t, got[key].Value == value, "the value came back changed")
}

// serve with a LIVEKV_TOKEN_SECRET the adapter refuses fails before it
// writes anything into its folder.
func TestServe_BadTokenSecretWritesNothing(t *testing.T) {
	bin := build(t)
	existing := filepath.Join(t.TempDir(), "existing")
	require.NoError(t, os.Mkdir(existing, 0o755))
	cmd := exec.Command(bin, "serve", "--data", existing, "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "LIVEKV_TOKEN_SECRET=short")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	entries, err := os.ReadDir(existing)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Empty(t, names, "nothing written into an existing folder")
}

// tree lists the paths under dir, dir itself included.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	return paths
}

// check and dump refuse a folder that holds no livekv data, empty or
// another program's, and leave it as it was; a livekv folder that holds
// no items yet, opened once or restored from an empty backup, is one.
func TestCheckDump_FolderWithoutData(t *testing.T) {
	bin := build(t)
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	foreign := filepath.Join(t.TempDir(), "foreign")
	require.NoError(t, os.MkdirAll(filepath.Join(foreign, "wal"), 0o755)) // a wal folder, but no snap
	require.NoError(t, os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine\n"), 0o644))
	for _, dir := range []string{empty, foreign} {
		before := tree(t, dir)
		for _, args := range [][]string{{"check"}, {"check", "--repair"}, {"dump"}, {"dump", "--salvage"}} {
			cmd := exec.Command(bin, append(args, dir)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			require.Equal(t, before, tree(t, dir), "%v %s: the folder as it was", args, dir)
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%v %s: %s", args, dir, stdout.String())
			require.Equal(t, 1, exit.ExitCode(), "%v %s", args, dir)
			require.Contains(t, stderr.String(), "holds no livekv data", "%v %s", args, dir)
			require.Empty(t, stdout.String(), "%v %s", args, dir)
		}
	}

	opened := filepath.Join(t.TempDir(), "opened")
	db, err := engine.Open(opened, nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	mem, err := engine.Open("", nil)
	require.NoError(t, err)
	var backup bytes.Buffer
	_, err = mem.Backup(&backup)
	require.NoError(t, err)
	require.NoError(t, mem.Close())
	restored := filepath.Join(t.TempDir(), "restored")
	_, err = engine.RestoreDir(&backup, restored, nil)
	require.NoError(t, err)
	for _, dir := range []string{opened, restored} {
		out, err := exec.Command(bin, "check", dir).CombinedOutput()
		require.NoError(t, err, "%s: %s", dir, out)
		require.Contains(t, string(out), "ok\n")
		out, err = exec.Command(bin, "dump", dir).CombinedOutput()
		require.NoError(t, err, "%s: %s", dir, out)
		require.Empty(t, out, "%s: no items", dir)
	}
}
