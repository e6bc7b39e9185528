package main_test

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServe_KeyAndValueLimits: serve takes the engine's key and value
// limits, and a client's messages grow to carry them; a folder that holds
// a key over the default limit serves it only with the flag.
func TestServe_KeyAndValueLimits(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	key := strings.Repeat("k", 1500)      // over the default 1 KiB
	value := strings.Repeat("v", 5<<20/2) // 2.5 MiB: over the default 1 MiB, and the default 2 MiB message
	record := func(s *server, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("x-api-key", "k1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var rec struct {
			Value string `json:"value"`
		}
		if resp.StatusCode == http.StatusOK && method == "GET" {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&rec))
		}
		return resp.StatusCode, rec.Value
	}
	body, err := json.Marshal(map[string]string{"key": key, "value": value})
	require.NoError(t, err)

	s := runServe(t, bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1")
	code, _ := record(s, "POST", "/kv/record", string(body))
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "over the default limits")
	s.stop(t)

	limits := []string{"--max-key-size", "2048", "--max-value-size", "3145728"}
	s = runServe(t, bin, append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1"}, limits...)...)
	code, _ = record(s, "POST", "/kv/record", string(body))
	require.Equal(t, http.StatusOK, code)
	code, got := record(s, "GET", "/kv/record/"+key, "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, value, got)
	s.stop(t)

	s = runServe(t, bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1")
	code, _ = record(s, "GET", "/kv/record/"+key, "")
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "the key is over the default limit")
	s.stop(t)

	out, err := exec.Command(bin, "serve", "--data", data, "--max-value-size", "0").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode())
	require.Contains(t, string(out), "--max-*-size")
}
