package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/metrics"
)

// opsFlags are serve's flags for operating it: metrics, TLS, CORS.
type opsFlags struct {
	metricsAddr string
	tlsCert     string
	tlsKey      string
	cors        string
}

func addOpsFlags(fs *flag.FlagSet) *opsFlags {
	o := &opsFlags{}
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics (and /healthz, /readyz) on this HOST:PORT instead of --addr; neither needs the API key")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; needs --tls-key")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the PEM private key of --tls-cert")
	fs.StringVar(&o.cors, "cors-origins", "", "comma-separated origins (https://app.example.com, or *) whose pages may call the REST API and open the WebSockets (pages from serve's own host always may); default none")
	return o
}

// check finds the flags that make no sense together, or whose values
// make none.
func (o *opsFlags) check() error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("give both --tls-cert and --tls-key, or neither")
	}
	_, err := o.corsOrigins()
	return err
}

// tlsConfig loads the certificate, if one is given.
func (o *opsFlags) tlsConfig() (*tls.Config, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// corsOrigins is the list of --cors-origins, each as adapter.ParseOrigin
// writes it: as a browser sends it in Origin. One that names no origin
// (a path, say) would never match: it is refused rather than ignored.
func (o *opsFlags) corsOrigins() ([]string, error) {
	var out []string
	for _, s := range strings.Split(o.cors, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		origin, err := adapter.ParseOrigin(s)
		if err != nil {
			return nil, fmt.Errorf("--cors-origins: %w", err)
		}
		out = append(out, origin)
	}
	return out, nil
}

// originPatterns returns the adapter.Options.AllowedOrigins patterns
// (path.Match syntax) that match the origins corsOrigins returns, each
// exactly: the brackets of an IPv6 host, as in http://[::1]:3000, would
// otherwise make a character class. "*" stays any origin.
func originPatterns(origins []string) []string {
	escape := strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`)
	out := make([]string, len(origins))
	for i, o := range origins {
		if o != "*" {
			o = escape.Replace(o)
		}
		out[i] = o
	}
	return out
}

// listeners opens where serve listens: addr, and the metrics address if
// one is given. Nothing is written before both succeed.
func (o *opsFlags) listeners(addr string) (main, mon net.Listener, err error) {
	if main, err = net.Listen("tcp", addr); err != nil {
		return nil, nil, err
	}
	if o.metricsAddr != "" {
		if mon, err = net.Listen("tcp", o.metricsAddr); err != nil {
			main.Close()
			return nil, nil, fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	return main, mon, nil
}

// mountHealth serves GET /healthz, which answers while the process
// serves, and GET /readyz, which answers 200 only while the store takes
// writes (ready, with the revision), 503 with the reason otherwise.
func mountHealth(mux *http.ServeMux, ready func() (rev int64, err error)) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		rev, err := ready()
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]any{"ready": false, "error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ready": true, "revision": rev})
	})
}

// mountMetrics serves GET /metrics from m, on mux or, with
// --metrics-addr, on mon's server, which it returns to be started.
func (o *opsFlags) mountMetrics(mux *http.ServeMux, ready func() (int64, error), m *metrics.Collector) *http.ServeMux {
	if o.metricsAddr == "" {
		mux.Handle("GET /metrics", m.Handler())
		return nil
	}
	mon := http.NewServeMux()
	mon.Handle("GET /metrics", m.Handler())
	mountHealth(mon, ready)
	return mon
}

// scheme is the URL scheme serve answers on.
func scheme(tc *tls.Config) (http, ws string) {
	if tc != nil {
		return "https", "wss"
	}
	return "http", "ws"
}

// firstMissing returns the outermost of dir and its parents that does not
// exist, "" if dir exists.
func firstMissing(dir string) string {
	missing := ""
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			return missing
		}
		missing = d
		if filepath.Dir(d) == d {
			return missing
		}
	}
}

// makeFolder makes dir and its missing parents, and returns the
// outermost folder this run made: "" when dir existed, or when another
// process made that folder first (two serves started at once on a new
// folder: the one that loses the lock must not remove the winner's).
func makeFolder(dir string) (string, error) {
	made := firstMissing(dir)
	if made == "" {
		return "", nil
	}
	switch err := os.Mkdir(made, 0o700); {
	case errors.Is(err, os.ErrExist):
		made = "" // not this run's
	case err != nil:
		return "", err
	}
	return made, os.MkdirAll(dir, 0o700)
}

// removeIfCreated removes dir, the outermost folder this run made
// (makeFolder; "" for none), so that a serve that fails to start
// leaves nothing behind.
func removeIfCreated(dir string) {
	if dir != "" {
		os.RemoveAll(dir)
	}
}
