package main_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServe_TwoAtOnceOnANewFolder: two serves started at once on a folder
// that does not exist yet. One takes its lock; the other fails, and must
// leave the folder alone: it removed the folder it thought it had made,
// with the running one's log and lock in it.
func TestServe_TwoAtOnceOnANewFolder(t *testing.T) {
	bin := build(t)
	for round := range 8 {
		data := filepath.Join(t.TempDir(), "new", "data")
		var cmds [2]*exec.Cmd
		exited := make(chan int, 2)
		for i := range cmds {
			cmds[i] = exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k")
			require.NoError(t, cmds[i].Start())
		}
		for i := range cmds {
			go func() {
				_ = cmds[i].Wait()
				exited <- i
			}()
		}
		var loser int
		select {
		case loser = <-exited:
		case <-time.After(30 * time.Second):
			for _, c := range cmds {
				_ = c.Process.Kill()
			}
			t.Fatalf("round %d: neither serve stopped", round)
		}
		winner := cmds[1-loser]
		require.DirExists(t, data, "round %d: the folder of the serve that runs is gone", round)
		require.FileExists(t, filepath.Join(data, "LOCK"), "round %d", round)
		require.NoError(t, winner.Process.Kill())
		<-exited
	}
}

// TestServe_APIKeyWithSpaces: HTTP trims a header's value, so that no
// client could send a key that starts or ends with a space: serve
// refuses it as a usage error (exit 2), and makes no folder.
func TestServe_APIKeyWithSpaces(t *testing.T) {
	bin := build(t)
	for _, key := range []string{" ", "key ", " key"} {
		data := filepath.Join(t.TempDir(), "data")
		// A serve that takes the key runs: stopped after 10 s, it fails.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", key).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%q: %s", key, out)
		require.Equal(t, 2, ee.ExitCode(), "%q: %s", key, out)
		require.Contains(t, string(out), "--api-key must not start or end with a space")
		require.NoDirExists(t, data)
	}
}

// TestWatch_CtrlCWhileConnecting: Ctrl-C ends watch with exit 0, also
// while it is still connecting (to a server that never answers).
func TestWatch_CtrlCWhileConnecting(t *testing.T) {
	bin := build(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dialed := make(chan struct{}, 1)
	go func() { // accepts, and says nothing
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			select {
			case dialed <- struct{}{}:
			default:
			}
		}
	}()
	cmd := exec.Command(bin, "watch", "--addr", ln.Addr().String(), "--api-key", "k", "--timeout", "30s", "k")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	// watch takes Ctrl-C before it dials: once it has, the signal is its.
	select {
	case <-dialed:
	case <-time.After(10 * time.Second):
		t.Fatal("watch never dialed")
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), "%s", out.String())
}

// TestServe_EmptyDataFolder: --data "" (a $DATA_DIR that is not set, say)
// would open the engine's in-memory database, whose writes are all lost
// on SIGTERM while serve says "database open in" the working folder:
// serve refuses it as a usage error (exit 2), and writes nothing.
func TestServe_EmptyDataFolder(t *testing.T) {
	bin := build(t)
	{
		data, cwd := "", t.TempDir()
		// A serve that takes the folder runs: stopped after 10 s, it fails.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k")
		cmd.Dir = cwd
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%q: %s", data, out)
		require.Equal(t, 2, ee.ExitCode(), "%q: %s", data, out)
		require.Contains(t, string(out), "--data")
		entries, err := os.ReadDir(cwd)
		require.NoError(t, err)
		require.Empty(t, entries, "%q: nothing written", data)
	}
}

// TestLoad_EmptyFolder: load "" would load into the engine's in-memory
// database and drop every item on exit, saying it loaded them: it is a
// usage error (exit 2), as for every command that takes a folder.
func TestLoad_EmptyFolder(t *testing.T) {
	bin := build(t)
	for _, cmd := range []string{"load", "check", "dump"} {
		c := exec.Command(bin, cmd, "")
		c.Dir = t.TempDir()
		c.Stdin = strings.NewReader(`{"key":"a","value":"v"}` + "\n")
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s: %s", cmd, out)
		require.Equal(t, 2, ee.ExitCode(), "%s: %s", cmd, out)
		entries, err := os.ReadDir(c.Dir)
		require.NoError(t, err)
		require.Empty(t, entries, "%s: nothing written", cmd)
	}
}
