package client

import (
	"errors"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestNotSent_GoesOnANewConnection: a request whose connection had ended
// before it left (the connection's reader has not yet said so, and the
// client still holds it) reached no server, so it is made on a new
// connection, by Subscribe as by Get, rather than failing.
func TestNotSent_GoesOnANewConnection(t *testing.T) {
	c, ctx := dialInPackage(t)

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
	_, err := c.Get(ctx, "a")
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
