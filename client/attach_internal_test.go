package client

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAttach_TheConnectionHasItAtOnce: a subscription that a subscribe
// reply attaches is the connection's from the same moment, so that a
// Close from then on finds it there to retire and unsubscribes it. The
// reader used to register it a moment after attaching it: a Close in
// between found nothing to retire, sent no unsubscribe, and the server
// kept the subscription, sending notifications nobody read, until the
// connection ended.
func TestAttach_TheConnectionHasItAtOnce(t *testing.T) {
	c := &Client{subs: map[*Subscription]struct{}{}, closed: true} // closed: unsubscribes are not sent
	cn := &conn{c: c, subs: map[int64]*Subscription{}, retired: map[int64]bool{7: true}}
	s := &Subscription{c: c, need: true, stop: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.subs[s] = struct{}{}

	require.True(t, s.attach(cn, 7, 1))
	require.Same(t, s, cn.subs[7], "the connection has it")
	require.False(t, cn.retired[7])
	require.True(t, cn.settled(), "no place given up on cn")

	s.Close()
	require.Empty(t, cn.subs)
	require.True(t, cn.retired[7], "retired: its unsubscribe is on the way")
	require.False(t, s.attach(cn, 8, 2), "an ended subscription takes no other")
}
