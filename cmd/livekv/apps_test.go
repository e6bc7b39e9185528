package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestApps_SecurityHeaders: every page and file of the showcase, and the
// token route, goes out with a Content-Security-Policy that runs the
// pages' own scripts and styles only and connects to their own origin
// only (so that markup a visitor slips into a page could run nothing),
// that no other site may frame (clickjacking), and without type
// sniffing.
func TestApps_SecurityHeaders(t *testing.T) {
	db, err := engine.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer db.Close()
	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{"k"}})
	require.NoError(t, err)
	defer a.Shutdown(t.Context())
	mux := http.NewServeMux()
	mountApps(mux, a, newClientLimits(30, 10))
	const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "/", nil),
		httptest.NewRequest("GET", "/todo/", nil),
		httptest.NewRequest("GET", "/chat/", nil),
		httptest.NewRequest("GET", "/live.js", nil),
		httptest.NewRequest("GET", "/chat/chat.js", nil),
		httptest.NewRequest("GET", "/style.css", nil),
		httptest.NewRequest("GET", "/favicon.svg", nil),
		httptest.NewRequest("GET", "/nothing-here", nil),
		httptest.NewRequest("POST", "/apps/token", strings.NewReader(`{"app":"chat"}`)),
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		name := req.Method + " " + req.URL.Path
		require.Equal(t, csp, w.Header().Get("Content-Security-Policy"), name)
		require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"), name)
		require.Equal(t, "DENY", w.Header().Get("X-Frame-Options"), name)
		require.Equal(t, "no-referrer", w.Header().Get("Referrer-Policy"), name)
	}
}
