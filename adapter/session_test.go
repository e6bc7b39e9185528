package adapter

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
	"github.com/stretchr/testify/require"
)

// levels is a DB that reads at levels (every one the same), as a cluster
// node's handle does.
type levels struct{ *engine.DB }

func (s levels) ReadAt(string, int64) (Reader, error) { return s.DB, nil }

// TestNoteSeen_OnlyWithLevels: a connection keeps its session (the
// highest revision it was sent) only for a store that reads at levels; a
// DB ignores the revision a read asks for, and a connection to one does
// no work per notification or reply to keep it.
func TestNoteSeen_OnlyWithLevels(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	for _, tc := range []struct {
		store Store
		want  int64
	}{{db, 2}, {levels{db}, 7}} {
		a, err := New(tc.store, &Options{APIKeys: []string{"k"}})
		require.NoError(t, err)
		c := &conn{a: a}
		c.session.Store(2) // the dial's minRevision
		c.noteSeen(7)
		c.noteSeen(5)
		require.Equal(t, tc.want, c.session.Load(), "%T", tc.store)
		r, err := a.reader(LevelLinearizable, 99)
		require.NoError(t, err)
		require.Same(t, db, r.(interface{ Revision() int64 }), "%T", tc.store)
	}
}

// TestTokenBucket_TwoTakers: a connection's bucket is taken from by its
// reader and, as the connection closes, by the close handshake reading a
// ping (OnPingReceived): under -race this fails if take is not safe for
// both at once. Together they never spend more than the burst.
func TestTokenBucket_TwoTakers(t *testing.T) {
	b := &tokenBucket{rate: 0, burst: 100, tokens: 100, last: time.Now()}
	var took atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if b.take() {
					took.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(100), took.Load())
}

// TestAccess_Narrow: a token's range reads only the keys its access
// pattern's bounds allow, and all of those between its own bounds.
func TestAccess_Narrow(t *testing.T) {
	room := &access{pattern: pattern.MustParse("^room:1:")}
	anywhere := &access{pattern: pattern.MustParse("/room/")}
	for _, c := range []struct {
		ac                    *access
		start, stop, from, to string
	}{
		{&access{full: true}, "\x00", "", "\x00", ""},
		{anywhere, "\x00", "z", "\x00", "z"},
		{room, "\x00", "", "room:1:", "room:1;"},
		{room, "room:1:b", "room:2", "room:1:b", "room:1;"},
		{room, "a", "room:1:c", "room:1:", "room:1:c"},
		{room, "z", "", "z", "z"}, // nothing
		{room, "a", "b", "room:1:", "room:1:"},
	} {
		from, to := c.ac.narrow(c.start, c.stop)
		require.Equal(t, [2]string{c.from, c.to}, [2]string{from, to}, "%q..%q", c.start, c.stop)
	}
}

// TestCloseReason: a reason too long for a close frame is cut to fit, at
// a character's start.
func TestCloseReason(t *testing.T) {
	require.Equal(t, "short", closeReason("short"))
	long := strings.Repeat("a", 122) + "é and more"
	require.Equal(t, strings.Repeat("a", 122), closeReason(long))
	require.Len(t, closeReason(strings.Repeat("x", 500)), maxCloseReason)
}
