package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

// TestReadyz: /readyz is 200 while the database takes writes, 503 once a
// write to its log failed and once it is closed; /healthz stays 200.
func TestReadyz(t *testing.T) {
	fsys := vfs.NewMemFS()
	db, err := engine.Open("db", &engine.Options{FS: fsys, SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	mux := http.NewServeMux()
	mountHealth(mux, (&store{db: db}).ready)
	get := func(path string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var body map[string]any
		if path == "/readyz" {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		}
		return rec.Code, body
	}
	code, body := get("/readyz")
	require.Equal(t, 200, code)
	require.Equal(t, true, body["ready"])

	fsys.FailAt(1, true) // every write and sync from now on fails
	_, err = db.Set("k", "v", nil)
	require.Error(t, err)
	code, body = get("/readyz")
	require.Equal(t, 503, code)
	require.Equal(t, false, body["ready"])
	require.Contains(t, body["error"], "injected")
	code, _ = get("/healthz")
	require.Equal(t, 200, code, "alive, though not ready")

	fsys.FailAt(0, false)
	db.Close()
	code, body = get("/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body["error"], "closed")
}

// TestReadyz_Cluster: a cluster node is ready while it knows a leader
// (here, itself alone), and not while it has none, as a node that lost
// its majority has: it refuses every write.
func TestReadyz_Cluster(t *testing.T) {
	freeAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}
	readyz := func(st *store) (int, map[string]any) {
		mux := http.NewServeMux()
		mountHealth(mux, st.ready)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var body map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		return rec.Code, body
	}

	a := freeAddr()
	alone, err := openStore(context.Background(), t.TempDir(), engine.Options{}, clusterFlags{node: "a", raft: a, peers: "a=" + a, profile: "lan"})
	require.NoError(t, err)
	defer alone.Close()
	require.Eventually(t, func() bool { code, _ := readyz(alone); return code == http.StatusOK }, 10*time.Second, 10*time.Millisecond, "a node that leads is ready")

	a, b := freeAddr(), freeAddr() // nobody listens on b: no majority
	lost, err := openStore(context.Background(), t.TempDir(), engine.Options{}, clusterFlags{node: "a", raft: a, peers: "a=" + a + ",b=" + b, profile: "lan"})
	require.NoError(t, err)
	defer lost.Close()
	time.Sleep(time.Second) // several election timeouts of the lan profile
	code, body := readyz(lost)
	require.Equal(t, http.StatusServiceUnavailable, code, "%v", body)
	require.Contains(t, body["error"], "no leader")
}
