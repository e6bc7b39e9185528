package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/wal"
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

// manyItems makes a folder of 20,000 keys: more than a pipe holds.
func manyItems(t *testing.T, dir string) {
	t.Helper()
	db, err := engine.Open(dir, nil)
	require.NoError(t, err)
	_, err = db.Update(func(tx *engine.Tx) error {
		for i := range 20000 {
			if _, err := tx.Set(fmt.Sprintf("k%05d", i), strings.Repeat("v", 50), nil); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, db.Close())
}

// dump --salvage DIR | head -1, Ctrl-C or SIGTERM: dump --salvage stops,
// exits 1 and removes its temporary copy of DIR (as large as DIR), which a
// process killed by the signal would leave in $TMPDIR.
func TestDumpSalvage_StoppedRemovesCopy(t *testing.T) {
	bin := build(t)
	dir := filepath.Join(t.TempDir(), "d")
	manyItems(t, dir)
	for _, how := range []string{"stdout closed", "SIGINT", "SIGTERM"} {
		t.Run(how, func(t *testing.T) {
			if how != "stdout closed" && runtime.GOOS == "windows" {
				t.Skip("no signals to send on windows")
			}
			tmp := t.TempDir()
			cmd := exec.Command(bin, "dump", "--salvage", dir)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			_, err = bufio.NewReader(stdout).ReadString('\n') // as head -1 does
			require.NoError(t, err)
			switch how {
			case "stdout closed":
				stdout.Close()
			case "SIGINT":
				// Nothing reads stdout: dump is blocked writing to it.
				require.NoError(t, cmd.Process.Signal(os.Interrupt))
			case "SIGTERM":
				require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err = <-waited:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("dump still running 20s after %s", how)
			}
			require.Error(t, err)
			require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%v: %s", err, stderr.String())
			if how == "stdout closed" {
				require.Contains(t, stderr.String(), "stdout was closed")
			} else {
				require.Contains(t, stderr.String(), "interrupted")
			}
			left, err := os.ReadDir(tmp)
			require.NoError(t, err)
			require.Empty(t, left, "the temporary copy is removed")
		})
	}
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

// TestCheckRepair_TheWorkingFolder: check --repair . run inside the
// damaged folder keeps its copy beside it, not inside it (where the copy
// would copy itself until the path was too long), and repairs.
func TestCheckRepair_TheWorkingFolder(t *testing.T) {
	bin := build(t)
	dir := filepath.Join(t.TempDir(), "data")
	damaged(t, dir)
	cmd := exec.Command(bin, "check", "--repair", ".")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "repaired")
	kept, err := filepath.Glob(dir + ".before-repair-*")
	require.NoError(t, err)
	require.Len(t, kept, 1, "%s", out)
	inside, err := filepath.Glob(filepath.Join(dir, "*before-repair*"))
	require.NoError(t, err)
	require.Empty(t, inside)
	out, err = exec.Command(bin, "check", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
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

// TestTools_LargerLimits: a folder written with a larger --max-value-size
// holds a log record over the default limit, which is not damage: check,
// check --repair, dump and serve refuse it with the default limits, name
// the flags, and change nothing; with the flags, check and dump read it
// whole; and a backup of it restores only with them. The folder and the
// backup are written with the wal package, as the engine writes them, so
// that the test's process holds the large value once or twice, not as an
// engine under -race would.
func TestTools_LargerLimits(t *testing.T) {
	bin := build(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "data")
	big := strings.Repeat("x", 65<<20) // a record over the 64 MiB default
	l, err := wal.Open(dir, &wal.Options{MaxRecord: 80 << 20}, wal.Replay{})
	require.NoError(t, err)
	require.NoError(t, l.Append(&wal.Tx{Revision: 1, Time: 1, Writes: []wal.Write{{Kind: wal.KindPut, Created: true, Key: "big", Value: big}}}))
	require.NoError(t, l.Append(&wal.Tx{Revision: 2, Time: 2, Writes: []wal.Write{{Kind: wal.KindPut, Created: true, Key: "after", Value: "acknowledged"}}}))
	require.NoError(t, l.WaitDurable(2))
	require.NoError(t, l.Close())
	backup, err := os.Create(filepath.Join(tmp, "backup"))
	require.NoError(t, err)
	_, err = wal.WriteSnapshot(backup, 2, slices.Values([]*wal.Item{
		{Key: "after", Value: "acknowledged", Revision: 2, CreateRevision: 2, Version: 1},
		{Key: "big", Value: big, Revision: 1, CreateRevision: 1, Version: 1},
	}))
	require.NoError(t, err)
	require.NoError(t, backup.Close())
	before := tree(t, dir)
	limits := []string{"--max-value-size", fmt.Sprint(80 << 20)}

	for _, args := range [][]string{{"check"}, {"check", "--repair"}, {"dump"}, {"dump", "--salvage"}} {
		cmd := exec.Command(bin, append(args, dir)...)
		cmd.Stdout = io.Discard
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		require.Error(t, err, "livekv %v", args)
		require.Contains(t, stderr.String(), "over this reader's limit", "livekv %v", args)
		require.Contains(t, stderr.String(), "--max-value-size", "livekv %v", args)
		require.NotContains(t, stderr.String(), "check --repair truncates", "livekv %v", args)
		require.Equal(t, before, tree(t, dir), "livekv %v changed the folder", args)
	}
	out, err := exec.Command(bin, "serve", "--data", dir, "--addr", "127.0.0.1:0").CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), "--max-value-size", "%s", out)
	require.NotContains(t, string(out), "another livekv", "%s", out)

	out, err = exec.Command(bin, append(append([]string{"check"}, limits...), dir)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "up to revision 2")
	dumped := func(dir string) (lines, size int, after bool) {
		cmd := exec.Command(bin, append(append([]string{"dump"}, limits...), dir)...)
		var c counter
		cmd.Stdout = &c
		require.NoError(t, cmd.Run())
		return c.lines, c.size, c.after
	}
	lines, size, after := dumped(dir)
	require.Equal(t, 2, lines)
	require.Greater(t, size, len(big))
	require.True(t, after, "the write after the large one")

	restored := filepath.Join(tmp, "restored")
	out, err = exec.Command(bin, "restore", filepath.Join(tmp, "backup"), restored).CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), "--max-value-size")
	out, err = exec.Command(bin, append(append([]string{"restore"}, limits...), filepath.Join(tmp, "backup"), restored)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines, size, after = dumped(restored)
	require.Equal(t, 2, lines)
	require.Greater(t, size, len(big))
	require.True(t, after, "the key after the large one")
}

// counter counts the lines and bytes written to it, and whether they
// held the key "after".
type counter struct {
	lines, size int
	after       bool
}

func (c *counter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte("\n"))
	c.size += len(p)
	c.after = c.after || bytes.Contains(p, []byte(`"key":"after"`))
	return len(p), nil
}

// TestTools_KeyOverLimits: a folder or a backup holding a key over the
// default limit, in a record within the log's, is refused by serve, dump
// and restore without the flags, which the error names, and taken with
// them.
func TestTools_KeyOverLimits(t *testing.T) {
	bin := build(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "data")
	long := strings.Repeat("k", 2000)
	db, err := engine.Open(dir, &engine.Options{MaxKeySize: 4096})
	require.NoError(t, err)
	_, err = db.Set(long, "v", nil)
	require.NoError(t, err)
	backup, err := os.Create(filepath.Join(tmp, "backup"))
	require.NoError(t, err)
	_, err = db.Backup(backup)
	require.NoError(t, err)
	require.NoError(t, backup.Close())
	require.NoError(t, db.Close())
	restored := filepath.Join(tmp, "restored")
	for _, args := range [][]string{
		{"serve", "--data", dir, "--addr", "127.0.0.1:0"}, {"dump", dir}, {"restore", filepath.Join(tmp, "backup"), restored},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "livekv %v: %s", args, out)
		require.Equal(t, 1, exit.ExitCode(), "livekv %v: %s", args, out)
		require.Contains(t, string(out), "a key of 2000 bytes", "livekv %v", args)
		require.Contains(t, string(out), "--max-key-size", "livekv %v", args)
	}
	require.NoDirExists(t, restored)
	out, err := exec.Command(bin, "dump", "--max-key-size", "4096", dir).Output()
	require.NoError(t, err)
	require.Contains(t, string(out), long)
	out, err = exec.Command(bin, "restore", "--max-key-size", "4096", filepath.Join(tmp, "backup"), restored).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// check --repair stopped by Ctrl-C or SIGTERM while it copies the folder
// aside removes what it copied, repairs nothing and exits 1: a process
// killed by the signal left DIR.before-repair-... cut short, which a
// later look would take for the folder as it was.
func TestCheckRepair_InterruptedKeepsNoPartialCopy(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no signals to send on windows")
	}
	bin := build(t)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			seg, raw := damaged(t, dir)
			// A large file, copied first, that the signal comes during.
			big, err := os.Create(filepath.Join(dir, "aa-big"))
			require.NoError(t, err)
			require.NoError(t, big.Truncate(256<<20))
			require.NoError(t, big.Close())
			cmd := exec.Command(bin, "check", "--repair", dir)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			require.Eventually(t, func() bool {
				copying, _ := filepath.Glob(dir + ".before-repair-*/aa-big")
				return len(copying) == 1
			}, 20*time.Second, time.Millisecond)
			require.NoError(t, cmd.Process.Signal(sig))
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err = <-waited:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("check --repair still running 20s after %v", sig)
			}
			require.Error(t, err)
			require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%v: %s", err, out.String())
			require.Contains(t, out.String(), "interrupted")
			require.Contains(t, out.String(), "nothing repaired")
			kept, err := filepath.Glob(dir + ".before-repair-*")
			require.NoError(t, err)
			require.Empty(t, kept, "no copy cut short is kept")
			now, err := os.ReadFile(seg)
			require.NoError(t, err)
			require.Equal(t, raw, now, "the folder is not repaired")
		})
	}
}
