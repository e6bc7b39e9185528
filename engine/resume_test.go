package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

// TestSubscribe_ResumeInsideTransaction: a subscription closed in the
// middle of a transaction larger than its buffer, with events unread,
// resumes from its Position with the first event it did not take.
func TestSubscribe_ResumeInsideTransaction(t *testing.T) {
	db := open(t, nil)
	s, err := db.Subscribe([]string{"k:*"}, &engine.SubscribeOptions{Buffer: 2})
	require.NoError(t, err)
	require.Equal(t, db.Revision(), s.Revision(), "nothing owed yet")
	require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 5; i++ {
			if _, err := tx.Set(fmt.Sprintf("k:%d", i), "v", nil); err != nil {
				return err
			}
		}
		return nil
	})))
	_, err = db.Set("k:after", "v", nil)
	require.NoError(t, err)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		ev, err := s.Next(ctx)
		require.NoError(t, err)
		require.Equal(t, i, ev.Index)
	}
	require.NoError(t, s.Close())
	pos := s.Position()
	require.Equal(t, pubsub.Position{Revision: 1, Index: 3}, pos)
	require.Equal(t, int64(0), s.Revision(), "revision 1 was not taken whole")

	_, err = db.Subscribe([]string{"k:*"}, &engine.SubscribeOptions{From: pos, Initial: true})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	s, err = db.Subscribe([]string{"k:*"}, &engine.SubscribeOptions{From: pos})
	require.NoError(t, err)
	var got []string
	for i := 0; i < 3; i++ {
		ev, err := s.Next(ctx)
		require.NoError(t, err)
		got = append(got, ev.Key)
	}
	require.Equal(t, []string{"k:3", "k:4", "k:after"}, got)
	require.NoError(t, s.Close())
}

// TestSubscribe_ResumeAfterRevisionZero: a subscriber that took nothing
// from a store with no change holds revision 0, as does an Initial load
// of it; resumed with From: pubsub.After of it, it gets the change made
// while it was away. (FromRevision 0 is from now, and would miss it.)
func TestSubscribe_ResumeAfterRevisionZero(t *testing.T) {
	db := open(t, nil)
	s, err := db.Subscribe([]string{"k*"}, &engine.SubscribeOptions{Initial: true})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.Equal(t, int64(0), s.InitialRevision)
	require.Equal(t, int64(0), s.Revision())
	_, err = db.Set("k1", "while away", nil)
	require.NoError(t, err)

	for _, from := range []int64{s.Revision(), s.InitialRevision, db.Stats().Subscriptions.Oldest - 1} {
		r, err := db.Subscribe([]string{"k*"}, &engine.SubscribeOptions{From: pubsub.After(from)})
		require.NoError(t, err)
		ev, err := r.Next(context.Background())
		require.NoError(t, err)
		require.Equal(t, "k1", ev.Key)
		require.Equal(t, int64(1), ev.Revision)
		require.NoError(t, r.Close())
	}
}
