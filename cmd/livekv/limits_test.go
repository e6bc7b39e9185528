package main_test

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServe_KeyAndValueLimits: serve takes the engine's key and value
// limits, and a client's messages grow to carry them; a folder that holds
// a key over the default limit is served only with the flag, and refused
// without it.
func TestServe_KeyAndValueLimits(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	key := strings.Repeat("k", 1500)      // over the default 1 KiB
	value := strings.Repeat("v", 5<<20/2) // 2.5 MiB: over the default 1 MiB, and the default 2 MiB message
	s := runServe(t, bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k")
	code, _, err := writeAt(s.base, key, value)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "over the default limits")
	s.stop(t)

	limits := []string{"--max-key-size", "2048", "--max-value-size", "3145728"}
	s = runServe(t, bin, append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k"}, limits...)...)
	code, _, err = writeAt(s.base, key, value)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	code, got, err := readAt(s.base, key, "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, value, got)
	s.stop(t)

	// Without the flags, the folder is refused, which names them: served,
	// its key could be listed but not read, written or deleted.
	out, err := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	require.Equal(t, 1, exit.ExitCode(), "%s", out)
	require.Contains(t, string(out), "a key of 1500 bytes")
	require.Contains(t, string(out), "--max-key-size")

	out, err = exec.Command(bin, "serve", "--data", data, "--max-value-size", "0").CombinedOutput()
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode())
	require.Contains(t, string(out), "--max-*-size")
}
