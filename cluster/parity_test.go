package cluster

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

// Keys and values that are not UTF-8, written through a follower, reach
// the leader byte for byte, and come back so in the write's item.
func TestParity_ForwardedBinaryKeyAndValue(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := c.nodes[(l+1)%3]
	key, val := "bin\xff", "v\xfe\x80"

	// The leader (and a single engine.DB) keep them byte for byte.
	it, err := c.nodes[l].Set("lead"+key, val, nil)
	require.NoError(t, err)
	require.Equal(t, val, it.Value)

	it, err = f.Set(key, val, nil)
	require.NoError(t, err)
	if it.Key != key || it.Value != val {
		t.Errorf("forwarded Set returned %q=%q, want %q=%q", it.Key, it.Value, key, val)
	}
	got, err := c.nodes[l].Get(key)
	if err != nil || got.Value != val {
		t.Errorf("the key the follower set, read on the leader: %q, %v; want %q", got.Value, err, val)
	}
}

// Errors of forwarded writes keep their identity.
func TestParity_ForwardedErrorsKeepIdentity(t *testing.T) {
	c := newDBCluster(t, 3, &engine.Options{MaxValueSize: 64})
	l := c.leader()
	for _, n := range []*Node{c.nodes[l], c.nodes[(l+1)%3]} {
		_, err := n.Set("s", "x", nil)
		require.NoError(t, err)
		_, err = n.Set("i", "9223372036854775807", nil)
		require.NoError(t, err)
		_, err = n.CompareAndSwap("s", 999, "y", nil)
		require.ErrorIs(t, err, engine.ErrConflict)
		_, err = n.PutIfAbsent("s", "y", nil)
		require.ErrorIs(t, err, engine.ErrConflict)
		_, _, err = n.Increment("s", 1)
		require.ErrorIs(t, err, engine.ErrNotInteger)
		_, _, err = n.Increment("i", 1)
		require.ErrorIs(t, err, engine.ErrOverflow)
		_, err = n.Set("s", strings.Repeat("x", 65), nil)
		require.ErrorIs(t, err, engine.ErrTooLarge)
		_, err = n.Patch("s", strings.Repeat("x", 64))
		require.ErrorIs(t, err, engine.ErrTooLarge)
		// Too large for an RPC frame: refused, not sent, so certain.
		_, err = n.Set("s", strings.Repeat("x", minFrame), nil)
		require.ErrorIs(t, err, engine.ErrTooLarge)
		require.NotErrorIs(t, err, ErrUncertain)
		_, err = n.Set("s", "x", &engine.SetOptions{TTL: -time.Second})
		require.ErrorIs(t, err, engine.ErrInvalidOptions)
		_, err = n.CompareAndSwap("s", -1, "y", nil)
		require.ErrorIs(t, err, engine.ErrInvalidOptions)
		_, err = n.Set("", "x", nil)
		require.ErrorIs(t, err, engine.ErrInvalidKey)
		_, err = n.Delete("nope")
		require.ErrorIs(t, err, engine.ErrNotFound)
		_, err = n.Range("", "", &engine.RangeOptions{Limit: -1})
		require.ErrorIs(t, err, engine.ErrInvalidOptions)
	}
}

// Invalid subscribe options are engine.ErrInvalidOptions, as on engine.DB,
// not ErrBehind after waiting for a revision they name.
func TestParity_SubscribeInvalidOptions(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	n := c.nodes[l]
	_, err := n.Set("a", "1", nil)
	require.NoError(t, err)
	for name, o := range map[string]*engine.SubscribeOptions{
		"Initial+FromRevision":   {Initial: true, FromRevision: 1000},
		"FromRevision+From":      {FromRevision: 1000, From: pubsub.Position{Revision: 1}},
		"From.Revision MinInt64": {From: pubsub.Position{Revision: math.MinInt64}},
	} {
		_, err := n.Subscribe([]string{"*"}, o)
		if !errors.Is(err, engine.ErrInvalidOptions) {
			t.Errorf("%s: got %v, want engine.ErrInvalidOptions", name, err)
		}
	}
}

// Update of a nil function is ErrInvalidOptions on engine.DB; on a follower.
func TestParity_UpdateNilOnFollower(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	_, err := c.nodes[l].Update(nil)
	require.ErrorIs(t, err, engine.ErrInvalidOptions, "leader")
	_, err = c.nodes[(l+1)%3].Update(nil)
	require.ErrorIs(t, err, engine.ErrInvalidOptions, "follower")
}

// Every call after Close is a typed error, promptly.
func TestParity_AfterClose(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	for _, i := range []int{(l + 1) % 3, l} {
		n := c.nodes[i]
		c.kill(i)
		done := make(chan struct{})
		go func() {
			defer close(done)
			check := func(what string, err error) {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("%s after Close: %v", what, err)
				}
			}
			_, err := n.Get("a")
			check("Get", err)
			_, err = n.Set("a", "1", nil)
			check("Set", err)
			_, _, err = n.Increment("a", 1)
			check("Increment", err)
			_, err = n.Update(func(tx *engine.Tx) error { return nil })
			check("Update", err)
			check("View", n.View(func(tx *engine.Tx) error { return nil }, Stale))
			_, err = n.Range("", "", nil, Stale)
			check("Range", err)
			_, err = n.Subscribe([]string{"*"}, nil)
			check("Subscribe", err)
			_ = n.Stats()
			_ = n.Revision()
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("hang after Close")
		}
		if i == (l+1)%3 {
			c.restart(i)
		}
	}
}
