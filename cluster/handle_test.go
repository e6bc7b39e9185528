package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/livekv/livekv/adapter"
	"github.com/stretchr/testify/require"
)

var _ adapter.Store = (*Handle)(nil)

// TestHandle_AdapterServesAFollower serves the REST API from a follower:
// a write goes to the leader, and a linearizable read sees it.
func TestHandle_AdapterServesAFollower(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	a, err := adapter.New(c.nodes[f].With(), &adapter.Options{APIKeys: []string{"k"}})
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	defer srv.Close()
	defer a.Shutdown(t.Context())

	do := func(method, path string, body any) (int, map[string]any) {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, srv.URL+path, rd)
		require.NoError(t, err)
		req.Header.Set("x-api-key", "k")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := do("POST", "/record", map[string]any{"key": "user:1", "value": "Ada"})
	require.Equal(t, http.StatusOK, code, "%v", m)
	code, m = do("GET", "/record/user:1?consistency=linearizable", nil)
	require.Equal(t, http.StatusOK, code, "%v", m)
	require.Equal(t, "Ada", m["value"])
	it, err := c.nodes[l].Get("user:1", Leader)
	require.NoError(t, err)
	require.Equal(t, "Ada", it.Value, "the write went through the leader")
}
