package main_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServe_SIGTERMWithClosedStdout: a serve whose stdout and stderr are
// pipes nobody reads any more (a log collector that stopped, a "| head")
// still closes its database on SIGTERM and exits 0, rather than dying of
// SIGPIPE on the line it prints as it closes.
func TestServe_SIGTERMWithClosedStdout(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k")
	cmd.Stdout, cmd.Stderr = w, w
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })
	w.Close()
	lines := bufio.NewScanner(r)
	base := ""
	for lines.Scan() {
		if m := regexp.MustCompile(`HPKV API at (http://\S+)/kv`).FindStringSubmatch(lines.Text()); m != nil {
			base = m[1]
		}
		if strings.Contains(lines.Text(), "Ctrl-C to stop") {
			break
		}
	}
	require.NotEmpty(t, base, "serve did not start")
	r.Close() // nobody reads what serve writes from now on

	code, _, err := writeAt(base, "a", "v")
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.Equal(t, "v", stopAndGet(t, cmd, data, "a"))
}
