package adapter_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// refusing is a DB whose writes, and reads at a level, fail with an error
// of a cluster node while err is set; otherwise it is the DB.
type refusing struct {
	*engine.DB
	mu  sync.Mutex
	err error
}

func (s *refusing) refusal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *refusing) Set(key, value string, o *engine.SetOptions) (engine.Item, error) {
	if err := s.refusal(); err != nil {
		return engine.Item{}, err
	}
	return s.DB.Set(key, value, o)
}

func (s *refusing) CompareAndSwap(key string, rev int64, value string, o *engine.SetOptions) (engine.Item, error) {
	if err := s.refusal(); err != nil {
		return engine.Item{}, err
	}
	return s.DB.CompareAndSwap(key, rev, value, o)
}

func (s *refusing) Patch(key, value string) (engine.Item, error) {
	if err := s.refusal(); err != nil {
		return engine.Item{}, err
	}
	return s.DB.Patch(key, value)
}

func (s *refusing) Increment(key string, delta int64) (int64, int64, error) {
	if err := s.refusal(); err != nil {
		return 0, 0, err
	}
	return s.DB.Increment(key, delta)
}

func (s *refusing) Delete(key string) (int64, error) {
	if err := s.refusal(); err != nil {
		return 0, err
	}
	return s.DB.Delete(key)
}

// Update runs fn, then fails as a cluster node's commit would.
func (s *refusing) Update(fn func(tx *engine.Tx) error) (int64, error) {
	err := s.refusal()
	if err == nil {
		return s.DB.Update(fn)
	}
	errRefused := errors.New("refused")
	_, uerr := s.DB.Update(func(tx *engine.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRefused // roll back what fn wrote
	})
	if !errors.Is(uerr, errRefused) {
		return 0, uerr
	}
	return 0, err
}

// ReadAt refuses reads at the leader level.
func (s *refusing) ReadAt(level string, minRev int64) (adapter.Reader, error) {
	if err := s.refusal(); err != nil && level == adapter.LevelLeader {
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
			s := &refusing{DB: db}
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
				s.mu.Lock()
				s.err = tc.err
				s.mu.Unlock()
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
				require.Len(t, observed, 4+6+5)
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
				s.mu.Lock()
				s.err = c.err
				s.mu.Unlock()
				code, m := f.rest("POST", "/record", apiKey, `{"key":"k","value":"w"}`)
				require.Equal(t, c.status, code, "%v", m)
				require.NotContains(t, m, "errorCode")
				wm := ws.call(map[string]any{"op": 2, "key": "k", "value": "w"})
				require.EqualValues(t, c.status, wm["code"], "%v", wm)
				require.NotContains(t, wm, "errorCode")
			}
			s.mu.Lock()
			s.err = nil
			s.mu.Unlock()
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
