package adapter_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// leveled is a DB that reads at levels, as a cluster node's handle does:
// it records every ReadAt, and refuses the leader level when notLeader.
type leveled struct {
	*engine.DB
	mu        sync.Mutex
	calls     []readAt
	notLeader bool
}

type readAt struct {
	level  string
	minRev int64
}

var _ adapter.ReadLeveler = (*leveled)(nil)

func (s *leveled) ReadAt(level string, minRev int64) (adapter.Reader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, readAt{level, minRev})
	if level == adapter.LevelLeader && s.notLeader {
		return nil, errors.New("not the leader")
	}
	return s.DB, nil
}

// last returns the last ReadAt and forgets them all.
func (s *leveled) last(t *testing.T) readAt {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.calls, "no ReadAt")
	c := s.calls[len(s.calls)-1]
	s.calls = nil
	return c
}

func newLeveledFixture(t *testing.T) (*fixture, *leveled) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	s := &leveled{DB: db}
	a, err := adapter.New(s, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	f := &fixture{t: t, db: db, a: a}
	f.serve()
	return f, s
}

// TestLevels_WebSocketSession checks what a WebSocket connection asks its
// store for: by default a stale read after the highest revision the
// connection was sent; the level of the dial, or of the request, when
// given; minRevision raising the session's revision.
func TestLevels_WebSocketSession(t *testing.T) {
	f, s := newLeveledFixture(t)
	for range 3 {
		_, err := f.db.Set("other", "x", nil) // revisions this connection was not sent
		require.NoError(t, err)
	}
	c := f.dial("apiKey=" + apiKey)
	m := c.call(map[string]any{"op": 2, "key": "k", "value": "v1"})
	require.EqualValues(t, 200, m["code"], "%v", m)
	rev := int64(m["revision"].(float64))
	require.EqualValues(t, 4, rev)

	m = c.call(map[string]any{"op": 1, "key": "k"})
	require.EqualValues(t, "v1", m["value"], "%v", m)
	require.Equal(t, readAt{adapter.LevelStale, rev}, s.last(t), "a session read waits for the connection's write")

	m = c.call(map[string]any{"op": 1, "key": "k", "consistency": "linearizable"})
	require.EqualValues(t, 200, m["code"], "%v", m)
	require.Equal(t, readAt{adapter.LevelLinearizable, 0}, s.last(t))

	m = c.call(map[string]any{"op": 1, "key": "k", "consistency": "stale", "minRevision": 2})
	require.EqualValues(t, 200, m["code"], "%v", m)
	require.Equal(t, readAt{adapter.LevelStale, 2}, s.last(t), "stale: only the request's minRevision")

	m = c.call(map[string]any{"op": 5, "key": "a", "endKey": "z", "minRevision": 9})
	require.EqualValues(t, 200, m["code"], "%v", m)
	require.Equal(t, readAt{adapter.LevelStale, 9}, s.last(t), "session: the higher of minRevision and the session's")

	// A revision read elsewhere (another key's) raises the session too:
	// the range was read at revision 4.
	_, err := f.db.Set("other", "y", nil) // 5, not sent to c
	require.NoError(t, err)
	m = c.call(map[string]any{"op": 5, "key": "a", "endKey": "z"})
	require.EqualValues(t, 5, m["revision"], "%v", m)
	m = c.call(map[string]any{"op": 1, "key": "k"})
	require.EqualValues(t, 200, m["code"], "%v", m)
	require.Equal(t, readAt{adapter.LevelStale, 5}, s.last(t), "a read's revision raises the session")

	// A notification's revision raises it.
	m = c.call(map[string]any{"op": 100, "patterns": []string{"n:*"}})
	require.EqualValues(t, 200, m["code"], "%v", m)
	_, err = f.db.Set("n:1", "z", nil) // 6
	require.NoError(t, err)
	require.EqualValues(t, 6, c.note()["revision"])
	m = c.call(map[string]any{"op": 1, "key": "k"})
	require.EqualValues(t, 200, m["code"], "%v", m)
	require.Equal(t, readAt{adapter.LevelStale, 6}, s.last(t), "a notification's revision raises the session")

	// The dial's level is the connection's default; its minRevision
	// starts the session.
	c2 := f.dial("apiKey=" + apiKey + "&consistency=leader&minRevision=3")
	m = c2.call(map[string]any{"op": 1, "key": "k", "consistency": "session"})
	require.EqualValues(t, 200, m["code"], "%v", m)
	require.Equal(t, readAt{adapter.LevelStale, 3}, s.last(t))
	m = c2.call(map[string]any{"op": 1, "key": "k"})
	require.EqualValues(t, 200, m["code"], "%v", m)
	require.Equal(t, readAt{adapter.LevelLeader, 0}, s.last(t))

	// A level the store refuses is 503.
	s.notLeader = true
	m = c2.call(map[string]any{"op": 1, "key": "k"})
	require.EqualValues(t, 503, m["code"], "%v", m)
	require.Contains(t, m["error"], "not the leader")
	s.notLeader = false

	// Bad levels and revisions are 400, on the request or at the dial.
	m = c.call(map[string]any{"op": 1, "key": "k", "consistency": "eventual"})
	require.EqualValues(t, 400, m["code"], "%v", m)
	require.Contains(t, m["error"], `unknown consistency "eventual"`)
	m = c.call(map[string]any{"op": 1, "key": "k", "minRevision": -1})
	require.EqualValues(t, 400, m["code"], "%v", m)
	for _, q := range []string{"consistency=strong", "minRevision=x", "minRevision=-2"} {
		_, resp, err := f.dialRaw("apiKey="+apiKey+"&"+q, nil)
		require.Error(t, err, q)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
		_, resp, err = f.dialPath("/dbx/ws", "api_key="+apiKey+"&"+q, nil)
		require.Error(t, err, q)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
	}
}

// restCall sends a REST request and returns its status and revision
// header.
func restCall(t *testing.T, f *fixture, method, path, body string) (int, int64) {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("x-api-key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	var rev int64
	if h := resp.Header.Get(adapter.RevisionHeader); h != "" {
		rev, err = strconv.ParseInt(h, 10, 64)
		require.NoError(t, err)
	}
	return resp.StatusCode, rev
}

// TestLevels_REST checks the query parameters of REST reads and the
// revision header of every reply.
func TestLevels_REST(t *testing.T) {
	f, s := newLeveledFixture(t)
	code, rev := restCall(t, f, "POST", "/record", `{"key":"k","value":"v"}`)
	require.Equal(t, 200, code)
	require.EqualValues(t, 1, rev, "a write's revision")
	code, rev = restCall(t, f, "GET", "/record/k?minRevision=1", "")
	require.Equal(t, 200, code)
	require.EqualValues(t, 1, rev)
	require.Equal(t, readAt{adapter.LevelStale, 1}, s.last(t), "REST's session is its minRevision")
	code, _ = restCall(t, f, "GET", "/records?startKey=a&consistency=linearizable", "")
	require.Equal(t, 200, code)
	require.Equal(t, readAt{adapter.LevelLinearizable, 0}, s.last(t))
	code, rev = restCall(t, f, "GET", "/record/nothing?consistency=leader&minRevision=1", "")
	require.Equal(t, 404, code)
	require.EqualValues(t, 1, rev, "a read that found nothing still tells its revision")
	require.Equal(t, readAt{adapter.LevelLeader, 1}, s.last(t))
	code, rev = restCall(t, f, "POST", "/record/atomic", `{"key":"n","increment":2}`)
	require.Equal(t, 200, code)
	require.EqualValues(t, 2, rev)
	for _, q := range []string{"consistency=STALE", "minRevision=1.5", "minRevision=-1"} {
		code, _ = restCall(t, f, "GET", "/record/k?"+q, "")
		require.Equal(t, 400, code, q)
		code, _ = restCall(t, f, "POST", "/record?"+q, `{"key":"k","value":"w"}`)
		require.Equal(t, 400, code, q)
	}
	code, m := f.rest("GET", "/record/k?consistency=eventual", apiKey, "")
	require.Equal(t, 400, code)
	require.Contains(t, m["error"], "give stale, session, leader or linearizable")
}

// TestLevels_PlainDB serves a plain DB, which has no levels: every level
// is accepted and reads the same.
func TestLevels_PlainDB(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.db.Set("k", "v", nil)
	require.NoError(t, err)
	c := f.dial("apiKey=" + apiKey + "&consistency=linearizable")
	for _, l := range []string{"", "stale", "session", "leader", "linearizable"} {
		m := c.call(map[string]any{"op": 1, "key": "k", "consistency": l, "minRevision": 1})
		require.EqualValues(t, "v", m["value"], "level %q: %v", l, m)
		code, m := f.rest("GET", "/record/k?consistency="+l, apiKey, "")
		require.Equal(t, 200, code, "level %q: %v", l, m)
		require.EqualValues(t, "v", m["value"])
	}
	// A minRevision past the DB's newest is ignored: the DB has every
	// write it acknowledged.
	code, m := f.rest("GET", "/record/k?minRevision=99", apiKey, "")
	require.Equal(t, 200, code, "%v", m)
}

// TestLevels_DBX checks the DBX dialect's consistency at the dial.
func TestLevels_DBX(t *testing.T) {
	f, s := newLeveledFixture(t)
	_, err := f.db.Set("k", "v", nil)
	require.NoError(t, err)
	c := f.dbx("api_key=" + apiKey + "&consistency=linearizable")
	c.ok("string.get", map[string]any{"key": "k"})
	require.Equal(t, readAt{adapter.LevelLinearizable, 0}, s.last(t))

	c2 := f.dbx("api_key=" + apiKey)
	c2.ok("string.set", map[string]any{"key": "k", "value": "w"})
	c2.ok("string.get", map[string]any{"key": "k"})
	require.Equal(t, readAt{adapter.LevelStale, 2}, s.last(t), "DBX sessions read their writes")
}

// TestLevels_DBXRefusalRaisesTheSession: a DBX write refused on the
// state it found (an increment of a value that is not an integer), and a
// batch that changed nothing, reflect the store's state: the connection's
// next session read waits for the revision they saw, as after a write.
func TestLevels_DBXRefusalRaisesTheSession(t *testing.T) {
	f, s := newLeveledFixture(t)
	c := f.dbx("api_key=" + apiKey)
	for range 3 {
		_, err := f.db.Set("text", "not a number", nil) // revisions this connection was not sent
		require.NoError(t, err)
	}
	c.fails("type_mismatch", "string.incr", map[string]any{"key": "text"})
	c.ok("string.get", map[string]any{"key": "text"})
	require.Equal(t, readAt{adapter.LevelStale, 3}, s.last(t), "after a refused increment")

	for range 2 {
		_, err := f.db.Set("text", "still not", nil)
		require.NoError(t, err)
	}
	c.fails("type_mismatch", "batch", map[string]any{"operations": []map[string]any{
		{"method": "string.set", "params": map[string]any{"key": "other", "value": "1"}},
		{"method": "string.incr", "params": map[string]any{"key": "text"}},
	}})
	c.ok("string.get", map[string]any{"key": "text"})
	require.Equal(t, readAt{adapter.LevelStale, 5}, s.last(t), "after a refused batch")

	_, err := f.db.Set("text", "again", nil)
	require.NoError(t, err)
	c.ok("batch", map[string]any{"operations": []map[string]any{
		{"method": "string.delete", "params": map[string]any{"key": "missing"}},
		{"method": "string.setnx", "params": map[string]any{"key": "text", "value": "x"}},
	}})
	c.ok("string.get", map[string]any{"key": "text"})
	require.Equal(t, readAt{adapter.LevelStale, 6}, s.last(t), "after a batch that changed nothing")
}
