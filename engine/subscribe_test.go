package engine_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/livekv/livekv/pattern"
	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

// commits records what each committed transaction wrote, by revision.
type commits struct {
	mu   sync.Mutex
	byRe map[int64][]pubsub.Event
}

func (c *commits) add(rev int64, evs []pubsub.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byRe == nil {
		c.byRe = map[int64][]pubsub.Event{}
	}
	c.byRe[rev] = evs
}

// stream returns the events after rev that match any of srcs, in revision
// order, each transaction's in the order it wrote them.
func (c *commits) stream(t testing.TB, srcs []string, after int64) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var revs []int64
	for r := range c.byRe {
		if r > after {
			revs = append(revs, r)
		}
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
	out := []string{}
	for _, r := range revs {
		for _, ev := range c.byRe[r] {
			for _, s := range srcs {
				if pattern.MustParse(s).Match(ev.Key) {
					out = append(out, describe(ev))
					break
				}
			}
		}
	}
	return out
}

func describe(ev pubsub.Event) string {
	return fmt.Sprintf("%d %s %s=%q", ev.Revision, ev.Type, ev.Key, ev.Value)
}

// TestSubscribe_ConcurrentWriters: each subscriber's stream equals the
// committed history filtered by its patterns: ordered, unique, gapless,
// with each transaction's events together.
func TestSubscribe_ConcurrentWriters(t *testing.T) {
	db := open(t, nil)
	subsPats := [][]string{{"user:*"}, {"*:n", "user:1:*"}, {"*"}, {"order:?"}, {`/^(user|order):\d$/`}}
	var subs []*engine.Subscription
	for _, sp := range subsPats {
		for _, buf := range []int{2, 1024} {
			s, err := db.Subscribe(sp, &engine.SubscribeOptions{Buffer: buf})
			require.NoError(t, err)
			subs = append(subs, s)
		}
	}
	keys := []string{"user:1", "user:2", "user:1:n", "order:1", "order:22", "x:n"}
	c := &commits{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 5))
			for i := 0; i < 300; i++ {
				var evs []pubsub.Event
				_, err := db.Update(func(tx *engine.Tx) error {
					evs = evs[:0]
					seen := map[string]int{}
					for n := 1 + r.IntN(3); n > 0; n-- {
						k := keys[r.IntN(len(keys))]
						var ev pubsub.Event
						if r.IntN(4) == 0 {
							if tx.Delete(k) != nil {
								continue
							}
							ev = pubsub.Event{Type: pubsub.Delete, Key: k}
						} else {
							it, err := tx.Set(k, fmt.Sprintf("v%d", r.IntN(100)), nil)
							if err != nil {
								return err
							}
							ev = pubsub.Event{Type: pubsub.Put, Key: k, Value: it.Value}
						}
						ev.Revision = tx.Revision()
						// A key written twice in one transaction is one event,
						// in the place of its first write, with the last value.
						if j, ok := seen[k]; ok {
							evs[j].Type, evs[j].Value = ev.Type, ev.Value
							continue
						}
						seen[k] = len(evs)
						evs = append(evs, ev)
					}
					if len(evs) > 0 {
						c.add(tx.Revision(), append([]pubsub.Event(nil), evs...))
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	for i, s := range subs {
		want := c.stream(t, subsPats[i/2], 0)
		var got []string
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for len(got) < len(want) {
			ev, err := s.Next(ctx)
			require.NoError(t, err, "subscriber %d after %d of %d events", i, len(got), len(want))
			got = append(got, describe(ev))
		}
		cancel()
		require.Equal(t, want, got, "subscriber %d (%v)", i, subsPats[i/2])
		require.NoError(t, s.Close())
	}
}

// TestSubscribe_Initial: the initial items plus the events after their
// revision rebuild the final state, while writers run throughout.
func TestSubscribe_Initial(t *testing.T) {
	db := open(t, nil)
	for i := 0; i < 50; i++ {
		_, err := db.Set(fmt.Sprintf("todo:%02d", i), "0", nil)
		require.NoError(t, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprintf("todo:%02d", r.IntN(60))
			if r.IntN(5) == 0 {
				_, _ = db.Delete(k)
			} else if _, _, err := db.Increment(k, 1); err != nil {
				t.Error(err)
				return
			}
			_, _ = db.Set("other", "x", nil)
		}
	}()
	time.Sleep(5 * time.Millisecond)
	s, err := db.Subscribe([]string{"todo:*"}, &engine.SubscribeOptions{Initial: true, Buffer: 4})
	require.NoError(t, err)
	state := map[string]string{}
	for _, it := range s.Initial {
		require.LessOrEqual(t, it.Revision, s.InitialRevision)
		state[it.Key] = it.Value
	}
	time.Sleep(5 * time.Millisecond)
	close(stop)
	wg.Wait()
	_, err = db.Set("todo:zz", "end", nil) // the last event to wait for
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for state["todo:zz"] != "end" {
		ev, err := s.Next(ctx)
		require.NoError(t, err)
		require.Greater(t, ev.Revision, s.InitialRevision, "events start after the snapshot")
		if ev.Type == pubsub.Delete {
			delete(state, ev.Key)
		} else {
			state[ev.Key] = ev.Value
		}
	}
	want := map[string]string{}
	for it, err := range enginetest.Items(db.Prefix("todo:", nil)) {
		require.NoError(t, err)
		want[it.Key] = it.Value
	}
	require.Equal(t, want, state)
	require.NoError(t, s.Close())
}

func TestSubscribe_ResumeAndExpiry(t *testing.T) {
	c := newClock()
	db := open(t, c)
	s, err := db.Subscribe([]string{"k*"}, nil)
	require.NoError(t, err)
	_, err = db.Set("k1", "a", &engine.SetOptions{TTL: time.Second})
	require.NoError(t, err)
	_, err = db.Patch("k1", "b")
	require.NoError(t, err)
	n, _, err := db.Increment("k2", 2)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	ctx := context.Background()
	var got []string
	for i := 0; i < 3; i++ {
		ev, err := s.Next(ctx)
		require.NoError(t, err)
		got = append(got, describe(ev))
	}
	require.Equal(t, []string{`1 put k1="a"`, `2 patch k1="ab"`, `3 increment k2="2"`}, got)
	st := db.Stats().Subscriptions
	require.Equal(t, 1, st.Subscriptions)
	require.Equal(t, int64(3), st.Delivered)
	require.Equal(t, int64(3), st.Published)
	require.NoError(t, s.Close())
	require.Equal(t, int64(3), s.Revision())
	require.Equal(t, 0, db.Stats().Subscriptions.Subscriptions)

	c.Advance(time.Second)
	require.Equal(t, 1, engine.Sweep(db))
	require.NoError(t, errOf(db.Delete("k2")))

	s2, err := db.Subscribe([]string{"k*"}, &engine.SubscribeOptions{FromRevision: s.Revision()})
	require.NoError(t, err)
	got = nil
	for i := 0; i < 2; i++ {
		ev, err := s2.Next(ctx)
		require.NoError(t, err)
		got = append(got, describe(ev))
	}
	require.Equal(t, []string{`4 expire k1=""`, `5 delete k2=""`}, got)
	require.NoError(t, db.Close())
	_, err = s2.Next(ctx)
	require.ErrorIs(t, err, engine.ErrClosed, "Close of the DB ends subscriptions")
}

// Start says where a subscription begins, or why it would be refused.
func TestSubscribeOptions_Start(t *testing.T) {
	pats := []*pattern.Pattern{pattern.MustParse("a")}
	for _, tt := range []struct {
		o    engine.SubscribeOptions
		want engine.Position
	}{
		{engine.SubscribeOptions{}, engine.Position{}},
		{engine.SubscribeOptions{Initial: true}, engine.Position{}},
		{engine.SubscribeOptions{FromRevision: 7}, engine.Position{Revision: 8}},
		{engine.SubscribeOptions{From: engine.Position{Revision: 7, Index: 2}}, engine.Position{Revision: 7, Index: 2}},
	} {
		got, err := tt.o.Start(pats)
		require.NoError(t, err, "%+v", tt.o)
		require.Equal(t, tt.want, got, "%+v", tt.o)
	}
	_, err := engine.SubscribeOptions{}.Start(nil)
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, err = engine.SubscribeOptions{From: engine.Position{Index: 1}}.Start(pats)
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, err = engine.SubscribeOptions{Buffer: engine.MaxSubscribeBuffer}.Start(pats)
	require.NoError(t, err)
	_, err = engine.SubscribeOptions{Buffer: engine.MaxSubscribeBuffer + 1}.Start(pats)
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
}

// TestSubscribe_BufferOverLimit: a Buffer over MaxSubscribeBuffer is
// refused. Subscribe with Buffer math.MaxInt panicked (makechan: size out
// of range) holding the writer lock, and every later write and Close
// blocked for ever once the panic was recovered.
func TestSubscribe_BufferOverLimit(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	for _, buffer := range []int{math.MaxInt, engine.MaxSubscribeBuffer + 1} {
		for _, initial := range []bool{false, true} {
			var subErr error
			var panicked any
			func() {
				defer func() { panicked = recover() }()
				_, subErr = db.Subscribe([]string{"*"}, &engine.SubscribeOptions{Buffer: buffer, Initial: initial})
			}()
			require.Nil(t, panicked, "Subscribe panicked instead of returning an error")
			require.ErrorIs(t, subErr, engine.ErrInvalidOptions)
			require.True(t, setReturns(db), "Set blocked after Subscribe: the writer lock was left held")
		}
	}
	require.Zero(t, db.Stats().Snapshots)
	require.NoError(t, db.Close())
}

// TestSubscribe_Initial_PanicReleases: a clock or a Filter that panics
// while the Initial items are read lets its panic go on and leaves no
// snapshot and no subscription open, nor the writer lock held. The
// snapshot and the subscription were left open for good.
func TestSubscribe_Initial_PanicReleases(t *testing.T) {
	for _, what := range []string{"clock", "filter"} {
		t.Run(what, func(t *testing.T) {
			var boom atomic.Bool
			db, err := engine.Open("", &engine.Options{SweepInterval: -1, Now: func() time.Time {
				if what == "clock" && boom.Load() {
					panic("failure")
				}
				return time.Now()
			}})
			require.NoError(t, err)
			_, err = db.Set("a", "v", nil)
			require.NoError(t, err)
			filter := func(string) bool {
				if what == "filter" && boom.Load() {
					panic("failure")
				}
				return true
			}
			boom.Store(true)
			var panicked any
			func() {
				defer func() { panicked = recover() }()
				_, _ = db.Subscribe([]string{"/a/"}, &engine.SubscribeOptions{Initial: true, Filter: filter})
			}()
			boom.Store(false)
			require.Equal(t, "failure", panicked)
			require.True(t, setReturns(db), "Set blocked after the recovered panic: the writer lock was left held")
			st := db.Stats()
			require.Zero(t, st.Snapshots, "the snapshot was left open")
			require.Zero(t, st.Subscriptions.Subscriptions, "the subscription was left open")
			require.NoError(t, db.Close())
		})
	}
}

func TestSubscribe_Errors(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1, HistoryEvents: 2})
	require.NoError(t, err)
	_, err = db.Subscribe(nil, nil)
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, err = db.Subscribe([]string{`a\`}, nil)
	require.ErrorIs(t, err, pattern.ErrSyntax)
	_, err = db.Subscribe([]string{"a"}, &engine.SubscribeOptions{Initial: true, FromRevision: 1})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, err = db.Subscribe([]string{"a"}, &engine.SubscribeOptions{FromRevision: -1})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, err = db.Subscribe([]string{"a"}, &engine.SubscribeOptions{FromRevision: 1, From: engine.Position{Revision: 2}})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, err = db.SubscribePatterns([]*pattern.Pattern{pattern.MustParse("a"), nil}, nil)
	require.ErrorIs(t, err, engine.ErrInvalidOptions, "a nil pattern")
	for i := 0; i < 10; i++ {
		_, err := db.Set("a", "v", nil)
		require.NoError(t, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = db.Subscribe([]string{"a"}, &engine.SubscribeOptions{FromRevision: 1})
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.ErrorIs(t, err, pubsub.ErrCompacted)
	require.NoError(t, db.Close())
	_, err = db.Subscribe([]string{"a"}, nil)
	require.ErrorIs(t, err, engine.ErrClosed)
}

// TestSubscribe_Initial_OnDisk subscribes with Initial again and again
// while writers write one key on disk, where a commit is published after
// its fsync, outside the writer lock: the first event always follows the
// initial items' revision, never repeats it, never skips past it.
func TestSubscribe_Initial_OnDisk(t *testing.T) {
	db, err := engine.Open("db", &engine.Options{FS: vfs.NewMemFS(), SweepInterval: -1, CheckpointBytes: -1})
	require.NoError(t, err)
	defer db.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if _, err := db.Set("k", strconv.Itoa(i), nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		sub, err := db.Subscribe([]string{"k"}, &engine.SubscribeOptions{Initial: true})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ev, err := sub.Next(ctx)
		cancel()
		require.NoError(t, err)
		require.Equal(t, sub.InitialRevision+1, ev.Revision, "the first event after the initial items")
		require.NoError(t, sub.Close())
	}
}

// TestSubscribe_RevisionAhead: a revision to start after that is past
// the newest the DB has made is of another history (a store in memory
// that restarted, one restored from an older backup): resuming from it
// would skip the changes up to it unsaid, so it is refused.
func TestSubscribe_RevisionAhead(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	for range 5 {
		_, err := db.Set("a", "v", nil)
		require.NoError(t, err)
	}
	for _, o := range []engine.SubscribeOptions{
		{FromRevision: 6},
		{FromRevision: 100},
		{From: engine.Position{Revision: 7}},
		{From: engine.Position{Revision: 6, Index: 1}}, // inside a transaction not made
	} {
		_, err := db.Subscribe([]string{"a"}, &o)
		require.ErrorIs(t, err, engine.ErrRevisionAhead, "%+v", o)
		require.ErrorContains(t, err, "the newest is 5")
	}
	// The last revision there can be: no position comes after it.
	for _, o := range []engine.SubscribeOptions{{FromRevision: math.MaxInt64}, {From: engine.Position{Revision: math.MaxInt64}}} {
		_, err := db.Subscribe([]string{"a"}, &o)
		require.ErrorIs(t, err, engine.ErrRevisionAhead, "%+v", o)
	}
	for _, o := range []engine.SubscribeOptions{{FromRevision: 5}, {From: engine.Position{Revision: 6}}, {}} {
		s, err := db.Subscribe([]string{"a"}, &o)
		require.NoError(t, err, "%+v", o)
		_, err = db.Set("a", "w", nil)
		require.NoError(t, err)
		ev, err := s.Next(context.Background())
		require.NoError(t, err)
		require.Equal(t, "w", ev.Value)
		require.NoError(t, s.Close())
	}
}
