package main

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
)

// The showcase pages: plain HTML, CSS and JavaScript, no build step.
//
//go:embed apps
var appFiles embed.FS

// appScopes are the tokens each page gets: its own keys only, those that
// start with the app's name and a colon.
var appScopes = map[string]adapter.TokenConfig{
	"todo": {SubscribePatterns: []string{"todo:*"}, AccessPattern: "^todo:"},
	"chat": {SubscribePatterns: []string{"chat:*"}, AccessPattern: "^chat:"},
}

// appQuota bounds the keys of each app, as counted in db now: maxKeys
// keys and maxBytes bytes of keys and values, so that visitors cannot
// fill the server.
func appQuota(db *engine.DB, maxKeys, maxBytes int64) (*adapter.PrefixQuota, error) {
	var limits []adapter.QuotaLimit
	for app := range appScopes {
		limits = append(limits, adapter.QuotaLimit{Prefix: app + ":", MaxKeys: maxKeys, MaxBytes: maxBytes})
	}
	return adapter.NewPrefixQuota(db, limits...)
}

// appsCSP is the pages' Content-Security-Policy. They load their own
// scripts, styles and icon, and connect to their own origin only (the
// token route and the WebSocket: 'self' takes in ws: and wss: on it);
// nothing inline, no other site, and none may frame them. Whatever markup
// a visitor wrote that reached a page as markup could run nothing, nor
// send what it read elsewhere.
const appsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// appHeaders sets the pages' security headers on what h answers.
func appHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", appsCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY") // frame-ancestors, for browsers without it
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// mountApps serves the pages at / and the route that gives them scoped
// tokens, so that the API key never reaches a browser.
func mountApps(mux *http.ServeMux, a *adapter.Adapter, clients *clientLimits) {
	root, err := fs.Sub(appFiles, "apps")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	mux.Handle("/", appHeaders(http.FileServerFS(root)))
	// Pages name /favicon.svg; a browser that asks for /favicon.ico anyway
	// (a bookmark, a feed reader) is sent there rather than given a 404.
	mux.Handle("GET /favicon.ico", appHeaders(http.RedirectHandler("/favicon.svg", http.StatusMovedPermanently)))
	mux.Handle("POST /apps/token", appHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !clients.mintToken(clientAddr(r)) {
			tooMany(w, "too many tokens for this address: wait a minute")
			return
		}
		var req struct {
			App string `json:"app"`
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1024)
		w.Header().Set("Content-Type", "application/json")
		err := json.NewDecoder(r.Body).Decode(&req)
		scope, ok := appScopes[req.App]
		if err != nil || !ok {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": `body must be {"app":"todo"} or {"app":"chat"}`})
			return
		}
		token, expires, err := a.IssueToken(scope)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": token, "expiresAt": expires.UTC().Format(time.RFC3339)})
	})))
}
