package adapter

import (
	"net/http"
	"slices"
)

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
			writeJSON(w, http.StatusForbidden, reply{Code: http.StatusForbidden, Error: "origin not allowed"})
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
