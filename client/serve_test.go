package client_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/livekv/livekv/client"
	"github.com/stretchr/testify/require"
)

// serveProcess is a livekv serve child process.
type serveProcess struct {
	cmd  *exec.Cmd
	done chan error
}

// startServe runs bin serve on data and addr and waits until it serves.
func startServe(t *testing.T, bin, data, addr string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", addr, "--api-key", apiKey)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	p := &serveProcess{cmd: cmd, done: make(chan error, 1)}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if regexp.MustCompile(`HPKV API at http://`).MatchString(lines.Text()) {
			go func() {
				io.Copy(io.Discard, stdout)
				p.done <- cmd.Wait()
			}()
			t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
			return p
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatal("serve did not start")
	return nil
}

func (p *serveProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		require.NoError(t, err, "a clean exit on SIGTERM")
		p.done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestServeRestart: a subscriber of a livekv serve that is stopped and
// started again mid-stream gets every change once, in order: those made
// before, those it had not read yet, and those made after.
func TestServeRestart(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "livekv")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/livekv/livekv/cmd/livekv").CombinedOutput()
	require.NoError(t, err, "%s", out)
	data := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	url := "http://" + addr + "/kv"
	srv := startServe(t, bin, data, addr)

	ctx := ctxT(t)
	o := &client.Options{APIKey: apiKey, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	sc, err := client.Dial(ctx, url, o)
	require.NoError(t, err)
	defer sc.Close()
	wc, err := client.Dial(ctx, url, o)
	require.NoError(t, err)
	defer wc.Close()
	sub, err := sc.Subscribe(ctx, []string{"seq:*"}, &client.SubscribeOptions{Buffer: 8})
	require.NoError(t, err)
	defer sub.Close()

	write := func(from, to int) {
		for i := from; i <= to; i++ {
			_, err := wc.Set(ctx, "seq:a", fmt.Sprint(i), nil)
			require.NoError(t, err)
		}
	}
	write(1, 100)
	evs := collect(t, sub, 30) // the rest wait, on the server or in the client
	srv.stop(t)
	time.Sleep(300 * time.Millisecond) // the subscriber retries meanwhile
	srv = startServe(t, bin, data, addr)
	write(101, 200) // the writer's next call connects again
	evs = append(evs, collect(t, sub, 170)...)
	checkSequence(t, evs)
	srv.stop(t)
}
