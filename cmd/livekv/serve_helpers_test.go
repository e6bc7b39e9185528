package main_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// server is a running livekv serve.
type server struct {
	cmd  *exec.Cmd
	base string
}

// runServe runs the livekv binary bin with args (a serve command) and
// waits until it says where it serves.
func runServe(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if m := regexp.MustCompile(`HPKV API at http://(\S+)/kv`).FindStringSubmatch(lines.Text()); m != nil {
			go io.Copy(io.Discard, stdout)
			return &server{cmd: cmd, base: "http://" + m[1]}
		}
	}
	t.Fatal("serve did not start")
	return nil
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, s.cmd.Wait(), "a clean exit on SIGTERM")
}
