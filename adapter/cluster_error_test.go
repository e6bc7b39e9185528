package adapter_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// refusing is a DB whose writes, and reads at the leader level, fail with
// an error of a cluster node while one is set.
type refusing struct{ enginetest.Refusing }

// ReadAt refuses reads at the leader level.
func (s *refusing) ReadAt(level string, minRev int64) (adapter.Reader, error) {
	if err := s.Refusal(); err != nil && level == adapter.LevelLeader {
		return nil, err
	}
	return s.DB, nil
}

// clusterRefusals are errors as a cluster node returns them, wrapped with
// detail, and the code and status a client must get for each.
var clusterRefusals = []struct {
	name   string
	err    error
	code   string
	status int
}{
	{"not committed", fmt.Errorf("%w: revision 7 went to another leader's write", cluster.ErrNotCommitted), "not_committed", 503},
	{"uncertain", fmt.Errorf("%w: revision 7 not applied within 5s", cluster.ErrUncertain), "uncertain", 504},
	{"uncertain, closing", fmt.Errorf("%w: %w", cluster.ErrUncertain, cluster.ErrClosed), "uncertain", 504},
	{"uncertain, leader moved", fmt.Errorf("%w: %w", cluster.ErrUncertain, &cluster.NotLeaderError{ID: "n1", Addr: "127.0.0.1:1"}), "uncertain", 504},
	{"no leader", fmt.Errorf("%w: %w", cluster.ErrNoLeader, context.DeadlineExceeded), "no_leader", 503},
	{"not leader", &cluster.NotLeaderError{ID: "n1", Addr: "127.0.0.1:1"}, "not_leader", 503},
	{"behind", fmt.Errorf("%w: at revision 3, asked for 9", cluster.ErrBehind), "behind", 503},
	{"closed", cluster.ErrClosed, "node_closed", 503},
}

// TestClusterErrors_Codes checks that each cluster refusal of a write
// reaches the client with its status and code: REST (set, increment,
// delete), HPKV WebSocket (set, patch, CAS, delete, increment), DBX
// (single writes and a batch), with and without a Quota (which writes
// through Update), and a read refused at the leader level; and what the
// adapter counts.
func TestClusterErrors_Codes(t *testing.T) {
	for _, quota := range []bool{false, true} {
		t.Run(fmt.Sprintf("quota=%v", quota), func(t *testing.T) {
			db, err := engine.Open("", &engine.Options{SweepInterval: -1})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, db.Close()) })
			s := &refusing{enginetest.Refusing{DB: db}}
			var mu sync.Mutex
			var observed []int
			opts := &adapter.Options{APIKeys: []string{apiKey}, OnRequest: func(op string, code int) {
				mu.Lock()
				observed = append(observed, code)
				mu.Unlock()
			}}
			if quota {
				opts.Quota = &recordingQuota{}
			}
			a, err := adapter.New(s, opts)
			require.NoError(t, err)
			f := &fixture{t: t, db: db, a: a}
			f.serve()
			_, err = db.Set("k", "v", nil)
			require.NoError(t, err)
			ws := f.dial("apiKey=" + apiKey)
			dbx := f.dbx("api_key=" + apiKey)

			for _, tc := range clusterRefusals {
				s.Refuse(tc.err)
				mu.Lock()
				observed = nil
				mu.Unlock()
				msg := tc.err.Error()

				for _, r := range []struct{ method, path, body string }{
					{"POST", "/record", `{"key":"k","value":"w"}`},
					{"POST", "/record/atomic", `{"key":"n","increment":1}`},
					{"DELETE", "/record/k", ""},
					{"GET", "/record/k?consistency=leader", ""},
				} {
					code, m := f.rest(r.method, r.path, apiKey, r.body)
					require.Equal(t, tc.status, code, "%s: REST %s %s: %v", tc.name, r.method, r.path, m)
					require.Equal(t, tc.code, m["errorCode"], "%s: REST %s %s", tc.name, r.method, r.path)
					require.Equal(t, msg, m["error"], "%s: the error's text is kept", tc.name)
				}

				for _, req := range []map[string]any{
					{"op": 2, "key": "k", "value": "w"},
					{"op": 3, "key": "k", "value": "w"},
					{"op": 102, "key": "k", "value": "w", "revision": 1},
					{"op": 4, "key": "k"},
					{"op": 6, "key": "n", "value": "1"},
					{"op": 1, "key": "k", "consistency": "leader"},
				} {
					m := ws.call(req)
					require.EqualValues(t, tc.status, m["code"], "%s: WebSocket %v: %v", tc.name, req, m)
					require.Equal(t, tc.code, m["errorCode"], "%s: WebSocket %v", tc.name, req)
					require.Equal(t, msg, m["error"])
				}

				for _, c := range []struct {
					method string
					params any
				}{
					{"string.set", map[string]any{"key": "k", "value": "w"}},
					{"string.setnx", map[string]any{"key": "z", "value": "1"}},
					{"string.incr", map[string]any{"key": "n"}},
					{"string.delete", map[string]any{"key": "k"}},
					{"string.mset", map[string]any{"pairs": map[string]any{"a": "1", "b": "2"}}},
					{"batch", map[string]any{"operations": []any{
						map[string]any{"method": "string.set", "params": map[string]any{"key": "a", "value": "1"}},
						map[string]any{"method": "string.incr", "params": map[string]any{"key": "n"}},
					}}},
				} {
					e := dbx.fails(tc.code, c.method, c.params)
					require.Contains(t, e["message"], msg, "%s: DBX %s", tc.name, c.method)
				}

				mu.Lock()
				require.Len(t, observed, 4+6+6)
				for _, code := range observed {
					require.Equal(t, tc.status, code, "%s: the status counted", tc.name)
				}
				mu.Unlock()
			}

			// Nothing was written by the refused writes.
			it, err := db.Get("k")
			require.NoError(t, err)
			require.Equal(t, "v", it.Value)
			for _, k := range []string{"n", "a", "b"} {
				_, err = db.Get(k)
				require.ErrorIs(t, err, engine.ErrNotFound, k)
			}

			// Errors without a code keep their mapping, and no errorCode.
			for _, c := range []struct {
				err    error
				status int
			}{
				{errors.New("cluster: node stopped after a failure to apply"), 500},
				{fmt.Errorf("cluster: forwarded: %w", engine.ErrConflict), 409},
				{engine.ErrClosed, 503},
			} {
				s.Refuse(c.err)
				code, m := f.rest("POST", "/record", apiKey, `{"key":"k","value":"w"}`)
				require.Equal(t, c.status, code, "%v", m)
				require.NotContains(t, m, "errorCode")
				wm := ws.call(map[string]any{"op": 2, "key": "k", "value": "w"})
				require.EqualValues(t, c.status, wm["code"], "%v", wm)
				require.NotContains(t, wm, "errorCode")
			}
			s.Refuse(nil)
			ws.ws.Close(1000, "")
			dbx.ws.Close(1000, "")
		})
	}
}

// TestClusterErrors_OtherReadLevelRefusal checks that a read level refused
// with an error the adapter has no code for is still 503, without a code.
func TestClusterErrors_OtherReadLevelRefusal(t *testing.T) {
	f, s := newLeveledFixture(t)
	s.notLeader = true
	code, m := f.rest("GET", "/record/k?consistency=leader", apiKey, "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.NotContains(t, m, "errorCode")
}

// follower is a DB that refuses Update, as a cluster node does off the
// leader, and serves the single writes, which a node forwards.
type follower struct{ *engine.DB }

func (follower) Update(func(tx *engine.Tx) error) (int64, error) {
	return 0, &cluster.NotLeaderError{ID: "n1", Addr: "127.0.0.1:1"}
}

// TestDBX_SingleWritesNeedNoTransaction checks that DBX's single writes
// (set, setnx, delete, the increments) run through the Store's own
// methods, which a cluster follower forwards to the leader, while the
// writes that need a transaction get its refusal (not_leader).
func TestDBX_SingleWritesNeedNoTransaction(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	a, err := adapter.New(follower{db}, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	f := &fixture{t: t, db: db, a: a}
	f.serve()
	c := f.dbx("api_key=" + apiKey)

	res := c.ok("string.set", obj{"key": "k", "value": "v", "ttl": 100})
	require.EqualValues(t, db.Revision(), res["revision"])
	it, err := db.Get("k")
	require.NoError(t, err)
	require.Equal(t, "v", it.Value)
	require.WithinDuration(t, time.Now().Add(100*time.Second), it.ExpiresAt, 2*time.Second)
	res = c.ok("string.setnx", obj{"key": "n", "value": "1"})
	require.Equal(t, obj{"success": true, "created": true, "revision": float64(db.Revision())}, res)
	require.Equal(t, obj{"success": true, "created": false}, c.ok("string.setnx", obj{"key": "n", "value": "2"}))
	res = c.ok("string.incrby", obj{"key": "n", "amount": 10})
	require.Equal(t, obj{"value": 11.0, "revision": float64(db.Revision())}, res)
	require.Equal(t, 9.0, c.ok("string.decrby", obj{"key": "n", "amount": 2})["value"])
	require.Equal(t, 10.0, c.ok("string.incr", obj{"key": "n"})["value"])
	require.Equal(t, 9.0, c.ok("string.decr", obj{"key": "n"})["value"])
	c.fails("type_mismatch", "string.incr", obj{"key": "k"})
	c.fails("invalid_value", "string.decrby", obj{"key": "n", "amount": int64(math.MinInt64)})
	res = c.ok("string.delete", obj{"key": "k"})
	require.Equal(t, obj{"success": true, "deleted": true, "revision": float64(db.Revision())}, res)
	require.Equal(t, obj{"success": true, "deleted": false}, c.ok("string.delete", obj{"key": "k"}))

	for _, w := range []struct {
		method string
		params any
	}{
		{"string.append", obj{"key": "n", "value": "x"}},
		{"string.expire", obj{"key": "n", "ttl": 5}},
		{"string.mset", obj{"pairs": obj{"a": "1"}}},
		{"batch", obj{"operations": []any{obj{"method": "string.set", "params": obj{"key": "a", "value": "1"}}}}},
	} {
		e := c.fails("not_leader", w.method, w.params)
		require.Contains(t, e["message"], "the leader is n1", w.method)
	}
	it, err = db.Get("n")
	require.NoError(t, err)
	require.Equal(t, "9", it.Value)
}

// TestDBX_SingleWritesAsInATransaction runs the same DBX writes through
// the single-write methods (no Quota), through a transaction (with a
// Quota, which needs one), and with setnx in a transaction (a Store
// without PutIfAbsent): the replies and the data are the same.
func TestDBX_SingleWritesAsInATransaction(t *testing.T) {
	single := newFixture(t, nil)
	inTx := newFixture(t, &adapter.Options{Quota: &recordingQuota{}})
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	a, err := adapter.New(struct{ adapter.Store }{db}, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	noPIA := &fixture{t: t, db: db, a: a}
	noPIA.serve()
	reqs := []struct {
		method string
		params any
	}{
		{"string.set", obj{"key": "k", "value": "v"}},
		{"string.set", obj{"key": "t", "value": "v", "ttl": 60}},
		{"string.set", obj{"key": strings.Repeat("x", 2000), "value": "v"}},
		{"string.setnx", obj{"key": "k", "value": "w"}},
		{"string.setnx", obj{"key": "s", "value": "12"}},
		{"string.incr", obj{"key": "s"}},
		{"string.incrby", obj{"key": "s", "amount": int64(math.MaxInt64)}},
		{"string.decrby", obj{"key": "c", "amount": 5}},
		{"string.decrby", obj{"key": "c", "amount": int64(math.MinInt64)}},
		{"string.decr", obj{"key": "k"}},
		{"string.delete", obj{"key": "k"}},
		{"string.delete", obj{"key": "k"}},
		{"string.ttl", obj{"key": "t"}},
	}
	fixtures := []*fixture{single, inTx, noPIA}
	var replies [3][]map[string]any
	for i, f := range fixtures {
		c := f.dbx("api_key=" + apiKey)
		for _, r := range reqs {
			m := c.call(r.method, r.params)
			delete(m, "timestamp")
			replies[i] = append(replies[i], m)
		}
	}
	for i, f := range fixtures[1:] {
		require.Equal(t, replies[0], replies[i+1], i+1)
		require.Equal(t, single.db.Revision(), f.db.Revision())
		for _, k := range []string{"k", "t", "s", "c"} {
			a, aerr := single.db.Get(k)
			b, berr := f.db.Get(k)
			require.Equal(t, aerr, berr, k)
			require.Equal(t, a.Value, b.Value, k)
			require.Equal(t, a.Revision, b.Revision, k)
		}
	}
}

// TestClusterErrors_SubscriptionEnds checks that a subscription a cluster
// node ends (no leader, behind, closing), and one it refuses to start,
// reach the client as 503 with the error's code, in both dialects, after
// the notifications sent before; not as a 400, which a client takes as
// final.
func TestClusterErrors_SubscriptionEnds(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	s := &enginetest.Ending{DB: db}
	a, err := adapter.New(s, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	f := &fixture{t: t, db: db, a: a}
	f.serve()
	ws := f.dial("apiKey=" + apiKey)
	dbx := f.dbx("api_key=" + apiKey)

	for _, tc := range clusterRefusals {
		switch tc.name {
		case "no leader", "behind", "closed":
		default:
			continue // not errors a subscription meets
		}
		s.Refuse(nil)
		hr := ws.call(map[string]any{"op": 100, "patterns": []string{"k:*"}})
		require.EqualValues(t, 200, hr["code"], "%v", hr)
		dr := dbx.ok("subscribe", obj{"patterns": []string{"k:*"}})
		it, err := db.Set("k:1", tc.name, nil)
		require.NoError(t, err)
		n := ws.note()
		require.Equal(t, tc.name, n["value"])
		require.EqualValues(t, it.Revision, n["revision"])
		require.Equal(t, tc.name, dbx.note()["value"])

		s.End(tc.err, tc.err)
		m := ws.read()
		require.Equal(t, map[string]any{"code": float64(tc.status), "errorCode": tc.code, "error": tc.err.Error(),
			"subscriptionId": hr["subscriptionId"]}, m, tc.name)
		var dm map[string]any
		for dm == nil || dm["type"] == "heartbeat" {
			dm = dbx.read()
		}
		require.Equal(t, "error", dm["type"], "%v", dm)
		require.Equal(t, map[string]any{"code": tc.code, "message": tc.err.Error(), "subscriptionId": dr["subscriptionId"]},
			dm["error"], tc.name)

		// A subscribe the node refuses: the same status and code.
		rr := ws.call(map[string]any{"op": 100, "patterns": []string{"k:*"}, "fromRevision": it.Revision})
		require.EqualValues(t, tc.status, rr["code"], "%v", rr)
		require.Equal(t, tc.code, rr["errorCode"], tc.name)
		require.Equal(t, tc.err.Error(), rr["error"])
		e := dbx.fails(tc.code, "subscribe", obj{"patterns": []string{"k:*"}, "fromRevision": it.Revision})
		require.Equal(t, tc.err.Error(), e["message"])

		// The ended subscriptions hold their place until unsubscribed.
		require.EqualValues(t, 200, ws.call(map[string]any{"op": 101, "subscriptionId": hr["subscriptionId"]})["code"])
		require.Equal(t, true, dbx.ok("unsubscribe", obj{"subscriptionId": dr["subscriptionId"]})["success"])
	}
}
