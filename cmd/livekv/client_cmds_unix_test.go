//go:build unix

package main_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestRange_SlowReader: --timeout bounds each wait for the server, not
// the whole range: a range read slowly (| less), or one of many pages,
// runs to its end, and what it printed is every key.
func TestRange_SlowReader(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	db, err := engine.Open(data, nil)
	require.NoError(t, err)
	const n = 3000 // three pages, and more than a pipe holds
	_, err = db.Update(func(tx *engine.Tx) error {
		for i := range n {
			if _, err := tx.Set(fmt.Sprintf("k%05d", i), strings.Repeat("v", 100), nil); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	srv := runServe(t, bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1")

	cmd := exec.Command(bin, "range", "--prefix", "k", "--timeout", "1s")
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+strings.TrimPrefix(srv.base, "http://"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	r := bufio.NewReaderSize(stdout, 16)
	first, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "k00000\n", first)
	time.Sleep(2 * time.Second) // a reader slower than --timeout
	rest, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, cmd.Wait(), "%s", stderr.String())
	require.Equal(t, 2*n, strings.Count(first+string(rest), "\n"), "%s", stderr.String())

	// A server that stops answering midway still fails the range once
	// --timeout passes with no page, saying so.
	cmd = exec.Command(bin, "range", "--prefix", "k", "--timeout", "1s")
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+strings.TrimPrefix(srv.base, "http://"))
	stderr.Reset()
	cmd.Stderr = &stderr
	stdout, err = cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	r = bufio.NewReaderSize(stdout, 16)
	_, err = r.ReadString('\n')
	require.NoError(t, err)
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGSTOP))
	defer srv.cmd.Process.Signal(syscall.SIGCONT)
	start := time.Now()
	_, err = io.ReadAll(r)
	require.NoError(t, err)
	require.Error(t, cmd.Wait())
	require.Less(t, time.Since(start), 8*time.Second)
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", stderr.String())
	require.Contains(t, stderr.String(), "no answer from the server within 1s (--timeout)")
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGCONT))
	srv.stop(t)
}
