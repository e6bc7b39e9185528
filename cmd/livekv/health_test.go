package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

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
	mountHealth(mux, db)
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
