package adapter_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/livekv/livekv/adapter"
	"github.com/stretchr/testify/require"
)

// corsDo sends a request with an Origin header.
func corsDo(t *testing.T, f *fixture, method, path, origin string, h map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, strings.NewReader(`{"key":"a","value":"1"}`))
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("x-api-key", apiKey)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// TestCORS: without CORSOrigins the REST API sends no CORS headers; with
// them, an allowed origin gets its requests' and preflights' headers (its
// requests' expose the revision header) and another gets none, and a 403
// to its preflight.
func TestCORS(t *testing.T) {
	preflight := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}

	off := newFixture(t, nil)
	resp := corsDo(t, off, "POST", "/record", "https://app.example", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "off by default")
	resp = corsDo(t, off, "OPTIONS", "/record", "https://app.example", preflight)
	require.Equal(t, 405, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))

	f := newFixture(t, &adapter.Options{CORSOrigins: []string{"https://app.example"}})
	resp = corsDo(t, f, "OPTIONS", "/record", "https://app.example", preflight)
	require.Equal(t, 204, resp.StatusCode)
	require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	require.Contains(t, strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "x-api-key")
	resp = corsDo(t, f, "POST", "/record", "https://app.example", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Values("Vary"), "Origin")
	require.NotEmpty(t, resp.Header.Get(adapter.RevisionHeader))
	require.Equal(t, adapter.RevisionHeader, resp.Header.Get("Access-Control-Expose-Headers"),
		"the page reads the revision, to send back as minRevision=")

	resp = corsDo(t, f, "OPTIONS", "/token/websocket", "https://app.example", preflight)
	require.Equal(t, 204, resp.StatusCode, "the token endpoint is REST too")
	require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))

	resp = corsDo(t, f, "OPTIONS", "/record", "https://evil.example", preflight)
	require.Equal(t, 403, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	resp = corsDo(t, f, "GET", "/record/a", "https://evil.example", nil)
	require.Equal(t, 200, resp.StatusCode, "the server answers; the browser keeps the page from reading it")
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, resp.Header.Get("Access-Control-Expose-Headers"))
}

// TestCORS_OriginsAsBrowsersSendThem: New writes CORSOrigins as browsers
// send Origin (lower case, no default port, no final slash), so that an
// embedder's "https://App.Example:443/" matches; before, only the
// command's flag was so written and the adapter compared them as given.
// One that names no origin is refused.
func TestCORS_OriginsAsBrowsersSendThem(t *testing.T) {
	f := newFixture(t, &adapter.Options{CORSOrigins: []string{"https://App.Example:443/", "http://[::1]:80"}})
	for _, origin := range []string{"https://app.example", "http://[::1]"} {
		resp := corsDo(t, f, "POST", "/record", origin, nil)
		require.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	for _, bad := range []string{"app.example", "https://app.example/x", "https://u@app.example"} {
		_, err := adapter.New(f.db, &adapter.Options{APIKeys: []string{apiKey}, CORSOrigins: []string{bad}})
		require.ErrorIs(t, err, adapter.ErrInvalidOptions, bad)
	}
	got, err := adapter.ParseOrigin("HTTP://Local.Example:8080")
	require.NoError(t, err)
	require.Equal(t, "http://local.example:8080", got)
}

// TestCORS_PreflightRefusalBody: the 403 to a preflight from an origin
// not in CORSOrigins has a REST body, the WebSocket reply without code
// and messageId, as every REST reply has. Before, its body also had
// "code": 403.
func TestCORS_PreflightRefusalBody(t *testing.T) {
	f := newFixture(t, &adapter.Options{CORSOrigins: []string{"https://app.example"}})
	req, err := http.NewRequest("OPTIONS", f.base+"/record", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 403, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, map[string]any{"error": "origin not allowed"}, body)
}
