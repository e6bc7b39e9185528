package adapter_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/leaktest"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

const apiKey = "test-api-key"

// fixture is a DB served by an adapter mounted at /kv/ of a test server.
type fixture struct {
	t    testing.TB
	db   *engine.DB
	a    *adapter.Adapter
	srv  *httptest.Server
	base string // http://127.0.0.1:port/kv
}

func newFixture(t testing.TB, o *adapter.Options) *fixture {
	t.Helper()
	return newFixtureDB(t, &engine.Options{SweepInterval: -1}, o)
}

// newFixtureDB is newFixture over a DB opened with eo.
func newFixtureDB(t testing.TB, eo *engine.Options, o *adapter.Options) *fixture {
	t.Helper()
	db, err := engine.Open("", eo)
	require.NoError(t, err)
	opts := adapter.Options{}
	if o != nil {
		opts = *o
	}
	if opts.APIKeys == nil {
		opts.APIKeys = []string{apiKey}
	}
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	a, err := adapter.New(db, &opts)
	require.NoError(t, err)
	f := &fixture{t: t, db: db, a: a}
	f.serve()
	return f
}

// serve mounts the adapter at /kv/ of a test server; cleanup shuts both
// down.
func (f *fixture) serve() {
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", f.a))
	f.srv = httptest.NewServer(mux)
	f.base = f.srv.URL + "/kv"
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(f.t, f.a.Shutdown(ctx))
		f.srv.Close()
	})
}

// client is a WebSocket client that matches replies to requests.
type client struct {
	t     testing.TB
	ws    *websocket.Conn
	next  int64
	notes []map[string]any // notifications read while waiting for replies
}

// dial connects to /ws with the query (apiKey=... or token=...).
func (f *fixture) dial(query string) *client {
	f.t.Helper()
	ws, resp, err := f.dialRaw(query, nil)
	require.NoError(f.t, err, "status %v", resp)
	ws.SetReadLimit(64 << 20)
	c := &client{t: f.t, ws: ws}
	f.t.Cleanup(func() { ws.CloseNow() })
	return c
}

func (f *fixture) dialRaw(query string, h http.Header) (*websocket.Conn, *http.Response, error) {
	return f.dialPath("/ws", query, h)
}

// dialPath opens a WebSocket at path under the mount, with the query.
func (f *fixture) dialPath(path, query string, h http.Header) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return websocket.Dial(ctx, strings.Replace(f.base, "http", "ws", 1)+path+"?"+query, &websocket.DialOptions{HTTPHeader: h})
}

func (c *client) write(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	c.writeRaw(b)
}

func (c *client) writeRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(c.t, c.ws.Write(ctx, websocket.MessageText, b))
}

// read reads the next message.
func (c *client) read() map[string]any {
	c.t.Helper()
	m, err := c.tryRead(5 * time.Second)
	require.NoError(c.t, err)
	return m
}

func (c *client) tryRead(d time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	require.NoError(c.t, json.Unmarshal(b, &m), "%s", b)
	return m, nil
}

// call sends a request with the next messageId and returns its reply,
// keeping the notifications that arrive meanwhile.
func (c *client) call(req map[string]any) map[string]any {
	c.t.Helper()
	c.next++
	id := c.next
	req["messageId"] = id
	c.write(req)
	for {
		m := c.read()
		if m["type"] == "notification" {
			c.notes = append(c.notes, m)
			continue
		}
		require.EqualValues(c.t, id, m["messageId"], "reply %v", m)
		return m
	}
}

// note returns the next notification.
func (c *client) note() map[string]any {
	c.t.Helper()
	if len(c.notes) > 0 {
		n := c.notes[0]
		c.notes = c.notes[1:]
		return n
	}
	m := c.read()
	require.Equal(c.t, "notification", m["type"], "%v", m)
	return m
}

// closeStatus reads until the connection ends and returns its close status.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for {
		_, err := c.tryRead(10 * time.Second)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// post sends a REST request and decodes the JSON reply.
func (f *fixture) rest(method, path, key string, body string) (int, map[string]any) {
	f.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+path, r)
	require.NoError(f.t, err)
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	var m map[string]any
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	require.NoError(f.t, json.Unmarshal(b, &m), "%s", b)
	return resp.StatusCode, m
}

// token asks for a token.
func (f *fixture) token(cfg string) string {
	f.t.Helper()
	code, m := f.rest("POST", "/token/websocket", apiKey, cfg)
	require.Equal(f.t, http.StatusOK, code, "%v", m)
	return m["token"].(string)
}

// holdWriter holds db's writer lock, so that every write waits, until the
// function it returns is called.
func holdWriter(t *testing.T, db *engine.DB) (release func()) {
	t.Helper()
	locked, unlock := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := db.Update(func(*engine.Tx) error {
			close(locked)
			<-unlock
			return nil
		})
		done <- err
	}()
	<-locked
	return func() {
		close(unlock)
		require.NoError(t, <-done)
	}
}

// dialSlow connects to /ws with the query, as a client that reads and
// writes at most rate bytes a second (dialSlowPath).
func (f *fixture) dialSlow(query string, rate int) *client {
	f.t.Helper()
	return f.dialSlowPath("/ws", query, rate)
}

// dialSlowPath connects to path under the mount with the query, as a
// client that reads and writes at most rate bytes a second. It connects
// through a server of its own,
// serving the same adapter, whose sockets hold little: 64 KiB on either
// side (not less: under loopback's segment size, TCP holds back its
// window updates). A large reply takes the client long to read, and the
// server can write little ahead of it; a large message takes the client
// long to send.
func (f *fixture) dialSlowPath(path, query string, rate int) *client {
	f.t.Helper()
	const buffer = 64 << 10
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", f.a))
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = &smallBufferListener{Listener: srv.Listener, size: buffer}
	srv.Start()
	f.t.Cleanup(srv.Close)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := nc.(*net.TCPConn).SetReadBuffer(buffer); err != nil {
			nc.Close()
			return nil, err
		}
		return &slowConn{Conn: nc, rate: rate}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/kv"+path+"?"+query,
		&websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dial}}})
	require.NoError(f.t, err, "status %v", resp)
	ws.SetReadLimit(64 << 20)
	f.t.Cleanup(func() { ws.CloseNow() })
	return &client{t: f.t, ws: ws}
}

// smallBufferListener gives the connections it accepts a send buffer of
// size bytes.
type smallBufferListener struct {
	net.Listener
	size int
}

func (l *smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := c.(*net.TCPConn).SetWriteBuffer(l.size); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// slowConn reads and writes at most rate bytes a second, in pieces of
// 4 KiB at most.
type slowConn struct {
	net.Conn
	rate int
}

const slowPiece = 4 << 10

func (c *slowConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p[:min(len(p), slowPiece)])
	c.pause(n)
	return n, err
}

func (c *slowConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n, err := c.Conn.Write(p[:min(len(p), slowPiece)])
		written += n
		if err != nil {
			return written, err
		}
		c.pause(n)
		p = p[n:]
	}
	return written, nil
}

// pause takes the time n bytes take at the rate.
func (c *slowConn) pause(n int) {
	time.Sleep(time.Duration(n) * time.Second / time.Duration(c.rate))
}
