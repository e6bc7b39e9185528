package pubsub_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

// TestSubscription_ResumeExact: a reader that takes a random number of
// events, closes, and resumes from Position() (leaving what it did not
// read in the buffer), with buffers of 1 to 3 and transactions of up to 5
// matching events, gets exactly the uninterrupted stream, cut
// transactions included. Both kinds of subscription, served by the cheap
// lane and (a regex) by the regex lane: each is seen in step with its lane
// (handed back after falling behind) and fed by a goroutine of its own.
func TestSubscription_ResumeExact(t *testing.T) {
	for _, srcs := range [][]string{{"k:*"}, {`/^k:/`}} {
		var inStep, behind int
		for seed := uint64(1); seed <= 8; seed++ {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, srcs[0]), func(t *testing.T) {
				i, b := resumeExact(t, seed, srcs)
				inStep, behind = inStep+i, behind+b
			})
		}
		t.Logf("%s: seen in step %d times, behind %d times", srcs[0], inStep, behind)
		require.Positive(t, inStep, "%s: served by its lane", srcs[0])
		require.Positive(t, behind, "%s: fell behind", srcs[0])
	}
}

// resumeExact returns how often it saw the subscription in step with its
// lane, and behind it, after taking an event.
func resumeExact(t *testing.T, seed uint64, srcs []string) (inStep, behind int) {
	r := rand.New(rand.NewPCG(seed, 11))
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	h := &published{}
	ps := pats(t, srcs...)
	const n = 300
	for rev := int64(1); rev <= n; rev++ {
		var keys []string
		for k := r.IntN(6); k > 0; k-- { // up to 5 matching
			keys = append(keys, fmt.Sprintf("k:%d", r.IntN(9)))
			if r.IntN(3) == 0 {
				keys = append(keys, "other")
			}
		}
		h.batches = append(h.batches, batch(rev, keys...))
	}
	want := h.expected(ps, 0, n)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for _, bt := range h.batches {
			b.Publish(bt)
			if r := bt.Revision % 37; r == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	defer func() { <-pubDone }()

	s, err := b.Subscribe(ps, &pubsub.SubscribeOptions{From: pubsub.Position{Revision: 1}, Buffer: 1 + r.IntN(3)})
	require.NoError(t, err)
	var got []pubsub.Event
	resumes := 0
	for len(got) < len(want) {
		for k := r.IntN(6); k > 0 && len(got) < len(want); k-- {
			var ev pubsub.Event
			if r.IntN(2) == 0 {
				ev = nextWithin(t, s, 5*time.Second)
			} else {
				select {
				case ev = <-s.Events():
				case <-time.After(5 * time.Second):
					t.Fatalf("seed %d: no event after %d of %d", seed, len(got), len(want))
				}
			}
			got = append(got, ev)
			if pubsub.InStep(s) {
				inStep++
			} else {
				behind++
			}
		}
		if len(got) < len(want) && r.IntN(2) == 0 {
			// Let the sender fill the buffer, or cut a transaction.
			time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
		}
		require.NoError(t, s.Close())
		pos := s.Position()
		if len(got) > 0 {
			last := got[len(got)-1]
			require.False(t, pos.Revision < last.Revision || pos.Revision == last.Revision && pos.Index <= last.Index,
				"seed %d: position %+v not after the last event taken %+v", seed, pos, last.After())
		}
		s, err = b.Subscribe(ps, &pubsub.SubscribeOptions{From: pos, Buffer: 1 + r.IntN(3)})
		require.NoError(t, err)
		resumes++
	}
	require.NoError(t, s.Close())
	require.Greater(t, resumes, 10)
	require.Equal(t, want, got, "seed %d", seed)
	require.GreaterOrEqual(t, s.Revision(), want[len(want)-1].Revision, "seed %d: the last revision taken whole", seed)
	require.LessOrEqual(t, s.Revision(), int64(n), "seed %d", seed)
	return inStep, behind
}

// TestSubscription_PositionWhileRunning: Position and Revision tell where
// the reader is while the subscription runs, not only after it ends.
func TestSubscription_PositionWhileRunning(t *testing.T) {
	b := pubsub.NewBroker(4, nil)
	defer b.Close()
	s, err := b.Subscribe(pats(t, "k*"), &pubsub.SubscribeOptions{Buffer: 8})
	require.NoError(t, err)
	require.Equal(t, pubsub.Position{Revision: 5}, s.Position())
	require.Equal(t, int64(4), s.Revision())
	b.Publish(batch(5, "k1", "x", "k2"))
	b.Publish(batch(6, "x"))
	ev := next(t, s)
	require.Equal(t, 0, ev.Index)
	require.Equal(t, pubsub.Position{Revision: 5, Index: 2}, s.Position(), "k2 is still to read")
	require.Equal(t, int64(4), s.Revision())
	ev = next(t, s)
	require.Equal(t, 2, ev.Index)
	require.Equal(t, pubsub.Position{Revision: 5, Index: 3}, ev.After())
	require.Eventually(t, func() bool { return s.Revision() == 6 }, 5*time.Second, time.Millisecond,
		"revision 6 has nothing for it")
	require.NoError(t, s.Close())
}

// TestSubscribe_OldestBoundary: CompactedError.Oldest is the oldest
// revision held: resuming in it (From: Position{Revision: Oldest}, or
// FromRevision: Oldest-1) gets every event from it on; one revision
// earlier is refused.
func TestSubscribe_OldestBoundary(t *testing.T) {
	b := pubsub.NewBroker(0, &pubsub.Options{HistoryEvents: 3})
	defer b.Close()
	for rev := int64(1); rev <= 10; rev++ {
		b.Publish(batch(rev, "k"))
	}
	waitHistory(t, b, 3)
	_, err := b.Subscribe(pats(t, "k"), &pubsub.SubscribeOptions{FromRevision: 1})
	var ce *pubsub.CompactedError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, int64(8), ce.Oldest, "the history holds 8, 9 and 10")

	for _, o := range []pubsub.SubscribeOptions{{FromRevision: ce.Oldest - 1}, {From: pubsub.Position{Revision: ce.Oldest}}} {
		s, err := b.Subscribe(pats(t, "k"), &o)
		require.NoError(t, err, "%+v", o)
		require.Equal(t, ce.Oldest, next(t, s).Revision)
		require.NoError(t, s.Close())
	}
	for _, o := range []pubsub.SubscribeOptions{{FromRevision: ce.Oldest - 2}, {From: pubsub.Position{Revision: ce.Oldest - 1, Index: 1}}} {
		_, err := b.Subscribe(pats(t, "k"), &o)
		require.ErrorIs(t, err, pubsub.ErrCompacted, "%+v", o)
	}
	_, err = b.Subscribe(pats(t, "k"), &pubsub.SubscribeOptions{FromRevision: 1, From: pubsub.Position{Revision: 2}})
	require.Error(t, err, "both")
}
