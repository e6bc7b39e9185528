//go:build browser

package main_test

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// restartUnder runs script, a Node script that prints "stop-server" once
// its clients are open and then waits for "go" on stdin. Meanwhile it
// stops s, writes key = value into the folder data as a client of the
// engine, starts serve again on the same address with start, and says
// go. The script must then print "ok" and exit 0. It returns the new
// server.
func restartUnder(t *testing.T, script *exec.Cmd, s *server, start func(addr string) *server, data, key, value string) *server {
	t.Helper()
	stdin, err := script.StdinPipe()
	require.NoError(t, err)
	stdout, err := script.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	script.Stderr = &stderr
	require.NoError(t, script.Start())
	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan(), "the script stopped: %s", stderr.String())
	require.Equal(t, "stop-server", lines.Text(), stderr.String())
	s.stop(t)
	db, err := engine.Open(data, nil)
	require.NoError(t, err)
	_, err = db.Set(key, value, nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	s = start(strings.TrimPrefix(s.base, "http://"))
	_, err = io.WriteString(stdin, "go\n")
	require.NoError(t, err)
	require.True(t, lines.Scan(), "the script stopped: %s", stderr.String())
	require.Equal(t, "ok", lines.Text(), stderr.String())
	require.NoError(t, script.Wait(), stderr.String())
	return s
}
