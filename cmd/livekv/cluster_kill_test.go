//go:build unix

package main_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/cluster"
	"github.com/stretchr/testify/require"
)

var (
	killRounds = flag.Int("cluster.rounds", 2, "leader kills in TestServe_ClusterLeaderSIGKILL")
	killSeed   = flag.Uint64("cluster.seed", 0, "seed of TestServe_ClusterLeaderSIGKILL; 0 picks one")
)

// serveCluster is three livekv serve processes run as one cluster.
type serveCluster struct {
	t    *testing.T
	bin  string
	dir  string
	raft []string
	args [][]string

	mu   sync.Mutex
	srvs []*server // nil while a node is down
}

func newServeCluster(t *testing.T, n int) *serveCluster {
	c := &serveCluster{t: t, bin: build(t), dir: t.TempDir()}
	var peers []string
	for i := range n {
		c.raft = append(c.raft, freeAddr(t))
		peers = append(peers, fmt.Sprintf("n%d=%s", i, c.raft[i]))
	}
	for i := range n {
		// Both raft log stores, raft-wal on most nodes.
		c.args = append(c.args, []string{"serve", "--data", filepath.Join(c.dir, fmt.Sprint(i)), "--addr", "127.0.0.1:0",
			"--api-key", "k", "--node", fmt.Sprintf("n%d", i), "--raft", c.raft[i], "--peers", strings.Join(peers, ","),
			"--raft-profile", "lan", "--raft-log", []string{"wal", "bolt"}[i%2], "--lease-reads"})
		c.srvs = append(c.srvs, nil)
		c.start(i)
	}
	return c
}

// start runs node i on its folder.
func (c *serveCluster) start(i int) {
	s := runServe(c.t, c.bin, c.args[i]...)
	c.mu.Lock()
	c.srvs[i] = s
	c.mu.Unlock()
}

// kill ends node i's process with SIGKILL: no shutdown code runs.
func (c *serveCluster) kill(i int) {
	c.mu.Lock()
	s := c.srvs[i]
	c.srvs[i] = nil
	c.mu.Unlock()
	require.NoError(c.t, s.cmd.Process.Signal(syscall.SIGKILL))
	err := s.cmd.Wait()
	require.ErrorContains(c.t, err, "killed")
}

// pause stops node i's process with SIGSTOP, until resume: it answers
// nothing, and the others elect a leader without it.
func (c *serveCluster) pause(i int) {
	c.mu.Lock()
	s := c.srvs[i]
	c.mu.Unlock()
	require.NoError(c.t, s.cmd.Process.Signal(syscall.SIGSTOP))
	c.t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
}

// resume continues node i's process after pause.
func (c *serveCluster) resume(i int) {
	c.mu.Lock()
	s := c.srvs[i]
	c.mu.Unlock()
	require.NoError(c.t, s.cmd.Process.Signal(syscall.SIGCONT))
}

// leaderBesides waits until a running node other than not says it leads,
// and returns it.
func (c *serveCluster) leaderBesides(not int) int {
	c.t.Helper()
	l := -1
	require.Eventually(c.t, func() bool {
		l = c.leader()
		return l != not
	}, 20*time.Second, 20*time.Millisecond, "no other leader than n%d", not)
	return l
}

// base returns the API base URL of a random running node, "" if none.
func (c *serveCluster) base(rng func(int) int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.srvs[rng(len(c.srvs))]; s != nil {
		return s.base
	}
	return ""
}

// leader waits until a running node says it leads, and returns it.
func (c *serveCluster) leader() int {
	c.t.Helper()
	l := -1
	require.Eventually(c.t, func() bool {
		for i, addr := range c.raft {
			c.mu.Lock()
			up := c.srvs[i] != nil
			c.mu.Unlock()
			if !up {
				continue
			}
			r := cluster.NewRemote(addr)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := r.Status(ctx)
			cancel()
			r.Close()
			if err == nil && st.State == "Leader" {
				l = i
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "no leader")
	return l
}

// acks records the outcome of writes of fresh keys, each key's value the
// key: acknowledged, refused with a code that says nothing was done, or
// unknown (uncertain, a connection lost, an error without a code).
type acks struct {
	mu      sync.Mutex
	keys    []string       // acknowledged
	refused []string       // not_committed, no_leader, not_leader, node_closed
	codes   map[string]int // refused and uncertain writes by code
	unknown int            // failed without a code
}

// add records the write of key: acknowledged, or not with the error code
// of its reply ("" for none, or no reply).
func (a *acks) add(key string, ok bool, code string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.codes == nil {
		a.codes = map[string]int{}
	}
	switch {
	case ok:
		a.keys = append(a.keys, key)
	case code == "not_committed", code == "no_leader", code == "not_leader", code == "node_closed":
		a.refused = append(a.refused, key)
		a.codes[code]++
	case code != "":
		a.codes[code]++
	default:
		a.unknown++
	}
}

// restWriter sets fresh keys through the REST API of random nodes.
func restWriter(ctx context.Context, g int, c *serveCluster, a *acks) {
	for seq := 0; ctx.Err() == nil; seq++ {
		base := c.base(rand.IntN)
		if base == "" {
			time.Sleep(time.Millisecond)
			continue
		}
		key := fmt.Sprintf("rest:%d:%d", g, seq)
		body := fmt.Sprintf(`{"key":%q,"value":%q}`, key, key)
		req, err := http.NewRequestWithContext(ctx, "POST", base+"/kv/record", strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		req.Header.Set("x-api-key", "k")
		resp, err := restClient.Do(req)
		ok, code := false, ""
		if err == nil {
			var rep struct {
				ErrorCode string `json:"errorCode"`
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
			if err == nil && !ok && json.Unmarshal(b, &rep) == nil {
				code = rep.ErrorCode
			}
		}
		a.add(key, ok, code)
		if !ok {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// wsWriter sets fresh keys over a WebSocket to a random node, and
// reconnects to another when it breaks.
func wsWriter(ctx context.Context, g int, c *serveCluster, a *acks) {
	for seq := 0; ctx.Err() == nil; {
		base := c.base(rand.IntN)
		if base == "" {
			time.Sleep(time.Millisecond)
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ws, _, err := websocket.Dial(dctx, strings.Replace(base, "http://", "ws://", 1)+"/kv/ws?apiKey=k", nil)
		cancel()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		for ctx.Err() == nil {
			key := fmt.Sprintf("ws:%d:%d", g, seq)
			b, _ := json.Marshal(map[string]any{"op": 2, "key": key, "value": key, "messageId": seq})
			wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := ws.Write(wctx, websocket.MessageText, b)
			var rep struct {
				Code      int
				MessageID int
				ErrorCode string
			}
			if err == nil {
				_, b, err = ws.Read(wctx)
				if err == nil {
					err = json.Unmarshal(b, &rep)
				}
			}
			cancel()
			seq++ // a fresh key for every write, after a lost connection too
			if err != nil || rep.MessageID != seq-1 {
				a.add(key, false, "")
				break
			}
			a.add(key, rep.Code == http.StatusOK, rep.ErrorCode)
		}
		if ctx.Err() != nil {
			ws.Close(websocket.StatusNormalClosure, "")
		}
		ws.CloseNow()
	}
}

// TestServe_ClusterLeaderSIGKILL runs three livekv serve processes as
// one cluster (n0 and n2 keep their raft log in raft-wal, n1 in BoltDB)
// while clients write through the REST and WebSocket APIs
// of random nodes; each even round the leader's process is killed with
// SIGKILL and started again on its folder, each odd round it is stopped
// (SIGSTOP) until another node leads, then continued (SIGCONT): the
// writes it then takes up as a deposed leader are refused as
// not_committed, or uncertain. The nodes run with --lease-reads: before
// it is stopped the leader takes a lease with a linearizable read, and a
// linearizable read it gets while stopped, of a write the new leader
// acknowledged meanwhile, must see that write once it runs again (its
// lease ran out while it was stopped). At the end every acknowledged write is
// readable, with its value, on every node, and no write refused with a
// code that says nothing was done (not_committed, no_leader, ...) is
// found on any node; an uncertain write may be either.
func TestServe_ClusterLeaderSIGKILL(t *testing.T) {
	s := *killSeed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -cluster.seed=%d)", s, s)
	rng := rand.New(rand.NewPCG(s, s))
	c := newServeCluster(t, 3)
	c.leader()

	a := &acks{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g%2 == 0 {
				restWriter(ctx, g, c, a)
			} else {
				wsWriter(ctx, g, c, a)
			}
		}()
	}
	for r := range *killRounds {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		l := c.leader()
		if r%2 == 1 {
			// A linearizable read takes the leader a lease just before
			// it stops.
			_, _, err := readAt(c.srvs[l].base, "paused:lease", "linearizable")
			require.NoError(t, err)
			c.pause(l)
			nl := c.leaderBesides(l)
			t.Logf("stopped the leader n%d; n%d leads", l, nl)
			// A write the new leader acknowledges while the old one is
			// stopped, and a linearizable read of it sent to the old one,
			// which it answers once it runs again: its lease, taken
			// before it stopped, has run out by its own clock.
			key := fmt.Sprintf("paused:%d", r)
			status, _, err := writeAt(c.srvs[nl].base, key, key)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status, "the new leader n%d refused a write", nl)
			type read struct {
				status int
				value  string
				err    error
			}
			got := make(chan read, 1)
			go func() {
				status, v, err := readAt(c.srvs[l].base, key, "linearizable")
				got <- read{status, v, err}
			}()
			time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
			c.resume(l)
			rd := <-got
			// The read must be answered (a node waits up to its write
			// timeout for a leader), and see the write: an error here
			// would let the check below pass without looking.
			require.NoError(t, rd.err, "the continued n%d answered no linearizable read", l)
			require.Equal(t, key, rd.value, "the stopped leader n%d, continued, served a linearizable read (status %d) that missed a write n%d acknowledged", l, rd.status, nl)
			continue
		}
		c.kill(l)
		nl := c.leader()
		t.Logf("killed the leader n%d; n%d leads", l, nl)
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		c.start(l)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	c.leader()

	a.mu.Lock()
	keys, refused := a.keys, a.refused
	t.Logf("acknowledged %d writes; refused or uncertain, by code: %v; %d failed without a code", len(keys), a.codes, a.unknown)
	a.mu.Unlock()
	require.NotEmpty(t, keys)
	for i, srv := range c.srvs {
		var cwg sync.WaitGroup
		var mu sync.Mutex
		var missing []string
		for part := range 4 {
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				for k := part; k < len(keys); k += 4 {
					if v, err := readValue(srv.base, keys[k]); err != nil || v != keys[k] {
						mu.Lock()
						missing = append(missing, fmt.Sprintf("%s (%q, %v)", keys[k], v, err))
						mu.Unlock()
					}
				}
			}()
		}
		cwg.Wait()
		require.Empty(t, missing, "n%d lacks acknowledged writes", i)
		// Linearizable: a refused write that had committed would be seen.
		for _, k := range refused {
			status, v, err := readAt(srv.base, k, "linearizable")
			require.NoError(t, err, "n%d: %s", i, k)
			require.Equal(t, http.StatusNotFound, status, "n%d holds %s (%q), refused with a code that says nothing was done", i, k, v)
		}
	}
	for _, srv := range c.srvs {
		srv.stop(t)
	}
	restClient.CloseIdleConnections()
}

// readValue reads key through the REST API at base, at the server's
// default level; a key that is not there is an error.
func readValue(base, key string) (string, error) {
	status, v, err := readAt(base, key, "")
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%d: not found", status)
	}
	return v, err
}
