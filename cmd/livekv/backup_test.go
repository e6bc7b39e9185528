package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// write is one acknowledged write: its revision, key and value ("" for a
// delete).
type write struct {
	rev        int64
	key, value string
}

// writeOverWS sets and deletes keys over one WebSocket until stop is
// closed, recording each acknowledged write with its revision.
func writeOverWS(t *testing.T, url string, w int, stop chan struct{}, mu *sync.Mutex, log *[]write) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Error(err)
		return
	}
	defer ws.CloseNow()
	for i := 0; ; i++ {
		select {
		case <-stop:
			ws.Close(websocket.StatusNormalClosure, "")
			return
		default:
		}
		key := fmt.Sprintf("w%d:%d", w, i%17)
		req := map[string]any{"op": 2, "key": key, "value": fmt.Sprintf("%d", i), "messageId": i}
		if i%5 == 4 {
			req = map[string]any{"op": 4, "key": fmt.Sprintf("w%d:%d", w, (i-3)%17), "messageId": i}
		}
		b, _ := json.Marshal(req)
		if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
			t.Error(err)
			return
		}
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		var rep struct {
			Code     int
			Revision int64
		}
		require.NoError(t, json.Unmarshal(b, &rep))
		if rep.Code == 404 {
			continue // deleted already
		}
		if rep.Code != 200 {
			t.Errorf("write: %s", b)
			return
		}
		wr := write{rev: rep.Revision, key: req["key"].(string)}
		if v, ok := req["value"]; ok {
			wr.value = v.(string)
		}
		mu.Lock()
		*log = append(*log, wr)
		mu.Unlock()
	}
}

// TestBackupRestore: a backup fetched from a serve under concurrent
// writes restores to exactly the state at its revision, as the writes
// acknowledged up to it make it.
func TestBackupRestore(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	s := serveOps(t, bin, "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--api-key", "k1")
	wsURL := strings.Replace(s.base, "http://", "ws://", 1) + "/kv/ws?apiKey=k1"

	var mu sync.Mutex
	var log []write
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); writeOverWS(t, wsURL, w, stop, &mu, &log) }()
	}
	for {
		mu.Lock()
		n := len(log)
		mu.Unlock()
		if n > 200 || t.Failed() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	file := filepath.Join(dir, "b.backup")
	cmd := exec.Command(bin, "backup", "--addr", s.base, "-o", file)
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	time.Sleep(50 * time.Millisecond) // writes go on after it
	close(stop)
	wg.Wait()
	var rev int64
	_, err = fmt.Sscanf(string(out), "livekv backup: revision %d", &rev)
	require.NoError(t, err, "%s", out)
	mu.Lock()
	sort.Slice(log, func(i, j int) bool { return log[i].rev < log[j].rev })
	require.Greater(t, log[len(log)-1].rev, rev, "writes went on after the backup")
	want := map[string]string{}
	for _, w := range log {
		if w.rev > rev {
			break
		}
		if w.value == "" {
			delete(want, w.key)
		} else {
			want[w.key] = w.value
		}
	}
	mu.Unlock()
	require.NotEmpty(t, want)

	restored := filepath.Join(dir, "restored")
	out, err = exec.Command(bin, "restore", file, restored).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), fmt.Sprintf("restored revision %d", rev))
	db, err := engine.Open(restored, nil)
	require.NoError(t, err)
	require.Equal(t, rev, db.Revision())
	got := map[string]string{}
	for it, err := range enginetest.Items(db.Range("", "", nil)) {
		require.NoError(t, err)
		got[it.Key] = it.Value
	}
	require.NoError(t, db.Close())
	require.Equal(t, want, got, "exactly the state at revision %d", rev)

	out, err = exec.Command(bin, "restore", file, restored).CombinedOutput()
	require.Error(t, err, "a folder that is not empty")
	require.Contains(t, string(out), "not empty")

	// To stdout, once the writers stopped: the newest revision.
	f, err := os.Create(filepath.Join(dir, "stdout.backup"))
	require.NoError(t, err)
	cmd = exec.Command(bin, "backup", "--addr", strings.TrimPrefix(s.base, "http://"), "--api-key", "k1")
	cmd.Stdout = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	require.NoError(t, f.Close())
	mu.Lock()
	last := log[len(log)-1].rev
	mu.Unlock()
	require.Contains(t, stderr.String(), fmt.Sprintf("revision %d,", last))
	out, err = exec.Command(bin, "restore", f.Name(), filepath.Join(dir, "latest")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), fmt.Sprintf("restored revision %d", last))

	// A wrong key gets 403 and leaves no file.
	bad := filepath.Join(dir, "bad.backup")
	out, err = exec.Command(bin, "backup", "--addr", s.base, "--api-key", "nope", "-o", bad).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "403")
	entries, err := filepath.Glob(filepath.Join(dir, "bad.backup*"))
	require.NoError(t, err)
	require.Empty(t, entries)

	// No key is 401, no credentials; a wrong one, or an app's token, 403.
	resp, err := http.Post(s.base+"/apps/token", "application/json", strings.NewReader(`{"app":"todo"}`))
	require.NoError(t, err)
	var tok struct{ Token string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.NotEmpty(t, tok.Token)
	for key, want := range map[string]int{"": 401, "nope": 403, tok.Token: 403} {
		req, err := http.NewRequest("GET", s.base+"/backup", nil)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("x-api-key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var reply struct {
			Code  int
			Error string
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&reply))
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "x-api-key %q", key)
		require.Equal(t, want, reply.Code)
		require.NotEmpty(t, reply.Error)
	}

	// A cut backup does not restore.
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, b[:len(b)/2], 0o644))
	out, err = exec.Command(bin, "restore", bad, filepath.Join(dir, "r2")).CombinedOutput()
	require.Error(t, err, "%s", out)
	snaps, err := filepath.Glob(filepath.Join(dir, "r2", "snap", "*.snap"))
	require.NoError(t, err)
	require.Empty(t, snaps, "nothing that Open would read")
	s.stop(t)
}

// backup takes its server from $LIVEKV_ADDR, in any form the client
// commands take, when --addr is not given.
func TestBackup_LivekvAddr(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	s := serveOps(t, bin, "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--api-key", "k1")
	hostPort := strings.TrimPrefix(s.base, "http://")
	closed := closedAddr(t)
	// A node shutting down answers 503: the next is tried.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"shutting down"}`, http.StatusServiceUnavailable)
	}))
	defer down.Close()
	for i, env := range []string{hostPort, s.base + "/kv", closed + "," + hostPort, down.URL + "," + hostPort} {
		file := filepath.Join(dir, fmt.Sprintf("%d.backup", i))
		cmd := exec.Command(bin, "backup", "-o", file)
		cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+env)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "LIVEKV_ADDR=%s: %s", env, out)
		require.Contains(t, string(out), "livekv backup: revision ")
		require.FileExists(t, file)
	}
	cmd := exec.Command(bin, "backup", "-o", filepath.Join(dir, "down.backup"))
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+closed+","+down.URL)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the last one's answer: %s", out)
	require.Contains(t, string(out), "503")

	// A node that accepts and never answers (stopped, cut off) held
	// backup for ever: after --timeout the next is tried.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd = exec.CommandContext(ctx, bin, "backup", "--timeout", "1s", "-o", filepath.Join(dir, "silent.backup"))
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+silent.Addr().String()+","+hostPort)
	out, err = cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "backup waited on the silent node: %s", out)
	require.NoError(t, err, "%s", out)
	cmd = exec.Command(bin, "backup", "--timeout", "0s", "-o", filepath.Join(dir, "zero.backup"))
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+hostPort)
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Equal(t, 2, cmd.ProcessState.ExitCode(), "%s", out)

	// --addr wins over it.
	cmd = exec.Command(bin, "backup", "--addr", hostPort, "-o", filepath.Join(dir, "flag.backup"))
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+closed)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	s.stop(t)
}

// A node that sends the start of a backup and then stops sending
// (stopped, cut off, hung) held backup for ever: after --timeout with no
// byte it fails, naming the stall, leaves no file and tries no other
// node. One that sends slowly but steadily, for longer than --timeout in
// all, is not cut off.
func TestBackup_StalledBody(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	release := make(chan struct{})
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Livekv-Revision")
		w.Write(bytes.Repeat([]byte("x"), 4096))
		w.(http.Flusher).Flush()
		select { // until the client goes, or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer stalled.Close()
	defer close(release) // before Close, which waits for the handler
	var mu sync.Mutex
	hits := 0 // of the next node
	next := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		http.Error(w, "not this one", http.StatusTeapot)
	}))
	defer next.Close()

	file := filepath.Join(dir, "stalled.backup")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "backup", "--timeout", "200ms", "--api-key", "k1",
		"--addr", stalled.URL+","+next.URL, "-o", file)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	require.NoError(t, ctx.Err(), "backup waited on the stalled node: %s", out)
	require.Error(t, err, "%s", out)
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", out)
	require.Contains(t, string(out), "stalled", "%s", out)
	require.Contains(t, string(out), "after 4096 bytes", "%s", out)
	require.Contains(t, string(out), "the backup is incomplete", "%s", out)
	require.GreaterOrEqual(t, took, 200*time.Millisecond, "not before --timeout: %s", out)
	entries, err := filepath.Glob(filepath.Join(dir, "stalled.backup*"))
	require.NoError(t, err)
	require.Empty(t, entries, "no file, whole or temporary")
	mu.Lock()
	require.Zero(t, hits, "once a node answered, no other is tried")
	mu.Unlock()

	// Slow but steady: a byte every 50ms, 1s in all, --timeout 500ms.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Livekv-Revision")
		for range 20 {
			time.Sleep(50 * time.Millisecond)
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
		}
		w.Header().Set("Livekv-Revision", "7")
	}))
	defer slow.Close()
	file = filepath.Join(dir, "slow.backup")
	cmd = exec.CommandContext(ctx, bin, "backup", "--timeout", "500ms", "--api-key", "k1", "--addr", slow.URL, "-o", file)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "livekv backup: revision 7, 20 bytes")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("x", 20), string(b))
}

// A cut or damaged backup is refused, and the hint is about the backup
// file: there is no folder to check --repair or dump --salvage (restore
// leaves none), and the damage is in the file.
func TestRestore_DamagedBackupHint(t *testing.T) {
	bin := build(t)
	db, err := engine.Open(filepath.Join(t.TempDir(), "src"), nil)
	require.NoError(t, err)
	_, err = db.Update(func(tx *engine.Tx) error {
		_, err := tx.Set("a", strings.Repeat("x", 100), nil)
		return err
	})
	require.NoError(t, err)
	var b bytes.Buffer
	_, err = db.Backup(&b)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	flipped := bytes.Clone(b.Bytes())
	flipped[len(flipped)/2] ^= 0xff
	for name, data := range map[string][]byte{"cut": b.Bytes()[:b.Len()-20], "damaged": flipped} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), name+".backup")
			require.NoError(t, os.WriteFile(file, data, 0o600))
			dest := filepath.Join(t.TempDir(), "restored")
			out, err := exec.Command(bin, "restore", file, dest).CombinedOutput()
			require.Error(t, err, "%s", out)
			_, statErr := os.Stat(dest)
			require.True(t, os.IsNotExist(statErr), "no folder is left")
			require.NotContains(t, string(out), "--repair", "%s", out)
			require.NotContains(t, string(out), "--salvage", "%s", out)
			require.Contains(t, string(out), "the backup file is cut short or damaged", "%s", out)
		})
	}
}

// Ctrl-C or SIGTERM while backup -o FILE is under way: backup stops,
// says the backup is incomplete, exits 1 and leaves no file, whole or
// temporary (a process killed by the signal left FILE.tmp-*).
func TestBackup_InterruptedRemovesTemporaryFile(t *testing.T) {
	bin := build(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Livekv-Revision")
		w.Write(bytes.Repeat([]byte("x"), 4096))
		w.(http.Flusher).Flush()
		select { // still sending, as far as backup knows
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "livekv.backup")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "backup", "--timeout", "30s", "--api-key", "k1", "--addr", slow.URL, "-o", file)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			require.Eventually(t, func() bool { // the first bytes are in the temporary file
				tmp, _ := filepath.Glob(file + ".tmp-*")
				if len(tmp) != 1 {
					return false
				}
				st, err := os.Stat(tmp[0])
				return err == nil && st.Size() == 4096
			}, 10*time.Second, 10*time.Millisecond)
			require.NoError(t, cmd.Process.Signal(sig))
			err := cmd.Wait()
			require.NoError(t, ctx.Err(), "backup went on after %v: %s", sig, stderr.String())
			require.Error(t, err)
			require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%v: %s", err, stderr.String())
			require.Contains(t, stderr.String(), "interrupted")
			require.Contains(t, stderr.String(), "the backup is incomplete")
			left, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, left, "no file, whole or temporary")
		})
	}
}
