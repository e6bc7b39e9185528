package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestUnsubscribe_ForgetsTheID: a connection that subscribes and closes
// subscriptions again and again remembers none of their ids once the
// server has answered each unsubscribe, however long it lives.
func TestUnsubscribe_ForgetsTheID(t *testing.T) {
	c, ctx := dialInPackage(t)
	for i := range 20 {
		sub, err := c.Subscribe(ctx, []string{"a"}, nil)
		require.NoError(t, err, "subscription %d", i)
		_, err = c.Set(ctx, "a", "v", nil) // a notification on the way as it closes
		require.NoError(t, err)
		sub.Close()
	}
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	require.NotNil(t, cn)
	require.Eventually(t, func() bool {
		cn.mu.Lock()
		defer cn.mu.Unlock()
		return len(cn.retired) == 0 && len(cn.subs) == 0
	}, 10*time.Second, 5*time.Millisecond, "every unsubscribed id forgotten")
}

// dialInPackage serves a store through the adapter and dials it, for the
// tests of this package's internals; all of it ends with the test.
func dialInPackage(t *testing.T) (*Client, context.Context) {
	_, url := serveInPackage(t, adapter.Options{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := Dial(ctx, url, &Options{APIKey: "k"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, ctx
}

// serveInPackage serves a DB in memory through an adapter with ao (its
// API key "k") at the URL it returns; conns, if not nil, counts the
// connections made to it.
func serveInPackage(t *testing.T, ao adapter.Options, conns *atomic.Int64) (*engine.DB, string) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ao.APIKeys = []string{"k"}
	a, err := adapter.New(db, &ao)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conns != nil {
			conns.Add(1)
		}
		a.ServeHTTP(w, r)
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	return db, srv.URL + "/kv"
}
