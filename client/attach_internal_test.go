package client

import (
	"net/http"
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

// TestGiveUp_TheSubscribesPlaceCountsUntilItsReply: a Subscribe whose
// context ends before its reply may still have made a place on the
// server. Until the reply comes (and is unsubscribed, nobody waiting for
// it) the connection is not settled, so that a resume over the
// connection's cap waits for the place rather than ending
// (subscribeOn). Before, the call was forgotten at once: settled said
// no place was given up while the server still held one.
func TestGiveUp_TheSubscribesPlaceCountsUntilItsReply(t *testing.T) {
	c := &Client{subs: map[*Subscription]struct{}{}, closed: true} // closed: unsubscribes are not sent
	cn := &conn{c: c, pending: map[int64]*call{}, subs: map[int64]*Subscription{}, orphans: map[int64][]message{}, retired: map[int64]bool{}}
	s := &Subscription{c: c, need: true, stop: make(chan struct{}), wake: make(chan struct{}, 1)}
	cl := &call{reply: make(chan message, 1), sub: s}
	cn.pending[5] = cl
	require.True(t, cn.settled())

	cn.giveUp(5, cl)
	require.False(t, cn.settled(), "the subscribe may hold a place on the server")
	id, ok := int64(5), http.StatusOK
	require.NoError(t, cn.dispatch(message{MessageID: &id, Code: ok, SubscriptionID: 9, Revision: 3}))
	require.Nil(t, s.cn, "nobody waits for it: not attached")
	require.True(t, cn.retired[9], "its unsubscribe is on the way")
	require.False(t, cn.settled())

	// The unsubscribe's reply: the place is free.
	unsub := int64(6)
	cn.pending[unsub] = &call{reply: make(chan message, 1), unsub: 9}
	require.NoError(t, cn.dispatch(message{MessageID: &unsub, Code: ok}))
	require.True(t, cn.settled())

	// A request that is not a subscribe is forgotten at once.
	other := &call{reply: make(chan message, 1)}
	cn.pending[7] = other
	cn.giveUp(7, other)
	require.True(t, cn.settled())
	require.NotContains(t, cn.pending, int64(7))
}
