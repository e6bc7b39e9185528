package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/leaktest"
	"github.com/livekv/livekv/metrics"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// scrape fetches url and parses it as Prometheus' text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value is the value of the series of name with labels (name=value pairs).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	require.NotNil(t, f, "no series %s", name)
	want := strings.Join(labels, ",")
	for _, m := range f.Metric {
		var got []string
		for _, l := range m.Label {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(got, ",") != want {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s{%s}", name, want)
	return 0
}

// TestMetrics: a scrape after some work shows the work in every group of
// series: engine, fsyncs, subscriptions, adapter.
func TestMetrics(t *testing.T) {
	db, err := engine.Open(t.TempDir(), &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	m := metrics.New(db)
	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{"k"}, OnRequest: m.OnRequest})
	require.NoError(t, err)
	m.SetAdapter(a)
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", a))
	mux.Handle("/metrics", m.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	}()

	before := scrape(t, srv.URL+"/metrics")
	require.Zero(t, value(t, before, "livekv_keys"))
	require.Zero(t, value(t, before, "livekv_revision"))
	require.Zero(t, value(t, before, "livekv_adapter_connections"))
	require.NotNil(t, before["go_goroutines"], "the Go runtime's series")

	for i := range 5 {
		req, _ := http.NewRequest("POST", srv.URL+"/kv/record", strings.NewReader(fmt.Sprintf(`{"key":"k%d","value":"v"}`, i)))
		req.Header.Set("x-api-key", "k")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/kv/record/none", nil)
	req.Header.Set("x-api-key", "k")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/kv/ws?apiKey=k", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"op":100,"patterns":["k*"],"messageId":1}`)))
	_, b, err := ws.Read(ctx)
	require.NoError(t, err)
	require.Contains(t, string(b), `"code":200`)
	_, err = db.Set("k9", "x", nil)
	require.NoError(t, err)
	_, b, err = ws.Read(ctx) // the notification
	require.NoError(t, err)
	require.Contains(t, string(b), `"k9"`)

	after := scrape(t, srv.URL+"/metrics")
	require.Equal(t, 6.0, value(t, after, "livekv_keys"))
	require.Equal(t, 6.0, value(t, after, "livekv_revision"))
	require.Equal(t, 6.0, value(t, after, "livekv_commits_total"))
	require.GreaterOrEqual(t, value(t, after, "livekv_fsync_duration_seconds"), 6.0, "one fsync per lone write at least")
	require.Positive(t, value(t, after, "livekv_log_bytes"))
	require.Equal(t, 1.0, value(t, after, "livekv_subscriptions"))
	require.Equal(t, 1.0, value(t, after, "livekv_events_delivered_total"))
	require.Zero(t, value(t, after, "livekv_subscriptions_max_lag_revisions"), "the notification was read")
	require.Zero(t, value(t, after, "livekv_subscriptions_compacted_total"))
	require.Zero(t, value(t, after, "livekv_subscriptions_pattern_timeouts_total"))
	require.Zero(t, value(t, after, "livekv_subscriptions_catching_up"))
	require.Equal(t, 1.0, value(t, after, "livekv_adapter_connections"))
	require.Equal(t, 5.0, value(t, after, "livekv_adapter_requests_total", "code=200", "op=set"))
	require.Equal(t, 1.0, value(t, after, "livekv_adapter_requests_total", "code=404", "op=get"))
	require.Equal(t, 1.0, value(t, after, "livekv_adapter_requests_total", "code=200", "op=subscribe"))
	require.Zero(t, value(t, after, "livekv_adapter_throttled_total"))
	require.Greater(t, value(t, after, "livekv_adapter_bytes_out_total"), 100.0)
	h := after["livekv_fsync_duration_seconds"].Metric[0].Histogram
	require.Positive(t, h.GetSampleSum())
	require.Len(t, h.Bucket, 14, "13 bounds and +Inf")
	prev := uint64(0)
	for _, b := range h.Bucket {
		require.GreaterOrEqual(t, b.GetCumulativeCount(), prev, "buckets are cumulative")
		prev = b.GetCumulativeCount()
	}
	require.LessOrEqual(t, prev, h.GetSampleCount())
}

// TestMetrics_TwoAdapters: a program that serves one database through two
// adapters (a public mount and an internal one, say) and gives both to
// SetAdapter sees the adapter series of both, not of the last alone.
func TestMetrics_TwoAdapters(t *testing.T) {
	db, err := engine.Open(t.TempDir(), &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	m := metrics.New(db)
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	var adapters []*adapter.Adapter
	for _, mount := range []string{"/a", "/b"} {
		a, err := adapter.New(db, &adapter.Options{APIKeys: []string{"k"}, OnRequest: m.OnRequest})
		require.NoError(t, err)
		m.SetAdapter(a)
		adapters = append(adapters, a)
		mux.Handle(mount+"/", http.StripPrefix(mount, a))
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, a := range adapters {
			require.NoError(t, a.Shutdown(ctx))
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, mount := range []string{"/a", "/b"} {
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+mount+"/ws?apiKey=k", nil)
		require.NoError(t, err)
		defer ws.CloseNow()
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"op":1,"key":"none","messageId":1}`)))
		_, b, err := ws.Read(ctx)
		require.NoError(t, err)
		require.Contains(t, string(b), `"code":404`)
	}
	fams := scrape(t, srv.URL+"/metrics")
	require.Equal(t, 2.0, value(t, fams, "livekv_adapter_connections"), "a WebSocket open on each adapter")
	require.Equal(t, 2.0, value(t, fams, "livekv_adapter_requests_total", "code=404", "op=get"))
	require.Greater(t, value(t, fams, "livekv_adapter_bytes_out_total"), 0.0)
}
