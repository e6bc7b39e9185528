package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
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
// every event.
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

// TestBroker_FilterBeforeRegex: a key the subscription's Filter refuses
// is one no costly pattern matches: the regex never runs on it, so its
// running out of time ends nothing, live or from the history; a cheap
// pattern still delivers such a key.
func TestBroker_FilterBeforeRegex(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	filter := func(key string) bool { return !strings.HasSuffix(key, "!") }
	ps := pats(t, `/^(a+)+$/`, "b:*")
	live, err := b.Subscribe(ps, &pubsub.SubscribeOptions{Filter: filter})
	require.NoError(t, err)
	b.Publish(batch(1, hostileKey, "aa", "b:!"))
	b.Publish(batch(2, hostileKey))
	b.Publish(batch(3, "aaa"))
	later, err := b.Subscribe(ps, &pubsub.SubscribeOptions{Filter: filter, From: pubsub.After(0)})
	require.NoError(t, err)
	for _, s := range []*pubsub.Subscription{live, later} {
		require.Equal(t, "aa", next(t, s).Key)
		require.Equal(t, "b:!", next(t, s).Key, "a cheap pattern's key, though refused")
		require.Equal(t, "aaa", next(t, s).Key)
		require.NoError(t, s.Close())
		require.Equal(t, int64(3), s.Revision())
	}
	require.Zero(t, b.Stats().TimedOut)
	require.Zero(t, ps[0].Timeouts(), "the regex never ran on the refused key")
}

func nextWithin(t testing.TB, s *pubsub.Subscription, d time.Duration) pubsub.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ev, err := s.Next(ctx)
	require.NoError(t, err)
	return ev
}

// TestBroker_RegexLane: 64 regex subscriptions in step are served by the
// regex lane, not by 64 goroutines of their own; a key outside a regex's
// literal prefix never runs it, however it would backtrack.
func TestBroker_RegexLane(t *testing.T) {
	pubsub.SetRegexBudget(t, time.Hour) // no subscription is left alone for a slow moment
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	before := runtime.NumGoroutine()
	var subs []*pubsub.Subscription
	var ps []*pattern.Pattern
	for i := 0; i < 64; i++ {
		p := pattern.MustParse(`/^k:(a+)+$/`)
		s, err := b.Subscribe([]*pattern.Pattern{p}, nil)
		require.NoError(t, err)
		subs, ps = append(subs, s), append(ps, p)
	}
	for rev := int64(1); rev <= 20; rev++ {
		b.Publish(batch(rev, "x:"+hostileKey, fmt.Sprintf("k:%s", strings.Repeat("a", int(rev)))))
	}
	for i, s := range subs {
		for rev := 1; rev <= 20; rev++ {
			require.Equal(t, "k:"+strings.Repeat("a", rev), next(t, s).Key, "subscription %d", i)
		}
		require.True(t, pubsub.InStep(s), "subscription %d", i)
	}
	st := b.Stats()
	require.Zero(t, st.CatchingUp, "no goroutine of their own")
	require.Less(t, runtime.NumGoroutine()-before, 8, "64 subscriptions, no goroutine each")
	require.Zero(t, st.TimedOut)
	for _, p := range ps {
		require.Zero(t, p.Timeouts(), "x:aaa…! is outside the prefix: never run")
	}
}

// TestBroker_HostileDelaysRegexLaneOnce: a regex that cannot decide on a
// key delays the other regex subscriptions once, by about the lane's
// budget (the lane leaves it to the goroutine stuck in it), not by its
// MatchTimeout try: it ends there, and they go on promptly.
func TestBroker_HostileDelaysRegexLaneOnce(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	hostile, err := b.Subscribe(pats(t, `/^(a+)+$/`), nil)
	require.NoError(t, err)
	benign, err := b.Subscribe(pats(t, `/^k:\d+$/`), nil)
	require.NoError(t, err)
	plain, err := b.Subscribe(pats(t, "k:*"), nil)
	require.NoError(t, err)

	start := time.Now()
	b.Publish(batch(1, hostileKey))
	b.Publish(batch(2, "k:2"))
	require.Equal(t, "k:2", nextWithin(t, plain, 200*time.Millisecond).Key, "the cheap lane does not wait")
	require.Equal(t, "k:2", nextWithin(t, benign, 5*time.Second).Key)
	first := time.Since(start)
	_, err = hostile.Next(context.Background())
	require.ErrorIs(t, err, pubsub.ErrPatternTimeout)

	var slowest time.Duration
	for rev := int64(3); rev <= 20; rev++ {
		start := time.Now()
		b.Publish(batch(rev, hostileKey, fmt.Sprintf("k:%d", rev)))
		require.Equal(t, fmt.Sprintf("k:%d", rev), nextWithin(t, benign, 5*time.Second).Key)
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("benign regex subscription: first event after %v (one budget), then at most %v", first, slowest)
	// A budget plus the wait for the watchdog to run; never more than the
	// hostile subscription's two tries, each MatchTimeout (10ms) plus
	// regexp2's clock (2ms ticks), or the wait for a turn.
	require.Less(t, first, time.Second, "about one budget, at most the hostile one's tries")
	require.Less(t, slowest, 100*time.Millisecond, "the hostile one has ended: no more delay")
	require.Equal(t, int64(1), b.Stats().TimedOut)
}

// TestBroker_SlowRegexLeftAlone: a subscription whose regexes take longer
// than the regex lane's budget gets a goroutine of its own, for as long as
// they do (with a budget of 0, always), and misses nothing; the others
// stay in step.
func TestBroker_SlowRegexLeftAlone(t *testing.T) {
	pubsub.SetRegexBudget(t, 0) // every matching is over budget
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	slow, err := b.Subscribe(pats(t, `/^k:\d+$/`), &pubsub.SubscribeOptions{Buffer: 1})
	require.NoError(t, err)
	other, err := b.Subscribe(pats(t, "k:*"), nil)
	require.NoError(t, err)
	for rev := int64(1); rev <= 50; rev++ {
		b.Publish(batch(rev, fmt.Sprintf("k:%d", rev), "k:x"))
	}
	for rev := 1; rev <= 50; rev++ {
		require.Equal(t, fmt.Sprintf("k:%d", rev), next(t, slow).Key)
		require.Equal(t, fmt.Sprintf("k:%d", rev), next(t, other).Key)
		next(t, other) // k:x
	}
	require.False(t, pubsub.InStep(slow), "left alone")
	require.True(t, pubsub.InStep(other))
	require.Equal(t, 1, b.Stats().CatchingUp)
	require.NoError(t, slow.Close())
	require.Equal(t, int64(50), slow.Revision())
}

// TestBroker_RegexHandedBack: a subscription left alone because its
// matching of one batch took over the budget (a budget of 0 here, as a
// machine's pause would make it) goes back to the regex lane once its
// matching has been well within the budget for a while and it has caught
// up, and it misses nothing and gets nothing twice on the way. Slow on
// every batch, it stays alone.
func TestBroker_RegexHandedBack(t *testing.T) {
	pubsub.SetRegexBudget(t, 0)
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	s, err := b.Subscribe(pats(t, `/^k:\d+$/`), nil)
	require.NoError(t, err)
	rev := int64(0)
	publish := func(n int) {
		for range n {
			rev++
			b.Publish(batch(rev, fmt.Sprintf("k:%d", rev), "x"))
		}
	}
	got := int64(0)
	receive := func() {
		for got < rev {
			got++
			require.Equal(t, fmt.Sprintf("k:%d", got), nextWithin(t, s, 5*time.Second).Key)
		}
	}
	publish(1)
	receive()
	require.False(t, pubsub.InStep(s), "over a budget of 0: left alone")
	publish(400) // each over the budget: still alone
	receive()
	require.False(t, pubsub.InStep(s), "still over the budget: still alone")
	require.Equal(t, 1, b.Stats().CatchingUp)

	pubsub.SetLaneBudget(b, time.Second) // from now on, well within it
	require.Eventually(t, func() bool {
		publish(50)
		receive()
		return pubsub.InStep(s)
	}, 20*time.Second, time.Millisecond, "never handed back to the lane")
	require.Equal(t, 0, b.Stats().CatchingUp)
	publish(100) // from the lane now, in order, each once
	receive()
	require.True(t, pubsub.InStep(s))
	require.NoError(t, s.Close())
	require.Equal(t, rev, s.Revision())
	select {
	case ev, ok := <-s.Events():
		require.False(t, ok, "an event after the last: %+v", ev)
	case <-time.After(time.Second):
		t.Fatal("Events not closed")
	}
}

// TestBroker_HostileRegexesTakenOver: 64 regex subscriptions that meet a
// key they cannot decide on at once delay another regex subscription by
// a budget each while a matching turn is free (the lane leaves the stuck
// one to the goroutine matching it and goes on in another), and by its
// tries when none is: never by more than the 64 subscriptions' tries.
// The stuck ones still end with the typed error, having skipped nothing.
func TestBroker_HostileRegexesTakenOver(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	var hostile []*pubsub.Subscription
	for i := 0; i < 64; i++ {
		s, err := b.Subscribe(pats(t, `/^(a+)+$/`), nil)
		require.NoError(t, err)
		hostile = append(hostile, s)
	}
	benign, err := b.Subscribe(pats(t, `/^k:\d+$/`), nil)
	require.NoError(t, err)

	start := time.Now()
	b.Publish(batch(1, hostileKey))
	b.Publish(batch(2, "k:2"))
	// Two tries each are 128 times MatchTimeout (10ms) plus regexp2's
	// clock (2ms ticks): about 1.5s; a budget each is 64ms. Each takeover
	// also waits for the watchdog's timer to run: up to a scheduler time
	// slice (10ms) while regexes hold every core, more on a loaded
	// machine.
	require.Equal(t, "k:2", nextWithin(t, benign, 4*time.Second).Key,
		"64 stuck regexes cost the others at most their tries")
	t.Logf("benign regex subscription: its event after %v", time.Since(start))

	for i, s := range hostile {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := s.Next(ctx)
		cancel()
		require.ErrorIs(t, err, pubsub.ErrPatternTimeout, "hostile subscription %d", i)
		var pe *pubsub.PatternTimeoutError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, int64(1), pe.Revision)
		require.Equal(t, int64(0), s.Revision(), "resume from before the undecided key")
	}
	require.Equal(t, int64(64), b.Stats().TimedOut)
	require.Eventually(t, func() bool { return b.Stats().CatchingUp == 0 }, 5*time.Second, time.Millisecond,
		"the stuck goroutines are gone")
	// The takeovers left the benign subscription to the lane. Asked
	// before the next batch: matching it, a holder the machine pauses for
	// over the lane's 1ms budget (another process, a collection) would
	// rightly leave it to a goroutine of its own.
	require.True(t, pubsub.InStep(benign), "still served by the lane")
	b.Publish(batch(3, hostileKey, "k:3"))
	require.Equal(t, "k:3", nextWithin(t, benign, 500*time.Millisecond).Key)
}

// TestBroker_HostileMatchingLeavesACore: however many subscriptions are
// stuck in regexes at once, at most the regex lane and its turns
// (MatchTurns, fewer than the processors) match at a time, so that the
// program's other goroutines, writers among them, are not queued behind
// them. Counted from goroutine stacks sampled while 64 subscriptions
// chew on a key none can decide on.
func TestBroker_HostileMatchingLeavesACore(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	for i := 0; i < 64; i++ {
		_, err := b.Subscribe(pats(t, `/^(a+)+$/`), nil)
		require.NoError(t, err)
	}
	b.Publish(batch(1, hostileKey))
	limit := pubsub.MatchTurns(runtime.GOMAXPROCS(0)) + 1 // and the lane
	buf := make([]byte, 1<<20)
	most, samples := 0, 0
	deadline := time.Now().Add(20 * time.Second)
	for b.Stats().TimedOut < 64 {
		require.True(t, time.Now().Before(deadline), "the hostile subscriptions never all ended")
		n := runtime.Stack(buf, true)
		matching := 0
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "regexp2.(*runner)") {
				matching++
			}
		}
		most, samples = max(most, matching), samples+1
		time.Sleep(time.Millisecond)
	}
	t.Logf("at most %d goroutines matching in %d samples", most, samples)
	require.LessOrEqual(t, most, limit, "goroutines matching regexes at once")
}

// TestSubscription_Close_WhileBehind closes a subscription whose goroutine
// is far behind, matching a slow regex against batch after batch: Close
// returns within about one batch's matching, not once the goroutine has
// matched everything up to its lane.
func TestSubscription_Close_WhileBehind(t *testing.T) {
	p := slowRegex(t)
	key := slowToRefuse(t, p)
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	const n = 1000 // about 2s of matching
	for rev := int64(1); rev <= n; rev++ {
		b.Publish(pubsub.Batch{Revision: rev, Events: []pubsub.Event{{Revision: rev, Type: pubsub.Put, Key: key}}})
	}
	s, err := b.Subscribe([]*pattern.Pattern{p}, &pubsub.SubscribeOptions{From: pubsub.Position{Revision: 1}})
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	require.NoError(t, s.Close())
	require.Less(t, time.Since(start), 500*time.Millisecond, "Close waited for the follower's matching")
	require.Less(t, s.Position().Revision, int64(n), "it was still behind")
}

// slowRegex is /^(a+)+b$/ with a MatchTimeout of a second: slow on
// slowToRefuse's key, but deciding, even under the race detector on a
// loaded machine, where the default 10ms would run out.
func slowRegex(t *testing.T) *pattern.Pattern {
	t.Helper()
	p, err := pattern.ParseWith(`/^(a+)+b$/`, &pattern.Options{MatchTimeout: time.Second})
	require.NoError(t, err)
	return p
}

// slowToRefuse returns the shortest key a...ac that /^(a+)+b$/, p, takes
// over 2ms to refuse (and decides on).
func slowToRefuse(t *testing.T, p *pattern.Pattern) string {
	t.Helper()
	for n := 12; n < 30; n++ {
		k := strings.Repeat("a", n) + "c"
		p.TryMatch(k) // warm
		start := time.Now()
		ok, err := p.TryMatch(k)
		require.False(t, ok)
		require.NoError(t, err)
		if time.Since(start) > 2*time.Millisecond {
			return k
		}
	}
	t.Fatal("no key a...ac takes 2ms to refuse")
	return ""
}

// TestSubscription_Close_WhileDetached: a regex subscription that the lane
// detached in the middle of a batch (over budget) is matched on by a
// goroutine of its own, in that batch and then in the later ones it
// follows alone. Close stops it at the next key and returns once it is
// gone, and the broker's Close does not wait for the rest of a batch.
func TestSubscription_Close_WhileDetached(t *testing.T) {
	pubsub.SetRegexBudget(t, 0) // detached after its first key
	p := slowRegex(t)
	key := slowToRefuse(t, p)
	batch := func(rev int64, n int) pubsub.Batch {
		bt := pubsub.Batch{Revision: rev}
		for range n {
			bt.Events = append(bt.Events, pubsub.Event{Revision: rev, Type: pubsub.Put, Key: key})
		}
		return bt
	}
	for name, batches := range map[string][]pubsub.Batch{
		"in the batch it was detached in": {batch(1, 500)},              // over a second of matching
		"in a batch it follows alone":     {batch(1, 2), batch(2, 500)}, // the first done in milliseconds
	} {
		t.Run(name, func(t *testing.T) {
			b := pubsub.NewBroker(0, nil)
			defer b.Close()
			s, err := b.Subscribe([]*pattern.Pattern{p}, nil)
			require.NoError(t, err)
			for _, bt := range batches {
				b.Publish(bt)
			}
			require.Eventually(t, func() bool { return b.Stats().CatchingUp == 1 }, 5*time.Second, time.Millisecond, "detached")
			time.Sleep(50 * time.Millisecond) // its own goroutine matches meanwhile
			start := time.Now()
			require.NoError(t, s.Close())
			require.Less(t, time.Since(start), 500*time.Millisecond, "Close waited for the rest of the batch")
			require.Zero(t, b.Stats().CatchingUp, "the subscription's goroutine runs after its Close returned")
			start = time.Now()
			b.Close()
			require.Less(t, time.Since(start), 500*time.Millisecond, "the broker's Close waited for the rest of the batch")
		})
	}
}

// TestSubscription_CloseWith ends a subscription with the given reason,
// after the events already buffered.
func TestSubscription_CloseWith(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	s, err := b.Subscribe([]*pattern.Pattern{pattern.MustParse("k")}, nil)
	require.NoError(t, err)
	b.Publish(pubsub.Batch{Revision: 1, Events: []pubsub.Event{{Revision: 1, Type: pubsub.Put, Key: "k"}}})
	require.Eventually(t, func() bool { return len(s.Events()) == 1 }, 5*time.Second, time.Millisecond)
	reason := errors.New("no leader")
	require.NoError(t, s.CloseWith(reason))
	ev, err := s.Next(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), ev.Revision, "a buffered event is still read")
	_, err = s.Next(context.Background())
	require.ErrorIs(t, err, reason)
	require.ErrorIs(t, s.Err(), reason)
	require.NoError(t, s.Close(), "closing again does nothing")
	require.ErrorIs(t, s.Err(), reason)

	// No reason is ErrClosed: a reader of Next learns that it ended.
	s, err = b.Subscribe([]*pattern.Pattern{pattern.MustParse("k")}, nil)
	require.NoError(t, err)
	require.NoError(t, s.CloseWith(nil))
	_, err = s.Next(context.Background())
	require.ErrorIs(t, err, pubsub.ErrClosed)
}

// TestBroker_LongGlobsOnTheRegexLane: a glob with many tokens after its
// first * costs up to their number times the key's length on a key it
// does not match (1.5 ms for a glob of 255 bytes on a key of 1 KiB), and
// the cheap lane matches all its subscriptions one after another: such a
// glob goes to the regex lane, where that cost falls on its own
// subscription. It still gets exactly the keys it matches.
func TestBroker_LongGlobsOnTheRegexLane(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	long := "*" + strings.Repeat("a?", 126) + "x*"
	hostile, err := b.Subscribe(pats(t, long), nil)
	require.NoError(t, err)
	defer hostile.Close()
	short, err := b.Subscribe(pats(t, "user:*:session:?*"), nil)
	require.NoError(t, err)
	defer short.Close()
	require.True(t, pubsub.OnRegexLane(hostile), "a long glob on the cheap lane")
	require.False(t, pubsub.OnRegexLane(short), "a short glob on the regex lane")

	miss := strings.Repeat("a", 1000) + "zzxb"
	hit := strings.Repeat("a1", 126) + "x!"
	b.Publish(batch(1, miss, "user:1:session:9"))
	b.Publish(batch(2, hit))
	require.Equal(t, hit, nextWithin(t, hostile, 10*time.Second).Key)
	require.Equal(t, "user:1:session:9", nextWithin(t, short, 10*time.Second).Key)
}

// TestSubscription_StalledReaderCostsLittle: a subscription whose reader
// stopped reading is fed by a goroutine of its own, which looks for room
// ever less often (up to every 50 ms), not every millisecond; once the
// reader reads again it gets every event, in order.
func TestSubscription_StalledReaderCostsLittle(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	s, err := b.Subscribe(pats(t, "k:*"), &pubsub.SubscribeOptions{Buffer: 1})
	require.NoError(t, err)
	defer s.Close()
	for rev := int64(1); rev <= 3; rev++ {
		b.Publish(batch(rev, fmt.Sprintf("k:%d", rev)))
	}
	require.Eventually(t, func() bool { return pubsub.RoomLooks(b) > 0 }, 5*time.Second, time.Millisecond, "no follower waits for room")
	before := pubsub.RoomLooks(b)
	time.Sleep(500 * time.Millisecond)
	looks := pubsub.RoomLooks(b) - before
	require.Less(t, looks, int64(50), "looks for room in half a second of a stalled reader")
	for rev := int64(1); rev <= 3; rev++ {
		require.Equal(t, fmt.Sprintf("k:%d", rev), nextWithin(t, s, 5*time.Second).Key)
	}
}

// TestSubscription_CloseAmongManyUndecidedRegexes: a key that none of a
// subscription's many regexes can decide costs two tries of each; Close
// stops between two tries, and does not wait for the rest.
func TestSubscription_CloseAmongManyUndecidedRegexes(t *testing.T) {
	pubsub.SetRegexBudget(t, 0) // detached after its first key
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	var ps []*pattern.Pattern
	for i := range 64 {
		ps = append(ps, pattern.MustParse(fmt.Sprintf(`/^(a+)+$|^zz%d/`, i)))
	}
	s, err := b.Subscribe(ps, nil)
	require.NoError(t, err)
	b.Publish(batch(1, hostileKey))
	require.Eventually(t, func() bool { return b.Stats().CatchingUp == 1 }, 5*time.Second, time.Millisecond, "detached")
	time.Sleep(50 * time.Millisecond) // its own goroutine tries them meanwhile
	start := time.Now()
	require.NoError(t, s.Close())
	require.Less(t, time.Since(start), time.Second, "Close waited for every try (64 regexes, two tries each, 10 ms at least a try)")
	require.Zero(t, b.Stats().CatchingUp)
}

// TestBroker_SecondCloseWaitsForTheFirst: a Close that comes while
// another waits for the broker's goroutines (here the regex lane, held in
// a subscription's Filter) returns only once they have ended; it used to
// return at once.
func TestBroker_SecondCloseWaitsForTheFirst(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	filter := func(string) bool {
		once.Do(func() { close(entered) })
		<-release
		return true
	}
	_, err := b.Subscribe(pats(t, `/^k/`), &pubsub.SubscribeOptions{Filter: filter})
	require.NoError(t, err)
	b.Publish(batch(1, "k"))
	<-entered
	first := make(chan struct{})
	go func() { b.Close(); close(first) }()
	require.Eventually(t, func() bool { // the first Close has begun
		_, err := b.Subscribe(pats(t, "x"), nil)
		return errors.Is(err, pubsub.ErrClosed)
	}, 5*time.Second, time.Millisecond)
	second := make(chan struct{})
	go func() { b.Close(); close(second) }()
	select {
	case <-second:
		close(release)
		<-first
		t.Fatal("the second Close returned while the regex lane still ran")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-first
	<-second
}

// TestBroker_ManyKeysOneSubscription: a subscription to many keys (20,000
// exact patterns here) costs the cheap lane, for a transaction that
// writes two of them among 2,000 others, a lookup in its index per key,
// not a match of every one of its patterns against every key after the
// first it matches (40 million, which held every other subscriber for
// 0.3 s, 2.6 s under -race).
func TestBroker_ManyKeysOneSubscription(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	var watched []*pattern.Pattern
	for i := range 20_000 {
		watched = append(watched, pattern.ExactKey(fmt.Sprintf("w:%d", i)))
	}
	many, err := b.Subscribe(watched, nil)
	require.NoError(t, err)
	defer many.Close()
	other, err := b.Subscribe(pats(t, "o"), nil)
	require.NoError(t, err)
	defer other.Close()
	b.Publish(batch(1, "o")) // both taken into the lane
	next(t, other)

	keys := []string{"w:7"}
	for i := range 2000 {
		keys = append(keys, fmt.Sprintf("x:%d", i))
	}
	keys = append(keys, "w:19999")
	start := time.Now()
	b.Publish(batch(2, keys...))
	b.Publish(batch(3, "o"))
	require.Equal(t, "o", nextWithin(t, other, 10*time.Second).Key)
	took := time.Since(start)
	t.Logf("the other subscriber's event after %v", took)
	require.Less(t, took, 500*time.Millisecond, "the cheap lane matched every pattern against every key")
	require.Equal(t, "w:7", next(t, many).Key)
	ev := next(t, many)
	require.Equal(t, "w:19999", ev.Key)
	require.Equal(t, 2001, ev.Index)
}

// TestBroker_ManyWatchersOneTransaction: a transaction that writes 10,000
// keys, each watched by a subscription of its own, costs the cheap lane a
// lookup a key, not, for each subscription, a match of its pattern
// against every key after its own (50 million).
func TestBroker_ManyWatchersOneTransaction(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	const n = 10_000
	watchers := make([]*pubsub.Subscription, n)
	keys := make([]string, n)
	for i := range watchers {
		keys[i] = fmt.Sprintf("w:%d", i)
		s, err := b.Subscribe([]*pattern.Pattern{pattern.ExactKey(keys[i])}, &pubsub.SubscribeOptions{Buffer: 1})
		require.NoError(t, err)
		defer s.Close()
		watchers[i] = s
	}
	other, err := b.Subscribe(pats(t, "o"), nil)
	require.NoError(t, err)
	defer other.Close()
	b.Publish(batch(1, "o")) // all taken into the lane
	next(t, other)

	start := time.Now()
	b.Publish(batch(2, keys...))
	b.Publish(batch(3, "o"))
	require.Equal(t, "o", nextWithin(t, other, 20*time.Second).Key)
	took := time.Since(start)
	t.Logf("the other subscriber's event after %v", took)
	require.Less(t, took, 500*time.Millisecond, "the cheap lane matched each subscription against every later key")
	for i, s := range watchers {
		ev := next(t, s)
		require.Equal(t, keys[i], ev.Key)
		require.Equal(t, i, ev.Index)
	}
}

// TestSubscription_ManyKeysCatchUp: a subscription to many keys (20,000
// exact patterns) whose reader fell behind is fed from the history by a
// goroutine of its own that looks each key up among its patterns, rather
// than match every pattern against every key (40 million matches for a
// transaction of 2,000 keys: catching up on ten of them took 1.5 s, 18 s
// under -race, so that behind writers any faster it never caught up).
func TestSubscription_ManyKeysCatchUp(t *testing.T) {
	b := pubsub.NewBroker(0, nil)
	defer b.Close()
	var watched []*pattern.Pattern
	for i := range 20_000 {
		watched = append(watched, pattern.ExactKey(fmt.Sprintf("w:%d", i)))
	}
	s, err := b.Subscribe(watched, &pubsub.SubscribeOptions{Buffer: 1})
	require.NoError(t, err)
	defer s.Close()
	const n = 10
	for rev := int64(1); rev <= n; rev++ {
		keys := []string{fmt.Sprintf("w:%d", rev)}
		for i := range 2000 {
			keys = append(keys, fmt.Sprintf("x:%d", i))
		}
		b.Publish(batch(rev, append(keys, "w:19999")...))
	}
	start := time.Now()
	for rev := int64(1); rev <= n; rev++ {
		require.Equal(t, fmt.Sprintf("w:%d", rev), nextWithin(t, s, 20*time.Second).Key)
		ev := nextWithin(t, s, 20*time.Second)
		require.Equal(t, "w:19999", ev.Key)
		require.Equal(t, 2001, ev.Index)
	}
	took := time.Since(start)
	t.Logf("caught up on %d transactions in %v", n, took)
	require.Less(t, took, time.Second, "the follower matched every pattern against every key")
}
