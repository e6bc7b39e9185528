package adapter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// The visitor load: loadClients connections, each with its own visitor
// token (keys under todo:, notified of one of eight groups), each keeping
// loadWindow requests in flight, of a mix of sets, patches, increments,
// deletes, ranges and subscribes, against an adapter with tight limits
// and a quota. docs/protocol.md ("Load") states the bound it checks.
const (
	loadClients = 64
	loadWindow  = 8
	loadValue   = 4 << 10 // largest value set; patches add up to 1 KiB
	loadOps     = 80      // requests per client in the test
)

// loadOptions are the adapter's and the engine's options under load.
func loadOptions() (adapter.Options, engine.Options, adapter.QuotaLimit) {
	return adapter.Options{
			MaxQueuedBytes: 256 << 10,
			MaxMessageSize: 64 << 10,
			MaxInFlight:    loadWindow,
			MaxReplyBytes:  64 << 10,
		}, engine.Options{SweepInterval: -1, MaxValueSize: 16 << 10, HistoryEvents: 20_000, HistoryBytes: 16 << 20},
		adapter.QuotaLimit{Prefix: "todo:", MaxKeys: 2_000, MaxBytes: 1 << 20}
}

// loadHeapBound is what the load may add to the process's heap, derived
// from the options as docs/protocol.md states it: per connection, its
// byte budget, encoding buffers, the message being read, the requests
// and range reads in flight, and 2 MiB for subscriptions and goroutines;
// per client (in this process), a message being read and its requests;
// then the stored data (the quota, and 1 KiB per key of overhead) and the
// change history (its bytes, and 256 bytes per event).
func loadHeapBound(o adapter.Options, eo engine.Options, q adapter.QuotaLimit) int64 {
	perConn := 3*o.MaxQueuedBytes + o.MaxMessageSize + int64(o.MaxInFlight)*(o.MaxMessageSize+int64(o.MaxReplyBytes)) + 2<<20
	perClient := o.MaxQueuedBytes + int64(o.MaxInFlight)*o.MaxMessageSize
	return loadClients*(perConn+perClient) + q.MaxBytes + q.MaxKeys<<10 + eo.HistoryBytes + int64(eo.HistoryEvents)*256
}

// loadResult is what a run of the load saw.
type loadResult struct {
	replies, notes atomic.Int64
	codes          sync.Map // code -> *atomic.Int64
	unexpected     atomic.Value
	elapsed        time.Duration
}

func (r *loadResult) count(code int) {
	n, _ := r.codes.LoadOrStore(code, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func (r *loadResult) codeCounts() map[int]int64 {
	out := map[int]int64{}
	r.codes.Range(func(k, v any) bool {
		out[k.(int)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// loadRequest is the i-th request of a client, drawn from rng.
func loadRequest(rng *rand.Rand, i int) map[string]any {
	key := fmt.Sprintf("todo:g%d:k%02d", rng.IntN(8), rng.IntN(100))
	switch p := rng.IntN(20); {
	case p < 9:
		return map[string]any{"op": 2, "key": key, "value": strings.Repeat("s", 1+rng.IntN(loadValue))}
	case p < 11:
		return map[string]any{"op": 3, "key": key, "value": strings.Repeat("p", 1+rng.IntN(1<<10))}
	case p < 13:
		return map[string]any{"op": 6, "key": fmt.Sprintf("todo:n:%d", rng.IntN(16)), "value": 1}
	case p < 16:
		return map[string]any{"op": 4, "key": key}
	case p < 19:
		return map[string]any{"op": 5, "key": "todo:", "endKey": "todo:~", "limit": 200}
	default:
		return map[string]any{"op": 100, "patterns": []string{key}}
	}
}

// runLoad runs ops requests on each of loadClients visitor connections to
// f and waits for every reply. Replies of a code outside the documented
// ones the load may meet, and connections that end early, are recorded in
// unexpected.
func runLoad(tb testing.TB, f *fixture, ops int) *loadResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var res loadResult
	conns := make([]*websocket.Conn, loadClients)
	for i := range conns {
		tok := f.token(fmt.Sprintf(`{"subscribePatterns":["todo:g%d:*"],"accessPattern":"^todo:"}`, i%8))
		ws, _, err := websocket.Dial(ctx, strings.Replace(f.base, "http", "ws", 1)+"/ws?token="+url.QueryEscape(tok), nil)
		require.NoError(tb, err)
		ws.SetReadLimit(1 << 20)
		conns[i] = ws
	}
	// 200: done; 404: get or delete of a missing key; 413: a patch past
	// the engine's value size; 429: a subscribe over the caps; 507: the
	// quota.
	allowed := map[int]bool{200: true, 404: true, 413: true, 429: true, 507: true}
	start := time.Now()
	var wg sync.WaitGroup
	for i, ws := range conns {
		wg.Add(2)
		slots := make(chan struct{}, loadWindow)
		go func() { // writer
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for j := 1; j <= ops; j++ {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				req := loadRequest(rng, j)
				req["messageId"] = j
				b, _ := json.Marshal(req)
				if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
					res.unexpected.Store(fmt.Sprintf("client %d: write: %v", i, err))
					return
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			for got := 0; got < ops; {
				_, b, err := ws.Read(ctx)
				if err != nil {
					res.unexpected.Store(fmt.Sprintf("client %d: read after %d replies: %v", i, got, err))
					return
				}
				var r struct {
					Type      string `json:"type"`
					Code      int    `json:"code"`
					MessageID int    `json:"messageId"`
				}
				if err := json.Unmarshal(b, &r); err != nil {
					res.unexpected.Store(fmt.Sprintf("client %d: %v: %.200s", i, err, b))
					return
				}
				if r.Type == "notification" {
					res.notes.Add(1)
					continue
				}
				if r.MessageID == 0 || !allowed[r.Code] {
					res.unexpected.Store(fmt.Sprintf("client %d: %.300s", i, b))
				}
				res.count(r.Code)
				res.replies.Add(1)
				got++
				<-slots
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	for _, ws := range conns {
		ws.Close(websocket.StatusNormalClosure, "")
	}
	return &res
}

// newLoadFixture serves an in-memory DB with loadOptions and their quota.
func newLoadFixture(tb testing.TB) (*fixture, *adapter.PrefixQuota, adapter.Options, engine.Options, adapter.QuotaLimit) {
	tb.Helper()
	o, eo, limit := loadOptions()
	db, err := engine.Open("", &eo)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, db.Close()) })
	q, err := adapter.NewPrefixQuota(db, limit)
	require.NoError(tb, err)
	o.APIKeys, o.Quota = []string{apiKey}, q
	a, err := adapter.New(db, &o)
	require.NoError(tb, err)
	f := &fixture{t: tb, db: db, a: a}
	f.serve()
	return f, q, o, eo, limit
}

// heapInUse is the heap in use after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestWS_VisitorLoad: 64 visitors at once, 8 requests in flight each, a
// mix of writes, ranges and subscriptions over loopback: every reply is
// 200 or a documented limit, no connection is dropped, no connection's
// queued bytes pass MaxQueuedBytes, the heap stays under the bound
// derived from the options, and the quota's count matches the DB.
func TestWS_VisitorLoad(t *testing.T) {
	f, q, o, eo, limit := newLoadFixture(t)
	a, db := f.a, f.db

	base := heapInUse()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if h := heapInUse() - base; h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	res := runLoad(t, f, loadOps)
	close(stop)
	<-sampled

	require.Nil(t, res.unexpected.Load())
	require.EqualValues(t, loadClients*loadOps, res.replies.Load())
	st := a.Stats()
	bound := loadHeapBound(o, eo, limit)
	t.Logf("%d requests in %v (%.0f/s), %d notifications, codes %v; peak queued for one connection %d bytes (budget %d); heap peak +%.1f MiB (bound %.1f MiB)",
		res.replies.Load(), res.elapsed, float64(res.replies.Load())/res.elapsed.Seconds(), res.notes.Load(), res.codeCounts(),
		st.PeakQueuedBytes, o.MaxQueuedBytes, float64(peak.Load())/(1<<20), float64(bound)/(1<<20))
	require.LessOrEqual(t, st.PeakQueuedBytes, o.MaxQueuedBytes)
	require.Zero(t, st.SlowClosed)
	require.Less(t, peak.Load(), bound)
	require.Equal(t, scanUsage(t, db, "todo:"), q.Usage("todo:"))
	u := q.Usage("todo:")
	require.LessOrEqual(t, u.Keys, limit.MaxKeys)
	require.LessOrEqual(t, u.Bytes, limit.MaxBytes)
}

// BenchmarkWS_VisitorLoad runs the visitor load of TestWS_VisitorLoad
// with b.N requests in all (b.N/64 per client) and reports requests per
// second, notifications per second, and the most bytes queued for one
// connection.
func BenchmarkWS_VisitorLoad(b *testing.B) {
	f, _, o, _, _ := newLoadFixture(b)
	ops := max(1, b.N/loadClients)
	b.ReportAllocs()
	b.ResetTimer()
	res := runLoad(b, f, ops)
	b.StopTimer()
	if u := res.unexpected.Load(); u != nil {
		b.Fatal(u)
	}
	st := f.a.Stats()
	if st.PeakQueuedBytes > o.MaxQueuedBytes {
		b.Fatalf("peak queued %d bytes, budget %d", st.PeakQueuedBytes, o.MaxQueuedBytes)
	}
	b.ReportMetric(float64(res.replies.Load())/res.elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(res.notes.Load())/res.elapsed.Seconds(), "notes/s")
	b.ReportMetric(float64(st.PeakQueuedBytes), "peak-queued-B")
}
