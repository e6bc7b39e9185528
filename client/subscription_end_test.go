package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/client"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// TestSubscription_ResumesAfterANodeEndsIt: a subscription the server
// ends with a cluster node's error (503 no_leader) resumes on the one
// server the client knows, once the server takes subscriptions again
// (it refuses the first tries with 503 behind), with no gap and no
// duplicate; one ended by a pattern timeout (400) stays ended.
func TestSubscription_ResumesAfterANodeEndsIt(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	s := &enginetest.Ending{DB: db}
	a, err := adapter.New(s, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", a))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer a.Shutdown(context.Background())
	ctx := ctxT(t)
	c, err := client.Dial(ctx, srv.URL+"/kv", &client.Options{APIKey: apiKey, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	sub, err := c.Subscribe(ctx, []string{"k:*"}, nil)
	require.NoError(t, err)
	defer sub.Close()

	var want []client.Event
	write := func(k, v string) {
		it, err := db.Set(k, v, nil)
		require.NoError(t, err)
		want = append(want, client.Event{Key: k, Value: v, Revision: it.Revision})
	}
	var got []client.Event
	read := func() {
		t.Helper()
		for len(got) < len(want) {
			ev, err := sub.Next(ctx)
			require.NoError(t, err, "after %d events", len(got))
			ev.Time = time.Time{}
			got = append(got, ev)
		}
		require.Equal(t, want, got)
	}
	for i := range 3 {
		write(fmt.Sprintf("k:%d", i), "before")
	}
	read()

	s.End(cluster.ErrNoLeader, fmt.Errorf("%w: at revision 3, asked for 9", cluster.ErrBehind))
	for i := range 3 {
		write(fmt.Sprintf("k:%d", i), "meanwhile")
	}
	require.Eventually(t, func() bool {
		return s.Refused() >= 2
	}, 10*time.Second, time.Millisecond, "the client did not try to resume")
	s.End(nil, nil)
	write("k:0", "after")
	read()
	require.NoError(t, sub.Err())

	// A pattern timeout is final.
	rev := db.Revision()
	s.End(&engine.PatternTimeoutError{Pattern: "/x/", Key: "k:9", Revision: rev + 1}, nil)
	_, err = sub.Next(ctx)
	require.ErrorIs(t, err, engine.ErrPatternTimeout)
	write("k:1", "unseen")
	time.Sleep(100 * time.Millisecond) // several backoffs: time to subscribe again, were it to
	require.Zero(t, s.Open(), "not subscribed again")
}

// TestSubscription_UnsubscribesOnlyWhereItStays: a subscription a server
// ends with a cluster node's error (503 no_leader) is unsubscribed on
// that server when the client stays there (it knows no other), since the
// server holds it against the connection's caps until then; a client
// that moves to another node drops the connection instead, which ends it
// there, and sends no unsubscribe on it. Both resume with no gap.
func TestSubscription_UnsubscribesOnlyWhereItStays(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	ctx := ctxT(t)
	// serve serves store, counting the unsubscribes it answers.
	serve := func(store adapter.Store) (string, *atomic.Int64) {
		var unsubs atomic.Int64
		a, err := adapter.New(store, &adapter.Options{APIKeys: []string{apiKey}, OnRequest: func(op string, code int) {
			if op == adapter.OpUnsubscribe {
				unsubs.Add(1)
			}
		}})
		require.NoError(t, err)
		mux := http.NewServeMux()
		mux.Handle("/kv/", http.StripPrefix("/kv", a))
		srv := httptest.NewServer(mux)
		t.Cleanup(func() {
			require.NoError(t, a.Shutdown(context.Background()))
			srv.Close()
		})
		return srv.URL + "/kv", &unsubs
	}
	stays, moves := &enginetest.Ending{DB: db}, &enginetest.Ending{DB: db}
	staysURL, staysUnsubs := serve(stays)
	movesURL, movesUnsubs := serve(moves)
	otherURL, _ := serve(db)

	opts := client.Options{APIKey: apiKey, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	solo, err := client.Dial(ctx, staysURL, &opts)
	require.NoError(t, err)
	defer solo.Close()
	opts.URLs = []string{otherURL}
	moving, err := client.Dial(ctx, movesURL, &opts)
	require.NoError(t, err)
	defer moving.Close()
	var subs []*client.Subscription
	for _, c := range []*client.Client{solo, moving} {
		sub, err := c.Subscribe(ctx, []string{"k:*"}, nil)
		require.NoError(t, err)
		defer sub.Close()
		subs = append(subs, sub)
	}

	var want []client.Event
	write := func(k, v string) {
		it, err := db.Set(k, v, nil)
		require.NoError(t, err)
		want = append(want, client.Event{Key: k, Value: v, Revision: it.Revision})
	}
	write("k:0", "before")
	stays.End(cluster.ErrNoLeader, nil)
	moves.End(cluster.ErrNoLeader, nil)
	write("k:1", "meanwhile")
	require.Eventually(t, func() bool { return staysUnsubs.Load() == 1 }, 10*time.Second, time.Millisecond,
		"the client that stays unsubscribed the ended subscription")
	write("k:2", "after")
	for i, sub := range subs {
		require.Equal(t, want, untimed(collect(t, sub, len(want))), "subscriber %d", i)
	}
	require.Zero(t, movesUnsubs.Load(), "no unsubscribe on the connection dropped")
	require.EqualValues(t, 1, staysUnsubs.Load())
}
