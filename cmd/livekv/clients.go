package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// clientLimits bound what one client address may take from serve: the
// tokens the showcase mints for it and the WebSockets it holds open.
// Behind a reverse proxy every client has the proxy's address, so the
// proxy should limit per client instead (docs/protocol.md, "Deploying").
type clientLimits struct {
	tokensPerMinute int // also the burst
	maxConns        int
	refused         func(reason string) // if set, told of each 429: "tokens" or "connections"

	mu      sync.Mutex
	clients map[string]*client // guarded by mu
	swept   int                // guarded by mu; len(clients) after the last sweep
}

// client is what one address has used.
type client struct {
	tokens float64 // left to mint
	last   time.Time
	conns  int
}

func newClientLimits(tokensPerMinute, maxConns int) *clientLimits {
	return &clientLimits{tokensPerMinute: tokensPerMinute, maxConns: maxConns, clients: make(map[string]*client)}
}

// get returns addr's state, under mu; it forgets clients that hold
// nothing once the map has doubled since it last did.
func (l *clientLimits) get(addr string, now time.Time) *client {
	c := l.clients[addr]
	if c == nil {
		if len(l.clients) >= 2*max(l.swept, 1024) {
			for a, o := range l.clients {
				if o.conns == 0 && l.refill(o, now) == float64(l.tokensPerMinute) {
					delete(l.clients, a)
				}
			}
			l.swept = len(l.clients)
		}
		c = &client{tokens: float64(l.tokensPerMinute), last: now}
		l.clients[addr] = c
	}
	return c
}

func (l *clientLimits) refill(c *client, now time.Time) float64 {
	c.tokens = min(float64(l.tokensPerMinute), c.tokens+now.Sub(c.last).Minutes()*float64(l.tokensPerMinute))
	c.last = now
	return c.tokens
}

// mintToken spends one of addr's tokens per minute, if it has one left.
func (l *clientLimits) mintToken(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	c := l.get(addr, now)
	if l.refill(c, now) < 1 {
		l.refuse("tokens")
		return false
	}
	c.tokens--
	return true
}

// openConn counts a connection of addr, unless it has its share.
func (l *clientLimits) openConn(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.get(addr, time.Now())
	if c.conns >= l.maxConns {
		l.refuse("connections")
		return false
	}
	c.conns++
	return true
}

func (l *clientLimits) refuse(reason string) {
	if l.refused != nil {
		l.refused(reason)
	}
}

func (l *clientLimits) closeConn(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clients[addr].conns--
}

// limitConns serves next, but refuses a WebSocket (path /ws under the
// mount) to an address that holds maxConns already. The adapter's
// handler returns when its connection ends.
func (l *clientLimits) limitConns(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := strings.Trim(r.URL.Path, "/"); p != "ws" && p != "dbx/ws" { // the WebSockets: HPKV's and DBX's
			next.ServeHTTP(w, r)
			return
		}
		addr := clientAddr(r)
		if !l.openConn(addr) {
			tooMany(w, "too many connections from this address")
			return
		}
		defer l.closeConn(addr)
		next.ServeHTTP(w, r)
	})
}

// clientAddr is the address a request came from, without its port; for
// IPv6 its /64 network, which one host or site is given whole, so that a
// client cannot pass the limits by using the next address of its own.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip = ip.Unmap(); ip.Is4() {
		return ip.String() // one client, whichever way it came
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}

func tooMany(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "60")
	w.WriteHeader(http.StatusTooManyRequests)
	json.NewEncoder(w).Encode(map[string]any{"code": http.StatusTooManyRequests, "error": msg})
}
