package engine_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

func TestDB_Set_Get(t *testing.T) {
	db := open(t, nil)
	it, err := db.Set("a", "1", nil)
	require.NoError(t, err)
	require.Equal(t, engine.Item{Key: "a", Value: "1", Revision: 1, CreateRevision: 1, Version: 1}, it)

	it, err = db.Set("a", "2", nil)
	require.NoError(t, err)
	require.Equal(t, engine.Item{Key: "a", Value: "2", Revision: 2, CreateRevision: 1, Version: 2}, it)

	got, err := db.Get("a")
	require.NoError(t, err)
	require.Equal(t, it, got)
	require.Equal(t, int64(2), db.Revision())

	_, err = db.Get("b")
	require.ErrorIs(t, err, engine.ErrNotFound)
}

func TestDB_BadInput(t *testing.T) {
	db, err := engine.Open("", &engine.Options{MaxKeySize: 4, MaxValueSize: 8, SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	long := strings.Repeat("x", 9)
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"get empty key", func() error { _, err := db.Get(""); return err }, engine.ErrInvalidKey},
		{"get long key", func() error { _, err := db.Get("12345"); return err }, engine.ErrTooLarge},
		{"set empty key", func() error { _, err := db.Set("", "v", nil); return err }, engine.ErrInvalidKey},
		{"set long key", func() error { _, err := db.Set("12345", "v", nil); return err }, engine.ErrTooLarge},
		{"set long value", func() error { _, err := db.Set("k", long, nil); return err }, engine.ErrTooLarge},
		{"set negative ttl", func() error { _, err := db.Set("k", "v", &engine.SetOptions{TTL: -time.Second}); return err }, engine.ErrInvalidOptions},
		{"set ttl past 2262", func() error {
			_, err := db.Set("k", "v", &engine.SetOptions{TTL: time.Duration(math.MaxInt64)})
			return err
		}, engine.ErrInvalidOptions},
		{"patch long value", func() error { _, err := db.Patch("k", long); return err }, engine.ErrTooLarge},
		{"patch empty key", func() error { _, err := db.Patch("", "v"); return err }, engine.ErrInvalidKey},
		{"increment empty key", func() error { _, _, err := db.Increment("", 1); return err }, engine.ErrInvalidKey},
		{"increment past the value limit", func() error { _, _, err := db.Increment("k", 123456789); return err }, engine.ErrTooLarge},
		{"delete empty key", func() error { _, err := db.Delete(""); return err }, engine.ErrInvalidKey},
		{"delete missing", func() error { _, err := db.Delete("k"); return err }, engine.ErrNotFound},
		{"cas negative rev", func() error { _, err := db.CompareAndSwap("k", -1, "v", nil); return err }, engine.ErrInvalidOptions},
		{"cas long value", func() error { _, err := db.CompareAndSwap("k", 0, long, nil); return err }, engine.ErrTooLarge},
		{"range negative limit", func() error {
			items, err := db.Range("", "", &engine.RangeOptions{Limit: -1})
			if items != nil {
				return errors.New("an iterator beside the error")
			}
			return err
		}, engine.ErrInvalidOptions},
		{"prefix negative limit", func() error { _, err := db.Prefix("a", &engine.RangeOptions{Limit: -1}); return err }, engine.ErrInvalidOptions},
		{"update nil", func() error { _, err := db.Update(nil); return err }, engine.ErrInvalidOptions},
		{"view nil", func() error { return db.View(nil) }, engine.ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			require.ErrorIs(t, err, tt.want)
			require.True(t, strings.HasPrefix(err.Error(), "engine: "), "got %q", err)
		})
	}
	require.Equal(t, int64(0), db.Revision(), "bad input must change nothing")
	require.Empty(t, all(t, db))
}

func TestOpen_InvalidOptions(t *testing.T) {
	_, err := engine.Open("", &engine.Options{MaxKeySize: -1})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	// A negative interval would never fsync, where a bound on loss was
	// asked for.
	_, err = engine.Open(t.TempDir(), &engine.Options{Sync: engine.SyncInterval(-time.Second)})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	if math.MaxInt > math.MaxInt32 {
		// Keys are stored with 31-bit lengths.
		limit := int64(math.MaxInt32)
		_, err = engine.Open("", &engine.Options{MaxKeySize: int(limit + 1)})
		require.ErrorIs(t, err, engine.ErrInvalidOptions)
		db, err := engine.Open("", &engine.Options{MaxKeySize: int(limit)})
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
	_, err = engine.Open("", &engine.Options{MaxValueSize: -1})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	if math.MaxInt > math.MaxUint32 {
		// Values are stored with 32-bit lengths.
		limit := int64(math.MaxUint32)
		_, err = engine.Open("", &engine.Options{MaxValueSize: int(limit + 1)})
		require.ErrorIs(t, err, engine.ErrInvalidOptions)
		db, err := engine.Open("", &engine.Options{MaxValueSize: int(limit)})
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
}

func TestDB_Patch(t *testing.T) {
	tests := []struct {
		name, old, patch, want string
		oldMissing             bool
	}{
		{name: "missing key is created", oldMissing: true, patch: `{"a":1}`, want: `{"a":1}`},
		{name: "string append", old: "abc", patch: "def", want: "abcdef"},
		{name: "object onto string appends", old: "abc", patch: `{"a":1}`, want: `abc{"a":1}`},
		{name: "string onto object appends", old: `{"a":1}`, patch: "x", want: `{"a":1}x`},
		{name: "array onto object appends", old: `{"a":1}`, patch: `[1]`, want: `{"a":1}[1]`},
		{name: "merge adds and replaces", old: `{"a":1,"b":2}`, patch: `{"b":3,"c":4}`, want: `{"a":1,"b":3,"c":4}`},
		{name: "null removes", old: `{"a":1,"b":2}`, patch: `{"a":null}`, want: `{"b":2}`},
		{name: "null among spaces removes", old: `{"a":1,"b":{"c":1,"d":2}}`, patch: " { \"a\" :\tnull , \"b\": {\"c\":  null\n} } ", want: `{"b":{"d":2}}`},
		{name: "nested merge", old: `{"a":{"x":1,"y":2}}`, patch: `{"a":{"y":null,"z":3}}`, want: `{"a":{"x":1,"z":3}}`},
		{name: "object replaces scalar", old: `{"a":1}`, patch: `{"a":{"b":null,"c":1}}`, want: `{"a":{"c":1}}`},
		{name: "numbers keep their text", old: `{"a":1.50}`, patch: `{"b":12345678901234567890}`, want: `{"a":1.50,"b":12345678901234567890}`},
		{name: "no html escaping", old: `{"a":"<b>"}`, patch: `{"c":"&"}`, want: `{"a":"<b>","c":"&"}`},
		{name: "members left alone keep their text", old: `{"a":"caf\u00e9 \/ \ud800","b":{"n":1.0,"e":1E2},"c":[1, 2]}`, patch: `{"d":1}`,
			want: `{"a":"caf\u00e9 \/ \ud800","b":{"n":1.0,"e":1E2},"c":[1,2],"d":1}`},
		{name: "members of a nested merge left alone keep their text", old: `{"a":{"s":"\u00e9","t":1}}`, patch: `{"a":{"t":2}}`, want: `{"a":{"s":"\u00e9","t":2}}`},
		{name: "bytes that are not UTF-8 stay", old: "{\"a\":\"\xff\"}", patch: `{"b":1}`, want: "{\"a\":\"\xff\",\"b\":1}"},
		{name: "trailing garbage is not an object", old: `{"a":1}`, patch: `{"b":2} x`, want: `{"a":1}{"b":2} x`},
		{name: "names left alone keep their text", old: `{"caf\u00e9":1,"\/":2}`, patch: `{"z":3}`, want: `{"\/":2,"caf\u00e9":1,"z":3}`},
		{name: "names a decoder would replace stay apart", old: `{"\ud800":1,"\udfff":2,"\ufffd":3}`, patch: `{"z":4}`,
			want: `{"z":4,"\ufffd":3,"\ud800":1,"\udfff":2}`},
		{name: "name bytes that are not UTF-8 stay apart", old: "{\"a\xff\":1,\"a\xfe\":2}", patch: `{"z":3}`, want: "{\"a\xfe\":2,\"a\xff\":1,\"z\":3}"},
		{name: "a null names only its own member", old: `{"\ud800":1,"\ufffd":2}`, patch: `{"\ufffd":null}`, want: `{"\ud800":1}`},
		{name: "escaped and plain names are one name", old: `{"caf\u00e9":{"a":1},"x":1}`, patch: `{"café":{"b":2},"\u0078":null}`, want: `{"café":{"a":1,"b":2}}`},
		{name: "a surrogate pair is its character", old: `{"\ud83d\ude00":1}`, patch: `{"😀":2}`, want: `{"😀":2}`},
		{name: "of a repeated name the last counts", old: `{"a":1,"b":2,"a":3}`, patch: `{"c":{"x":1},"c":{"y":2}}`, want: `{"a":3,"b":2,"c":{"y":2}}`},
		{name: "nested members in name order", old: `{"a":{"y":1,"x":2}}`, patch: `{"a":{"w":0}}`, want: `{"a":{"w":0,"x":2,"y":1}}`},
		{name: "empty objects", old: `{}`, patch: ` {} `, want: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t, nil)
			if !tt.oldMissing {
				_, err := db.Set("k", tt.old, nil)
				require.NoError(t, err)
			}
			it, err := db.Patch("k", tt.patch)
			require.NoError(t, err)
			require.Equal(t, tt.want, it.Value)
			got, err := db.Get("k")
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Value)
		})
	}
}

func TestDB_Increment(t *testing.T) {
	db := open(t, nil)
	n, _, err := db.Increment("n", 5)
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	n, rev, err := db.Increment("n", -7)
	require.NoError(t, err)
	require.Equal(t, int64(-2), n)
	it, err := db.Get("n")
	require.NoError(t, err)
	require.Equal(t, "-2", it.Value)
	require.Equal(t, it.Revision, rev, "the revision the increment committed at")
	require.Equal(t, int64(2), it.Version)

	_, err = db.Set("s", "abc", nil)
	require.NoError(t, err)
	_, _, err = db.Increment("s", 1)
	require.ErrorIs(t, err, engine.ErrNotInteger)

	_, err = db.Set("max", "9223372036854775806", nil)
	require.NoError(t, err)
	n, _, err = db.Increment("max", 1)
	require.NoError(t, err)
	require.Equal(t, int64(math.MaxInt64), n)
	rev = db.Revision()
	_, _, err = db.Increment("max", 1)
	require.ErrorIs(t, err, engine.ErrOverflow)
	_, err = db.Set("min", "-9223372036854775808", nil)
	require.NoError(t, err)
	_, _, err = db.Increment("min", -1)
	require.ErrorIs(t, err, engine.ErrOverflow)
	it, err = db.Get("max")
	require.NoError(t, err)
	require.Equal(t, "9223372036854775807", it.Value, "overflow must leave the value")
	require.Equal(t, rev+1, db.Revision(), "only the set of min took a revision")
}

func TestDB_CompareAndSwap(t *testing.T) {
	db := open(t, nil)
	_, err := db.CompareAndSwap("k", 5, "v", nil)
	require.ErrorIs(t, err, engine.ErrConflict, "missing key with rev != 0")
	it, err := db.CompareAndSwap("k", 0, "v1", nil)
	require.NoError(t, err)
	_, err = db.CompareAndSwap("k", 0, "v2", nil)
	require.ErrorIs(t, err, engine.ErrConflict, "existing key with rev 0")
	_, err = db.CompareAndSwap("k", it.Revision+1, "v2", nil)
	require.ErrorIs(t, err, engine.ErrConflict)
	it2, err := db.CompareAndSwap("k", it.Revision, "v2", nil)
	require.NoError(t, err)
	require.Equal(t, "v2", it2.Value)
	require.Equal(t, int64(2), it2.Version)

	_, err = db.PutIfAbsent("k", "v3", nil)
	require.ErrorIs(t, err, engine.ErrConflict)
	_, err = db.PutIfAbsent("p", "v", nil)
	require.NoError(t, err)
}

func TestDB_Delete_Recreate(t *testing.T) {
	db := open(t, nil)
	_, err := db.Set("k", "1", nil)
	require.NoError(t, err)
	_, err = db.Set("k", "2", nil)
	require.NoError(t, err)
	rev, err := db.Delete("k")
	require.NoError(t, err)
	require.Equal(t, int64(3), rev, "the revision the deletion committed at")
	_, err = db.Get("k")
	require.ErrorIs(t, err, engine.ErrNotFound)
	rev, err = db.Delete("k")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.Zero(t, rev)
	it, err := db.Set("k", "3", nil)
	require.NoError(t, err)
	require.Equal(t, engine.Item{Key: "k", Value: "3", Revision: 4, CreateRevision: 4, Version: 1}, it)
	require.Equal(t, int64(1), db.Stats().Keys)
}

func TestDB_TTL(t *testing.T) {
	c := newClock()
	db := open(t, c)
	it, err := db.Set("k", "v", &engine.SetOptions{TTL: time.Minute})
	require.NoError(t, err)
	require.Equal(t, c.Now().Add(time.Minute), it.ExpiresAt)

	c.Advance(time.Minute - 1)
	_, err = db.Get("k")
	require.NoError(t, err)
	n, _, err := db.Increment("k2", 1)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	c.Advance(1) // the instant of expiry
	_, err = db.Get("k")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.Equal(t, []string{"k2"}, collectKeys(t, enginetest.Items(db.Prefix("k", nil))))
	require.ErrorIs(t, errOf(db.Delete("k")), engine.ErrNotFound)

	rev := db.Revision()
	require.Equal(t, 1, engine.Sweep(db))
	require.Equal(t, rev+1, db.Revision(), "an expiry is a change with its own revision")
	require.Equal(t, 0, engine.Sweep(db))
	require.Equal(t, rev+1, db.Revision(), "a sweep with nothing to do takes no revision")
	require.Equal(t, int64(1), db.Stats().Keys)
	require.Equal(t, int64(1), db.Stats().Expired)
}

// The longest TTL is the one that ends at the last instant an expiry can
// name; the key lives until then.
func TestDB_TTL_Longest(t *testing.T) {
	c := newClock()
	db := open(t, c)
	longest := time.Duration(math.MaxInt64 - c.Now().UnixNano())
	it, err := db.Set("k", "v", &engine.SetOptions{TTL: longest})
	require.NoError(t, err)
	require.Equal(t, time.Unix(0, math.MaxInt64), it.ExpiresAt)
	c.Advance(100 * 365 * 24 * time.Hour)
	_, err = db.Get("k")
	require.NoError(t, err)
	_, err = db.Set("k2", "v", &engine.SetOptions{TTL: longest})
	require.ErrorIs(t, err, engine.ErrInvalidOptions, "100 years on, the same TTL ends too late")
}

// TestDB_TTL_ClockBefore1970: with a clock (Options.Now) before 1970 a
// TTL is taken and the key expires after it, also one that would end at
// the epoch itself, the instant 0 names no expiry.
func TestDB_TTL_ClockBefore1970(t *testing.T) {
	var now atomic.Int64
	now.Store(-int64(time.Second))
	db, err := engine.Open("", &engine.Options{SweepInterval: -1, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	require.NoError(t, err)
	defer db.Close()
	for _, ttl := range []time.Duration{time.Second, time.Minute} {
		it, err := db.Set("k"+ttl.String(), "v", &engine.SetOptions{TTL: ttl})
		require.NoError(t, err, "a TTL of %v", ttl)
		require.False(t, it.ExpiresAt.IsZero(), "a TTL of %v", ttl)
	}
	now.Add(int64(2 * time.Second))
	_, err = db.Get("k1s")
	require.ErrorIs(t, err, engine.ErrNotFound)
	_, err = db.Get("k1m0s")
	require.NoError(t, err)
}

func TestDB_TTL_KeptByPatchAndIncrement_ClearedBySet(t *testing.T) {
	c := newClock()
	db := open(t, c)
	_, err := db.Set("n", "1", &engine.SetOptions{TTL: time.Minute})
	require.NoError(t, err)
	_, _, err = db.Increment("n", 1)
	require.NoError(t, err)
	_, err = db.Patch("n", "0")
	require.NoError(t, err)
	it, err := db.Get("n")
	require.NoError(t, err)
	require.Equal(t, "20", it.Value)
	require.Equal(t, c.Now().Add(time.Minute), it.ExpiresAt)
	_, err = db.Set("n", "x", nil)
	require.NoError(t, err)
	c.Advance(time.Hour)
	it, err = db.Get("n")
	require.NoError(t, err)
	require.True(t, it.ExpiresAt.IsZero())
	require.Equal(t, 0, engine.Sweep(db))
}

func TestDB_TTL_ExpiredKeyIsNew(t *testing.T) {
	c := newClock()
	db := open(t, c)
	_, err := db.Set("k", "5", &engine.SetOptions{TTL: time.Second})
	require.NoError(t, err)
	c.Advance(time.Second)
	n, _, err := db.Increment("k", 1)
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "an expired key counts as missing")
	it, err := db.Get("k")
	require.NoError(t, err)
	require.Equal(t, int64(1), it.Version)
	require.Equal(t, it.Revision, it.CreateRevision)
	require.Equal(t, 0, engine.Sweep(db), "the rewrite dropped the old expiry")
	_, err = db.PutIfAbsent("k", "x", nil)
	require.ErrorIs(t, err, engine.ErrConflict)
}

func TestDB_Closed(t *testing.T) {
	db, err := engine.Open("", nil)
	require.NoError(t, err)
	_, err = db.Set("k", "v", nil)
	require.NoError(t, err)
	before, err := db.Range("", "", nil) // taken while open, looped over after Close
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.NoError(t, db.Close(), "Close twice is safe")
	ops := map[string]func() error{
		"get":    func() error { _, err := db.Get("k"); return err },
		"set":    func() error { _, err := db.Set("k", "v", nil); return err },
		"patch":  func() error { _, err := db.Patch("k", "v"); return err },
		"incr":   func() error { _, _, err := db.Increment("k", 1); return err },
		"cas":    func() error { _, err := db.CompareAndSwap("k", 1, "v", nil); return err },
		"delete": func() error { _, err := db.Delete("k"); return err },
		"update": func() error { return errOf(db.Update(func(*engine.Tx) error { return nil })) },
		"view":   func() error { return db.View(func(*engine.Tx) error { return nil }) },
		"range":  func() error { _, err := db.Range("", "", nil); return err },
		"prefix": func() error { _, err := db.Prefix("", nil); return err },
		"range taken before Close": func() error {
			n, last := 0, error(nil)
			for _, err := range before {
				n, last = n+1, err
			}
			if n != 1 {
				return fmt.Errorf("yielded %d items, want the error alone", n)
			}
			return last
		},
	}
	for name, op := range ops {
		require.ErrorIs(t, op(), engine.ErrClosed, name)
	}
}

func TestDB_Stats(t *testing.T) {
	db := open(t, nil)
	_, _ = db.Set("a", "1", nil)
	_, _ = db.Set("b", "1", nil)
	_, _ = db.Get("a")
	_, _ = db.Get("zz")
	_, _ = db.Delete("b")
	for range enginetest.Items(db.Range("", "", nil)) {
	}
	s := db.Stats()
	require.Equal(t, int64(1), s.Keys)
	require.Equal(t, int64(3), s.Revision)
	require.Equal(t, int64(2), s.Gets)
	require.Equal(t, int64(3), s.Writes)
	require.Equal(t, int64(3), s.Commits)
	require.Equal(t, int64(1), s.Scans)
	require.Equal(t, int64(0), s.Snapshots)
}

func collectKeys(t testing.TB, seq func(func(engine.Item, error) bool)) []string {
	t.Helper()
	keys := []string{}
	for it, err := range seq {
		require.NoError(t, err)
		keys = append(keys, it.Key)
	}
	return keys
}

// stallFS is a MemFS whose files' Close waits, once armed, until
// release is closed.
type stallFS struct {
	*vfs.MemFS
	armed   atomic.Bool
	stalled chan struct{} // closed when a Close waits
	once    sync.Once
	release chan struct{}
}

type stallFile struct {
	vfs.File
	fs *stallFS
}

func (fs *stallFS) Create(name string) (vfs.File, error) {
	f, err := fs.MemFS.Create(name)
	return stallFile{f, fs}, err
}

func (fs *stallFS) OpenAppend(name string) (vfs.File, error) {
	f, err := fs.MemFS.OpenAppend(name)
	return stallFile{f, fs}, err
}

func (f stallFile) Close() error {
	if f.fs.armed.Load() {
		f.fs.once.Do(func() { close(f.fs.stalled) })
		<-f.fs.release
	}
	return f.File.Close()
}

// TestDB_Close_SecondWaitsForTheFirst: a Close that finds another under
// way returns once that one has finished, with the log closed and its
// folder free to open again, not while the first is still closing it.
func TestDB_Close_SecondWaitsForTheFirst(t *testing.T) {
	fs := &stallFS{MemFS: vfs.NewMemFS(), stalled: make(chan struct{}), release: make(chan struct{})}
	o := &engine.Options{FS: fs, SweepInterval: -1}
	db, err := engine.Open("db", o)
	require.NoError(t, err)
	_, err = db.Set("k", "v", nil)
	require.NoError(t, err)

	fs.armed.Store(true)
	first := make(chan error, 1)
	go func() { first <- db.Close() }()
	<-fs.stalled // the first Close is closing the log
	second := make(chan error, 1)
	go func() { second <- db.Close() }()
	select {
	case err := <-second:
		t.Errorf("the second Close returned (%v) while the first was closing the log", err)
		second <- err
	case <-time.After(50 * time.Millisecond):
	}
	close(fs.release)
	require.NoError(t, <-first)
	require.NoError(t, <-second)

	db, err = engine.Open("db", o)
	require.NoError(t, err)
	require.NoError(t, db.Close())
}
