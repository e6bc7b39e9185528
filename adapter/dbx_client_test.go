//go:build browser

package adapter_test

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
)

// TestDBXClient runs the DBXWebSocket class of DBX's documentation,
// completed (testdata/dbx/dbx-websocket.mjs), against the adapter's DBX
// dialect: every method, pipelined requests taking effect in the order
// sent, an atomic batch and a failing one, error codes (the handshake's
// unauthorized and forbidden read over plain HTTP), heartbeats both ways, and a subscription that resumes after the class
// reconnects (testdata/dbx/client.mjs has the checks). It needs Node.js
// 20 or later, whose WebSocket the class uses, so it is behind the
// browser build tag, which make test (and so CI) always sets; without
// Node this test fails, it never skips.
func TestDBXClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required (it runs the DBXWebSocket class): %v", err)
	}
	f := newFixture(t, &adapter.Options{HeartbeatInterval: 200 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond})
	// Node 20 has the browser's WebSocket behind this flag; later ones
	// accept it too.
	runNode(t, node, filepath.Join("testdata", "dbx"), "the DBXWebSocket class", "--experimental-websocket", "client.mjs", f.base, apiKey)
}
