package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/internal/wire"
	"github.com/stretchr/testify/require"
)

// nodeAdapters serves each node of a cluster through an adapter of its
// own, at a URL that stays the same across the node's restarts: down
// stops node i as a crash would (its connections drop, dials are refused)
// and up starts it again behind a new adapter.
type nodeAdapters struct {
	c     *dbCluster
	bases []string
	mu    sync.Mutex
	as    []*adapter.Adapter // guarded by mu; nil while the node is down
}

func serveRestartable(t *testing.T, c *dbCluster) *nodeAdapters {
	t.Helper()
	na := &nodeAdapters{c: c, as: make([]*adapter.Adapter, len(c.nodes))}
	var srvs []*httptest.Server
	for i := range c.nodes {
		na.as[i] = na.newAdapter(i)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			na.mu.Lock()
			a := na.as[i]
			na.mu.Unlock()
			if a == nil {
				http.Error(w, "node down", http.StatusServiceUnavailable)
				return
			}
			a.ServeHTTP(w, r)
		}))
		srvs = append(srvs, srv)
		na.bases = append(na.bases, srv.URL)
	}
	t.Cleanup(func() {
		for i := range na.as {
			na.shutdown(i)
		}
		for _, srv := range srvs {
			srv.Close()
		}
	})
	return na
}

func (na *nodeAdapters) newAdapter(i int) *adapter.Adapter {
	a, err := adapter.New(na.c.node(i).With(), &adapter.Options{APIKeys: []string{"k"}})
	require.NoError(na.c.t, err)
	return a
}

// shutdown takes node i's adapter out of service and closes its
// connections.
func (na *nodeAdapters) shutdown(i int) {
	na.mu.Lock()
	a := na.as[i]
	na.as[i] = nil
	na.mu.Unlock()
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(na.c.t, a.Shutdown(ctx))
}

// down stops node i: the node first, so that what waits on it ends.
func (na *nodeAdapters) down(i int) {
	na.mu.Lock()
	a := na.as[i]
	na.as[i] = nil
	na.mu.Unlock()
	na.c.kill(i)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(na.c.t, a.Shutdown(ctx))
}

// up starts node i again from its directory, behind a new adapter.
func (na *nodeAdapters) up(i int) {
	na.c.restart(i)
	a := na.newAdapter(i)
	na.mu.Lock()
	na.as[i] = a
	na.mu.Unlock()
}

// sessionClient is one client of the session fault loop: it writes and
// reads a few shared keys over one WebSocket connection at a time, moving
// to a random node now and then and whenever its connection drops. Dialed
// with minRevision (carry), it takes its session along: every read must
// then see at least the newest revision of the key it wrote or read, and
// a range at least the highest revision it has been sent. Without it, at
// the stale level, it counts the reads that went back instead.
type sessionClient struct {
	t     *testing.T
	na    *nodeAdapters
	r     *rand.Rand
	query string // the dial's own parameters
	carry bool   // dial with minRevision: the client's session

	ws    *websocket.Conn
	node  int
	next  int64
	token int64            // the highest revision the client has been sent
	floor map[string]int64 // the newest revision of each key it knows

	reads, failed, moved, dropped, back int
}

// sessionReply is what the client reads of a reply.
type sessionReply struct {
	MessageID int64  `json:"messageId"`
	Code      int    `json:"code"`
	Error     string `json:"error"`
	Revision  int64  `json:"revision"`
	Records   []struct {
		Key      string `json:"key"`
		Revision int64  `json:"revision"`
	} `json:"records"`
}

// connect dials a random running node, with the session if carry.
func (sc *sessionClient) connect(stop <-chan struct{}) bool {
	if sc.ws != nil {
		sc.ws.CloseNow()
		sc.ws = nil
	}
	for {
		for _, i := range sc.r.Perm(len(sc.na.bases)) {
			q := "apiKey=k"
			if sc.query != "" {
				q += "&" + sc.query
			}
			if sc.carry {
				q += fmt.Sprintf("&minRevision=%d", sc.token)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ws, _, err := websocket.Dial(ctx, strings.Replace(sc.na.bases[i], "http", "ws", 1)+"/ws?"+q, nil)
			cancel()
			if err == nil {
				sc.ws, sc.node = ws, i
				return true
			}
		}
		select {
		case <-stop:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// call sends req and returns its reply; an error means the connection
// dropped, and the client has let it go.
func (sc *sessionClient) call(req map[string]any) (sessionReply, error) {
	sc.next++
	req["messageId"] = sc.next
	b, err := json.Marshal(req)
	if err != nil {
		panic(err) // a map of numbers and strings
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = sc.ws.Write(ctx, websocket.MessageText, b)
	for err == nil {
		var m sessionReply
		if _, b, err = sc.ws.Read(ctx); err == nil {
			if err = json.Unmarshal(b, &m); err != nil {
				sc.t.Errorf("node %d sent %q: %v", sc.node, b, err)
			} else if m.MessageID == sc.next {
				return m, nil
			}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		sc.t.Errorf("node %d sent no reply in 15 s to %v", sc.node, req)
	}
	sc.ws.CloseNow()
	sc.ws = nil
	sc.dropped++
	return sessionReply{}, err
}

// check notes a read of key at rev (0: not found): it is a step back if
// rev is below what the client knows of key.
func (sc *sessionClient) check(what, key string, rev int64) {
	if rev < sc.floor[key] {
		sc.back++
		if sc.carry {
			sc.t.Errorf("%s on node %d: %s at revision %d after the client saw revision %d", what, sc.node, key, rev, sc.floor[key])
		}
	}
	sc.see(key, rev)
}

func (sc *sessionClient) see(key string, rev int64) {
	sc.floor[key] = max(sc.floor[key], rev)
	sc.token = max(sc.token, rev)
}

// run writes and reads until stop closes.
func (sc *sessionClient) run(id int, keys []string, stop <-chan struct{}) {
	for k := 0; ; k++ {
		select {
		case <-stop:
			if sc.ws != nil {
				sc.ws.CloseNow()
			}
			return
		default:
		}
		if sc.ws == nil || sc.r.IntN(4) == 0 {
			if sc.ws != nil {
				sc.moved++
			}
			if !sc.connect(stop) {
				return
			}
		}
		key := keys[sc.r.IntN(len(keys))]
		switch p := sc.r.IntN(10); {
		case p < 4:
			m, err := sc.call(map[string]any{"op": wire.OpSet, "key": key, "value": fmt.Sprintf("%d.%d", id, k)})
			if err == nil && m.Code == http.StatusOK {
				sc.see(key, m.Revision)
			} // any other outcome leaves the client knowing nothing new
		case p < 8:
			m, err := sc.call(map[string]any{"op": wire.OpGet, "key": key})
			if err != nil || !sc.readOK(m) {
				continue
			}
			if m.Code == http.StatusNotFound {
				m.Revision = 0 // no key is older than any write of it
			}
			sc.check("get", key, m.Revision)
		default:
			m, err := sc.call(map[string]any{"op": wire.OpRange, "key": "s/", "endKey": "s/\xff"})
			if err != nil || !sc.readOK(m) {
				continue
			}
			got := map[string]int64{}
			for _, r := range m.Records {
				got[r.Key] = r.Revision
			}
			for _, key := range keys {
				sc.check("range", key, got[key])
			}
			if m.Revision < sc.token {
				sc.back++
				if sc.carry {
					sc.t.Errorf("range on node %d read at revision %d after the client saw revision %d", sc.node, m.Revision, sc.token)
				}
			}
			sc.token = max(sc.token, m.Revision)
		}
	}
}

// readOK counts a read's reply and reports whether it read anything: a
// read the node cannot serve at its level fails with 503, any other
// failure is an error.
func (sc *sessionClient) readOK(m sessionReply) bool {
	switch m.Code {
	case http.StatusOK, http.StatusNotFound:
		sc.reads++
		return true
	case http.StatusServiceUnavailable:
		sc.failed++
		return false
	}
	sc.t.Errorf("read on node %d failed with %d %s", sc.node, m.Code, m.Error)
	return false
}

// TestFault_SessionReadsAcrossFaults runs clients that write and read a
// few shared keys through the adapters of every node, moving from node to
// node with their session (minRevision at each dial) and at the default
// level, while the leader is killed and restarted, the leader is cut off
// into a minority, and a random node restarts, each once a round. Every
// read sees at least the newest revision of its key the client wrote or
// read, and every range at least the highest revision the client was
// sent; a read may fail (503, or its connection drops), never go back.
// Clients at the stale level without minRevision, in the same loop, are
// shown to go back at least once. Background writers through random nodes
// are then checked as in the other fault loops.
func TestFault_SessionReadsAcrossFaults(t *testing.T) {
	rng := testRand(t)
	c := newDBCluster(t, 3, nil)
	na := serveRestartable(t, c)
	c.caughtUp()
	keys := []string{"s/a", "s/b", "s/c"}
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(2, w, c.anyNode, stop)

	var clients sync.WaitGroup
	var scs []*sessionClient
	for id := range 6 {
		sc := &sessionClient{t: t, na: na, r: rand.New(rand.NewPCG(rng.Uint64(), uint64(id))), floor: map[string]int64{}, carry: true}
		if id >= 4 {
			sc.query, sc.carry = "consistency=stale", false
		}
		scs = append(scs, sc)
		clients.Add(1)
		go func() {
			defer clients.Done()
			sc.run(id, keys, stop)
		}()
	}
	pause := func() { time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond) }
	faults := 0
	for range *rounds {
		pause()
		l := c.leader()
		t.Logf("kill the leader n%d", l)
		na.down(l)
		c.leader()
		pause()
		na.up(l)
		faults++

		pause()
		l = c.leader()
		t.Logf("cut the leader n%d off", l)
		c.net.Isolate(l)
		c.leader(l)
		pause()
		c.net.Isolate(l) // cut again whatever was dialed meanwhile
		c.net.Heal()
		faults++

		pause()
		i := rng.IntN(len(c.nodes))
		t.Logf("restart n%d (leader: %v)", i, c.node(i).IsLeader())
		na.down(i)
		pause()
		na.up(i)
		faults++
	}
	pause()
	close(stop)
	clients.Wait()
	wg.Wait()
	w.settle(t, c)

	var session, stale sessionClient
	for _, sc := range scs {
		sum := &session
		if !sc.carry {
			sum = &stale
		}
		sum.reads += sc.reads
		sum.failed += sc.failed
		sum.moved += sc.moved
		sum.dropped += sc.dropped
		sum.back += sc.back
	}
	t.Logf("%d faults; session clients: %d reads checked, %d refused (503), %d moves, %d dropped connections; stale clients: %d reads, %d went back",
		faults, session.reads, session.failed, session.moved, session.dropped, stale.reads, stale.back)
	require.NotZero(t, session.reads)
	require.NotZero(t, session.moved)
	require.NotZero(t, stale.back, "no stale read went back: the session checks above could not fail")
}
