package client_test

import (
	"context"
	"errors"
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

// TestClusterErrors checks that a cluster node's refusal of a write,
// passed on by the adapter with its code, is an error errors.Is tells
// apart: not committed (safe to retry) from uncertain (may have happened).
func TestClusterErrors(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	s := &enginetest.Refusing{DB: db}
	a, err := adapter.New(s, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", a))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
		srv.Close()
		require.NoError(t, db.Close())
	})
	ctx := ctxT(t)
	c, err := client.Dial(ctx, srv.URL+"/kv", &client.Options{APIKey: apiKey})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	kinds := []error{client.ErrNotCommitted, client.ErrUncertain, client.ErrNoLeader, client.ErrNotLeader,
		client.ErrBehind, client.ErrUnavailable}
	for _, tc := range []struct {
		err    error
		status int
		code   string
		is     []error // of kinds, those the error must match; it matches none of the others
	}{
		{fmt.Errorf("%w: revision 7 went to another leader's write", cluster.ErrNotCommitted), 503, "not_committed",
			[]error{client.ErrNotCommitted, client.ErrUnavailable}},
		{fmt.Errorf("%w: %w", cluster.ErrUncertain, cluster.ErrClosed), 504, "uncertain", []error{client.ErrUncertain}},
		{fmt.Errorf("%w: %w", cluster.ErrNoLeader, context.DeadlineExceeded), 503, "no_leader",
			[]error{client.ErrNoLeader, client.ErrUnavailable}},
		{&cluster.NotLeaderError{}, 503, "not_leader", []error{client.ErrNotLeader, client.ErrUnavailable}},
		{cluster.ErrBehind, 503, "behind", []error{client.ErrBehind, client.ErrUnavailable}},
		{cluster.ErrClosed, 503, "node_closed", []error{client.ErrUnavailable}},
	} {
		s.Refuse(tc.err)
		for op, call := range map[string]func() error{
			"set": func() error { _, err := c.Set(ctx, "k", "v", nil); return err },
			"cas": func() error { _, err := c.CompareAndSwap(ctx, "k", 0, "v", nil); return err },
			"increment": func() error {
				_, _, err := c.Increment(ctx, "n", 1)
				return err
			},
			"delete": func() error { _, err := c.Delete(ctx, "k"); return err },
		} {
			err := call()
			var e *client.Error
			require.ErrorAs(t, err, &e, "%s: %v", op, tc.err)
			require.Equal(t, tc.status, e.Code, "%s: %v", op, err)
			require.Equal(t, tc.code, e.ErrorCode, "%s: %v", op, err)
			require.Equal(t, tc.err.Error(), e.Message)
			for _, k := range kinds {
				want := false
				for _, i := range tc.is {
					want = want || i == k
				}
				require.Equal(t, want, errors.Is(err, k), "%s: %v is %v", op, err, k)
			}
		}
	}
	s.Refuse(nil)
	_, err = c.Set(ctx, "k", "v", nil)
	require.NoError(t, err)
	_, err = c.Get(ctx, "n")
	require.ErrorIs(t, err, engine.ErrNotFound, "no refused write happened")
}
