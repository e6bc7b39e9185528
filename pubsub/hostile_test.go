package pubsub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/pattern"
	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

// hostileKey makes /^(a+)+$/ backtrack until it runs out of time.
var hostileKey = strings.Repeat("a", 28) + "!"

// TestBroker_HostileRegexes: 64 subscriptions whose regex backtracks on
// the keys written delay neither the other subscribers nor Publish nor
// Subscribe; each ends with a *PatternTimeoutError, counted in Stats,
// having delivered everything before the key it could not decide on.
func TestBroker_HostileRegexes(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	var hostile []*pubsub.Subscription
	for i := 0; i < 64; i++ {
		s, err := b.Subscribe(pats(t, `/^(a+)+$/`, "a:plain"), nil)
		require.NoError(t, err)
		hostile = append(hostile, s)
	}
	plain, err := b.Subscribe(pats(t, "x:*"), nil)
	require.NoError(t, err)

	b.Publish(batch(1, "a:plain"))
	b.Publish(batch(2, hostileKey, "x:0"))
	for rev := int64(3); rev <= 20; rev++ {
		start := time.Now()
		b.Publish(batch(rev, hostileKey, fmt.Sprintf("x:%d", rev)))
		require.Less(t, time.Since(start), 50*time.Millisecond, "Publish waits for no subscriber")
		ev := nextWithin(t, plain, 200*time.Millisecond)
		if ev.Key == "x:0" {
			ev = nextWithin(t, plain, 200*time.Millisecond)
		}
		require.Equal(t, fmt.Sprintf("x:%d", rev), ev.Key, "the plain subscriber gets its events promptly")
		start = time.Now()
		s, err := b.Subscribe(pats(t, "y:*"), nil)
		require.NoError(t, err)
		require.Less(t, time.Since(start), 50*time.Millisecond, "Subscribe waits for no matching")
		require.NoError(t, s.Close())
	}

	for i, s := range hostile {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ev, err := s.Next(ctx)
		require.NoError(t, err, "hostile subscription %d", i)
		require.Equal(t, "a:plain", ev.Key, "what came before the undecided key is delivered")
		_, err = s.Next(ctx)
		cancel()
		require.ErrorIs(t, err, pubsub.ErrPatternTimeout, "hostile subscription %d", i)
		require.ErrorIs(t, err, pattern.ErrTimeout)
		var pe *pubsub.PatternTimeoutError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, `/^(a+)+$/`, pe.Pattern)
		require.Equal(t, hostileKey, pe.Key)
		require.Equal(t, int64(2), pe.Revision)
		require.Equal(t, int64(1), s.Revision(), "resume from before the undecided key")
	}
	st := b.Stats()
	require.Equal(t, int64(64), st.TimedOut)
	require.Equal(t, 1, st.Subscriptions, "only the plain one is left")
}

// TestBroker_RegexNotSkipped: a regex subscription that a cheap pattern of
// its own already matches needs no regex; and one whose regex decides gets
// every event, fed by a goroutine of its own.
func TestBroker_RegexNotSkipped(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	s, err := b.Subscribe(pats(t, `/^(a+)+$/`, "aaaa*"), &pubsub.SubscribeOptions{Buffer: 1})
	require.NoError(t, err)
	b.Publish(batch(1, hostileKey, "aa", "b"))
	b.Publish(batch(2, "aaa"))
	require.Equal(t, hostileKey, next(t, s).Key)
	require.Equal(t, "aa", next(t, s).Key)
	require.Equal(t, "aaa", next(t, s).Key)
	require.NoError(t, s.Close())
	require.Equal(t, int64(2), s.Revision())
	require.Zero(t, b.Stats().TimedOut)
}

func nextWithin(t testing.TB, s *pubsub.Subscription, d time.Duration) pubsub.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ev, err := s.Next(ctx)
	require.NoError(t, err)
	return ev
}
