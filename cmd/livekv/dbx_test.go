//go:build browser

package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDBXServe runs the DBXWebSocket class of DBX's documentation in Node
// against livekv serve's /kv/dbx/ws, with the API key serve made and kept
// in its folder: first the adapter's own checks of every method, batches,
// error codes, heartbeats both ways and a subscription that resumes after
// the server drops the class (adapter/testdata/dbx/client.mjs, which
// wants heartbeats every 200 ms and a client closed after 500 ms of
// silence), then a subscription that outlives a restart of serve on the
// same folder and port, with a record written to the folder while serve
// was down (testdata/dbx/restart.mjs): it resumes with no change missing
// and none twice. It needs Node.js 20 or later, so it is behind the
// browser build tag, which make test (and so CI) always sets; without Node
// it fails, it never skips.
func TestDBXServe(t *testing.T) {
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is required (it runs the DBXWebSocket class)")
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	start := func(addr string) *server {
		return runServe(t, bin, "serve", "--data", data, "--addr", addr,
			"--heartbeat-interval", "200ms", "--heartbeat-timeout", "300ms")
	}
	s := start("127.0.0.1:0")
	key, err := os.ReadFile(filepath.Join(data, "api-key"))
	require.NoError(t, err)
	apiKey := strings.TrimSpace(string(key))
	require.NotEmpty(t, apiKey)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Node 20 has the browser's WebSocket behind this flag; later ones
	// accept it too.
	script := func(dir, name string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, node, "--experimental-websocket", name, s.base+"/kv", apiKey)
		cmd.Dir = dir
		return cmd
	}

	out, err := script(filepath.Join("..", "..", "adapter", "testdata", "dbx"), "client.mjs").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "ok\n", string(out))

	s = restartUnder(t, script(filepath.Join("testdata", "dbx"), "restart.mjs"), s, start, data, "r:2", "while away")
	s.stop(t)
}
