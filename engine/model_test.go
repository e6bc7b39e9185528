package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

var (
	modelSeed = flag.Uint64("model.seed", 0, "replay TestModel with this seed (0: a new seed each run)")
	modelRuns = flag.Int("model.runs", 300, "random operation sequences TestModel runs")
)

// model is the simple way: a map plus sort, with the engine's semantics
// written out plainly. TestModel checks the engine against it.
type model struct {
	now   int64
	rev   int64
	items map[string]modelItem // includes expired items not yet swept
	// untilSwept says that an item is there until the sweep removes it,
	// as on a replica, rather than until its expiry time.
	untilSwept bool
}

type modelItem struct {
	value               string
	rev, createRev, ver int64
	expires             int64
}

func (m *model) live(k string) (modelItem, bool) {
	return m.liveIn(m.items, k)
}

// liveIn returns the item under k in items if it is there to reads.
func (m *model) liveIn(items map[string]modelItem, k string) (modelItem, bool) {
	it, ok := items[k]
	if !ok || !m.untilSwept && it.expires != 0 && m.now >= it.expires {
		return modelItem{}, false
	}
	return it, true
}

func (m *model) item(k string) engine.Item {
	it := m.items[k]
	out := engine.Item{Key: k, Value: it.value, Revision: it.rev, CreateRevision: it.createRev, Version: it.ver}
	if it.expires != 0 {
		out.ExpiresAt = time.Unix(0, it.expires)
	}
	return out
}

// mtx is a transaction on the model: writes go to a copy that replaces the
// model's map on commit.
type mtx struct {
	m     *model
	rev   int64
	items map[string]modelItem
	wrote bool
}

func (m *model) begin() *mtx {
	items := make(map[string]modelItem, len(m.items))
	for k, v := range m.items {
		items[k] = v
	}
	return &mtx{m: m, rev: m.rev + 1, items: items}
}

func (t *mtx) commit() {
	if t.wrote {
		t.m.items, t.m.rev = t.items, t.rev
	}
}

func (t *mtx) live(k string) (modelItem, bool) { return t.m.liveIn(t.items, k) }

func (t *mtx) write(k, v string, expires int64) {
	cur, ok := t.live(k)
	n := modelItem{value: v, rev: t.rev, createRev: t.rev, ver: 1, expires: expires}
	if ok {
		n.createRev, n.ver = cur.createRev, cur.ver+1
		if cur.rev == t.rev {
			n.ver = cur.ver
		}
	}
	t.items[k] = n
	t.wrote = true
}

func (t *mtx) del(k string) error {
	if _, ok := t.live(k); !ok {
		return engine.ErrNotFound
	}
	delete(t.items, k)
	t.wrote = true
	return nil
}

func modelPatch(old, p string) string {
	var po, oo map[string]any
	if json.Unmarshal([]byte(p), &po) != nil || po == nil || json.Unmarshal([]byte(old), &oo) != nil || oo == nil {
		return old + p
	}
	merge(oo, po)
	b, _ := json.Marshal(oo)
	return string(b)
}

func merge(t, p map[string]any) {
	for k, v := range p {
		switch v := v.(type) {
		case nil:
			delete(t, k)
		case map[string]any:
			tm, ok := t[k].(map[string]any)
			if !ok {
				tm = map[string]any{}
			}
			merge(tm, v)
			t[k] = tm
		default:
			t[k] = v
		}
	}
}

// sweep removes expired items under one revision, as the engine's sweeper.
func (m *model) sweep() int {
	n := 0
	for k, it := range m.items {
		if it.expires != 0 && m.now >= it.expires {
			delete(m.items, k)
			n++
		}
	}
	if n > 0 {
		m.rev++
	}
	return n
}

func (m *model) scan(start, end string, o engine.RangeOptions) []engine.Item {
	var keys []string
	for k := range m.items {
		if _, ok := m.live(k); ok && k >= start && (end == "" || k < end) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if o.Reverse {
		slices.Reverse(keys)
	}
	if o.Limit > 0 && len(keys) > o.Limit {
		keys = keys[:o.Limit]
	}
	out := []engine.Item{}
	for _, k := range keys {
		it := m.item(k)
		if o.KeysOnly {
			it.Value = ""
		}
		out = append(out, it)
	}
	return out
}

var modelKeys = []string{"a", "a/1", "a/2", "a/10", "b", "b/x", "c", "n1", "n2", "j1", "j2", "\xff"}

// TestModel runs random operation sequences on the engine and on the model
// and compares them after every step: in memory, and on disk, where writes
// become visible only once durable and the database is checkpointed,
// closed and reopened between steps.
func TestModel(t *testing.T) {
	for _, mode := range []string{"memory", "disk", "replica"} {
		t.Run(mode, func(t *testing.T) {
			seed := *modelSeed
			if seed == 0 {
				seed = rand.Uint64()
			}
			t.Logf("seed %d (replay with -model.seed=%d)", seed, seed)
			r := rand.New(rand.NewPCG(seed, 0))
			runs := *modelRuns
			if testing.Short() {
				runs /= 10
			}
			for run := 0; run < runs; run++ {
				runModel(t, r, 200, mode)
				if t.Failed() {
					t.Fatalf("failed in run %d of seed %d", run, seed)
				}
			}
		})
	}
}

// runModel runs steps random operations on a DB and the model. mode
// "disk" adds checkpoints and restarts; "replica" opens a leader and a
// follower (OpenReplica) whose replicator, at each commit, randomly
// either ships it to the follower (ApplyCommitted) and publishes it, or
// abandons it, and checks both against the model of what committed.
func runModel(t *testing.T, r *rand.Rand, steps int, mode string) {
	c := newClock()
	// In half the runs, value chunks of 256 bytes (values up to 16 bytes
	// go in them) that may compact once 256 bytes are dead, so that
	// chunks fill and are used again within a run; checkDB checks their
	// counts (engine.ArenaErr).
	o := &engine.Options{SweepInterval: -1, Now: c.Now, MaxValueSize: 256}
	if r.IntN(2) == 0 {
		engine.WithChunks(o, 256, 256)
	}
	dir := ""
	disk := mode == "disk"
	if disk {
		o.FS, o.SegmentSize, o.CheckpointBytes = vfs.NewMemFS(), 1<<10, 4<<10
		dir = "db"
	}
	var db, follower *engine.DB
	var rep *syncReplicator
	var err error
	if mode == "replica" {
		db, follower, rep = openReplicaPair(t, o, rand.New(rand.NewPCG(r.Uint64(), 1)))
		defer follower.Close()
	} else {
		db, err = engine.Open(dir, o)
		require.NoError(t, err)
	}
	defer func() { db.Close() }()
	m := &model{now: c.ns.Load(), items: map[string]modelItem{}, untilSwept: mode == "replica"}

	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after %s:\n"+format, append([]any{strings.Join(log, "\n")}, args...)...)
	}
	checkDB := func(name string, db *engine.DB) {
		t.Helper()
		if db.Revision() != m.rev {
			fail("%s: revision %d, model %d", name, db.Revision(), m.rev)
		}
		if got := db.Stats().Keys; got != int64(len(m.items)) {
			fail("%s: keys %d, model %d", name, got, len(m.items))
		}
		got := all(t, db)
		want := m.scan("", "", engine.RangeOptions{})
		if len(got) == 0 {
			got = []engine.Item{}
		}
		if !itemsEqual(got, want) {
			fail("%s: scan\n got %v\nwant %v", name, got, want)
		}
		if err := engine.ArenaErr(db); err != nil {
			fail("%s: %v", name, err)
		}
	}
	check := func() {
		t.Helper()
		checkDB("db", db)
		if follower != nil {
			checkDB("follower", follower)
		}
	}
	// abandoned reports whether the replicator abandoned the last commit,
	// and if so puts the model back as it was before the step.
	var saved model
	save := func() {
		saved = *m
		saved.items = maps.Clone(m.items)
	}
	abandoned := func(err error) bool {
		if rep == nil || !rep.abandoned {
			return false
		}
		rep.abandoned = false
		if err != nil && !errors.Is(err, errNotCommitted) {
			fail("abandoned: error %v, want %v", err, errNotCommitted)
		}
		now := m.now
		*m = saved
		m.now = now
		log = append(log, "(abandoned)")
		return true
	}

	// Open scans, pulled an item at a time between other steps: each must
	// yield the snapshot the model had when it started.
	type openScan struct {
		next func() (engine.Item, error, bool)
		stop func()
		want []engine.Item
	}
	var scans []*openScan
	defer func() {
		for _, s := range scans {
			s.stop()
		}
	}()
	pullScans := func() {
		t.Helper()
		if r.IntN(3) == 0 && len(scans) < 3 {
			next, stop := iter.Pull2(enginetest.Items(db.Range("", "", nil)))
			s := &openScan{next: next, stop: stop, want: m.scan("", "", engine.RangeOptions{})}
			scans = append(scans, s)
			log = append(log, "open scan")
		}
		for i := 0; i < len(scans); i++ {
			s := scans[i]
			// The snapshot is taken at the first pull: pull a new scan now.
			if r.IntN(2) == 0 && i < len(scans)-1 {
				continue
			}
			it, err, ok := s.next()
			require.NoError(t, err)
			if !ok {
				if len(s.want) != 0 {
					fail("open scan ended early, still want %v", s.want)
				}
				s.stop()
				scans = slices.Delete(scans, i, i+1)
				i--
				continue
			}
			if len(s.want) == 0 || !itemsEqual([]engine.Item{it}, s.want[:1]) {
				fail("open scan yielded %v, want %v", it, s.want)
			}
			s.want = s.want[1:]
		}
	}

	for step := 0; step < steps; step++ {
		pullScans()
		save()
		k := modelKeys[r.IntN(len(modelKeys))]
		switch op := r.IntN(100); {
		case op < 45: // one operation outside a transaction, through a one-op Update half the time
			desc, err, want := oneOp(t, r, db, m, k, r.IntN(2) == 0)
			log = append(log, desc)
			if abandoned(err) {
				break
			}
			if !errors.Is(err, want) {
				fail("%s: error %v, want %v", desc, err, want)
			}
		case op < 60: // a transaction of several operations, committed or not
			n := 1 + r.IntN(5)
			abort := r.IntN(4) == 0
			tx := m.begin()
			desc := fmt.Sprintf("update(abort=%v):", abort)
			_, err := db.Update(func(etx *engine.Tx) error {
				for i := 0; i < n; i++ {
					k := modelKeys[r.IntN(len(modelKeys))]
					d, err, want := txOp(t, r, etx, tx, k)
					desc += " " + d
					if !errors.Is(err, want) {
						return fmt.Errorf("%s: error %v, want %v", d, err, want)
					}
				}
				if abort {
					return errAbort
				}
				return nil
			})
			log = append(log, desc)
			if !abort && abandoned(err) {
				break
			}
			if abort && !errors.Is(err, errAbort) || !abort && err != nil {
				fail("%s: %v", desc, err)
			}
			if !abort {
				tx.commit()
			}
		case op < 75: // a get
			log = append(log, "get "+k)
			got, err := db.Get(k)
			_, ok := m.live(k)
			if !ok {
				if !errors.Is(err, engine.ErrNotFound) {
					fail("get %q: %v, %v; want not found", k, got, err)
				}
			} else if err != nil || !itemsEqual([]engine.Item{got}, []engine.Item{m.item(k)}) {
				fail("get %q: %v %v, want %v", k, got, err, m.item(k))
			}
		case op < 88: // a range with random options
			start, end := randBound(r), randBound(r)
			o := engine.RangeOptions{Limit: r.IntN(4), Reverse: r.IntN(2) == 0, KeysOnly: r.IntN(4) == 0}
			log = append(log, fmt.Sprintf("range %q %q %+v", start, end, o))
			var got []engine.Item
			var seq func(func(engine.Item, error) bool) = enginetest.Items(db.Range(start, end, &o))
			if r.IntN(3) == 0 {
				start, end = "a/", "a0"
				seq = enginetest.Items(db.Prefix("a/", &o))
			}
			for it, err := range seq {
				require.NoError(t, err)
				got = append(got, it)
			}
			if got == nil {
				got = []engine.Item{}
			}
			if want := m.scan(start, end, o); !itemsEqual(got, want) {
				fail("range %q %q %+v\n got %v\nwant %v", start, end, o, got, want)
			}
		case op < 95: // time passes
			d := time.Duration(r.IntN(6)) * 500 * time.Millisecond
			c.Advance(d)
			m.now = c.ns.Load()
			log = append(log, fmt.Sprintf("advance %v", d))
		case op < 97 && disk: // a checkpoint, or a restart
			if r.IntN(2) == 0 {
				log = append(log, "checkpoint")
				require.NoError(t, db.Checkpoint())
				break
			}
			log = append(log, "reopen")
			for _, s := range scans {
				s.stop()
			}
			scans = nil
			require.NoError(t, db.Close())
			db, err = engine.Open(dir, o)
			require.NoError(t, err)
		case op < 97 && rep != nil: // the follower restores from the leader's snapshot
			log = append(log, "restore follower")
			snap, err := rep.leader.Snapshot()
			require.NoError(t, err)
			var buf bytes.Buffer
			require.NoError(t, snap.Write(&buf))
			snap.Close()
			require.NoError(t, rep.follower.Restore(&buf))
		default:
			log = append(log, "sweep")
			got, want := engine.Sweep(db), m.sweep()
			if abandoned(nil) {
				if got != 0 {
					fail("an abandoned sweep removed %d", got)
				}
				break
			}
			if got != want {
				fail("sweep removed %d, model %d", got, want)
			}
		}
		check()
	}
}

var errAbort = errors.New("abort")

func randBound(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		return ""
	}
	return modelKeys[r.IntN(len(modelKeys))] + []string{"", "\x00", "0"}[r.IntN(3)]
}

// oneOp runs a random write on the DB (directly or in a one-op Update) and
// the model, returning a description, the engine's error and the model's.
func oneOp(t *testing.T, r *rand.Rand, db *engine.DB, m *model, k string, inUpdate bool) (string, error, error) {
	tx := m.begin()
	var desc string
	var err, want error
	if inUpdate {
		_, err = db.Update(func(etx *engine.Tx) error {
			desc, err, want = txOp(t, r, etx, tx, k)
			return err
		})
	} else {
		desc, err, want = dbOp(r, db, tx, k)
	}
	if want == nil {
		tx.commit()
	}
	return desc, err, want
}

// opArgs draws the arguments of a random write.
type opArgs struct {
	kind  int
	value string
	ttl   time.Duration
	delta int64
	rev   int64
}

func randArgs(r *rand.Rand, cur modelItem) opArgs {
	a := opArgs{kind: r.IntN(6)}
	values := []string{"x", "yz", `{"a":1}`, `{"b":{"c":2}}`, `{"a":null}`, "12", "-3", strings.Repeat("v", 200)}
	a.value = values[r.IntN(len(values))]
	if r.IntN(3) == 0 {
		a.ttl = time.Duration(1+r.IntN(10)) * 500 * time.Millisecond // coarse, so expiries meet the clock exactly
	}
	a.delta = int64(r.IntN(7) - 3)
	if r.IntN(20) == 0 {
		a.delta = 1 << 62
	}
	a.rev = []int64{0, cur.rev, cur.rev + 1}[r.IntN(3)]
	return a
}

// apply performs a on the model transaction and returns the result the
// engine should give.
func (t *mtx) apply(k string, a opArgs) (desc string, want error) {
	cur, ok := t.live(k)
	exp := int64(0)
	if a.ttl > 0 {
		exp = t.m.now + int64(a.ttl)
	}
	switch a.kind {
	case 0:
		desc = fmt.Sprintf("set %q %.10q ttl=%v", k, a.value, a.ttl)
		t.write(k, a.value, exp)
	case 1:
		desc = fmt.Sprintf("patch %q %q", k, a.value)
		v := a.value
		if ok {
			v, exp = modelPatch(cur.value, a.value), cur.expires
		} else {
			exp = 0
		}
		if len(v) > 256 {
			return desc, engine.ErrTooLarge
		}
		t.write(k, v, exp)
	case 2:
		desc = fmt.Sprintf("increment %q %d", k, a.delta)
		var n int64
		if ok {
			var err error
			if n, err = strconv.ParseInt(cur.value, 10, 64); err != nil {
				return desc, engine.ErrNotInteger
			}
		}
		if a.delta > 0 && n > 1<<63-1-a.delta || a.delta < 0 && n < -1<<63-a.delta {
			return desc, engine.ErrOverflow
		}
		t.write(k, strconv.FormatInt(n+a.delta, 10), cur.expires)
	case 3:
		desc = fmt.Sprintf("cas %q rev=%d %q ttl=%v", k, a.rev, a.value, a.ttl)
		if !ok && a.rev != 0 || ok && cur.rev != a.rev {
			return desc, engine.ErrConflict
		}
		t.write(k, a.value, exp)
	case 4:
		desc = fmt.Sprintf("putifabsent %q %q", k, a.value)
		if ok {
			return desc, engine.ErrConflict
		}
		t.write(k, a.value, exp)
	default:
		desc = fmt.Sprintf("delete %q", k)
		return desc, t.del(k)
	}
	return desc, nil
}

// writer is what DB and Tx share: the same writes, outside and inside a
// transaction (a DB's through dbWriter, which drops the revisions that DB's
// Increment and Delete return).
type writer interface {
	Set(key, value string, opts *engine.SetOptions) (engine.Item, error)
	Patch(key, value string) (engine.Item, error)
	Increment(key string, delta int64) (int64, error)
	CompareAndSwap(key string, rev int64, value string, opts *engine.SetOptions) (engine.Item, error)
	PutIfAbsent(key, value string, opts *engine.SetOptions) (engine.Item, error)
	Delete(key string) error
}

// dbWriter is a DB as a writer.
type dbWriter struct{ *engine.DB }

func (w dbWriter) Increment(key string, delta int64) (int64, error) {
	n, _, err := w.DB.Increment(key, delta)
	return n, err
}

func (w dbWriter) Delete(key string) error {
	_, err := w.DB.Delete(key)
	return err
}

// do performs the write a describes on w.
func do(w writer, k string, a opArgs) error {
	o := &engine.SetOptions{TTL: a.ttl}
	var err error
	switch a.kind {
	case 0:
		_, err = w.Set(k, a.value, o)
	case 1:
		_, err = w.Patch(k, a.value)
	case 2:
		_, err = w.Increment(k, a.delta)
	case 3:
		_, err = w.CompareAndSwap(k, a.rev, a.value, o)
	case 4:
		_, err = w.PutIfAbsent(k, a.value, o)
	default:
		err = w.Delete(k)
	}
	return err
}

func dbOp(r *rand.Rand, db *engine.DB, tx *mtx, k string) (string, error, error) {
	cur, _ := tx.live(k)
	a := randArgs(r, cur)
	desc, want := tx.apply(k, a)
	return desc, do(dbWriter{db}, k, a), want
}

func txOp(t *testing.T, r *rand.Rand, etx *engine.Tx, tx *mtx, k string) (string, error, error) {
	cur, _ := tx.live(k)
	a := randArgs(r, cur)
	if a.kind == 3 && r.IntN(2) == 0 {
		a.rev = tx.rev // the revision of a write made earlier in this transaction
	}
	desc, want := tx.apply(k, a)
	err := do(etx, k, a)
	// Reads inside the transaction see its writes.
	got, gerr := etx.Get(k)
	if _, ok := tx.live(k); ok {
		require.NoError(t, gerr, desc)
		want := tx.m.itemFrom(k, tx.items[k])
		require.True(t, itemsEqual([]engine.Item{got}, []engine.Item{want}), "%s: tx get %v, want %v", desc, got, want)
	} else {
		require.ErrorIs(t, gerr, engine.ErrNotFound, desc)
	}
	return desc, err, want
}

func (m *model) itemFrom(k string, it modelItem) engine.Item {
	saved := m.items
	m.items = map[string]modelItem{k: it}
	defer func() { m.items = saved }()
	return m.item(k)
}

// itemsEqual compares items, with values that are JSON objects compared as
// JSON (the model's encoder orders members; the engine's may not).
func itemsEqual(a, b []engine.Item) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.ExpiresAt.Equal(y.ExpiresAt) {
			return false
		}
		x.ExpiresAt, y.ExpiresAt = time.Time{}, time.Time{}
		if x.Value != y.Value && jsonEqual(x.Value, y.Value) {
			x.Value = y.Value
		}
		if x != y {
			return false
		}
	}
	return true
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}
