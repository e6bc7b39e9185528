package pubsub_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/internal/leaktest"
	"github.com/livekv/livekv/pattern"
	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func pats(t testing.TB, srcs ...string) []*pattern.Pattern {
	t.Helper()
	out := make([]*pattern.Pattern, len(srcs))
	for i, s := range srcs {
		p, err := pattern.Parse(s)
		require.NoError(t, err)
		out[i] = p
	}
	return out
}

// batch makes the batch of revision rev writing keys.
func batch(rev int64, keys ...string) pubsub.Batch {
	b := pubsub.Batch{Revision: rev}
	for _, k := range keys {
		b.Events = append(b.Events, pubsub.Event{Revision: rev, Type: pubsub.Put, Key: k, Value: fmt.Sprintf("%s@%d", k, rev)})
	}
	return b
}

func next(t testing.TB, s *pubsub.Subscription) pubsub.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	require.NoError(t, err)
	return ev
}

func TestBroker_DeliversMatchingInOrder(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	s, err := b.Subscribe(pats(t, "user:*", "*:session", "user:1"), nil)
	require.NoError(t, err)
	b.Publish(batch(1, "user:1", "other", "x:session"))
	b.Publish(batch(2, "other"))
	b.Publish(batch(3, "user:2"))
	var got []string
	for i := 0; i < 3; i++ {
		ev := next(t, s)
		got = append(got, fmt.Sprintf("%d %s", ev.Revision, ev.Key))
	}
	require.Equal(t, []string{"1 user:1", "1 x:session", "3 user:2"}, got, "user:1 matches two patterns but comes once")
	require.NoError(t, s.Close())
	_, err = s.Next(context.Background())
	require.ErrorIs(t, err, pubsub.ErrClosed)
	require.Equal(t, int64(3), s.Revision())
}

func TestBroker_Subscribe_Errors(t *testing.T) {
	b := pubsub.NewBroker(10, &pubsub.Options{HistoryEvents: 2})
	_, err := b.Subscribe(nil, nil)
	require.ErrorIs(t, err, pubsub.ErrNoPatterns)
	for _, o := range []pubsub.SubscribeOptions{
		{FromRevision: -1},
		{From: pubsub.Position{Revision: -1}},
		{From: pubsub.Position{Revision: 2, Index: -1}},
		{From: pubsub.Position{Index: 1}},
		{FromRevision: 1, From: pubsub.Position{Revision: 2}},
		// Subscribe made a channel of the size asked for: makechan
		// panicked for this one.
		{Buffer: math.MaxInt},
		{Buffer: pubsub.MaxBuffer + 1},
		// The position after it would wrap to a negative revision.
		{FromRevision: math.MaxInt64},
	} {
		_, err = b.Subscribe(pats(t, "*"), &o)
		require.ErrorIs(t, err, pubsub.ErrInvalidOptions, "%+v", o)
	}
	_, err = b.Subscribe(append(pats(t, "*"), nil), nil)
	require.ErrorIs(t, err, pubsub.ErrInvalidOptions, "a nil pattern")
	_, err = b.Subscribe(pats(t, "*"), &pubsub.SubscribeOptions{FromRevision: 9})
	var ce *pubsub.CompactedError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, int64(11), ce.Oldest, "the oldest revision held, or the next to come")
	for r := int64(11); r <= 15; r++ {
		b.Publish(batch(r, "k"))
	}
	waitHistory(t, b, 2)
	_, err = b.Subscribe(pats(t, "*"), &pubsub.SubscribeOptions{FromRevision: 12})
	require.ErrorIs(t, err, pubsub.ErrCompacted, "the history holds only 14 and 15")
	s, err := b.Subscribe(pats(t, "*"), &pubsub.SubscribeOptions{FromRevision: 13})
	require.NoError(t, err)
	require.Equal(t, int64(14), next(t, s).Revision)
	require.Equal(t, int64(15), next(t, s).Revision)
	b.Close()
	_, err = s.Next(context.Background())
	require.ErrorIs(t, err, pubsub.ErrClosed)
	_, err = b.Subscribe(pats(t, "*"), nil)
	require.ErrorIs(t, err, pubsub.ErrClosed)
	_, err = b.Subscribe(pats(t, "*"), &pubsub.SubscribeOptions{FromRevision: 1})
	require.ErrorIs(t, err, pubsub.ErrClosed, "closed, whatever the history held")
	require.Panics(t, func() { b.Publish(batch(15, "k")) }, "out of order")
}

// history is what was published, for checking streams.
type published struct {
	mu      sync.Mutex
	batches []pubsub.Batch
}

// expected returns the events after rev, up to through, that match ps.
func (h *published) expected(ps []*pattern.Pattern, after, through int64) []pubsub.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []pubsub.Event
	for _, b := range h.batches {
		if b.Revision <= after || b.Revision > through {
			continue
		}
		for i, ev := range b.Events {
			for _, p := range ps {
				if p.Match(ev.Key) {
					ev.Index = i
					out = append(out, ev)
					break
				}
			}
		}
	}
	return out
}

var keySpace = []string{"user:1", "user:2", "user:1:session", "order:7", "log-2024", "x"}

func publishRandom(b *pubsub.Broker, h *published, from, n int64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 9))
	for rev := from; rev < from+n; rev++ {
		var keys []string
		for k := 1 + r.IntN(4); k > 0; k-- {
			keys = append(keys, keySpace[r.IntN(len(keySpace))])
		}
		bt := batch(rev, keys...)
		h.mu.Lock()
		h.batches = append(h.batches, bt)
		h.mu.Unlock()
		b.Publish(bt)
		if r.IntN(50) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// TestBroker_ManySubscribers checks every subscriber's stream against the
// published history: ordered, unique, gapless, filtered, and each
// transaction's events together; slow subscribers with small buffers
// catch up from the history.
func TestBroker_ManySubscribers(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	h := &published{}
	const n = 3000
	subsPats := [][]string{{"user:*"}, {"*:session", "user:1"}, {"log-202?"}, {"*"}, {`/^(order|x)/`}, {"user:*", "*"}}
	type result struct {
		s   *pubsub.Subscription
		ps  []*pattern.Pattern
		mu  sync.Mutex
		got []pubsub.Event
	}
	var results []*result
	var wg sync.WaitGroup
	for i, sp := range subsPats {
		for _, buffer := range []int{1, 4, 256} {
			ps := pats(t, sp...)
			s, err := b.Subscribe(ps, &pubsub.SubscribeOptions{Buffer: buffer})
			require.NoError(t, err)
			res := &result{s: s, ps: ps}
			results = append(results, res)
			wg.Add(1)
			go func(slow bool) {
				defer wg.Done()
				for ev := range s.Events() {
					res.mu.Lock()
					res.got = append(res.got, ev)
					res.mu.Unlock()
					if slow && ev.Revision%100 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			}(i%2 == 0)
		}
	}
	publishRandom(b, h, 1, n, 1)
	deadline := time.Now().Add(30 * time.Second)
	for i, res := range results {
		want := h.expected(res.ps, 0, n)
		for {
			res.mu.Lock()
			got := len(res.got)
			res.mu.Unlock()
			if got >= len(want) {
				break
			}
			if time.Now().After(deadline) {
				var timeouts int64
				for _, p := range res.ps {
					timeouts += p.Timeouts()
				}
				t.Fatalf("subscriber %d got %d events of %d (regex matches out of time: %d)", i, got, len(want), timeouts)
			}
			time.Sleep(time.Millisecond)
		}
		require.NoError(t, res.s.Close())
	}
	wg.Wait()
	for i, res := range results {
		require.Equal(t, h.expected(res.ps, 0, n), res.got, "subscriber %d", i)
		require.ErrorIs(t, res.s.Err(), pubsub.ErrClosed)
	}
	st := b.Stats()
	require.Equal(t, 0, st.Subscriptions)
	require.Greater(t, st.Delivered, int64(0))
}

// TestSubscription_Resume: streams closed at random points and resumed from
// Revision() join into the uninterrupted one.
func TestSubscription_Resume(t *testing.T) {
	b := pubsub.NewBroker(1, nil)
	defer b.Close()
	h := &published{}
	ps := pats(t, "user:*", "x")
	s, err := b.Subscribe(ps, &pubsub.SubscribeOptions{Buffer: 8})
	require.NoError(t, err)
	const n = 2000
	pubDone := make(chan struct{})
	go func() { publishRandom(b, h, 2, n, 7); close(pubDone) }()
	r := rand.New(rand.NewPCG(3, 3))
	var got []pubsub.Event
	resumes := 0
	for {
		k := 1 + r.IntN(40)
		finished := false
		for i := 0; i < k; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			ev, err := s.Next(ctx)
			cancel()
			if err != nil {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				select {
				case <-pubDone:
					finished = true
				default:
				}
				break
			}
			got = append(got, ev)
		}
		if finished {
			break
		}
		require.NoError(t, s.Close())
		for ev := range s.Events() {
			got = append(got, ev)
		}
		from := s.Revision()
		s, err = b.Subscribe(ps, &pubsub.SubscribeOptions{FromRevision: from, Buffer: 8})
		require.NoError(t, err)
		resumes++
	}
	require.NoError(t, s.Close())
	require.Greater(t, resumes, 10)
	require.Equal(t, h.expected(ps, 1, n+1), got)
}

// TestSubscription_SlowConsumerCompacted: a subscriber that never reads
// holds only its buffer, and ends with ErrCompacted once the history has
// moved past it; writers never wait for it.
func TestSubscription_SlowConsumerCompacted(t *testing.T) {
	b := pubsub.NewBroker(0, &pubsub.Options{HistoryEvents: 100})
	defer b.Close()
	s, err := b.Subscribe(pats(t, "*"), &pubsub.SubscribeOptions{Buffer: 10})
	require.NoError(t, err)
	start := time.Now()
	for r := int64(1); r <= 10_000; r++ {
		b.Publish(batch(r, "k"))
	}
	require.Less(t, time.Since(start), 5*time.Second, "publishing must not wait for the subscriber")
	waitHistory(t, b, 100)
	var got []pubsub.Event
	for ev := range s.Events() {
		got = append(got, ev)
	}
	require.Len(t, got, 10, "what was in the buffer is still readable")
	var ce *pubsub.CompactedError
	require.ErrorAs(t, s.Err(), &ce)
	require.Equal(t, int64(10), ce.Revision)
	require.Greater(t, ce.Oldest, int64(10))
	require.Equal(t, int64(10), s.Revision())
	require.LessOrEqual(t, b.Stats().History, 100)
	require.Equal(t, int64(1), b.Stats().Compacted)
}

func TestType_String(t *testing.T) {
	require.Equal(t, "expire", pubsub.Expire.String())
	require.Equal(t, "unknown", pubsub.Type(0).String())
}

// waitHistory waits until the lanes have handled what was published and
// the history is back within max events.
func waitHistory(t *testing.T, b *pubsub.Broker, max int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().History > max {
		if time.Now().After(deadline) {
			t.Fatalf("history holds %d events, limit %d", b.Stats().History, max)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBroker_NoSubscribers: with nobody subscribed the history stays within
// its bounds, and a later subscription resumes from it or is told it is
// too old.
func TestBroker_NoSubscribers(t *testing.T) {
	b := pubsub.NewBroker(0, &pubsub.Options{HistoryEvents: 10})
	defer b.Close()
	for rev := int64(1); rev <= 100; rev++ {
		b.Publish(batch(rev, "k"))
	}
	require.LessOrEqual(t, b.Stats().History, 10)
	s, err := b.Subscribe(pats(t, "k"), &pubsub.SubscribeOptions{FromRevision: 95})
	require.NoError(t, err)
	for rev := int64(96); rev <= 100; rev++ {
		require.Equal(t, rev, next(t, s).Revision)
	}
	b.Publish(batch(101, "k"))
	require.Equal(t, int64(101), next(t, s).Revision)
	require.NoError(t, s.Close())

	old, err := b.Subscribe(pats(t, "k"), &pubsub.SubscribeOptions{FromRevision: 5})
	if err == nil {
		_, err = old.Next(context.Background())
	}
	var compacted *pubsub.CompactedError
	require.ErrorAs(t, err, &compacted)
}

// TestBroker_StatsMaxLag: MaxLag is how far the slowest reader is behind.
func TestBroker_StatsMaxLag(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	s, err := b.Subscribe(pats(t, "k:*"), nil)
	require.NoError(t, err)
	require.Zero(t, b.Stats().MaxLag)
	for rev := int64(1); rev <= 5; rev++ {
		b.Publish(batch(rev, fmt.Sprintf("k:%d", rev)))
	}
	require.Eventually(t, func() bool { return b.Stats().Delivered == 5 }, 5*time.Second, time.Millisecond)
	require.Equal(t, int64(5), b.Stats().MaxLag, "nothing read")
	for range 3 {
		next(t, s)
	}
	require.Equal(t, int64(2), b.Stats().MaxLag)
	next(t, s)
	next(t, s)
	require.Zero(t, b.Stats().MaxLag)
	require.NoError(t, s.Close())
}

// A closed subscription leaves its lane's index, and with it the events
// it still buffers, without waiting for the next batch.
func TestSubscription_Close_LeavesTheIndex(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	cheap, err := b.Subscribe(pats(t, "user:*"), nil)
	require.NoError(t, err)
	regex, err := b.Subscribe(pats(t, `/^user:\d+$/`), nil)
	require.NoError(t, err)
	b.Publish(batch(1, "user:1"))
	next(t, cheap)
	next(t, regex)
	require.Equal(t, 2, pubsub.Indexed(b))
	b.Publish(batch(2, "user:2")) // buffered, never read
	require.Eventually(t, func() bool { return pubsub.Handled(b, 2) }, 5*time.Second, time.Millisecond)
	require.NoError(t, cheap.Close())
	require.NoError(t, regex.Close())
	require.Eventually(t, func() bool { return pubsub.Indexed(b) == 0 }, 5*time.Second, time.Millisecond,
		"no batch comes after the Close")
}
