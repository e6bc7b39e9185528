// Package metrics exposes a livekv database, and the adapter serving it,
// to Prometheus: a Collector reads the Stats of an engine.DB or a
// cluster.Node, and adapter.Stats, at
// each scrape, and counts the adapter's requests by operation and code
// through adapter.Options.OnRequest.
//
//	m := metrics.New(db)
//	a, _ := adapter.New(db, &adapter.Options{APIKeys: keys, OnRequest: m.OnRequest})
//	m.SetAdapter(a)
//	http.Handle("/metrics", m.Handler())
//
// docs/operations.md lists every series.
package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Collector collects a DB's and an adapter's metrics.
type Collector struct {
	db  Source
	reg *prometheus.Registry

	mu       sync.Mutex
	adapters []*adapter.Adapter // guarded by mu

	requests *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

// Source is what a Collector reads at each scrape: an *engine.DB, or a
// *cluster.Node, whose Stats describe raft's log rather than the engine's.
type Source interface {
	Stats() engine.Stats
}

// New returns a collector of db's metrics, registered with the Go
// runtime's and the process's in a registry of its own.
func New(db Source) *Collector {
	c := &Collector{db: db, reg: prometheus.NewRegistry()}
	c.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livekv_adapter_requests_total",
		Help: "Requests answered over WebSocket and REST, by operation and reply code.",
	}, []string{"op", "code"})
	c.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livekv_serve_refused_total",
		Help: "Requests refused with 429 before reaching the adapter, by reason.",
	}, []string{"reason"})
	c.reg.MustRegister(c, c.requests, c.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return c
}

// SetAdapter adds a's counters to the metrics. Given several adapters
// (of one database served at two mounts, say), the adapter series are
// their sums, and livekv_adapter_peak_queued_bytes the largest peak.
func (c *Collector) SetAdapter(a *adapter.Adapter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a != nil && !slices.Contains(c.adapters, a) {
		c.adapters = append(c.adapters, a)
	}
}

// OnRequest counts a request answered; pass it as
// adapter.Options.OnRequest.
func (c *Collector) OnRequest(op string, code int) {
	c.requests.WithLabelValues(op, strconv.Itoa(code)).Inc()
}

// Refused counts a request that a layer in front of the adapter answered
// 429 (too many connections from one address, say) for reason.
func (c *Collector) Refused(reason string) { c.refused.WithLabelValues(reason).Inc() }

// Handler serves the metrics in Prometheus' text format.
func (c *Collector) Handler() http.Handler {
	return promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg})
}

// Registry is the registry the collector is in, for adding more.
func (c *Collector) Registry() *prometheus.Registry { return c.reg }

type desc struct {
	d   *prometheus.Desc
	typ prometheus.ValueType
}

func newDesc(name, help string, typ prometheus.ValueType) desc {
	return desc{prometheus.NewDesc(name, help, nil, nil), typ}
}

var (
	keys        = newDesc("livekv_keys", "Keys stored, expired ones not yet swept included.", prometheus.GaugeValue)
	revision    = newDesc("livekv_revision", "Newest committed revision.", prometheus.GaugeValue)
	gets        = newDesc("livekv_gets_total", "Point reads.", prometheus.CounterValue)
	writes      = newDesc("livekv_writes_total", "Successful writes of any kind.", prometheus.CounterValue)
	commits     = newDesc("livekv_commits_total", "Write transactions committed.", prometheus.CounterValue)
	rollbacks   = newDesc("livekv_rollbacks_total", "Write transactions rolled back.", prometheus.CounterValue)
	scans       = newDesc("livekv_scans_total", "Range scans started.", prometheus.CounterValue)
	expired     = newDesc("livekv_expired_total", "Keys removed by the TTL sweeper.", prometheus.CounterValue)
	logBytes    = newDesc("livekv_log_bytes", "Bytes in the write-ahead log's segments.", prometheus.GaugeValue)
	checkpoints = newDesc("livekv_checkpoints_total", "Snapshots written since the database opened.", prometheus.CounterValue)
	fsync       = prometheus.NewDesc("livekv_fsync_duration_seconds", "How long fsyncs of the log took.", nil, nil)

	subs       = newDesc("livekv_subscriptions", "Open subscriptions.", prometheus.GaugeValue)
	catchingUp = newDesc("livekv_subscriptions_catching_up", "Subscriptions fed from the history, behind the others.", prometheus.GaugeValue)
	maxLag     = newDesc("livekv_subscriptions_max_lag_revisions", "Revisions the slowest subscription's reader is behind the newest.", prometheus.GaugeValue)
	compacted  = newDesc("livekv_subscriptions_compacted_total", "Subscriptions ended because they fell behind the history.", prometheus.CounterValue)
	timedOut   = newDesc("livekv_subscriptions_pattern_timeouts_total", "Subscriptions ended because a regex pattern ran out of time.", prometheus.CounterValue)
	published  = newDesc("livekv_events_published_total", "Change events published.", prometheus.CounterValue)
	delivered  = newDesc("livekv_events_delivered_total", "Change events put into subscriptions' buffers.", prometheus.CounterValue)
	history    = newDesc("livekv_history_events", "Change events held in the history for resuming subscriptions.", prometheus.GaugeValue)

	conns      = newDesc("livekv_adapter_connections", "WebSocket connections open.", prometheus.GaugeValue)
	throttled  = newDesc("livekv_adapter_throttled_total", "Requests the adapter answered 429.", prometheus.CounterValue)
	bytesOut   = newDesc("livekv_adapter_bytes_out_total", "Bytes of WebSocket messages and REST responses written.", prometheus.CounterValue)
	slowClosed = newDesc("livekv_adapter_slow_closed_total", "Connections closed because the client stopped reading.", prometheus.CounterValue)
	deadPeers  = newDesc("livekv_adapter_dead_peers_total", "Connections closed because a ping went unanswered.", prometheus.CounterValue)
	peakQueued = newDesc("livekv_adapter_peak_queued_bytes", "Most bytes ever held for one connection at once.", prometheus.GaugeValue)
)

var all = []desc{keys, revision, gets, writes, commits, rollbacks, scans, expired, logBytes, checkpoints,
	subs, catchingUp, maxLag, compacted, timedOut, published, delivered, history,
	conns, throttled, bytesOut, slowClosed, deadPeers, peakQueued}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d.d
	}
	ch <- fsync
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	put := func(d desc, v float64) { ch <- prometheus.MustNewConstMetric(d.d, d.typ, v) }
	st := c.db.Stats()
	put(keys, float64(st.Keys))
	put(revision, float64(st.Revision))
	put(gets, float64(st.Gets))
	put(writes, float64(st.Writes))
	put(commits, float64(st.Commits))
	put(rollbacks, float64(st.Rollbacks))
	put(scans, float64(st.Scans))
	put(expired, float64(st.Expired))
	put(logBytes, float64(st.LogBytes))
	put(checkpoints, float64(st.Checkpoints))
	h := st.SyncLatency
	buckets := make(map[float64]uint64, len(h.Bounds))
	var n uint64
	for i, b := range h.Bounds {
		n += uint64(h.Counts[i])
		buckets[b.Seconds()] = n
	}
	if len(h.Counts) > len(h.Bounds) {
		n += uint64(h.Counts[len(h.Bounds)])
	}
	ch <- prometheus.MustNewConstHistogram(fsync, n, h.Sum.Seconds(), buckets)

	ss := st.Subscriptions
	put(subs, float64(ss.Subscriptions))
	put(catchingUp, float64(ss.CatchingUp))
	put(maxLag, float64(ss.MaxLag))
	put(compacted, float64(ss.Compacted))
	put(timedOut, float64(ss.TimedOut))
	put(published, float64(ss.Published))
	put(delivered, float64(ss.Delivered))
	put(history, float64(ss.History))

	c.mu.Lock()
	adapters := slices.Clone(c.adapters)
	c.mu.Unlock()
	if len(adapters) == 0 {
		return
	}
	var as adapter.Stats
	for _, a := range adapters {
		s := a.Stats()
		as.Connections += s.Connections
		as.Throttled += s.Throttled
		as.BytesOut += s.BytesOut
		as.SlowClosed += s.SlowClosed
		as.DeadPeers += s.DeadPeers
		as.PeakQueuedBytes = max(as.PeakQueuedBytes, s.PeakQueuedBytes)
	}
	put(conns, float64(as.Connections))
	put(throttled, float64(as.Throttled))
	put(bytesOut, float64(as.BytesOut))
	put(slowClosed, float64(as.SlowClosed))
	put(deadPeers, float64(as.DeadPeers))
	put(peakQueued, float64(as.PeakQueuedBytes))
}
