package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestNotSent_GoesOnANewConnection: a request whose connection had ended
// before it left (the connection's reader has not yet said so, and the
// client still holds it) reached no server, so it is made on a new
// connection, by Subscribe as by Get, rather than failing.
func TestNotSent_GoesOnANewConnection(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{"k"}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", a))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer a.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.URL+"/kv", &Options{APIKey: "k"})
	require.NoError(t, err)
	defer c.Close()

	// endUnnoticed ends the client's connection as its reader's fail does,
	// without the reader going on to drop it: the moment between the two.
	endUnnoticed := func() *conn {
		c.mu.Lock()
		cn := c.cur
		c.mu.Unlock()
		require.NotNil(t, cn)
		cn.mu.Lock()
		cn.err = errors.New("the connection ended")
		cn.mu.Unlock()
		return cn
	}

	stale := endUnnoticed()
	_, err = c.Get(ctx, "a")
	require.ErrorIs(t, err, engine.ErrNotFound, "a get on a new connection")

	stale2 := endUnnoticed()
	require.NotSame(t, stale, stale2)
	sub, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err, "a subscribe on a new connection")
	defer sub.Close()
	_, err = c.Set(ctx, "a", "v", nil)
	require.NoError(t, err)
	ev, err := sub.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "v", ev.Value)
}
