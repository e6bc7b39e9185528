package adapter

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// ParseOrigin returns s as a browser sends it in Origin, for
// Options.CORSOrigins: a scheme and a host in lower case, the port only
// if it is not the scheme's own ("*" stays "*"). One with a path, a query
// or credentials names no origin, and would never match:
// ErrInvalidOptions.
func ParseOrigin(s string) (string, error) {
	if s == "*" {
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || u.Path != "" && u.Path != "/" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("%w: %q is not an origin such as https://app.example.com (a scheme and a host, no path)", ErrInvalidOptions, s)
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if p := u.Port(); scheme == "https" && p == "443" || scheme == "http" && p == "80" {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return scheme + "://" + host, nil
}

// cors adds the CORS headers of Options.CORSOrigins to a REST response,
// and answers a preflight request, returning true then.
func (a *Adapter) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if len(a.opts.CORSOrigins) == 0 || origin == "" {
		return false
	}
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	h := w.Header()
	h.Add("Vary", "Origin")
	if !slices.Contains(a.opts.CORSOrigins, origin) && !slices.Contains(a.opts.CORSOrigins, "*") {
		if preflight {
			writeReply(w, errorReply(http.StatusForbidden, "origin not allowed")) // REST's shape: no code in the body
		}
		return preflight
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if !preflight {
		// Browsers show a page only the CORS-safelisted headers of a
		// response: the revision, which a client sends back as
		// minRevision=, must be named.
		h.Set("Access-Control-Expose-Headers", RevisionHeader)
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	h.Set("Access-Control-Allow-Headers", "Content-Type, X-Api-Key")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
