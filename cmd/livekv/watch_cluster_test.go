//go:build unix

package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/cluster"
	"github.com/stretchr/testify/require"
)

// TestWatch_ClusterNodeWithoutLeader watches through a follower of a
// 3-node cluster, then stops the two other nodes (SIGSTOP) until the
// follower has had no leader long enough to end its subscriptions (503
// no_leader). watch goes on: once the others are back it prints every
// change written before and after, each once, in order.
func TestWatch_ClusterNodeWithoutLeader(t *testing.T) {
	c := newServeCluster(t, 3)
	l := c.leader()
	f := (l + 1) % 3
	// put writes key through the leader, again while the cluster refuses
	// it without doing anything (503), and returns its revision.
	put := func(key, value string) float64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			l := c.leader()
			c.mu.Lock()
			base := c.srvs[l].base
			c.mu.Unlock()
			req, err := http.NewRequest("POST", base+"/kv/record", strings.NewReader(fmt.Sprintf(`{"key":%q,"value":%q}`, key, value)))
			require.NoError(t, err)
			req.Header.Set("x-api-key", "k")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				rev, err := strconv.ParseFloat(resp.Header.Get(adapter.RevisionHeader), 64)
				require.NoError(t, err)
				return rev
			}
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", b)
			require.True(t, time.Now().Before(deadline), "no write accepted: %s", b)
			time.Sleep(50 * time.Millisecond)
		}
	}
	put("other", "x") // --rev 0 is "from now": w:0 comes after revision 1
	var revs []float64
	revs = append(revs, put("w:0", "0"))

	c.mu.Lock()
	watch := exec.Command(c.bin, "watch", "--prefix", "w:", "--rev", fmt.Sprint(revs[0]-1), "-o", "json", "--addr", c.srvs[f].base+"/kv")
	c.mu.Unlock()
	watch.Env = append(os.Environ(), "LIVEKV_API_KEY=k")
	stdout, err := watch.StdoutPipe()
	require.NoError(t, err)
	watch.Stderr = os.Stderr
	require.NoError(t, watch.Start())
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- watch.Wait()
	}()
	defer func() {
		watch.Process.Kill()
		for range lines {
		}
		<-exited
	}()
	printed := 0
	expect := func(n int) {
		t.Helper()
		for ; printed < n; printed++ {
			select {
			case line, ok := <-lines:
				require.True(t, ok, "watch ended")
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &m), line)
				require.Equal(t, fmt.Sprintf("w:%d", printed), m["key"], "every change, once, in order: %s", line)
				require.Equal(t, revs[printed], m["revision"], line)
			case <-time.After(30 * time.Second):
				t.Fatalf("watch printed no change after %d", printed)
			}
		}
	}
	for i := 1; i <= 5; i++ {
		revs = append(revs, put(fmt.Sprintf("w:%d", i), fmt.Sprint(i)))
	}
	expect(len(revs))

	// The follower alone: no leader, until it ends its subscriptions
	// (after three 200 ms heartbeat timeouts with the LAN profile).
	for i := range 3 {
		if i != f {
			c.pause(i)
		}
	}
	require.Eventually(t, func() bool {
		r := cluster.NewRemote(c.raft[f])
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := r.Status(ctx)
		return err == nil && st.LeaderID == ""
	}, 20*time.Second, 20*time.Millisecond, "the follower alone still has a leader")
	time.Sleep(2 * time.Second)
	for i := range 3 {
		if i != f {
			c.resume(i)
		}
	}
	for i := 6; i <= 10; i++ {
		revs = append(revs, put(fmt.Sprintf("w:%d", i), fmt.Sprint(i)))
	}
	expect(len(revs))
	select {
	case line := <-lines:
		t.Fatalf("a change printed twice or unasked for: %s", line)
	case <-time.After(200 * time.Millisecond):
	}
}
