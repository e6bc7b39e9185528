package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runExit runs bin with args and returns its output and exit code.
func runExit(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err, "%s", out)
	return string(out), 0
}

// TestServe_ClusterRecover: of three serve nodes, one is lost for good
// and the other two are stopped; livekv cluster recover makes the two
// (one keeping its raft log in BoltDB, one in raft-wal) a two-node
// cluster, which, started again with serve, holds every write and takes
// new ones.
func TestServe_ClusterRecover(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	var raft, peers []string
	for i := range 3 {
		raft = append(raft, freeAddr(t))
		peers = append(peers, fmt.Sprintf("n%d=%s", i, raft[i]))
	}
	logStores := []string{"bolt", "wal", "bolt"}
	data := func(i int) string { return filepath.Join(dir, fmt.Sprint(i)) }
	start := func(i int) *server {
		return runServe(t, bin, "serve", "--data", data(i), "--addr", "127.0.0.1:0",
			"--api-key", "k", "--node", fmt.Sprintf("n%d", i), "--raft", raft[i], "--peers", strings.Join(peers, ","),
			"--raft-profile", "lan", "--raft-log", logStores[i])
	}
	var srvs []*server
	for i := range 3 {
		srvs = append(srvs, start(i))
	}
	do := func(s *server, method, path, body string) (int, string) {
		req, err := http.NewRequest(method, s.base+"/kv"+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("x-api-key", "k")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// write retries a write until it is acknowledged (an election may be
	// under way).
	write := func(s *server, key string) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, body := do(s, "POST", "/record", fmt.Sprintf(`{"key":%q,"value":"v-%s"}`, key, key))
			if code == 200 {
				return
			}
			require.True(t, time.Now().Before(deadline), "%s not written: %d %s", key, code, body)
			time.Sleep(100 * time.Millisecond)
		}
	}
	read := func(s *server, key string) {
		code, body := do(s, "GET", "/record/"+key+"?consistency=linearizable", "")
		require.Equal(t, 200, code, "%s: %s", key, body)
		require.JSONEq(t, fmt.Sprintf(`{"key":%q,"value":"v-%s"}`, key, key), body)
	}
	var keys []string
	for i := range 30 {
		keys = append(keys, fmt.Sprintf("k%02d", i))
		write(srvs[i%3], keys[i])
	}
	// Both survivors have every write: a linearizable read on each waits
	// until it has applied all that was acknowledged.
	read(srvs[0], keys[len(keys)-1])
	read(srvs[1], keys[len(keys)-1])

	survivors := "n0=" + raft[0] + ",n1=" + raft[1]
	out, code := runExit(t, bin, "cluster", "recover", "--data", data(0), "--node", "n0", "--peers", survivors)
	require.Equal(t, 1, code, "recover on a running node: %s", out)
	require.Contains(t, out, "stop the node first")
	for _, s := range srvs {
		s.stop(t)
	}

	// Command lines that make no sense, and --help.
	for _, args := range [][]string{
		{"--data", data(0), "--node", "n0"},                            // no --peers
		{"--data", data(0), "--peers", survivors},                      // no --node
		{"--data", data(0), "--node", "n2", "--peers", survivors},      // not among them
		{"--data", data(0), "--node", "n0", "--peers", "n0"},           // not ID=HOST:PORT
		{"--data", data(0), "--node", "n0", "--peers", survivors, "x"}, // an argument
		{"--data", data(0), "--node", "n0", "--peers", survivors, "--raft-log", "rocks"},
	} {
		out, code := runExit(t, bin, append([]string{"cluster", "recover"}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, out)
		require.Contains(t, out, "usage: livekv cluster recover")
	}
	out, code = runExit(t, bin, "cluster", "recover", "--help")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "usage: livekv cluster recover")
	out, code = runExit(t, bin, "cluster", "recover", "--data", filepath.Join(dir, "none"), "--node", "n0", "--peers", survivors)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "no raft state")

	for i := range 2 {
		out, code := runExit(t, bin, "cluster", "recover", "--data", data(i), "--node", fmt.Sprintf("n%d", i), "--peers", survivors)
		require.Equal(t, 0, code, out)
	}
	srvs = []*server{start(0), start(1)}
	write(srvs[1], "after")
	for _, s := range srvs {
		for _, k := range append(keys, "after") {
			read(s, k)
		}
	}
	out, code = runExit(t, bin, "cluster", "status", "--raft", raft[0])
	require.Equal(t, 0, code, out)
	var st struct {
		Servers []struct {
			ID string `json:"id"`
		} `json:"servers"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Len(t, st.Servers, 2)
	for _, s := range srvs {
		s.stop(t)
	}
}
