package main_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// opsServer is a running livekv serve and the addresses it printed.
type opsServer struct {
	*server
	metrics string // http://host:port/metrics
}

// serveOps runs bin serve with args and reads its banner to the end.
func serveOps(t *testing.T, bin string, args ...string) *opsServer {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })
	s := &opsServer{server: &server{cmd: cmd}}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		if m := regexp.MustCompile(`HPKV API at (\S+)/kv`).FindStringSubmatch(line); m != nil {
			s.base = m[1]
		}
		if m := regexp.MustCompile(`metrics at (\S+)`).FindStringSubmatch(line); m != nil {
			s.metrics = m[1]
		}
		if strings.Contains(line, "Ctrl-C to stop") {
			go io.Copy(io.Discard, stdout)
			require.NotEmpty(t, s.base)
			return s
		}
	}
	t.Fatal("serve did not start")
	return nil
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// series parses a scrape and returns the value of each series, keyed by
// its name and labels as the text format writes them.
func series(t *testing.T, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err)
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// TestServe_HealthAndMetrics: /healthz, /readyz and /metrics answer
// without the API key, on --metrics-addr when given, and the series move
// with the work done.
func TestServe_HealthAndMetrics(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	s := serveOps(t, bin, "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1", "--metrics-addr", "127.0.0.1:0")
	c := http.DefaultClient
	code, body := get(t, c, s.base+"/healthz")
	require.Equal(t, 200, code)
	require.Equal(t, "ok\n", body)
	code, body = get(t, c, s.base+"/readyz")
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"ready":true,"revision":0}`, body)
	require.NotEqual(t, s.base, strings.TrimSuffix(s.metrics, "/metrics"), "metrics on their own address")
	code, _ = get(t, c, s.base+"/metrics")
	require.Equal(t, 404, code, "not on --addr when --metrics-addr is given")
	code, _ = get(t, c, strings.TrimSuffix(s.metrics, "/metrics")+"/readyz")
	require.Equal(t, 200, code, "health on the metrics address too")

	code, body = get(t, c, s.metrics)
	require.Equal(t, 200, code)
	before := series(t, body)
	require.Zero(t, before["livekv_keys"])
	require.Zero(t, before["livekv_adapter_requests_total{code=200,op=set}"])

	for _, k := range []string{"a", "b", "c"} {
		req, _ := http.NewRequest("POST", s.base+"/kv/record", strings.NewReader(`{"key":"`+k+`","value":"v"}`))
		req.Header.Set("x-api-key", "k1")
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", s.base+"/kv/record/a", nil)
	req.Header.Set("x-api-key", "wrong")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	code, body = get(t, c, s.metrics)
	require.Equal(t, 200, code)
	after := series(t, body)
	require.Equal(t, 3.0, after["livekv_keys"])
	require.Equal(t, 3.0, after["livekv_revision"])
	require.Equal(t, 3.0, after["livekv_commits_total"])
	require.Equal(t, 3.0, after["livekv_adapter_requests_total{code=200,op=set}"])
	require.Equal(t, 1.0, after["livekv_adapter_requests_total{code=403,op=get}"])
	require.GreaterOrEqual(t, after["livekv_fsync_duration_seconds"], 3.0)
	require.Greater(t, after["livekv_adapter_bytes_out_total"], before["livekv_adapter_bytes_out_total"])
	for _, name := range []string{"livekv_log_bytes", "livekv_subscriptions", "livekv_subscriptions_catching_up",
		"livekv_subscriptions_max_lag_revisions", "livekv_subscriptions_compacted_total",
		"livekv_subscriptions_pattern_timeouts_total", "livekv_adapter_connections", "livekv_adapter_throttled_total"} {
		_, ok := after[name]
		require.True(t, ok, "series %s", name)
	}
	s.stop(t)

	// Without --metrics-addr, /metrics is on --addr, without the API key.
	s = serveOps(t, bin, "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1")
	code, body = get(t, c, s.base+"/metrics")
	require.Equal(t, 200, code)
	require.Equal(t, 3.0, series(t, body)["livekv_keys"], "reopened")
	s.stop(t)
}

// selfSigned writes a certificate for 127.0.0.1 and its key to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "livekv test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServe_TLS: with --tls-cert and --tls-key serve speaks HTTPS only,
// with the certificate given, and says so.
func TestServe_TLS(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	s := serveOps(t, bin, "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--api-key", "k1",
		"--tls-cert", certFile, "--tls-key", keyFile)
	require.True(t, strings.HasPrefix(s.base, "https://"), s.base)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", s.base+"/kv/record", strings.NewReader(`{"key":"a","value":"secret"}`))
	req.Header.Set("x-api-key", "k1")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.NotNil(t, resp.TLS, "answered over TLS")
	code, _ := get(t, c, s.base+"/readyz")
	require.Equal(t, 200, code)

	_, err = http.DefaultClient.Get(s.base + "/record/a")
	require.Error(t, err, "a client that does not trust the certificate is refused")
	code, _ = get(t, http.DefaultClient, strings.Replace(s.base, "https://", "http://", 1)+"/kv/record/a")
	require.Equal(t, 400, code, "plain HTTP is refused")

	file := filepath.Join(dir, "b.backup")
	out, err := exec.Command(bin, "backup", "--addr", s.base, "--api-key", "k1", "--cacert", certFile, "-o", file).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "revision 1")
	out, err = exec.Command(bin, "backup", "--addr", s.base, "--api-key", "k1", "-o", file+"2").CombinedOutput()
	require.Error(t, err, "an untrusted certificate: %s", out)
	hostPort := strings.TrimPrefix(s.base, "https://")
	out, err = exec.Command(bin, "backup", "--addr", hostPort, "--api-key", "k1", "-o", file+"3").CombinedOutput()
	require.Error(t, err, "plain HTTP to an HTTPS server: %s", out)
	require.Contains(t, string(out), "(the server speaks HTTPS: give --addr https://"+hostPort+")")
	s.stop(t)
}

// TestServe_CORS: --cors-origins reaches the REST API, each origin as a
// browser sends it: in lower case, without the scheme's own port or a
// final slash.
func TestServe_CORS(t *testing.T) {
	bin := build(t)
	s := serveOps(t, bin, "--data", filepath.Join(t.TempDir(), "data"), "--addr", "127.0.0.1:0", "--api-key", "k1",
		"--cors-origins", "https://app.example, https://Other.Example:443/, http://local.example:8080, http://[::1]:3000")
	for _, origin := range []string{"https://app.example", "https://other.example", "http://local.example:8080", "http://[::1]:3000"} {
		req, _ := http.NewRequest("OPTIONS", s.base+"/kv/record", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 204, resp.StatusCode, origin)
		require.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	// Their pages may open the WebSockets too, whatever Host a proxy in
	// front sends; a page from another origin may not.
	dial := func(origin string) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/kv/ws?apiKey=k1",
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil {
			ws.Close(websocket.StatusNormalClosure, "")
		}
		return resp, err
	}
	for _, origin := range []string{"https://app.example", "http://local.example:8080", "http://[::1]:3000"} {
		_, err := dial(origin)
		require.NoError(t, err, origin)
	}
	resp, err := dial("https://elsewhere.example")
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	s.stop(t)
}

// TestServe_FailsWritingNothing: a serve that cannot start leaves no
// folder and no API key file behind.
func TestServe_FailsWritingNothing(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	certFile, keyFile, _ := selfSigned(t, dir)
	existing := filepath.Join(dir, "existing")
	require.NoError(t, os.Mkdir(existing, 0o755))
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"address in use", []string{"--addr", busy.Addr().String()}, "address already in use"},
		{"metrics address in use", []string{"--addr", "127.0.0.1:0", "--metrics-addr", busy.Addr().String()}, "--metrics-addr"},
		{"cert without key", []string{"--addr", "127.0.0.1:0", "--tls-cert", certFile}, "--tls-key"},
		{"key as cert", []string{"--addr", "127.0.0.1:0", "--tls-cert", keyFile, "--tls-key", keyFile}, "--tls-cert"},
		{"missing cert", []string{"--addr", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "none"), "--tls-key", keyFile}, "no such file"},
		{"bad origin", []string{"--addr", "127.0.0.1:0", "--cors-origins", "app.example"}, "--cors-origins"},
		{"origin with a path", []string{"--addr", "127.0.0.1:0", "--cors-origins", "https://app.example/x"}, "--cors-origins"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, data := range []string{filepath.Join(dir, "new"), existing} {
				out, err := exec.Command(bin, append([]string{"serve", "--data", data}, c.args...)...).CombinedOutput()
				require.Error(t, err)
				require.Contains(t, string(out), c.want)
				_, err = os.Stat(filepath.Join(dir, "new"))
				require.ErrorIs(t, err, os.ErrNotExist, "no folder made")
				entries, err := os.ReadDir(existing)
				require.NoError(t, err)
				require.Empty(t, entries, "nothing written into an existing folder")
			}
		})
	}
}
