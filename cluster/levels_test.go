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
	// conflicts lets call return 409 to its caller, which expects it,
	// where it fails the test otherwise.
	conflicts bool
}

func dialWS(t testing.TB, base, query string) *wsClient {
	return &wsClient{t: t, ws: dialPath(t, base, "/ws?apiKey=k&"+query)}
}

// dialPath dials the WebSocket at base's path, closed when the test ends.
func dialPath(t testing.TB, base, path string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// roundTrip sends req as JSON on ws and returns the first message that
// mine takes for its reply.
func roundTrip(t testing.TB, ws *websocket.Conn, req any, mine func([]byte) bool) []byte {
	t.Helper()
	b, err := json.Marshal(req)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, b))
	for {
		_, b, err := ws.Read(ctx)
		require.NoError(t, err)
		if mine(b) {
			return b
		}
	}
}

// call sends req and returns its reply: code, value, revision. A code
// other than 200, 404 and those of an election (see election) fails the
// test.
func (c *wsClient) call(req map[string]any) (code int, value string, rev int64) {
	c.t.Helper()
	c.next++
	req["messageId"] = c.next
	var m struct {
		Type      string `json:"type"`
		MessageID int64  `json:"messageId"`
		Code      int    `json:"code"`
		Value     string `json:"value"`
		Revision  int64  `json:"revision"`
		Error     string `json:"error"`
	}
	b := roundTrip(c.t, c.ws, req, func(b []byte) bool {
		m.Type = ""
		require.NoError(c.t, json.Unmarshal(b, &m))
		return m.Type != "notification"
	})
	require.Equal(c.t, c.next, m.MessageID, "%s", b)
	switch {
	case m.Code == http.StatusOK, m.Code == http.StatusNotFound:
	case m.Code == http.StatusConflict && c.conflicts:
	case election(m.Code):
		// The caller decides whether one may happen.
		c.t.Logf("%v: %s", req, b)
	default:
		c.t.Errorf("%v: %s", req, b)
	}
	return m.Code, m.Value, m.Revision
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
	c.caughtUp()
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

// dbxWS is a DBX WebSocket client that waits for each reply.
type dbxWS struct {
	t    testing.TB
	ws   *websocket.Conn
	next int
}

func dialDBX(t testing.TB, base string) *dbxWS {
	return &dbxWS{t: t, ws: dialPath(t, base, "/dbx/ws?api_key=k")}
}

func (c *dbxWS) call(method string, params map[string]any) map[string]any {
	c.t.Helper()
	c.next++
	id := fmt.Sprint(c.next)
	var m map[string]any
	roundTrip(c.t, c.ws, map[string]any{"id": id, "method": method, "params": params}, func(b []byte) bool {
		m = nil
		require.NoError(c.t, json.Unmarshal(b, &m))
		return m["id"] == id
	})
	return m
}

// TestLevels_WriteRefusalRaisesTheSession: on a follower held behind
// (only the leader's link to it is slow, so its forwarded writes are
// answered at once), a write the leader refuses on what it holds (a
// delete of a key another client just deleted: 404; a compare-and-swap
// on a revision another client just replaced: 409) reflects the leader's
// state. The reply raises the connection's session (REST: gives the
// revision header), so that the next session read on the same
// connection does not read the follower's older state: the key gone, or
// changed, is not back. Before, a refusal carried no revision.
func TestLevels_WriteRefusalRaisesTheSession(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	bases := serveAdapters(t, c)
	c.caughtUp()
	ld := c.node(l)
	synced := func() {
		rev := ld.Revision()
		require.Eventually(t, func() bool { return c.node(f).Revision() >= rev }, 10*time.Second, time.Millisecond)
	}
	slow := c.net.Link(l, f) // what the leader sends f: entries, heartbeats
	t.Cleanup(func() { slow.SetDelay(0) })
	for k := range 3 {
		// HPKV: a delete of a key another client just deleted.
		key := fmt.Sprintf("k%d", k)
		_, err := ld.Set(key, "old", nil)
		require.NoError(t, err)
		synced()
		ws := dialWS(t, bases[f], "") // session level, the default
		ws.conflicts = true
		slow.SetDelay(80 * time.Millisecond)
		_, err = ld.Delete(key) // another client's, acknowledged
		require.NoError(t, err)
		code, _, _ := ws.call(map[string]any{"op": 4, "key": key})
		require.Equal(t, http.StatusNotFound, code, "the leader has applied the delete")
		code, v, rev := ws.call(map[string]any{"op": 1, "key": key})
		require.Equal(t, http.StatusNotFound, code, "HPKV: a delete answered 404 (gone), then a session read on the same connection found %q at revision %d", v, rev)
		slow.SetDelay(0)
		synced()

		// HPKV: a compare-and-swap on a revision another client replaced.
		it, err := ld.Set(key, "old", nil)
		require.NoError(t, err)
		synced()
		slow.SetDelay(80 * time.Millisecond)
		_, err = ld.Set(key, "theirs", nil)
		require.NoError(t, err)
		code, _, _ = ws.call(map[string]any{"op": 102, "key": key, "value": "mine", "revision": it.Revision})
		require.Equal(t, http.StatusConflict, code)
		code, v, _ = ws.call(map[string]any{"op": 1, "key": key})
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "theirs", v, "HPKV: a compare-and-swap answered 409, then a session read on the same connection found the value it replaced")
		slow.SetDelay(0)
		synced()

		// DBX: setnx of a key another client just created, then delete
		// of a key another client just deleted.
		dk := "d" + key
		dx := dialDBX(t, bases[f])
		slow.SetDelay(80 * time.Millisecond)
		_, err = ld.Set(dk, "theirs", nil)
		require.NoError(t, err)
		m := dx.call("string.setnx", map[string]any{"key": dk, "value": "mine"})
		require.Equal(t, false, m["result"].(map[string]any)["created"], "%v", m)
		m = dx.call("string.exists", map[string]any{"key": dk})
		require.Equal(t, true, m["result"].(map[string]any)["exists"], "DBX: setnx answered created false, then exists on the same connection: %v", m)
		slow.SetDelay(0)
		synced()
		slow.SetDelay(80 * time.Millisecond)
		_, err = ld.Delete(dk)
		require.NoError(t, err)
		m = dx.call("string.delete", map[string]any{"key": dk})
		require.Equal(t, false, m["result"].(map[string]any)["deleted"], "%v", m)
		m = dx.call("string.exists", map[string]any{"key": dk})
		require.Equal(t, false, m["result"].(map[string]any)["exists"], "DBX: delete answered deleted false, then exists on the same connection: %v", m)
		slow.SetDelay(0)
		synced()

		// REST: a DELETE answered 404 gives the revision header; a GET
		// with it as minRevision does not find the key.
		rk := "r" + key
		_, err = ld.Set(rk, "old", nil)
		require.NoError(t, err)
		synced()
		slow.SetDelay(80 * time.Millisecond)
		_, err = ld.Delete(rk)
		require.NoError(t, err)
		req, err := http.NewRequest("DELETE", bases[f]+"/record/"+rk, nil)
		require.NoError(t, err)
		req.Header.Set("x-api-key", "k")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		hdr := resp.Header.Get("X-Livekv-Revision")
		require.NotEmpty(t, hdr, "a refused DELETE gives the revision it reflects")
		code, v, _ = restGet(t, bases[f], rk, "minRevision="+hdr)
		require.Equal(t, http.StatusNotFound, code, "REST: DELETE answered 404 with revision %s, then GET with it found %q", hdr, v)
		slow.SetDelay(0)
		synced()
	}
}

// TestLevels_LeaderReadOnALeaderNotReady: a node that has just won
// leadership serves nothing until its barrier is applied (here its FSM
// is held). A Leader read there must not be refused with a
// *NotLeaderError naming the node itself, which a client would follow
// back to the same node: it waits for the barrier and reads.
func TestLevels_LeaderReadOnALeaderNotReady(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.settle()
	tg := (l + 1) % 3
	release := make(chan struct{})
	hold := func(i int) {
		if i == tg {
			<-release
		}
	}
	c.applyHold.Store(&hold)
	released := sync.OnceFunc(func() {
		c.applyHold.Store(nil)
		close(release)
	})
	defer released()
	written := make(chan error, 1)
	go func() {
		_, err := c.nodes[l].Set("k", "v", nil)
		written <- err
	}()
	require.NoError(t, <-written) // committed; the target has not applied it
	require.NoError(t, c.nodes[l].TransferLeadership(context.Background(), c.nodes[tg].ID()))
	require.Eventually(t, c.nodes[tg].IsLeader, 5*time.Second, time.Millisecond)
	require.False(t, c.nodes[tg].isReady())

	type outcome struct {
		it  string
		err error
	}
	got := make(chan outcome, 1)
	go func() {
		it, err := c.nodes[tg].Get("k", Leader)
		got <- outcome{it.Value, err}
	}()
	time.Sleep(100 * time.Millisecond)
	released()
	o := <-got
	t.Logf("read %q: %v", o.it, o.err)
	if nl, ok := o.err.(*NotLeaderError); ok {
		require.NotEqual(t, c.nodes[tg].ID(), nl.ID, "a leader read refused, naming the node itself")
	}
	if c.nodes[tg].IsLeader() {
		require.NoError(t, o.err)
		require.Equal(t, "v", o.it)
	}
}
