package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/stretchr/testify/require"
)

// freeAddr returns a 127.0.0.1 address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// TestServe_Cluster starts three serve processes as one cluster: a write
// through one node's REST API is read through another's, and all three
// stop cleanly on SIGTERM.
func TestServe_Cluster(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	var raft, peers []string
	for i := range 3 {
		raft = append(raft, freeAddr(t))
		peers = append(peers, fmt.Sprintf("n%d=%s", i, raft[i]))
	}
	var srvs []*server
	logStores := []string{"bolt", "wal", "bolt"} // each node keeps its raft log its own way
	for i := range 3 {
		srvs = append(srvs, runServe(t, bin, "serve", "--data", filepath.Join(dir, fmt.Sprint(i)), "--addr", "127.0.0.1:0",
			"--api-key", "k", "--node", fmt.Sprintf("n%d", i), "--raft", raft[i], "--peers", strings.Join(peers, ","),
			"--raft-profile", "lan", "--raft-log", logStores[i]))
	}
	var rev string // the revision header of the last reply
	do := func(s *server, method, path, body string) (int, string) {
		req, err := http.NewRequest(method, s.base+"/kv"+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("x-api-key", "k")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		rev = resp.Header.Get(adapter.RevisionHeader)
		return resp.StatusCode, string(b)
	}
	// The first write may come before the election is over.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := do(srvs[0], "POST", "/record", `{"key":"hello","value":"cluster"}`)
		if code == 200 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no write accepted: %d %s", code, body)
		time.Sleep(100 * time.Millisecond)
	}
	// Reads are session reads by default: with the write's revision they
	// see it on any node; linearizable ones see it without.
	require.NotEmpty(t, rev, "the write's revision header")
	for _, s := range srvs[1:] {
		for _, q := range []string{"?minRevision=" + rev, "?consistency=linearizable"} {
			code, body := do(s, "GET", "/record/hello"+q, "")
			require.Equal(t, 200, code, body)
			require.JSONEq(t, `{"key":"hello","value":"cluster"}`, body)
		}
	}
	// Each node's log is raft's, and its metrics say so.
	for i, s := range srvs {
		code, body := get(t, http.DefaultClient, s.base+"/metrics")
		require.Equal(t, 200, code)
		m := series(t, body)
		require.Positive(t, m["livekv_log_bytes"], "node %d: the raft log's bytes", i)
		require.Positive(t, m["livekv_fsync_duration_seconds"], "node %d: appends to the raft log", i)
	}

	// livekv cluster, through any node.
	out, err := exec.Command(bin, "cluster", "status", "--raft", raft[2]).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var st struct {
		ID       string `json:"id"`
		LeaderID string `json:"leader_id"`
		Servers  []any  `json:"servers"`
	}
	require.NoError(t, json.Unmarshal(out, &st), "%s", out)
	require.Equal(t, "n2", st.ID)
	require.Len(t, st.Servers, 3)
	target := "n0"
	if st.LeaderID == "n0" {
		target = "n1"
	}
	out, err = exec.Command(bin, "cluster", "transfer", target, "--raft", raft[2]).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Eventually(t, func() bool { // n2 learns of it with the next heartbeat
		out, err = exec.Command(bin, "cluster", "status", "--raft", raft[2]).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.NoError(t, json.Unmarshal(out, &st))
		return st.LeaderID == target
	}, 10*time.Second, 50*time.Millisecond, "leadership moved to %s", target)
	out, err = exec.Command(bin, "cluster", "remove").CombinedOutput()
	require.Error(t, err, "remove without an ID: %s", out)
	// A mistyped ID removes nothing and says so, exit 1: raft alone
	// would take it as done.
	out, err = exec.Command(bin, "cluster", "remove", "n7", "--raft", raft[2]).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "remove of no member: %s", out)
	require.Equal(t, 1, exit.ExitCode(), "%s", out)
	require.Contains(t, string(out), `no server "n7" in the cluster`)
	out, err = exec.Command(bin, "cluster", "status", "--raft", raft[2]).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, json.Unmarshal(out, &st))
	require.Len(t, st.Servers, 3)

	// A member whose folder was lost, started again under its ID with
	// --join: refused, exit 1 with the leader's reason (not a usage
	// error); the cluster still lists it, a voter.
	srvs[2].stop(t)
	out, err = exec.Command(bin, "serve", "--data", filepath.Join(dir, "2-lost"), "--addr", "127.0.0.1:0", "--api-key", "k",
		"--node", "n2", "--raft", raft[2], "--join", raft[0], "--raft-profile", "lan").CombinedOutput()
	require.ErrorAs(t, err, &exit, "%s", out)
	require.Equal(t, 1, exit.ExitCode(), "%s", out)
	require.Contains(t, string(out), "remove it first")
	require.NotContains(t, string(out), "usage: livekv serve")
	srvs = srvs[:2]

	for _, s := range srvs {
		s.stop(t)
	}
	require.FileExists(t, filepath.Join(dir, "0", "raft", "raft.db"))
	require.FileExists(t, filepath.Join(dir, "1", "raft", "wal", "wal-meta.db"))
	require.NoFileExists(t, filepath.Join(dir, "1", "raft", "raft.db"))
}

// TestServe_RaftLogFlag: --raft-log takes bolt or wal, in cluster mode
// only, and a node's directory keeps the store it was made with.
func TestServe_RaftLogFlag(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	raft := freeAddr(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--raft-log", "rocks", "--raft", raft, "--peers", "a=" + raft}, `unknown log store "rocks"`},
		{[]string{"--raft-log", "wal"}, "--raft-log needs --peers or --join"},
		{[]string{"--lease-reads"}, "--lease-reads needs --peers or --join"},
	} {
		data := filepath.Join(dir, "new")
		args := append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k"}, tc.args...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		require.Error(t, err, "%s", out)
		require.Contains(t, string(out), tc.want)
		require.NoDirExists(t, data, "a serve that did not start leaves nothing behind")
	}

	// A node made with bolt refuses to start on wal, which would find no
	// raft state there and forget its log and votes.
	data := filepath.Join(dir, "n")
	s := runServe(t, bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k",
		"--node", "a", "--raft", raft, "--peers", "a="+raft, "--raft-profile", "lan")
	s.stop(t)
	out, err := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k",
		"--node", "a", "--raft", raft, "--peers", "a="+raft, "--raft-log", "wal").CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), "raft.db")
}

// TestServe_JoinWithSpaces: --join takes its addresses as --peers does,
// with spaces after the commas ("a:7001, b:7002"): a node joins through
// the second when the first is down, rather than try " b:7002" until the
// join times out.
func TestServe_JoinWithSpaces(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	raft1, raft2 := freeAddr(t), freeAddr(t)
	first := runServe(t, bin, "serve", "--data", filepath.Join(dir, "1"), "--addr", "127.0.0.1:0", "--api-key", "k",
		"--node", "n1", "--raft", raft1, "--peers", "n1="+raft1, "--raft-profile", "lan")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--data", filepath.Join(dir, "2"), "--addr", "127.0.0.1:0", "--api-key", "k",
		"--node", "n2", "--raft", raft2, "--join", closedAddr(t)+", "+raft1, "--raft-profile", "lan")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	second := &server{cmd: cmd}
	lines := bufio.NewScanner(stdout)
	for second.base == "" && lines.Scan() {
		if m := regexp.MustCompile(`HPKV API at (http://\S+)/kv`).FindStringSubmatch(lines.Text()); m != nil {
			second.base = m[1]
		}
	}
	if second.base == "" {
		cmd.Wait() // stderr is whole
		t.Fatalf("the node did not join within 30s (%v): %s", ctx.Err(), stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	out, err := exec.Command(bin, "cluster", "status", "--raft", raft1).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"n2"`)
	second.stop(t)
	// serve logs raft's lines (throttled: raftLog).
	require.Contains(t, stderr.String(), "raft: entering follower state")
	first.stop(t)
}

// TestServe_SignalEndsAJoinNobodyAnswers: a serve whose --join nobody
// answers waits up to two minutes for it. SIGTERM meanwhile stops the
// opening: serve closes the node, removes the folder it made and exits 1
// saying why, rather than die of the signal with the folder left behind.
func TestServe_SignalEndsAJoinNobodyAnswers(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k",
		"--node", "n2", "--raft", freeAddr(t), "--join", closedAddr(t), "--raft-profile", "lan")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(data, "raft")); return err == nil },
		10*time.Second, 10*time.Millisecond, "serve opens the node")
	time.Sleep(300 * time.Millisecond) // the join is asked, in vain
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("serve went on joining after SIGTERM")
	}
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%v; stderr: %s", cmd.ProcessState, stderr.String())
	require.Contains(t, stderr.String(), "stopped by a signal before serving")
	_, err := os.Stat(data)
	require.ErrorIs(t, err, os.ErrNotExist, "the folder serve made is left")
}
