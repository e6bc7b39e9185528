package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
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
