package adapter_test

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

const visitorScope = `{"subscribePatterns":["todo:*"],"accessPattern":"^todo:"}`

// newQuotaFixture serves a DB in dir ("": in memory) whose adapter has a
// PrefixQuota with limits (and o's other options), counted from the DB.
func newQuotaFixture(t testing.TB, dir string, o *adapter.Options, limits ...adapter.QuotaLimit) (*fixture, *adapter.PrefixQuota) {
	t.Helper()
	db, err := engine.Open(dir, &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	q, err := adapter.NewPrefixQuota(db, limits...)
	require.NoError(t, err)
	opts := adapter.Options{}
	if o != nil {
		opts = *o
	}
	opts.APIKeys, opts.Quota = []string{apiKey}, q
	a, err := adapter.New(db, &opts)
	require.NoError(t, err)
	f := &fixture{t: t, db: db, a: a}
	f.serve()
	return f, q
}

// scanUsage counts what db holds under prefix.
func scanUsage(t testing.TB, db *engine.DB, prefix string) adapter.QuotaUsage {
	t.Helper()
	var u adapter.QuotaUsage
	for it, err := range enginetest.Items(db.Prefix(prefix, nil)) {
		require.NoError(t, err)
		u.Keys++
		u.Bytes += int64(len(it.Key) + len(it.Value))
	}
	return u
}

// TestQuota_FillThenRefused: a visitor fills its prefix's quota of keys,
// then of bytes; every write that would pass it, by any op and over REST
// too, gets 507 and writes nothing, while writes that free room pass.
func TestQuota_FillThenRefused(t *testing.T) {
	f, q := newQuotaFixture(t, "", nil, adapter.QuotaLimit{Prefix: "todo:", MaxKeys: 3, MaxBytes: 100})
	c := f.dial("token=" + url.QueryEscape(f.token(visitorScope)))
	for i := 1; i <= 3; i++ {
		require.Equal(t, 200.0, c.call(m{"op": 2, "key": fmt.Sprint("todo:", i), "value": "a"})["code"])
	}
	require.Equal(t, adapter.QuotaUsage{Keys: 3, Bytes: 21}, q.Usage("todo:"))

	full := func(what string, r map[string]any) {
		t.Helper()
		require.Equal(t, 507.0, r["code"], "%s: %v", what, r)
		require.Contains(t, r["error"], "quota exceeded", what)
	}
	full("set", c.call(m{"op": 2, "key": "todo:4", "value": "a"}))
	full("patch", c.call(m{"op": 3, "key": "todo:4", "value": "a"}))
	full("increment", c.call(m{"op": 6, "key": "todo:4", "value": 1}))
	full("compare-and-swap", c.call(m{"op": 102, "key": "todo:4", "value": "a", "revision": 0}))
	code, r := f.rest("POST", "/record", apiKey, `{"key":"todo:4","value":"a"}`)
	require.Equal(t, 507, code, "REST set with the API key: %v", r)
	code, r = f.rest("POST", "/record/atomic", apiKey, `{"key":"todo:4","increment":1}`)
	require.Equal(t, 507, code, "REST increment: %v", r)
	require.Equal(t, 404.0, c.call(m{"op": 1, "key": "todo:4"})["code"], "nothing written")

	// Bytes: 21 held; todo:1 grows from 7 to 76 bytes, to 90 in all.
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:1", "value": strings.Repeat("v", 70)})["code"])
	full("patch past the bytes", c.call(m{"op": 3, "key": "todo:2", "value": strings.Repeat("x", 11)}))
	require.Equal(t, "a", c.call(m{"op": 1, "key": "todo:2"})["value"], "nothing written")
	require.Equal(t, 200.0, c.call(m{"op": 3, "key": "todo:2", "value": strings.Repeat("x", 10)})["code"], "exactly to the limit")
	require.Equal(t, adapter.QuotaUsage{Keys: 3, Bytes: 100}, q.Usage("todo:"))
	full("set past the bytes", c.call(m{"op": 2, "key": "todo:3", "value": "ab"}))
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:3", "value": "b"})["code"], "same size")
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:1", "value": "short"})["code"], "a shrinking write")
	require.Equal(t, scanUsage(t, f.db, "todo:"), q.Usage("todo:"))

	// Other keys are not bound.
	code, r = f.rest("POST", "/record", apiKey, `{"key":"other","value":"`+strings.Repeat("v", 500)+`"}`)
	require.Equal(t, 200, code, "%v", r)
}

// TestQuota_DeleteFreesRoom: deleting keys, over WebSocket or REST, gives
// their room back.
func TestQuota_DeleteFreesRoom(t *testing.T) {
	f, q := newQuotaFixture(t, "", nil, adapter.QuotaLimit{Prefix: "todo:", MaxKeys: 2, MaxBytes: 1000})
	c := f.dial("token=" + url.QueryEscape(f.token(visitorScope)))
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:1", "value": "a"})["code"])
	require.Equal(t, 200.0, c.call(m{"op": 6, "key": "todo:2", "value": 5})["code"])
	require.Equal(t, 507.0, c.call(m{"op": 2, "key": "todo:3", "value": "a"})["code"])
	require.Equal(t, 200.0, c.call(m{"op": 4, "key": "todo:1"})["code"])
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:3", "value": "a"})["code"])
	require.Equal(t, 507.0, c.call(m{"op": 2, "key": "todo:4", "value": "a"})["code"])
	code, r := f.rest("DELETE", "/record/todo:2", apiKey, "")
	require.Equal(t, 200, code, "%v", r)
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:4", "value": "a"})["code"])
	require.Equal(t, 404.0, c.call(m{"op": 4, "key": "todo:2"})["code"], "a missing key frees nothing")
	require.Equal(t, adapter.QuotaUsage{Keys: 2, Bytes: 14}, q.Usage("todo:"))
	require.Equal(t, scanUsage(t, f.db, "todo:"), q.Usage("todo:"))
}

// TestQuota_ConcurrentWriters: writers on many connections at once cannot
// together pass the quota, in keys nor in bytes: exactly what fits is
// written.
func TestQuota_ConcurrentWriters(t *testing.T) {
	f, q := newQuotaFixture(t, "", nil,
		adapter.QuotaLimit{Prefix: "todo:", MaxKeys: 50, MaxBytes: 1 << 20},
		adapter.QuotaLimit{Prefix: "chat:", MaxKeys: 1000, MaxBytes: 10_000})
	tok := url.QueryEscape(f.token(`{"accessPattern":"^(todo|chat):"}`))
	const conns, each = 8, 20
	codes := map[float64]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		c := f.dial("token=" + tok)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// All of a connection's writes are sent before any reply is
			// read, so that they run at once (up to MaxInFlight).
			for j := 0; j < each; j++ {
				c.write(m{"op": 2, "key": fmt.Sprintf("todo:c%d:k%02d", i, j), "value": "v", "messageId": 2*j + 2})
				// 111 bytes each: 90 fit in 10,000.
				c.write(m{"op": 2, "key": fmt.Sprintf("chat:c%d:k%02d", i, j), "value": strings.Repeat("v", 100), "messageId": 2*j + 1})
			}
			for j := 0; j < 2*each; j++ {
				r := c.read()
				mu.Lock()
				codes[r["code"].(float64)+1000*float64(int(r["messageId"].(float64))%2)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, map[float64]int{200: 50, 507: conns*each - 50, 1200: 90, 1507: conns*each - 90}, codes,
		"todo: 50 keys written, chat: 90 values of 111 bytes (1000+code)")
	require.Equal(t, adapter.QuotaUsage{Keys: 50, Bytes: 50 * 12}, scanUsage(t, f.db, "todo:"))
	require.Equal(t, adapter.QuotaUsage{Keys: 90, Bytes: 90 * 111}, scanUsage(t, f.db, "chat:"))
	require.Equal(t, scanUsage(t, f.db, "todo:"), q.Usage("todo:"))
	require.Equal(t, scanUsage(t, f.db, "chat:"), q.Usage("chat:"))
}

// TestQuota_Restart: the totals are counted again from the DB when it is
// reopened, so a full quota stays full across a restart, and deletes
// made then still free room.
func TestQuota_Restart(t *testing.T) {
	dir := t.TempDir()
	limit := adapter.QuotaLimit{Prefix: "todo:", MaxKeys: 3, MaxBytes: 1000}
	t.Run("fill", func(t *testing.T) {
		f, _ := newQuotaFixture(t, dir, nil, limit)
		c := f.dial("token=" + url.QueryEscape(f.token(visitorScope)))
		for i := 1; i <= 3; i++ {
			require.Equal(t, 200.0, c.call(m{"op": 2, "key": fmt.Sprint("todo:", i), "value": "abc"})["code"])
		}
		require.Equal(t, 507.0, c.call(m{"op": 2, "key": "todo:4", "value": "a"})["code"])
	})
	t.Run("reopened", func(t *testing.T) {
		f, q := newQuotaFixture(t, dir, nil, limit)
		require.Equal(t, adapter.QuotaUsage{Keys: 3, Bytes: 27}, q.Usage("todo:"))
		c := f.dial("token=" + url.QueryEscape(f.token(visitorScope)))
		require.Equal(t, 507.0, c.call(m{"op": 2, "key": "todo:4", "value": "a"})["code"])
		require.Equal(t, 200.0, c.call(m{"op": 4, "key": "todo:2"})["code"])
		require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:4", "value": "a"})["code"])
		require.Equal(t, 507.0, c.call(m{"op": 2, "key": "todo:5", "value": "a"})["code"])
	})
}

func TestQuota_InvalidLimits(t *testing.T) {
	db, err := engine.Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	_, err = adapter.NewPrefixQuota(db, adapter.QuotaLimit{Prefix: "", MaxKeys: 1, MaxBytes: 1})
	require.ErrorIs(t, err, adapter.ErrInvalidOptions)
	_, err = adapter.NewPrefixQuota(db, adapter.QuotaLimit{Prefix: "a:", MaxKeys: -1, MaxBytes: 1})
	require.ErrorIs(t, err, adapter.ErrInvalidOptions)
}

// TestQuota_ExpiredKeysLeaveRoom: keys gone by expiry, which no write
// through the adapter removed, do not hold a prefix at its limit: a key
// written again and again with a TTL stays one key, and a write refused
// while the counts were off is taken once they are counted again.
func TestQuota_ExpiredKeysLeaveRoom(t *testing.T) {
	f, q := newQuotaFixture(t, "", nil, adapter.QuotaLimit{Prefix: "todo:", MaxKeys: 2, MaxBytes: 1000})
	c := f.dial("token=" + url.QueryEscape(f.token(visitorScope)))
	for i := 1; i <= 6; i++ {
		r := c.call(m{"op": 2, "key": "todo:a", "value": "v", "ttl": 1})
		require.Equal(t, 200.0, r["code"], "write %d of the one key todo:a: %v", i, r)
		time.Sleep(120 * time.Millisecond) // the TTL runs out, and a count may be made again
		require.Equal(t, 404.0, c.call(m{"op": 1, "key": "todo:a"})["code"])
	}
	require.LessOrEqual(t, q.Usage("todo:").Keys, int64(2))

	// Two keys that stay: the limit still holds.
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:b", "value": "v"})["code"])
	time.Sleep(120 * time.Millisecond)
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:c", "value": "v"})["code"])
	time.Sleep(120 * time.Millisecond)
	require.Equal(t, 507.0, c.call(m{"op": 2, "key": "todo:d", "value": "v"})["code"])
	require.Equal(t, scanUsage(t, f.db, "todo:"), q.Usage("todo:"))
}

// TestQuota_RecountIsBounded: a count made again before a refusal reads
// at most MaxKeys + 1 keys, whatever the prefix holds (keys written by the
// Go API pass no quota), so that it holds the writer lock for a bounded
// time; the refusal stands, and the count stopped short is not kept.
func TestQuota_RecountIsBounded(t *testing.T) {
	f, q := newQuotaFixture(t, "", nil, adapter.QuotaLimit{Prefix: "todo:", MaxKeys: 2, MaxBytes: 1 << 30})
	c := f.dial("apiKey=" + apiKey)
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:a", "value": "v"})["code"])
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "todo:b", "value": "v"})["code"])
	for i := range 5000 {
		_, err := f.db.Set(fmt.Sprintf("todo:%05d", i), "v", nil)
		require.NoError(t, err)
	}
	require.Equal(t, 507.0, c.call(m{"op": 2, "key": "todo:new", "value": "v"})["code"])
	require.Equal(t, adapter.QuotaUsage{Keys: 2, Bytes: 14}, q.Usage("todo:"), "the count stopped short is not kept")
}

// TestQuota_FailedBatchGivesBackItsDelete: a DBX batch that deletes a key
// and then fails gives back what the quota counted for each of its
// writes, the delete's freed key included, though giving it back takes
// the count back up to the limit: the count stays what the DB holds, and
// the limit holds after. Before, the quota refused the delete's give-back
// as it would a new key past the limit, and counted a key less than the
// DB held, letting a key past the limit in.
func TestQuota_FailedBatchGivesBackItsDelete(t *testing.T) {
	f, q := newQuotaFixture(t, "", nil, adapter.QuotaLimit{Prefix: "q:", MaxKeys: 2, MaxBytes: 1 << 20})
	c := f.dbx("api_key=" + apiKey)
	c.ok("string.mset", obj{"pairs": obj{"q:1": "a", "q:2": "b"}})
	held := q.Usage("q:")
	require.Equal(t, scanUsage(t, f.db, "q:"), held)
	e := c.fails("quota_exceeded", "batch", obj{"operations": []obj{
		{"method": "string.delete", "params": obj{"key": "q:1"}},
		{"method": "string.set", "params": obj{"key": "q:3", "value": "c"}},
		{"method": "string.set", "params": obj{"key": "q:4", "value": "d"}},
	}})
	require.EqualValues(t, 2, e["operation"])
	require.Equal(t, scanUsage(t, f.db, "q:"), q.Usage("q:"), "the batch changed nothing, and the count is what the DB holds")
	c.fails("quota_exceeded", "string.set", obj{"key": "q:5", "value": "e"})
	require.Equal(t, int64(2), scanUsage(t, f.db, "q:").Keys)
}
