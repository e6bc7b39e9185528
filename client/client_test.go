package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/client"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

func TestOperations(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)

	_, err := c.Get(ctx, "k")
	require.ErrorIs(t, err, engine.ErrNotFound)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 404, e.Code)

	rev, err := c.Set(ctx, "k", "v1", nil)
	require.NoError(t, err)
	require.Equal(t, s.db.Revision(), rev)
	it, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, client.Item{Key: "k", Value: "v1", Revision: rev}, it)

	_, err = c.Set(ctx, "t", "soon", &client.SetOptions{TTL: time.Minute})
	require.NoError(t, err)
	stored, err := s.db.Get("t")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Minute), stored.ExpiresAt, 5*time.Second)
	_, err = c.Set(ctx, "t", "x", &client.SetOptions{TTL: time.Microsecond})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)

	_, err = c.Set(ctx, "j", `{"a":1,"b":2}`, nil)
	require.NoError(t, err)
	prev, err := c.Patch(ctx, "j", `{"b":null,"c":3}`)
	require.NoError(t, err)
	it, err = c.Get(ctx, "j")
	require.NoError(t, err)
	require.Equal(t, `{"a":1,"c":3}`, it.Value)
	require.Equal(t, prev, it.Revision)

	n, rev, err := c.Increment(ctx, "n", 5)
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	n, _, err = c.Increment(ctx, "n", -7)
	require.NoError(t, err)
	require.Equal(t, int64(-2), n)
	require.Greater(t, s.db.Revision(), rev)
	_, _, err = c.Increment(ctx, "k", 1)
	require.ErrorIs(t, err, engine.ErrNotInteger)
	require.ErrorIs(t, err, client.ErrBadRequest)

	// Compare-and-swap: 0 is "absent"; a stale revision conflicts.
	_, err = c.CompareAndSwap(ctx, "k", 0, "x", nil)
	require.ErrorIs(t, err, engine.ErrConflict)
	cur, err := c.Get(ctx, "k")
	require.NoError(t, err)
	rev, err = c.CompareAndSwap(ctx, "k", cur.Revision, "v2", nil)
	require.NoError(t, err)
	_, err = c.CompareAndSwap(ctx, "k", cur.Revision, "v3", nil)
	require.ErrorIs(t, err, engine.ErrConflict)
	_, err = c.CompareAndSwap(ctx, "new", 0, "first", &client.SetOptions{TTL: time.Hour})
	require.NoError(t, err)
	it, err = c.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, client.Item{Key: "k", Value: "v2", Revision: rev}, it)

	drev, err := c.Delete(ctx, "k")
	require.NoError(t, err)
	require.Greater(t, drev, rev)
	_, err = c.Delete(ctx, "k")
	require.ErrorIs(t, err, engine.ErrNotFound)

	_, err = c.Set(ctx, "", "v", nil)
	require.ErrorIs(t, err, client.ErrBadRequest)
	_, err = c.Set(ctx, "big", string(make([]byte, 2<<20)), nil)
	require.Error(t, err, "a value over the server's limits")
}

func TestRange(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	for i := 0; i < 25; i++ {
		_, err := s.db.Set(fmt.Sprintf("r:%02d", i), fmt.Sprint(i), nil)
		require.NoError(t, err)
	}
	_, err := s.db.Set("s", "other", nil)
	require.NoError(t, err)
	keys := func(seq func(func(client.Item, error) bool)) []string {
		var out []string
		for it, err := range seq {
			require.NoError(t, err)
			out = append(out, it.Key)
		}
		return out
	}
	want := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("r:%02d", i))
		}
		return out
	}
	require.Equal(t, want(3, 17), keys(c.Range(ctx, "r:03", "r:17", &client.RangeOptions{PageSize: 4})), "end excluded, across pages")
	require.Equal(t, want(0, 25), keys(c.Prefix(ctx, "r:", &client.RangeOptions{PageSize: 7})))
	require.Equal(t, want(0, 10), keys(c.Prefix(ctx, "r:", &client.RangeOptions{PageSize: 3, Limit: 10})))
	require.Equal(t, append(want(0, 25), "s"), keys(c.Range(ctx, "", "", nil)))
	require.Empty(t, keys(c.Range(ctx, "b", "a", nil)))
	_, err = s.db.Set("r:05", "5", nil) // a later revision than its neighbours'
	require.NoError(t, err)
	for it, err := range c.Range(ctx, "r:05", "", nil) {
		require.NoError(t, err)
		require.Equal(t, "r:05", it.Key)
		require.Equal(t, "5", it.Value)
		stored, err := s.db.Get("r:05")
		require.NoError(t, err)
		require.Equal(t, stored.Revision, it.Revision, "a ranged item's revision")
		break // stops asking
	}
	for _, err := range c.Range(ctx, "a", "", &client.RangeOptions{Limit: -1}) {
		require.ErrorIs(t, err, engine.ErrInvalidOptions)
	}
}

// TestConcurrentRequests: many goroutines share one connection, each
// getting its own replies.
func TestConcurrentRequests(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				k := fmt.Sprintf("g%d:%d", g, i)
				if _, err := c.Set(ctx, k, k, nil); err != nil {
					t.Errorf("set: %v", err)
					return
				}
				it, err := c.Get(ctx, k)
				if err != nil || it.Value != k {
					t.Errorf("get %s: %v %q", k, err, it.Value)
					return
				}
				if n, _, err := c.Increment(ctx, "count", 1); err != nil || n < 1 {
					t.Errorf("increment: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	it, err := c.Get(ctx, "count")
	require.NoError(t, err)
	require.Equal(t, "1600", it.Value)
	s.mu.Lock()
	require.Equal(t, 1, s.a.Stats().Connections, "one connection for all")
	s.mu.Unlock()
}

func TestDialAndContext(t *testing.T) {
	s := newServer(t, nil)
	ctx := ctxT(t)
	_, err := client.Dial(ctx, s.url, &client.Options{APIKey: "wrong"})
	require.ErrorIs(t, err, client.ErrForbidden)
	_, err = client.Dial(ctx, s.url, nil)
	require.ErrorIs(t, err, client.ErrUnauthorized)
	_, err = client.Dial(ctx, "ftp://x", &client.Options{APIKey: apiKey})
	require.Error(t, err)
	_, err = client.Dial(ctx, "http://127.0.0.1:1/kv", &client.Options{APIKey: apiKey})
	require.Error(t, err, "nothing listens")

	c := s.dial(t, nil)
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Get(done, "k")
	require.ErrorIs(t, err, context.Canceled)

	// A call after a restart connects again.
	_, err = c.Set(ctx, "k", "v", nil)
	require.NoError(t, err)
	s.restart()
	require.Eventually(t, func() bool {
		it, err := c.Get(ctx, "k")
		return err == nil && it.Value == "v"
	}, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, c.Close())
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, client.ErrClosed)
	require.NoError(t, c.Close(), "Close twice")
}

// collect reads n events, or fails.
func collect(t *testing.T, sub *client.Subscription, n int) []client.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []client.Event
	for len(out) < n {
		ev, err := sub.Next(ctx)
		require.NoError(t, err, "after %d events", len(out))
		out = append(out, ev)
	}
	return out
}

// untimed returns evs with their times zeroed, to compare with events
// built by hand.
func untimed(evs []client.Event) []client.Event {
	for i := range evs {
		evs[i].Time = time.Time{}
	}
	return evs
}

// checkSequence: events of one key k, written 1, 2, ..., n in order.
func checkSequence(t *testing.T, evs []client.Event) {
	t.Helper()
	var last int64
	for i, ev := range evs {
		require.Equal(t, fmt.Sprint(i+1), ev.Value, "event %d: no gap, no duplicate", i)
		require.Greater(t, ev.Revision, last)
		last = ev.Revision
	}
}

// TestSubscribe_Restart: a writer writes 1..n while the server restarts
// again and again; the subscriber sees every value once, in order.
func TestSubscribe_Restart(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	w := s.dial(t, nil)
	ctx := ctxT(t)
	_, err := s.db.Set("before", "x", nil) // revision 1: resume works from 0's successor too
	require.NoError(t, err)
	sub, err := c.Subscribe(ctx, []string{"seq:*"}, &client.SubscribeOptions{Buffer: 8})
	require.NoError(t, err)
	defer sub.Close()

	const n = 600
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			// A write that meets a restart is retried through the DB, so
			// that each value is written once.
			if _, err := w.Set(ctx, "seq:a", fmt.Sprint(i), nil); err != nil {
				if _, err := s.db.Set("seq:a", fmt.Sprint(i), nil); err != nil {
					t.Errorf("set: %v", err)
					return
				}
			}
		}
	}()
	go func() {
		for i := 0; i < 5; i++ {
			time.Sleep(20 * time.Millisecond)
			s.restart()
		}
	}()
	evs := collect(t, sub, n)
	<-done
	checkSequence(t, evs)
	require.NoError(t, sub.Err())
	time.Sleep(50 * time.Millisecond)
	select {
	case ev := <-sub.Events():
		t.Fatalf("an event past the last write: %+v", ev)
	default:
	}
}

// Subscriptions resumed at once after a restart, over the new
// connection's request rate, get 429 and try again: none ends.
func TestSubscribe_ResumeOverTheRate(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	var subs []*client.Subscription
	for i := range 4 {
		sub, err := c.Subscribe(ctx, []string{fmt.Sprintf("k%d", i)}, nil)
		require.NoError(t, err)
		defer sub.Close()
		subs = append(subs, sub)
	}
	s.mu.Lock()
	s.ao = adapter.Options{RequestRate: 10, RequestBurst: 2}
	s.mu.Unlock()
	s.restart()
	for i, sub := range subs {
		_, err := s.db.Set(fmt.Sprintf("k%d", i), "v", nil)
		require.NoError(t, err)
		ev, err := sub.Next(ctx)
		require.NoError(t, err, "subscription %d", i)
		require.Equal(t, fmt.Sprintf("k%d", i), ev.Key)
	}
}

// A subscription resumed over the new connection's cap on subscriptions
// ends with ErrSubscriptionLimit rather than trying again for ever, unseen;
// the other runs on.
func TestSubscribe_ResumeOverTheCapEnds(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	a, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err)
	defer a.Close()
	b, err := c.Subscribe(ctx, []string{"b"}, nil)
	require.NoError(t, err)
	defer b.Close()
	s.mu.Lock()
	s.ao = adapter.Options{MaxSubscriptions: 1}
	s.mu.Unlock()
	s.restart()
	// Nothing is written yet: an Events channel gives only when it closes.
	var gone, kept *client.Subscription
	var key string
	select {
	case <-a.Events():
		gone, kept, key = a, b, "b"
	case <-b.Events():
		gone, kept, key = b, a, "a"
	case <-time.After(10 * time.Second):
		t.Fatal("no subscription ended: the one over the cap is still being resumed")
	}
	require.ErrorIs(t, gone.Err(), client.ErrSubscriptionLimit)
	require.ErrorIs(t, gone.Err(), client.ErrRateLimited)
	_, err = s.db.Set(key, "v", nil)
	require.NoError(t, err)
	ev, err := kept.Next(ctx)
	require.NoError(t, err, "the subscription under the cap runs on")
	require.Equal(t, key, ev.Key)
}

// A subscription whose reader falls behind is stopped on the server and
// resumed on the same connection; at the connection's cap, its resume may
// reach the server before its unsubscribe is done, and is refused: it
// tries again, and does not end.
func TestSubscribe_OverflowAtTheCapResumes(t *testing.T) {
	s := newServer(t, nil)
	s.mu.Lock()
	s.ao = adapter.Options{MaxSubscriptions: 1}
	s.mu.Unlock()
	s.restart()
	c := s.dial(t, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, []string{"k"}, &client.SubscribeOptions{Buffer: 1})
	require.NoError(t, err)
	defer sub.Close()
	const n = 300
	for i := 1; i <= n; i++ {
		_, err := s.db.Set("k", fmt.Sprint(i), nil)
		require.NoError(t, err)
	}
	evs := collect(t, sub, n)
	checkSequence(t, evs)
}

// TestSubscribe_Transactions: resuming inside a transaction's
// notifications neither repeats nor drops any of them.
func TestSubscribe_Transactions(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, []string{"tx:*"}, &client.SubscribeOptions{Buffer: 3})
	require.NoError(t, err)
	defer sub.Close()
	const txs, per = 40, 10
	for i := 0; i < txs; i++ {
		_, err := s.db.Update(func(tx *engine.Tx) error {
			for k := 0; k < per; k++ {
				if _, err := tx.Set(fmt.Sprintf("tx:%d", k), fmt.Sprint(i), nil); err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(t, err)
		if i%7 == 3 {
			s.restart()
		}
	}
	evs := make([]client.Event, 0, txs*per)
	for len(evs) < txs*per {
		evs = append(evs, collect(t, sub, 1)...)
		if len(evs)%13 == 0 {
			time.Sleep(5 * time.Millisecond) // a slow reader: the buffer of 3 overflows
		}
	}
	for i, ev := range evs {
		require.Equal(t, fmt.Sprintf("tx:%d", i%per), ev.Key, "event %d", i)
		require.Equal(t, fmt.Sprint(i/per), ev.Value, "event %d", i)
	}
}

func TestSubscribe_FromRevisionAndDeletes(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	_, err := c.Set(ctx, "z", "first", nil) // fromRevision 0 on the wire means "from now"
	require.NoError(t, err)
	r1, err := c.Set(ctx, "a:1", "one", nil)
	require.NoError(t, err)
	r2, err := c.Delete(ctx, "a:1")
	require.NoError(t, err)
	_, err = c.Set(ctx, "b:1", "other", nil)
	require.NoError(t, err)
	sub, err := c.Subscribe(ctx, []string{"a:*"}, &client.SubscribeOptions{FromRevision: r1 - 1})
	require.NoError(t, err)
	defer sub.Close()
	evs := collect(t, sub, 2)
	require.Equal(t, client.Event{Key: "a:1", Value: "one", Revision: r1, Time: evs[0].Time}, evs[0])
	require.Equal(t, client.Event{Key: "a:1", Deleted: true, Revision: r2, Time: evs[1].Time}, evs[1])
	require.WithinDuration(t, time.Now(), evs[0].Time, time.Minute)

	_, err = c.Subscribe(ctx, nil, nil)
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, err = c.Subscribe(ctx, []string{"/(/"}, nil)
	require.ErrorIs(t, err, client.ErrBadRequest)
}

// TestSubscribe_Compacted: a subscription that cannot resume because the
// history has moved on ends with ErrCompacted, after every event before.
func TestSubscribe_Compacted(t *testing.T) {
	s := newServer(t, &engine.Options{SweepInterval: -1, HistoryEvents: 20})
	c := s.dial(t, nil)
	ctx := ctxT(t)
	for i := 0; i < 50; i++ {
		_, err := s.db.Set("k", fmt.Sprint(i), nil)
		require.NoError(t, err)
	}
	_, err := c.Subscribe(ctx, []string{"k"}, &client.SubscribeOptions{FromRevision: 1})
	require.ErrorIs(t, err, engine.ErrCompacted)
	var ce *engine.CompactedError
	require.ErrorAs(t, err, &ce)
	require.Positive(t, ce.Oldest)

	sub, err := c.Subscribe(ctx, []string{"k"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	_, err = s.db.Set("k", "seen", nil)
	require.NoError(t, err)
	require.Equal(t, "seen", collect(t, sub, 1)[0].Value)
	// The server goes away; while it is away more changes than the
	// history holds are made.
	s.shutdown()
	for i := 0; i < 50; i++ {
		_, err := s.db.Set("k", fmt.Sprint(i), nil)
		require.NoError(t, err)
	}
	a := s.newAdapter()
	s.mu.Lock()
	s.a = a
	s.mu.Unlock()
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = sub.Next(ctx2)
	require.ErrorIs(t, err, engine.ErrCompacted)
	require.ErrorIs(t, sub.Err(), engine.ErrCompacted)
}

// TestSubscribe_Initial: the items, read in several pages while a writer
// runs, then the changes: together exactly the DB's state.
func TestSubscribe_Initial(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	for i := 0; i < 2500; i++ {
		_, err := s.db.Set(fmt.Sprintf("i:%04d", i), "0", nil)
		require.NoError(t, err)
	}
	_, err := s.db.Set("j:0", "not matched", nil)
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprintf("i:%04d", (n*7919)%2600) // some new, some deleted
			var err error
			if n%5 == 0 {
				_, err = s.db.Delete(k)
				if errors.Is(err, engine.ErrNotFound) {
					err = nil
				}
			} else {
				_, err = s.db.Set(k, fmt.Sprint(n), nil)
			}
			if err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
	}()
	sub, err := c.Subscribe(ctx, []string{"i:*"}, &client.SubscribeOptions{Initial: true})
	require.NoError(t, err)
	defer sub.Close()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	final := s.db.Revision()

	state := make(map[string]string)
	for _, it := range sub.Initial {
		state[it.Key] = it.Value
	}
	require.Greater(t, len(sub.Initial), 1000, "more than one page")
	require.Positive(t, sub.InitialRevision)
	for rev := int64(0); rev < final; {
		ev := collect(t, sub, 1)[0]
		require.GreaterOrEqual(t, ev.Revision, rev, "in order")
		rev = ev.Revision
		if ev.Deleted {
			_, ok := state[ev.Key]
			require.True(t, ok, "a delete of a key held: %s at %d", ev.Key, ev.Revision)
			delete(state, ev.Key)
		} else {
			state[ev.Key] = ev.Value
		}
	}
	want := make(map[string]string)
	for it, err := range enginetest.Items(s.db.Prefix("i:", nil)) {
		require.NoError(t, err)
		want[it.Key] = it.Value
	}
	require.Equal(t, want, state)
}

// TestSubscribe_Close: Close ends the stream with engine.ErrClosed;
// the client's Close ends them all.
func TestSubscribe_Close(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	a, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err)
	b, err := c.Subscribe(ctx, []string{"b"}, nil)
	require.NoError(t, err)
	a.Close()
	_, err = a.Next(ctx)
	require.ErrorIs(t, err, engine.ErrClosed)
	_, err = s.db.Set("a", "x", nil)
	require.NoError(t, err)
	_, err = s.db.Set("b", "y", nil)
	require.NoError(t, err)
	require.Equal(t, "y", collect(t, b, 1)[0].Value)
	require.NoError(t, c.Close())
	_, err = b.Next(ctx)
	require.ErrorIs(t, err, engine.ErrClosed)
	_, err = c.Subscribe(ctx, []string{"a"}, nil)
	require.ErrorIs(t, err, client.ErrClosed)
}

// TestToken: a client with a token reaches the keys its access pattern
// allows, and gets ErrForbidden for the others; an expired or forged
// token is refused at Dial.
func TestToken(t *testing.T) {
	s := newServer(t, nil)
	ctx := ctxT(t)
	tok := s.token(t, `{"accessPattern":"^room:1:"}`)

	c := s.dial(t, &client.Options{Token: tok})
	_, err := c.Set(ctx, "room:1:a", "hi", nil)
	require.NoError(t, err)
	_, err = c.Set(ctx, "room:2:a", "no", nil)
	require.ErrorIs(t, err, client.ErrForbidden)
	sub, err := c.Subscribe(ctx, []string{"room:*"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	_, err = s.db.Set("room:2:b", "hidden", nil)
	require.NoError(t, err)
	_, err = s.db.Set("room:1:b", "seen", nil)
	require.NoError(t, err)
	ev := collect(t, sub, 1)[0]
	require.Equal(t, "room:1:b", ev.Key, "only the keys the token may see")

	_, err = client.Dial(ctx, s.url, &client.Options{Token: tok + "x"})
	require.ErrorIs(t, err, client.ErrForbidden)
}

// TestCloseUnderLoad: Close while requests run and a subscription
// delivers ends them all with clear errors; the package's leak check sees
// no goroutine left.
func TestCloseUnderLoad(t *testing.T) {
	s := newServer(t, nil)
	ctx := ctxT(t)
	c, err := client.Dial(ctx, s.url, &client.Options{APIKey: apiKey})
	require.NoError(t, err)
	sub, err := c.Subscribe(ctx, []string{"*"}, &client.SubscribeOptions{Buffer: 2})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := c.Set(ctx, fmt.Sprintf("k%d", g), fmt.Sprint(i), nil)
				if err != nil {
					if !errors.Is(err, client.ErrClosed) && !errors.Is(err, client.ErrConnectionLost) {
						t.Errorf("after Close: %v", err)
					}
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, c.Close())
	wg.Wait()
	for range sub.Events() {
	}
	require.ErrorIs(t, sub.Err(), engine.ErrClosed)
}

// TestTLS: over https (wss), with the server's certificate trusted
// through Options.HTTPClient.
func TestTLS(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", a))
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	defer a.Shutdown(context.Background())
	ctx := ctxT(t)
	_, err = client.Dial(ctx, srv.URL+"/kv", &client.Options{APIKey: apiKey})
	require.Error(t, err, "an unknown certificate")
	c, err := client.Dial(ctx, srv.URL+"/kv", &client.Options{APIKey: apiKey, HTTPClient: srv.Client()})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Set(ctx, "k", "v", nil)
	require.NoError(t, err)
	it, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", it.Value)
}

// TestOperations_EmptyKeyIsInvalidKey: the server refuses an empty key
// before the engine sees it, with its own text; the error still matches
// engine.ErrInvalidKey, as the engine's own refusal of an empty key does.
func TestOperations_EmptyKeyIsInvalidKey(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	ctx := ctxT(t)
	_, err := c.Set(ctx, "", "v", nil)
	require.ErrorIs(t, err, engine.ErrInvalidKey)
	require.ErrorIs(t, err, client.ErrBadRequest)
	_, err = c.Get(ctx, "")
	require.ErrorIs(t, err, engine.ErrInvalidKey)
	_, _, err = c.Increment(ctx, "", 1)
	require.ErrorIs(t, err, engine.ErrInvalidKey)
	_, err = c.Delete(ctx, "")
	require.ErrorIs(t, err, engine.ErrInvalidKey)
}

// TestDial_APIKeyInNoURL: the client gives the API key in the
// handshake's x-api-key header, not in the URL, which proxies and access
// logs write down.
func TestDial_APIKeyInNoURL(t *testing.T) {
	s := newServer(t, nil)
	c := s.dial(t, nil)
	_, err := c.Set(ctxT(t), "k", "v", nil)
	require.NoError(t, err)
	s.mu.Lock()
	urls := slices.Clone(s.urls)
	s.mu.Unlock()
	require.NotEmpty(t, urls)
	for _, u := range urls {
		require.NotContains(t, u, apiKey, "the API key in a URL")
	}
}
