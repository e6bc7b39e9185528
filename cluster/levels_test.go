package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/stretchr/testify/require"
)

var _ adapter.ReadLeveler = (*Handle)(nil)

// serveAdapters serves every node of c through an adapter of its own and
// returns their base URLs.
func serveAdapters(t *testing.T, c *dbCluster) []string {
	t.Helper()
	var bases []string
	for i := range c.nodes {
		a, err := adapter.New(c.node(i).With(), &adapter.Options{APIKeys: []string{"k"}})
		require.NoError(t, err)
		srv := httptest.NewServer(a)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, a.Shutdown(ctx))
			srv.Close()
		})
		bases = append(bases, srv.URL)
	}
	return bases
}

// wsClient is an HPKV WebSocket client that waits for each reply.
type wsClient struct {
	t    testing.TB
	ws   *websocket.Conn
	next int64
}

func dialWS(t testing.TB, base, query string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws?apiKey=k&"+query, nil)
	require.NoError(t, err)
	t.Cleanup(func() { ws.CloseNow() })
	return &wsClient{t: t, ws: ws}
}

// call sends req and returns its reply: code, value, revision. A code
// other than 200, 404 and those of an election (see election) fails the
// test.
func (c *wsClient) call(req map[string]any) (code int, value string, rev int64) {
	c.t.Helper()
	c.next++
	req["messageId"] = c.next
	b, err := json.Marshal(req)
	require.NoError(c.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(c.t, c.ws.Write(ctx, websocket.MessageText, b))
	for {
		_, b, err := c.ws.Read(ctx)
		require.NoError(c.t, err)
		var m struct {
			Type      string `json:"type"`
			MessageID int64  `json:"messageId"`
			Code      int    `json:"code"`
			Value     string `json:"value"`
			Revision  int64  `json:"revision"`
			Error     string `json:"error"`
		}
		require.NoError(c.t, json.Unmarshal(b, &m))
		if m.Type == "notification" {
			continue
		}
		require.Equal(c.t, c.next, m.MessageID, "%s", b)
		switch {
		case m.Code == http.StatusOK, m.Code == http.StatusNotFound:
		case election(m.Code):
			// The caller decides whether one may happen.
			c.t.Logf("%v: %s", req, b)
		default:
			c.t.Errorf("%v: %s", req, b)
		}
		return m.Code, m.Value, m.Revision
	}
}

// election reports whether code answers a request met by an election:
// 503 (no leader; not the leader; a write that did not commit) or 504 (a
// write whose outcome the node could not learn in time).
func election(code int) bool {
	return code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// restGet reads key over REST with the query; it returns the status, the
// value and the revision header.
func restGet(t testing.TB, base, key, query string) (int, string, int64) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/record/"+key+"?"+query, nil)
	require.NoError(t, err)
	req.Header.Set("x-api-key", "k")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m struct {
		Value string `json:"value"`
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m), "%s", b)
	rev, _ := strconv.ParseInt(resp.Header.Get(adapter.RevisionHeader), 10, 64)
	return resp.StatusCode, m.Value, rev
}

// restSet sets key over REST and returns the status and the revision
// header (0 unless the status is 200).
func restSet(t testing.TB, base, key, value string) (int, int64) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/record", strings.NewReader(fmt.Sprintf(`{"key":%q,"value":%q}`, key, value)))
	require.NoError(t, err)
	req.Header.Set("x-api-key", "k")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0
	}
	rev, err := strconv.ParseInt(resp.Header.Get(adapter.RevisionHeader), 10, 64)
	require.NoError(t, err)
	return resp.StatusCode, rev
}

// lagFollower slows both directions of the links between the leader l
// and follower f, so that f applies writes late; the returned func (also
// run at cleanup) makes them fast again.
func lagFollower(t *testing.T, c *dbCluster, l, f int, d time.Duration) func() {
	require.NotEqual(t, l, f)
	links := []interface{ SetDelay(time.Duration) }{c.net.Link(l, f), c.net.Link(f, l)}
	for _, lk := range links {
		lk.SetDelay(d)
	}
	undo := func() {
		for _, lk := range links {
			lk.SetDelay(0)
		}
	}
	t.Cleanup(undo)
	return undo
}

// TestLevels_SessionAcrossNodes runs clients with a WebSocket connection
// to each node's adapter, at the default (session) level, one follower
// held behind by slow links. Each client writes and reads a few keys on
// random connections: a read that gives minRevision (the highest revision
// the client has been sent anywhere) sees every write the client made or
// saw; one without it sees all that its connection made or saw. Then
// stale reads on the lagging follower are shown to miss a write at least
// once, where session reads with its revision and linearizable reads do
// not, over WebSocket and REST.
func TestLevels_SessionAcrossNodes(t *testing.T) {
	rng := testRand(t)
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	lag := (l + 1) % 3
	bases := serveAdapters(t, c)
	for i := range c.nodes {
		require.Eventually(t, c.node(i).served.Load, 10*time.Second, time.Millisecond, "node %d never caught up", i)
	}
	unlag := lagFollower(t, c, l, lag, 30*time.Millisecond)

	keys := []string{"a", "b", "c", "d"}
	const clients = 4
	ops := 40 * *rounds
	var wg sync.WaitGroup
	var mu sync.Mutex
	checked := map[string]int{}
	// unavailable counts the answers of an election while the clients
	// run.
	unavailable := func(code int) bool {
		if !election(code) {
			return false
		}
		mu.Lock()
		checked["unavailable"]++
		mu.Unlock()
		return true
	}
	for cl := range clients {
		seed := rng.Uint64()
		conns := make([]*wsClient, len(bases))
		for i, b := range bases {
			conns[i] = dialWS(t, b, "")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(cl)))
			floor := map[string]int64{} // the highest revision of each key the client knows
			connFloor := make([]map[string]int64, len(conns))
			for i := range connFloor {
				connFloor[i] = map[string]int64{}
			}
			var token int64 // the highest revision the client has been sent
			see := func(i int, key string, rev int64) {
				floor[key] = max(floor[key], rev)
				connFloor[i][key] = max(connFloor[i][key], rev)
				token = max(token, rev)
			}
			for k := range ops {
				i := r.IntN(len(conns))
				if r.IntN(3) == 0 {
					i = lag // the lagging follower, more often
				}
				key := keys[r.IntN(len(keys))]
				switch p := r.IntN(10); {
				case p < 4:
					code, _, rev := conns[i].call(map[string]any{"op": 2, "key": key, "value": fmt.Sprintf("%d.%d", cl, k)})
					if unavailable(code) {
						// An election: the write did not commit, or
						// its outcome is unknown; either way the
						// client saw no revision.
						continue
					}
					if code != http.StatusOK || rev == 0 {
						t.Errorf("client %d, node %d: write answered %d at revision %d", cl, i, code, rev)
						return
					}
					see(i, key, rev)
				case p < 7:
					// Read-your-writes and monotonic reads across nodes.
					code, _, rev := conns[i].call(map[string]any{"op": 1, "key": key, "minRevision": token})
					if unavailable(code) {
						continue
					}
					if code == http.StatusNotFound {
						rev = 0
					}
					if rev < floor[key] {
						t.Errorf("client %d, node %d: read %s at revision %d (code %d) after seeing revision %d", cl, i, key, rev, code, floor[key])
						return
					}
					see(i, key, rev)
					mu.Lock()
					checked["across"]++
					mu.Unlock()
				default:
					// The connection's own session.
					code, _, rev := conns[i].call(map[string]any{"op": 1, "key": key})
					if unavailable(code) {
						continue
					}
					if code == http.StatusNotFound {
						rev = 0
					}
					if rev < connFloor[i][key] {
						t.Errorf("client %d, node %d: read %s at revision %d (code %d) after this connection saw revision %d", cl, i, key, rev, code, connFloor[i][key])
						return
					}
					see(i, key, rev)
					mu.Lock()
					checked["connection"]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("reads checked: %v", checked)
	require.NotZero(t, checked["across"])
	require.NotZero(t, checked["connection"])

	// A write, then at once a read on the lagging follower: stale may
	// miss it; session with its revision, and linearizable, may not. An
	// iteration that meets an election (its answer, or a leader that
	// moved) is run again, with a follower of the new leader held behind.
	var writer, stale, session, lin *wsClient
	dial := func() {
		writer = dialWS(t, bases[l], "")
		stale = dialWS(t, bases[lag], "consistency=stale")
		session = dialWS(t, bases[lag], "")
		lin = dialWS(t, bases[lag], "consistency=linearizable")
	}
	dial()
	staleOld, restOld := 0, 0
	probe := func(k int) bool {
		v := fmt.Sprintf("v%d", k)
		code, _, rev := writer.call(map[string]any{"op": 2, "key": "probe", "value": v})
		if election(code) {
			return false
		}
		require.Equal(t, http.StatusOK, code)
		code, _, got := stale.call(map[string]any{"op": 1, "key": "probe"})
		if election(code) {
			return false
		}
		stale1 := got < rev
		code, val, gotRev := session.call(map[string]any{"op": 1, "key": "probe", "minRevision": rev})
		if election(code) {
			return false
		}
		require.Equal(t, v, val, "session read with the write's revision")
		require.Equal(t, rev, gotRev)
		code, val, _ = lin.call(map[string]any{"op": 1, "key": "probe"})
		if election(code) {
			return false
		}
		require.Equal(t, v, val, "linearizable read (the connection's level)")
		code, val, _ = stale.call(map[string]any{"op": 1, "key": "probe", "consistency": "linearizable"})
		if election(code) {
			return false
		}
		require.Equal(t, v, val, "linearizable read (the request's level)")

		v = fmt.Sprintf("r%d", k)
		code, rev = restSet(t, bases[l], "probe", v)
		if election(code) {
			return false
		}
		require.Equal(t, http.StatusOK, code)
		code, val, _ = restGet(t, bases[lag], "probe", "consistency=stale")
		if election(code) {
			return false
		}
		rest1 := val != v
		code, val, seen := restGet(t, bases[lag], "probe", "minRevision="+strconv.FormatInt(rev, 10))
		if election(code) {
			return false
		}
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, v, val, "REST session read with the write's revision")
		require.GreaterOrEqual(t, seen, rev, "the revision header")
		code, val, _ = restGet(t, bases[lag], "probe", "consistency=linearizable")
		if election(code) {
			return false
		}
		require.Equal(t, v, val, "REST linearizable read")
		if stale1 {
			staleOld++
		}
		if rest1 {
			restOld++
		}
		return true
	}
	for k, attempt := 0, 0; k < 10; {
		ok := false
		if c.steady(lag, "Follower", func() { ok = probe(k) }) && ok && c.leader() == l {
			k++
			continue
		}
		// Hold a follower of the current leader behind instead.
		require.Less(t, attempt, 5, "elections kept interrupting the probe")
		attempt++
		unlag()
		l = c.settle()
		lag = (l + 1) % 3
		unlag = lagFollower(t, c, l, lag, 30*time.Millisecond)
		dial()
	}
	t.Logf("stale reads on the lagging follower missed the write just made %d/10 times over WebSocket, %d/10 over REST", staleOld, restOld)
	require.NotZero(t, staleOld, "a stale read on the lagging follower never missed a write: the checks above could not fail")
	require.NotZero(t, restOld, "a stale REST read on the lagging follower never missed a write")

	// The leader level on a follower is refused: 503, naming the leader;
	// asked again if the lagging node did not stay a follower in one
	// term through the request (an election under -race on a busy
	// machine).
	for attempt := 0; ; attempt++ {
		var code int
		if c.steady(lag, "Follower", func() { code, _, _ = restGet(t, bases[lag], "probe", "consistency=leader") }) {
			require.Equal(t, http.StatusServiceUnavailable, code)
			break
		}
		c.awayFrom(lag, attempt)
	}
	code, _, _ := restGet(t, bases[lag], "probe", "consistency=eventual")
	require.Equal(t, http.StatusBadRequest, code)
}
