package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/client"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/leaktest"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

const apiKey = "test-key"

// server is a DB served by an adapter at /kv/ of a test server; restart
// replaces the adapter, closing every WebSocket, as a restarted server
// would.
type server struct {
	t   testing.TB
	db  *engine.DB
	srv *httptest.Server
	url string

	mu   sync.Mutex
	a    *adapter.Adapter
	ao   adapter.Options // the next adapter's options, API keys aside
	urls []string        // the URLs of the requests served, in order
}

func newServer(t testing.TB, eo *engine.Options) *server {
	t.Helper()
	if eo == nil {
		eo = &engine.Options{SweepInterval: -1}
	}
	db, err := engine.Open("", eo)
	require.NoError(t, err)
	s := &server{t: t, db: db}
	s.a = s.newAdapter()
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		a := s.a
		s.urls = append(s.urls, r.URL.String())
		s.mu.Unlock()
		a.ServeHTTP(w, r)
	})))
	s.srv = httptest.NewServer(mux)
	s.url = s.srv.URL + "/kv"
	t.Cleanup(func() {
		s.shutdown()
		s.srv.Close()
		require.NoError(t, db.Close())
	})
	return s
}

func (s *server) newAdapter() *adapter.Adapter {
	s.mu.Lock()
	o := s.ao
	s.mu.Unlock()
	o.APIKeys = []string{apiKey}
	a, err := adapter.New(s.db, &o)
	require.NoError(s.t, err)
	return a
}

func (s *server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	a := s.a
	s.mu.Unlock()
	require.NoError(s.t, a.Shutdown(ctx))
}

// restart closes every connection (1001) and serves with a new adapter.
func (s *server) restart() {
	s.shutdown()
	a := s.newAdapter()
	s.mu.Lock()
	s.a = a
	s.mu.Unlock()
}

// token asks the server for a token with claims, as POST
// /token/websocket takes them.
func (s *server) token(t testing.TB, claims string) string {
	t.Helper()
	req, err := http.NewRequest("POST", s.url+"/token/websocket", strings.NewReader(claims))
	require.NoError(t, err)
	req.Header.Set("x-api-key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var tok struct{ Token string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	require.NotEmpty(t, tok.Token)
	return tok.Token
}

func (s *server) dial(t testing.TB, o *client.Options) *client.Client {
	t.Helper()
	opts := client.Options{APIKey: apiKey, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if o != nil {
		opts = *o
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, s.url, &opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
