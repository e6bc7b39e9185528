//go:build browser

package adapter_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestOfficialClient runs the official HPKV client, @hpkv/websocket-client
// 1.4.1 pinned by testdata/hpkv/package-lock.json and unmodified, against
// the adapter (testdata/hpkv/client.mjs has the checks). It needs Node.js,
// so it is behind the browser build tag, which make test (and so CI)
// always sets, after installing the client with npm ci. With the tag and
// without Node or the package this test fails; it never skips.
func TestOfficialClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required (it runs the official HPKV client): %v", err)
	}
	dir := filepath.Join("testdata", "hpkv")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@hpkv", "websocket-client")); err != nil {
		t.Fatalf("the official client is not installed: run `npm ci` in adapter/testdata/hpkv (make test does): %v", err)
	}
	f := newFixture(t, nil)
	runNode(t, node, dir, "the official client", "client.mjs", f.base, apiKey)
}

// runNode runs node with args in dir, for up to a minute, and fails the
// test unless it prints exactly "ok".
func runNode(t *testing.T, node, dir, what string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("%s failed: %v\n%s", what, err, out)
	}
}
