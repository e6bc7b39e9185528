package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// damaged makes a folder of 40 keys, one per revision, and flips a byte
// in the middle of its log; it returns the segment's damaged bytes.
func damaged(t *testing.T, dir string) (seg string, raw []byte) {
	t.Helper()
	db, err := engine.Open(dir, &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	for i := range 40 {
		_, err := db.Set(fmt.Sprintf("k%02d", i), strings.Repeat("v", 40)+fmt.Sprint(i), nil)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	segs, err := filepath.Glob(filepath.Join(dir, "wal", "*.log"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	raw, err = os.ReadFile(segs[0])
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0xff
	require.NoError(t, os.WriteFile(segs[0], raw, 0o644))
	return segs[0], raw
}

// TestDumpSalvage: dump --salvage of a folder with a damaged log writes
// the items as of the last revision before the damage, each as it was,
// and leaves the folder as it was.
func TestDumpSalvage(t *testing.T) {
	bin := build(t)
	dir := filepath.Join(t.TempDir(), "data")
	seg, raw := damaged(t, dir)

	out, err := exec.Command(bin, "dump", dir).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "--salvage")

	tmp := t.TempDir()
	cmd := exec.Command(bin, "dump", "--salvage", dir)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	require.NoError(t, err, "%s", stderr.String())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Greater(t, len(lines), 5, "the records before the damage")
	require.Less(t, len(lines), 40, "not those from the damage on")
	for i, l := range lines {
		var r struct {
			Key, Value string
			Revision   int64
		}
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		require.Equal(t, fmt.Sprintf("k%02d", i), r.Key, "a prefix of the commits, none skipped")
		require.Equal(t, strings.Repeat("v", 40)+fmt.Sprint(i), r.Value)
		require.Equal(t, int64(i+1), r.Revision)
	}
	require.Contains(t, stderr.String(), fmt.Sprintf("up to revision %d", len(lines)))
	now, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.Equal(t, raw, now, "the folder is not changed")
	_, err = exec.Command(bin, "check", dir).CombinedOutput()
	require.Error(t, err, "still damaged")
	entries, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, entries, "the temporary copy is removed")
}

// TestCheckRepair: check --repair keeps a copy of the damaged folder,
// truncates the log at the damage, and then the folder checks and opens
// with the revisions before it.
func TestCheckRepair(t *testing.T) {
	bin := build(t)
	dir := filepath.Join(t.TempDir(), "data")
	seg, raw := damaged(t, dir)

	out, err := exec.Command(bin, "check", "--repair", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "damaged: ")
	require.Contains(t, string(out), "repaired")
	require.Contains(t, string(out), "ok\n")
	kept, err := filepath.Glob(dir + ".before-repair-*")
	require.NoError(t, err)
	require.Len(t, kept, 1, "%s", out)
	require.Contains(t, string(out), kept[0])
	copied, err := os.ReadFile(filepath.Join(kept[0], "wal", filepath.Base(seg)))
	require.NoError(t, err)
	require.Equal(t, raw, copied, "the copy is the folder as it was")
	out, err = exec.Command(bin, "check", kept[0]).CombinedOutput()
	require.Error(t, err, "the copy is still damaged: %s", out)

	out, err = exec.Command(bin, "check", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	db, err := engine.Open(dir, nil)
	require.NoError(t, err)
	rev := db.Revision()
	require.Greater(t, rev, int64(5))
	require.Less(t, rev, int64(40))
	for i := range 40 {
		_, err := db.Get(fmt.Sprintf("k%02d", i))
		if int64(i) < rev {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, engine.ErrNotFound)
		}
	}
	require.NoError(t, db.Close())

	out, err = exec.Command(bin, "check", "--repair", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotContains(t, string(out), "repaired", "nothing to repair")
	kept, _ = filepath.Glob(dir + ".before-repair-*")
	require.Len(t, kept, 1, "no copy when there is nothing to repair")
}

// check --repair twice in one second keeps two copies, whose names sort
// as they were made: the second is not refused for the first's name, nor
// does it remove the first.
func TestCheckRepair_TwiceInOneSecond(t *testing.T) {
	bin := build(t)
	dir := filepath.Join(t.TempDir(), "data")
	seg, raw := damaged(t, dir)
	// The copies that repairs made earlier in this second and the next
	// nine: those below come in a second that has one, however slow.
	now := time.Now().UTC()
	var earlier []string
	for i := range 10 {
		name := dir + ".before-repair-" + now.Add(time.Duration(i)*time.Second).Format("20060102T150405Z")
		require.NoError(t, os.Mkdir(name, 0o755))
		earlier = append(earlier, name)
	}
	var made []string
	for range 2 {
		require.NoError(t, os.WriteFile(seg, raw, 0o644)) // damaged again
		out, err := exec.Command(bin, "check", "--repair", dir).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "repaired")
		kept, err := filepath.Glob(dir + ".before-repair-*")
		require.NoError(t, err)
		var added []string
		for _, k := range kept {
			if !slices.Contains(earlier, k) && !slices.Contains(made, k) {
				added = append(added, k)
			}
		}
		require.Len(t, added, 1, "one new copy: %s", out)
		require.Contains(t, string(out), added[0])
		copied, err := os.ReadFile(filepath.Join(added[0], "wal", filepath.Base(seg)))
		require.NoError(t, err)
		require.Equal(t, raw, copied, "the copy is the folder as it was")
		made = append(made, added[0])
		for _, k := range append(slices.Clone(earlier), made...) {
			require.DirExists(t, k, "a copy kept before is kept")
		}
	}
	for _, m := range made {
		base := m[:strings.LastIndex(m, "-")]
		require.Contains(t, earlier, base, "%s: the name of its second, then a count", m)
		require.Less(t, base, m)
	}
	require.Less(t, made[0], made[1], "the names sort as the copies were made")
}
