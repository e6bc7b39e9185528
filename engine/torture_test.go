package engine_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

var (
	tortureRounds = flag.Int("torture.rounds", 3, "rounds of TestTorture for each kind of store")
	tortureSeed   = flag.Uint64("torture.seed", 0, "seed of TestTorture's first round; 0 picks one")
)

// TestTorture runs every kind of call at once from many goroutines, Close
// among them, and checks what they saw against the writes they were told
// had committed: the final state, each subscription's events, the views'
// snapshots and the backups. Every call after Close must return
// ErrClosed and no goroutine of the store's may outlive it. -torture.rounds
// sets how many rounds of each kind of store; -torture.seed the op mixes
// (the goroutines' interleaving is the scheduler's).
func TestTorture(t *testing.T) {
	seed := *tortureSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	for _, kind := range []string{"mem", "disk", "memfs"} {
		t.Run(kind, func(t *testing.T) {
			for r := range *tortureRounds {
				s := seed + uint64(r)
				t.Logf("seed %d", s)
				tortureRound(t, kind, s)
				if t.Failed() {
					return
				}
			}
		})
	}
}

// tWrite is one key's state after a committed transaction.
type tWrite struct {
	rev   int64
	key   string
	del   bool
	value string
}

type tortureModel struct {
	mu     sync.Mutex
	writes []tWrite
}

func (m *tortureModel) add(rev int64, ws map[string]tWrite) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, w := range ws {
		w.rev, w.key = rev, k
		m.writes = append(m.writes, w)
	}
}

// sorted returns the writes in revision order.
func (m *tortureModel) sorted() []tWrite {
	m.mu.Lock()
	defer m.mu.Unlock()
	ws := slices.Clone(m.writes)
	slices.SortStableFunc(ws, func(a, b tWrite) int { return int(a.rev - b.rev) })
	return ws
}

func tortureStateAt(ws []tWrite, rev int64, keep func(string) bool) map[string]string {
	st := map[string]string{}
	for _, w := range ws {
		if w.rev > rev {
			break
		}
		if !keep(w.key) {
			continue
		}
		if w.del {
			delete(st, w.key)
		} else {
			st[w.key] = w.value
		}
	}
	return st
}

func strict(key string) bool { return strings.HasPrefix(key, "k/") || strings.HasPrefix(key, "a/") }

var errTortureInjected = errors.New("injected")

type torturePanic struct{}

const (
	tortureAccounts = 5
	tortureKeys     = 16
)

type tortureChain struct {
	initialRev int64
	initial    map[string]string
	events     []pubsub.Event
	end        pubsub.Position // the position of its last subscription
	log        []string        // the chain's subscriptions, for a failure's message
}

func tortureRound(t *testing.T, kind string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	opts := &engine.Options{SweepInterval: time.Millisecond, CheckpointBytes: 16 << 10, SegmentSize: 8 << 10}
	if rng.IntN(2) == 0 {
		opts.HistoryEvents = 20 + rng.IntN(100)
	}
	switch rng.IntN(3) {
	case 1:
		opts.Sync = engine.SyncInterval(time.Millisecond)
	case 2:
		opts.Sync = engine.SyncNever
	}
	if rng.IntN(2) == 0 {
		opts.MaxValueSize = 1 << 10
	}
	clk := newClock()
	opts.Now = clk.Now
	dir := ""
	switch kind {
	case "disk":
		dir = t.TempDir()
	case "memfs":
		opts.FS = vfs.NewMemFS()
		dir = "/db"
	}
	db, err := engine.Open(dir, opts)
	require.NoError(t, err)

	model := &tortureModel{}
	init := map[string]tWrite{}
	rev, err := db.Update(func(tx *engine.Tx) error {
		for i := range tortureAccounts {
			k := fmt.Sprintf("a/%d", i)
			if _, err := tx.Set(k, "100", nil); err != nil {
				return err
			}
			init[k] = tWrite{value: "100"}
		}
		return nil
	})
	require.NoError(t, err)
	model.add(rev, init)

	const workers = 6
	opsPerWorker := 300
	closeAfter := int64(-1)
	if rng.IntN(2) == 0 {
		closeAfter = int64(rng.IntN(workers * opsPerWorker))
	}
	var (
		ops       atomic.Int64
		closing   atomic.Bool // Close has been called
		closed    atomic.Bool // Close has returned
		closeOnce sync.Once
		failures  = make(chan string, 100)
		wg        sync.WaitGroup
		closers   sync.WaitGroup
		backups   sync.Map // rev -> []byte
		nbackups  atomic.Int32
	)
	fail := func(format string, args ...any) {
		select {
		case failures <- fmt.Sprintf(format, args...):
		default:
		}
	}
	doClose := func() {
		closeOnce.Do(func() {
			closing.Store(true)
			if err := db.Close(); err != nil {
				fail("Close: %v", err)
			}
			closed.Store(true)
		})
	}
	// check judges an error of a call that began after wasClosed was
	// read; ok lists the errors the call may return besides nil.
	check := func(what string, wasClosed bool, err error, ok ...error) {
		if wasClosed {
			if !errors.Is(err, engine.ErrClosed) {
				fail("%s after Close: %v, want ErrClosed", what, err)
			}
			return
		}
		if err == nil || errors.Is(err, engine.ErrClosed) && closing.Load() {
			return
		}
		for _, e := range ok {
			if errors.Is(err, e) {
				return
			}
		}
		fail("%s: %v", what, err)
	}
	key := func(r *rand.Rand) string {
		switch r.IntN(10) {
		case 0:
			return fmt.Sprintf("t/%d", r.IntN(4))
		case 1:
			return fmt.Sprintf("a/%d", r.IntN(tortureAccounts))
		}
		return fmt.Sprintf("k/%02d", r.IntN(tortureKeys))
	}
	value := func(r *rand.Rand) string {
		switch r.IntN(4) {
		case 0:
			return strconv.Itoa(r.IntN(100))
		case 1:
			return fmt.Sprintf(`{"f%d":%d}`, r.IntN(3), r.IntN(100))
		}
		return strings.Repeat("v", r.IntN(200))
	}
	ttl := func(r *rand.Rand, k string) *engine.SetOptions {
		if strings.HasPrefix(k, "t/") {
			return &engine.SetOptions{TTL: time.Duration(1+r.IntN(3)) * time.Second}
		}
		return nil
	}
	// Writes to the accounts go through transfers only, which keep
	// their sum.
	writable := func(r *rand.Rand) string {
		for {
			if k := key(r); !strings.HasPrefix(k, "a/") {
				return k
			}
		}
	}

	// Revision never goes down.
	stopMon := make(chan struct{})
	var monWG sync.WaitGroup
	monWG.Add(1)
	go func() {
		defer monWG.Done()
		last := int64(0)
		for {
			r := db.Revision()
			if r < last {
				fail("Revision went down from %d to %d", last, r)
			}
			last = r
			select {
			case <-stopMon:
				return
			default:
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()

	// A wait for a revision that never comes ends with Close.
	waited := make(chan error, 1)
	go func() { waited <- db.WaitRevision(context.Background(), 1<<40) }()

	// Subscriptions, each a chain of subscriptions resumed from the
	// last one's position.
	const nchains = 4
	chains := make([]*tortureChain, nchains)
	chainPatterns := [][]string{{"k/*", "a/*", "t/*"}, {"k/0*"}, {"a/1", "k/1?"}, {`/^k\/0[0-5]$/`, "a/2"}}
	filter := func(key string) bool { return strings.HasPrefix(key, "k/") }
	var subWG sync.WaitGroup
	for c := range nchains {
		ch := &tortureChain{}
		chains[c] = ch
		r := rand.New(rand.NewPCG(seed+uint64(c)+100, 1))
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			wasClosed := closed.Load()
			sub, err := db.Subscribe(chainPatterns[c], &engine.SubscribeOptions{Initial: true, Buffer: 1 + r.IntN(8), Filter: filter})
			if err != nil {
				check("Subscribe", wasClosed, err)
				return
			}
			ch.initialRev = sub.InitialRevision
			ch.initial = map[string]string{}
			for _, it := range sub.Initial {
				if strict(it.Key) {
					ch.initial[it.Key] = it.Value
				}
			}
			for {
				n := r.IntN(50)
				for range n {
					ev, err := sub.Next(context.Background())
					if err != nil {
						if !errors.Is(err, engine.ErrClosed) && !errors.Is(err, pubsub.ErrCompacted) {
							fail("Next: %v", err)
						}
						// One behind ends where it got to: its
						// position says where.
						sub.Close()
						ch.end = sub.Position()
						return
					}
					ch.events = append(ch.events, ev)
				}
				if r.IntN(3) == 0 {
					time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
				}
				// Two Closes at once, one maybe while Next waits.
				done := make(chan struct{})
				go func() {
					defer close(done)
					sub.Close()
				}()
				if r.IntN(2) == 0 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
					ev, err := sub.Next(ctx)
					cancel()
					if err == nil {
						ch.events = append(ch.events, ev)
					}
				}
				sub.Close()
				<-done
				pos := sub.Position()
				wasClosed := closed.Load()
				next, err := db.Subscribe(chainPatterns[c], &engine.SubscribeOptions{From: pos, Buffer: 1 + r.IntN(8), Filter: filter})
				if err != nil {
					check("Subscribe again", wasClosed, err, pubsub.ErrCompacted)
					ch.end = pos
					return
				}
				ch.log = append(ch.log, fmt.Sprintf("closed at %v after %d events, resumed", pos, len(ch.events)))
				sub = next
			}
		}()
	}

	for w := range workers {
		r := rand.New(rand.NewPCG(seed+uint64(w)+1000, 2))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range opsPerWorker {
				if n := ops.Add(1); n == closeAfter || n == closeAfter+3 {
					// Two Closes at once: each returns once the
					// DB is closed.
					closers.Add(1)
					inView := r.IntN(2) == 0
					go func() {
						defer closers.Done()
						if inView {
							// From inside a view and a scan's loop.
							_ = db.View(func(tx *engine.Tx) error {
								items, err := tx.Range("", "", nil)
								if err != nil {
									return err
								}
								for range items {
									break
								}
								doClose()
								for range items {
									break
								}
								return nil
							})
						}
						closing.Store(true)
						if err := db.Close(); err != nil {
							fail("Close: %v", err)
						}
						if _, err := db.Get("k/00"); !errors.Is(err, engine.ErrClosed) {
							fail("Get after Close: %v", err)
						}
					}()
					doClose()
				}
				wasClosed := closed.Load()
				switch op := r.IntN(24); op {
				case 0, 1:
					k := writable(r)
					v := value(r)
					it, err := db.Set(k, v, ttl(r, k))
					check("Set", wasClosed, err)
					if err == nil {
						model.add(it.Revision, map[string]tWrite{k: {value: v}})
					}
				case 2:
					k := key(r)
					it, err := db.Get(k)
					check("Get", wasClosed, err, engine.ErrNotFound)
					if err == nil && it.Revision > db.Revision() {
						fail("Get %s at revision %d above Revision %d", k, it.Revision, db.Revision())
					}
				case 3:
					k := writable(r)
					it, err := db.Patch(k, value(r))
					check("Patch", wasClosed, err, engine.ErrTooLarge)
					if err == nil {
						model.add(it.Revision, map[string]tWrite{k: {value: it.Value}})
					}
				case 4:
					k := writable(r)
					n, rev, err := db.Increment(k, int64(r.IntN(10)-5))
					check("Increment", wasClosed, err, engine.ErrNotInteger)
					if err == nil {
						model.add(rev, map[string]tWrite{k: {value: strconv.FormatInt(n, 10)}})
					}
				case 5:
					k := writable(r)
					rev, err := db.Delete(k)
					check("Delete", wasClosed, err, engine.ErrNotFound)
					if err == nil {
						model.add(rev, map[string]tWrite{k: {del: true}})
					}
				case 6:
					k := writable(r)
					cur, err := db.Get(k)
					check("Get", wasClosed, err, engine.ErrNotFound)
					v := value(r)
					it, err := db.CompareAndSwap(k, cur.Revision, v, ttl(r, k))
					check("CompareAndSwap", wasClosed, err, engine.ErrConflict)
					if err == nil {
						model.add(it.Revision, map[string]tWrite{k: {value: v}})
					}
				case 7:
					k := writable(r)
					v := value(r)
					it, err := db.PutIfAbsent(k, v, ttl(r, k))
					check("PutIfAbsent", wasClosed, err, engine.ErrConflict)
					if err == nil {
						model.add(it.Revision, map[string]tWrite{k: {value: v}})
					}
				case 8, 9:
					tortureUpdate(r, db, model, wasClosed, check, fail, writable, value, ttl)
				case 10:
					// A transfer between two accounts.
					a, b := r.IntN(tortureAccounts), r.IntN(tortureAccounts)
					d := int64(r.IntN(20))
					ws := map[string]tWrite{}
					rev, err := db.Update(func(tx *engine.Tx) error {
						clear(ws)
						ka, kb := fmt.Sprintf("a/%d", a), fmt.Sprintf("a/%d", b)
						na, err := tx.Increment(ka, -d)
						if err != nil {
							return err
						}
						ws[ka] = tWrite{value: strconv.FormatInt(na, 10)}
						nb, err := tx.Increment(kb, d)
						if err != nil {
							return err
						}
						ws[kb] = tWrite{value: strconv.FormatInt(nb, 10)}
						return nil
					})
					check("transfer", wasClosed, err)
					if err == nil {
						model.add(rev, ws)
					}
				case 11, 12:
					long := r.IntN(4) == 0
					err := db.View(func(tx *engine.Tx) error {
						return tortureView(tx, long)
					})
					if err != nil && !(errors.Is(err, engine.ErrClosed) && closing.Load()) {
						fail("View: %v", err)
					}
				case 13:
					tortureRange(r, db, wasClosed, check, fail)
				case 14:
					err := db.Checkpoint()
					check("Checkpoint", wasClosed, err)
				case 15:
					if nbackups.Load() >= 3 {
						break
					}
					var buf bytes.Buffer
					rev, err := db.Backup(&buf)
					check("Backup", wasClosed, err)
					if err == nil {
						nbackups.Add(1)
						backups.Store(rev, buf.Bytes())
					}
				case 16:
					// A subscription read a little, then abandoned.
					from := max(0, db.Revision()+int64(r.IntN(30)-20)) // maybe ahead
					sub, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{From: pubsub.After(from), Buffer: 1 + r.IntN(4)})
					check("Subscribe", wasClosed, err, pubsub.ErrCompacted, engine.ErrRevisionAhead)
					if err != nil {
						break
					}
					var last pubsub.Position
					for range r.IntN(10) {
						ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
						ev, err := sub.Next(ctx)
						cancel()
						if err != nil {
							break
						}
						p := pubsub.Position{Revision: ev.Revision, Index: ev.Index}
						if ev.Revision <= from || !posLess(last, p) {
							fail("short subscription from %d: event %d/%d after %v", from, ev.Revision, ev.Index, last)
						}
						last = p
					}
					sub.Close()
				case 17:
					clk.Advance(time.Duration(r.IntN(1500)) * time.Millisecond)
				case 18:
					_ = db.Stats()
					err := db.Err()
					if wasClosed && !errors.Is(err, engine.ErrClosed) {
						fail("Err after Close: %v", err)
					}
					werr := db.WaitRevision(context.Background(), db.Revision())
					check("WaitRevision", false, werr)
				case 20:
					// Writes from inside a scan's loop.
					items, err := db.Prefix("k/", &engine.RangeOptions{Reverse: r.IntN(2) == 0})
					check("Prefix", wasClosed, err)
					if err != nil {
						break
					}
					stop := r.IntN(4)
					for it, err := range items {
						if err != nil {
							break
						}
						v := value(r)
						got, err := db.Set(it.Key, v, nil)
						check("Set in a loop", wasClosed, err)
						if err == nil {
							model.add(got.Revision, map[string]tWrite{it.Key: {value: v}})
						}
						if stop--; stop < 0 {
							break
						}
					}
				case 21:
					// A view inside a write transaction, and the
					// transaction and its loop kept past its end.
					var kept *engine.Tx
					var loop func(func(engine.Item, error) bool)
					k := writable(r)
					v := value(r)
					rev, err := db.Update(func(tx *engine.Tx) error {
						kept = tx
						items, err := tx.Range("", "", nil)
						if err != nil {
							return err
						}
						loop = items
						if err := db.View(func(vt *engine.Tx) error { return tortureView(vt, false) }); err != nil {
							return err
						}
						// Reads of the DB's own, outside the transaction.
						if _, err := db.Get(k); err != nil && !errors.Is(err, engine.ErrNotFound) {
							return err
						}
						outer, err := db.Prefix("k/", &engine.RangeOptions{Limit: 3})
						if err != nil {
							return err
						}
						for _, err := range outer {
							if err != nil {
								return err
							}
						}
						_, err = tx.Set(k, v, ttl(r, k))
						return err
					})
					check("Update", wasClosed, err)
					if err == nil {
						model.add(rev, map[string]tWrite{k: {value: v}})
						if _, err := kept.Set(k, "late", nil); !errors.Is(err, engine.ErrTxDone) {
							fail("Set after Update: %v", err)
						}
						if _, err := kept.Get(k); !errors.Is(err, engine.ErrTxDone) {
							fail("Get after Update: %v", err)
						}
						for _, err := range loop {
							if !errors.Is(err, engine.ErrTxDone) {
								fail("loop after Update: %v", err)
							}
						}
					}
				case 22:
					// A backup restored and opened while writes go on.
					if dir == "" || nbackups.Load() >= 6 {
						break
					}
					nbackups.Add(1)
					var buf bytes.Buffer
					rev, err := db.Backup(&buf)
					check("Backup", wasClosed, err)
					if err != nil {
						break
					}
					ropts := &engine.Options{SweepInterval: -1, Now: clk.Now}
					rdir := filepath.Join(t.TempDir(), "r")
					if kind == "memfs" {
						ropts.FS = opts.FS
						rdir = fmt.Sprintf("/restored%d", r.Uint64())
					}
					got, err := engine.RestoreDir(&buf, rdir, ropts)
					if err != nil || got != rev {
						fail("RestoreDir: %d, %v; want %d", got, err, rev)
						break
					}
					db3, err := engine.Open(rdir, ropts)
					if err != nil {
						fail("Open of a restored backup: %v", err)
						break
					}
					if err := db3.View(func(tx *engine.Tx) error { return tortureView(tx, false) }); err != nil {
						fail("restored backup at %d: %v", rev, err)
					}
					if db3.Revision() != rev {
						fail("restored backup at %d opens at %d", rev, db3.Revision())
					}
					if err := db3.Close(); err != nil {
						fail("Close of a restored backup: %v", err)
					}
				case 23:
					// An iterator taken before Close, run after it.
					items, err := db.Range("", "", nil)
					check("Range", wasClosed, err)
					if err != nil {
						break
					}
					if r.IntN(2) == 0 {
						runtimeGosched()
					}
					for _, err := range items {
						if err != nil && !(errors.Is(err, engine.ErrClosed) && closing.Load()) {
							fail("Range's loop: %v", err)
						}
					}
				case 19:
					// A panic in View leaves no snapshot behind.
					func() {
						defer func() {
							if p := recover(); p != nil {
								if _, ok := p.(torturePanic); !ok {
									fail("View panicked with %v", p)
								}
							} else if !closing.Load() {
								fail("View's panic did not come out")
							}
						}()
						if r.IntN(2) == 0 {
							_ = db.View(func(tx *engine.Tx) error {
								panic(torturePanic{})
							})
						}
						// Or in a scan's loop, in a view or not.
						var items func(func(engine.Item, error) bool)
						if r.IntN(2) == 0 {
							items, _ = db.Range("", "", nil)
						} else {
							_ = db.View(func(tx *engine.Tx) error {
								items, _ = tx.Range("", "", nil)
								for range items {
									panic(torturePanic{})
								}
								return nil
							})
						}
						if items != nil {
							for range items {
								panic(torturePanic{})
							}
						}
					}()
				}
			}
		}()
	}
	wg.Wait()

	// The state before Close, for a store in memory.
	var final map[string]string
	finalRev := int64(-1)
	if !closing.Load() {
		err := db.View(func(tx *engine.Tx) error {
			finalRev = tx.Revision()
			final = map[string]string{}
			items, err := tx.Range("", "", nil)
			if err != nil {
				return err
			}
			for it, err := range items {
				if err != nil {
					return err
				}
				if strict(it.Key) {
					final[it.Key] = it.Value
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	doClose()
	require.ErrorIs(t, <-waited, engine.ErrClosed)
	subWG.Wait()
	closers.Wait()
	require.Zero(t, db.Stats().Snapshots, "snapshots left open")
	require.Empty(t, moduleGoroutines(), "goroutines left after Close")
	close(stopMon)
	monWG.Wait()

	// Every call after Close says so.
	_, err = db.Get("k/00")
	require.ErrorIs(t, err, engine.ErrClosed)
	_, err = db.Set("k/00", "x", nil)
	require.ErrorIs(t, err, engine.ErrClosed)
	_, err = db.Update(func(tx *engine.Tx) error { return nil })
	require.ErrorIs(t, err, engine.ErrClosed)
	require.ErrorIs(t, db.View(func(tx *engine.Tx) error { return nil }), engine.ErrClosed)
	_, err = db.Subscribe([]string{"*"}, nil)
	require.ErrorIs(t, err, engine.ErrClosed)
	_, err = db.Range("", "", nil)
	require.ErrorIs(t, err, engine.ErrClosed)
	require.ErrorIs(t, db.Checkpoint(), engine.ErrClosed)
	_, err = db.Backup(&bytes.Buffer{})
	require.ErrorIs(t, err, engine.ErrClosed)
	require.NoError(t, db.Close())

	close(failures)
	for f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		return
	}

	ws := model.sorted()
	// No two transactions committed at one revision, and the writes of
	// one are at one revision.
	seen := map[[2]any]bool{}
	for _, w := range ws {
		k := [2]any{w.rev, w.key}
		require.False(t, seen[k], "two writes of %s at revision %d", w.key, w.rev)
		seen[k] = true
	}
	maxRev := int64(0)
	if len(ws) > 0 {
		maxRev = ws[len(ws)-1].rev
	}
	if final != nil {
		require.GreaterOrEqual(t, finalRev, maxRev)
		require.Equal(t, tortureStateAt(ws, finalRev, strict), final, "the state before Close")
	}
	if dir != "" {
		db2, err := engine.Open(dir, &engine.Options{FS: opts.FS, SweepInterval: -1, Now: clk.Now})
		require.NoError(t, err)
		require.GreaterOrEqual(t, db2.Revision(), maxRev)
		got := tortureState(t, db2)
		require.NoError(t, db2.Close())
		require.Equal(t, tortureStateAt(ws, maxRev, strict), got, "the state after Open")
	}
	backups.Range(func(k, v any) bool {
		rev := k.(int64)
		var rdir string
		ropts := &engine.Options{SweepInterval: -1, Now: clk.Now}
		if kind == "memfs" {
			ropts.FS = vfs.NewMemFS()
			rdir = "/restored"
		} else {
			rdir = filepath.Join(t.TempDir(), "restored")
		}
		got, err := engine.RestoreDir(bytes.NewReader(v.([]byte)), rdir, ropts)
		require.NoError(t, err)
		require.Equal(t, rev, got)
		db3, err := engine.Open(rdir, ropts)
		require.NoError(t, err)
		state := tortureState(t, db3)
		require.NoError(t, db3.Close())
		require.Equal(t, tortureStateAt(ws, rev, strict), state, "the backup at %d", rev)
		return true
	})

	for c, ch := range chains {
		if ch.initial == nil {
			continue
		}
		match := func(key string) bool {
			switch c {
			case 0:
				return strict(key)
			case 1:
				return strings.HasPrefix(key, "k/0")
			case 3:
				return key == "a/2" || strings.HasPrefix(key, "k/0") && key[3] <= '5'
			default:
				return key == "a/1" || strings.HasPrefix(key, "k/1") && len(key) == 4
			}
		}
		require.Equal(t, tortureStateAt(ws, ch.initialRev, match), ch.initial, "chain %d's initial items at %d", c, ch.initialRev)
		var last pubsub.Position
		got := map[[2]any]pubsub.Event{}
		for _, ev := range ch.events {
			p := pubsub.Position{Revision: ev.Revision, Index: ev.Index}
			require.True(t, posLess(last, p), "chain %d: event %v after %v", c, p, last)
			require.Greater(t, ev.Revision, ch.initialRev)
			last = p
			if strict(ev.Key) {
				got[[2]any{ev.Revision, ev.Key}] = ev
			}
		}
		upTo := ch.end.Revision - 1
		want := map[[2]any]pubsub.Event{}
		for _, w := range ws {
			if w.rev <= ch.initialRev || !match(w.key) {
				continue
			}
			k := [2]any{w.rev, w.key}
			if w.rev > upTo {
				if ev, ok := got[k]; ok {
					want[k] = ev // a transaction the last Close cut
				}
				continue
			}
			ev, ok := got[k]
			if !ok {
				var near []string
				for _, ev := range ch.events {
					if ev.Revision >= w.rev-3 && ev.Revision <= w.rev+3 {
						near = append(near, fmt.Sprintf("%d/%d %s", ev.Revision, ev.Index, ev.Key))
					}
				}
				require.Failf(t, "missing event", "chain %d: no event for %s at %d (del %v value %.20q); end %v; near %v; %v", c, w.key, w.rev, w.del, w.value, ch.end, near, ch.log)
			}
			want[k] = ev
			if w.del {
				require.Contains(t, []pubsub.Type{pubsub.Delete}, ev.Type, "chain %d: %s at %d", c, w.key, w.rev)
			} else {
				require.Equal(t, w.value, ev.Value, "chain %d: %s at %d", c, w.key, w.rev)
			}
		}
		require.Equal(t, len(want), len(got), "chain %d has events no acknowledged write made", c)
	}
}

// tortureUpdate runs a transaction of several random writes, which may
// end with an error or a panic.
func tortureUpdate(r *rand.Rand, db *engine.DB, model *tortureModel, wasClosed bool,
	check func(string, bool, error, ...error), fail func(string, ...any),
	writable, value func(*rand.Rand) string, ttl func(*rand.Rand, string) *engine.SetOptions) {
	ending := r.IntN(6)
	n := 1 + r.IntN(5)
	seeds := [2]uint64{r.Uint64(), r.Uint64()}
	ws := map[string]tWrite{}
	var rev int64
	var err error
	func() {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if _, ok := p.(torturePanic); !ok || ending != 0 {
				fail("Update panicked with %v", p)
			}
			rev, err = 0, errTortureInjected
		}()
		rev, err = db.Update(func(tx *engine.Tx) error {
			r := rand.New(rand.NewPCG(seeds[0], seeds[1])) // the same on a retry
			clear(ws)
			for range n {
				k := writable(r)
				switch r.IntN(6) {
				case 0:
					it, err := tx.Set(k, value(r), ttl(r, k))
					if err != nil {
						return err
					}
					ws[k] = tWrite{value: it.Value}
				case 1:
					if err := tx.Delete(k); err == nil {
						ws[k] = tWrite{del: true}
					} else if !errors.Is(err, engine.ErrNotFound) {
						return err
					}
				case 2:
					it, err := tx.Patch(k, value(r))
					if err != nil {
						return err
					}
					ws[k] = tWrite{value: it.Value}
				case 3:
					n, err := tx.Increment(k, 1)
					if err == nil {
						ws[k] = tWrite{value: strconv.FormatInt(n, 10)}
					} else if !errors.Is(err, engine.ErrNotInteger) {
						return err
					}
				case 4:
					if _, err := tx.Get(k); err != nil && !errors.Is(err, engine.ErrNotFound) {
						return err
					}
				case 5:
					// A scan that writes as it goes, maybe left after
					// a few items, shows the keys as they were when it
					// began.
					pre := map[string]string{}
					for i := range tortureKeys {
						k := fmt.Sprintf("k/%02d", i)
						it, err := tx.Get(k)
						if err == nil {
							pre[k] = it.Value
						} else if !errors.Is(err, engine.ErrNotFound) {
							return err
						}
					}
					items, err := tx.Prefix("k/", &engine.RangeOptions{Reverse: r.IntN(2) == 0})
					if err != nil {
						return err
					}
					stop := r.IntN(20)
					seen := 0
					for it, err := range items {
						if err != nil {
							return err
						}
						if v, ok := pre[it.Key]; !ok || v != it.Value {
							return fmt.Errorf("a transaction's scan shows %s as %.20q, before it %.20q (%v)", it.Key, it.Value, v, ok)
						}
						seen++
						w := fmt.Sprintf("k/%02d", r.IntN(tortureKeys))
						switch r.IntN(3) {
						case 0:
							v := value(r)
							if _, err := tx.Set(w, v, nil); err != nil {
								return err
							}
							ws[w] = tWrite{value: v}
						case 1:
							if err := tx.Delete(w); err == nil {
								ws[w] = tWrite{del: true}
							} else if !errors.Is(err, engine.ErrNotFound) {
								return err
							}
						}
						if stop--; stop < 0 {
							break
						}
					}
					if stop >= 0 && seen != len(pre) {
						return fmt.Errorf("a transaction's scan showed %d keys of %d", seen, len(pre))
					}
				}
			}
			switch ending {
			case 0:
				panic(torturePanic{})
			case 1:
				return errTortureInjected
			}
			return nil
		})
	}()
	if ending <= 1 {
		if !errors.Is(err, errTortureInjected) && !(errors.Is(err, engine.ErrClosed)) {
			fail("Update that failed: %v", err)
		}
		return
	}
	check("Update", wasClosed, err, engine.ErrTooLarge)
	if err == nil && rev != 0 {
		model.add(rev, ws)
	} else if err == nil && len(ws) > 0 {
		fail("Update wrote %d keys at revision 0", len(ws))
	}
}

// tortureView checks that a view sees one state: the accounts keep
// their sum, no item is newer than the view, and reading again, even
// after a while, gives the same.
func tortureView(tx *engine.Tx, long bool) error {
	read := func() (map[string]engine.Item, error) {
		got := map[string]engine.Item{}
		items, err := tx.Range("", "", nil)
		if err != nil {
			return nil, err
		}
		for it, err := range items {
			if err != nil {
				return nil, err
			}
			if it.Revision > tx.Revision() {
				return nil, fmt.Errorf("item %s at %d in a view at %d", it.Key, it.Revision, tx.Revision())
			}
			got[it.Key] = it
		}
		return got, nil
	}
	first, err := read()
	if err != nil {
		return err
	}
	sum := 0
	for i := range tortureAccounts {
		it, err := tx.Get(fmt.Sprintf("a/%d", i))
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(it.Value)
		sum += n
		if first[it.Key] != it {
			return fmt.Errorf("view's Get of %s %+v, its Range %+v", it.Key, it, first[it.Key])
		}
	}
	if sum != 100*tortureAccounts {
		return fmt.Errorf("accounts sum to %d at %d", sum, tx.Revision())
	}
	if _, err := tx.Set("k/00", "x", nil); !errors.Is(err, engine.ErrReadOnly) {
		return fmt.Errorf("Set in a view: %v", err)
	}
	if long {
		time.Sleep(2 * time.Millisecond)
	}
	again, err := read()
	if err != nil {
		return err
	}
	for k, it := range first {
		if strict(k) && again[k] != it {
			return fmt.Errorf("view read %s as %+v then %+v", k, it, again[k])
		}
	}
	return nil
}

// tortureRange scans part of the store and may leave the loop early.
func tortureRange(r *rand.Rand, db *engine.DB, wasClosed bool, check func(string, bool, error, ...error), fail func(string, ...any)) {
	o := &engine.RangeOptions{Limit: r.IntN(10), Reverse: r.IntN(2) == 0, KeysOnly: r.IntN(2) == 0}
	start := fmt.Sprintf("k/%02d", r.IntN(tortureKeys))
	end := ""
	if r.IntN(2) == 0 {
		end = fmt.Sprintf("k/%02d", r.IntN(tortureKeys))
	}
	items, err := db.Range(start, end, o)
	check("Range", wasClosed, err)
	if err != nil {
		return
	}
	stop := r.IntN(20)
	n := 0
	last := ""
	for it, err := range items {
		if err != nil {
			check("Range's loop", wasClosed, err)
			return
		}
		if wasClosed {
			fail("Range's loop after Close yielded %s", it.Key)
		}
		if it.Key < start || end != "" && it.Key >= end {
			fail("Range [%s, %s) yielded %s", start, end, it.Key)
		}
		if n > 0 && (o.Reverse && it.Key >= last || !o.Reverse && it.Key <= last) {
			fail("Range yielded %s after %s", it.Key, last)
		}
		if o.KeysOnly && it.Value != "" {
			fail("KeysOnly Range yielded a value for %s", it.Key)
		}
		last = it.Key
		n++
		if o.Limit > 0 && n > o.Limit {
			fail("Range yielded %d items, limit %d", n, o.Limit)
		}
		if n == stop {
			break
		}
	}
}

func tortureState(t *testing.T, db *engine.DB) map[string]string {
	got := map[string]string{}
	items, err := db.Range("", "", nil)
	require.NoError(t, err)
	for it, err := range items {
		require.NoError(t, err)
		if strict(it.Key) {
			got[it.Key] = it.Value
		}
	}
	return got
}

func posLess(p, q pubsub.Position) bool {
	return p.Revision < q.Revision || p.Revision == q.Revision && p.Index < q.Index
}

// TestTorture_ReplicaRestore restores backups into a replica while
// writers, views, scans and subscriptions go on, then closes it while
// a restore may be under way: the views always see the accounts' sum,
// subscriptions end with ErrCompacted or ErrClosed with their events in
// order, and every call after Close returns ErrClosed.
func TestTorture_ReplicaRestore(t *testing.T) {
	seed := *tortureSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	for round := range *tortureRounds {
		s := seed + uint64(round)
		t.Logf("seed %d", s)
		tortureReplicaRound(t, s)
		if t.Failed() {
			return
		}
	}
}

func tortureReplicaRound(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	rep := &publishAtOnce{}
	db, ctl, err := engine.OpenReplica(&engine.Options{Replicator: rep, HistoryEvents: 20 + rng.IntN(200)})
	require.NoError(t, err)
	rep.ctl = ctl
	_, err = db.Update(func(tx *engine.Tx) error {
		for i := range tortureAccounts {
			if _, err := tx.Set(fmt.Sprintf("a/%d", i), "100", nil); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	var first bytes.Buffer
	_, err = db.Backup(&first)
	require.NoError(t, err)

	var (
		mu       sync.Mutex
		backups  = [][]byte{first.Bytes()}
		closed   atomic.Bool
		closing  atomic.Bool
		failures = make(chan string, 100)
		wg       sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		select {
		case failures <- fmt.Sprintf(format, args...):
		default:
		}
	}
	okErr := func(what string, wasClosed bool, err error, ok ...error) {
		if err == nil && !wasClosed || errors.Is(err, engine.ErrClosed) && closing.Load() {
			return
		}
		for _, e := range ok {
			if !wasClosed && errors.Is(err, e) {
				return
			}
		}
		fail("%s (closed before: %v): %v", what, wasClosed, err)
	}
	const workers = 5
	ops := 200
	closeAt := int64(rng.IntN(workers * ops))
	var count atomic.Int64
	for w := range workers {
		r := rand.New(rand.NewPCG(seed, uint64(w)+10))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ops {
				if count.Add(1) == closeAt {
					closing.Store(true)
					if err := db.Close(); err != nil {
						fail("Close: %v", err)
					}
					closed.Store(true)
					if left := moduleGoroutines(); len(left) > 0 {
						fail("goroutines left after Close: %v", left)
					}
				}
				wasClosed := closed.Load()
				switch r.IntN(8) {
				case 0, 1:
					a, b := r.IntN(tortureAccounts), r.IntN(tortureAccounts)
					d := int64(r.IntN(20))
					_, err := db.Update(func(tx *engine.Tx) error {
						if _, err := tx.Increment(fmt.Sprintf("a/%d", a), -d); err != nil {
							return err
						}
						_, err := tx.Increment(fmt.Sprintf("a/%d", b), d)
						return err
					})
					okErr("transfer", wasClosed, err, engine.ErrAbandoned)
				case 2:
					_, err := db.Set(fmt.Sprintf("k/%02d", r.IntN(tortureKeys)), strings.Repeat("x", r.IntN(300)), nil)
					okErr("Set", wasClosed, err, engine.ErrAbandoned)
				case 3:
					err := db.View(func(tx *engine.Tx) error { return tortureView(tx, r.IntN(4) == 0) })
					okErr("View", wasClosed, err)
				case 4:
					tortureRange(r, db, wasClosed, okErr, fail)
				case 5:
					mu.Lock()
					b := backups[r.IntN(len(backups))]
					mu.Unlock()
					okErr("Restore", wasClosed, ctl.Restore(bytes.NewReader(b)))
				case 6:
					mu.Lock()
					n := len(backups)
					mu.Unlock()
					if n > 8 {
						break
					}
					var buf bytes.Buffer
					_, err := db.Backup(&buf)
					okErr("Backup", wasClosed, err)
					if err == nil {
						mu.Lock()
						backups = append(backups, buf.Bytes())
						mu.Unlock()
					}
				case 7:
					sub, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{Initial: r.IntN(2) == 0, Buffer: 1 + r.IntN(4)})
					okErr("Subscribe", wasClosed, err)
					if err != nil {
						break
					}
					var last pubsub.Position
					for range r.IntN(30) {
						ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
						ev, err := sub.Next(ctx)
						cancel()
						if errors.Is(err, context.DeadlineExceeded) {
							continue
						}
						if err != nil {
							if !errors.Is(err, pubsub.ErrCompacted) && !errors.Is(err, engine.ErrClosed) {
								fail("Next: %v", err)
							}
							break
						}
						p := pubsub.Position{Revision: ev.Revision, Index: ev.Index}
						if !posLess(last, p) || ev.Revision <= sub.InitialRevision {
							fail("event %v after %v (initial %d)", p, last, sub.InitialRevision)
						}
						last = p
					}
					sub.Close()
				}
			}
		}()
	}
	wg.Wait()
	closing.Store(true)
	require.NoError(t, db.Close())
	require.Empty(t, moduleGoroutines(), "goroutines left after Close")
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	_, err = db.Get("a/0")
	require.ErrorIs(t, err, engine.ErrClosed)
	require.ErrorIs(t, ctl.Restore(bytes.NewReader(first.Bytes())), engine.ErrClosed)
}
