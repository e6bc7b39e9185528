// Package adapter serves a livekv DB over the wire protocol of the hosted
// HPKV service: a WebSocket API at /ws and a REST API, so that HPKV
// clients (the official @hpkv/websocket-client among them) and plain
// browser pages work against it unmodified. It also speaks the WebSocket
// API that DBX's documentation describes, at /dbx/ws, with the same
// credentials and limits. Mount it in any ServeMux:
//
//	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{key}})
//	mux.Handle("/kv/", http.StripPrefix("/kv", a))
//	...
//	a.Shutdown(ctx) // before db.Close
//
// Clients may choose how fresh each read must be (consistency=, see
// ReadLeveler); a cluster node's Handle serves every level, a DB reads
// the same at all of them. See docs/protocol.md for every message.
package adapter

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/livekv/livekv/pattern"
)

// Options configure an Adapter. The zero value of each field means its
// default.
type Options struct {
	// APIKeys are the keys that give full access, sent as ?apiKey= to /ws
	// and as the x-api-key header to the REST API. At least one is
	// required; none may be empty, or start or end with white space,
	// which HTTP trims from a header.
	APIKeys []string

	// TokenSecret signs tokens (HMAC-SHA256), and a key derived from it
	// seals the DBX keys.scan cursors that name a key the connection may
	// not read. Default: random, so tokens and sealed cursors do not
	// outlive the process. Give one to keep them valid across restarts,
	// or across processes sharing it. At least MinTokenSecretSize bytes.
	TokenSecret []byte

	// TokenTTL is how long an issued token is valid, at least: its
	// expiry is rounded up to a whole second. Default 2 hours.
	TokenTTL time.Duration

	// AllowedOrigins are the host patterns (path.Match syntax, such as
	// "example.com" or "*.example.com") whose browser pages may open a
	// WebSocket; a page from the same host always may. A foreign Origin
	// gets 403. The pattern matches the Origin's host with its port, if
	// it has one ("localhost:*"); one holding "://" matches the scheme
	// too ("https://*.example.com"). New refuses a pattern path.Match
	// cannot parse.
	AllowedOrigins []string

	// CORSOrigins are the origins (such as "https://app.example.com", or
	// "*" for any; written as ParseOrigin takes them, which New refuses
	// otherwise) whose browser pages may call the REST API (token/websocket
	// included) from another origin: their requests get Access-Control-Allow-Origin
	// (and Access-Control-Expose-Headers naming RevisionHeader), and their
	// preflight requests an answer. Default none: the REST API sends no
	// CORS headers, and browsers keep other origins' pages from reading
	// its responses. The API key is still required.
	CORSOrigins []string

	// MaxMessageSize is the largest message a client may send, in bytes;
	// a larger one closes the connection with status 1009. Default 2 MiB.
	MaxMessageSize int64

	// RequestRate is how many requests per second one connection may
	// make, with bursts of RequestBurst; over it, requests get code 429.
	// Defaults 20,000 and 2,000.
	RequestRate  float64
	RequestBurst int

	// MaxInFlight is how many requests of one connection run at once.
	// Default 64.
	MaxInFlight int

	// SendQueue is how many replies and notifications wait for a
	// connection's writer. A client that stops reading is closed with
	// status 1008 once a write has waited SlowClientTimeout. Defaults 1024
	// and 5s.
	SendQueue         int
	SlowClientTimeout time.Duration

	// PingInterval is how often the server pings each connection; a peer
	// that does not answer within the interval is closed, unless it is
	// taking a large message (one over 32 KiB, written in parts) or took
	// the last part of one within the interval before the ping: its pong
	// comes after what it is reading, and a slow reader is
	// SlowClientTimeout's to close. Nor is one whose own large message
	// (over 16 KiB) is arriving meanwhile: it answers once the message
	// ends. Default 30s.
	PingInterval time.Duration

	// HeartbeatInterval is how often the DBX dialect sends a heartbeat
	// message; a DBX client that sends nothing (its own heartbeats
	// included, and the parts of a large message as they arrive) for
	// HeartbeatInterval + HeartbeatTimeout is closed with status 1008.
	// Defaults 30s and 30s.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration

	// MaxPatterns bounds the subscribe keys and patterns of a token, or of
	// one subscribe message: over it, 400. Default 64. Each pattern is also
	// limited to pattern.DefaultMaxLen bytes. A token is also refused more
	// than MaxConnPatterns, which each of its connections holds.
	MaxPatterns int

	// MaxSubscriptions bounds the subscriptions one connection holds at
	// once (a token's own count as one), and MaxConnPatterns the keys and
	// patterns they hold together; a subscribe over either gets 429.
	// Defaults (for zero) 32 and 256.
	MaxSubscriptions int
	MaxConnPatterns  int

	// MaxTokenSubscriptions bounds the subscriptions held at once by all
	// the connections opened with one token, each one's share of the
	// token's own subscriptions included. A subscribe over it gets 429; a
	// connection whose share does not fit gets a 429 message and is closed
	// with status 1008. Connections with an API key are not counted.
	// Default (for zero) 256.
	MaxTokenSubscriptions int

	// MaxRangeLimit bounds the records one range returns; DefaultRangeLimit
	// is what a range without a limit returns. Defaults 1000 and 100 (or
	// MaxRangeLimit, when that is less). In
	// the DBX dialect they bound keys.scan's count in the same way, and
	// MaxRangeLimit the operations of a batch and the keys of mget and
	// mset.
	MaxRangeLimit     int
	DefaultRangeLimit int

	// MaxExaminedKeys bounds the keys one DBX request, a batch included,
	// may read (string.get, mget, exists, ...) and examine in keys.scan
	// and keys.count, which read the keys in the range a pattern (and a
	// token's access pattern) allows: over it the request fails with
	// work_limit_exceeded and changes nothing. With a token, the keys it
	// may not read that scans and counts examine count apart, up to as
	// many again, so that how far its requests get tells nothing of them
	// (and a token's batch holds one keys.scan or keys.count at most).
	// Default 100,000.
	MaxExaminedKeys int

	// ScanTimeBudget bounds the time one DBX request's keys.scan and
	// keys.count spend examining keys, which a regex pattern can make
	// long (up to its MatchTimeout, 10ms, on each key). Past it keys.scan
	// returns the page so far (done false, with a cursor; it examines
	// at least 16 keys, so that paging always moves on) and keys.count
	// fails with work_limit_exceeded. It is checked every 16 keys (with a
	// token, every 16 keys it may read; a run of keys it may not read
	// ends a page, or fails a count, only once the run alone has taken
	// the budget).
	// In a request that also writes (a batch), whose transaction holds
	// the engine's writer lock, which every writer waits for, the budget
	// is a hundredth of this, checked after every key (a page then holds
	// one key at least). Default 1s.
	ScanTimeBudget time.Duration

	// MaxWriteBytes bounds what the writes of one DBX request, a batch or
	// an mset, put in the engine's log: len(key)+len(value) and 32 bytes
	// of framing for each write (an expire or an append rewrites the whole
	// value). Over it the request fails with work_limit_exceeded and
	// changes nothing; a request of one write always runs (the engine
	// bounds it). Keep it well under the engine's largest log record (64
	// MiB by default), past which a commit fails. Default 16 MiB.
	MaxWriteBytes int

	// MaxReplyBytes bounds the bytes of keys and values one range returns:
	// the range stops before the record that would pass it and says
	// truncated, as it does at its limit. Its first record is always
	// returned, so that any value can be read. Default (for zero) 2 MiB.
	// In the DBX dialect it bounds the values one request reads (get,
	// mget, a batch's): over it, the request fails (one value alone
	// always comes); and keys.scan stops early, as a range does.
	MaxReplyBytes int

	// MaxQueuedBytes bounds the bytes of replies and notifications held
	// for one connection, from encoding until written to its socket. A
	// message waits for room, then for a place in the SendQueue; one that
	// waits SlowClientTimeout, the two waits together, closes the
	// connection with status 1008. A range reply is also cut (truncated)
	// to fit in it. A single message larger than the budget is sent
	// alone. Default (for zero) 8 MiB: more than
	// six times (the most JSON escaping can grow) a key and a value at the
	// engine's default limits, so that every message fits.
	MaxQueuedBytes int64

	// Quota, if set, is asked about every write before it commits, and may
	// refuse it with code 507; see Quota and PrefixQuota. Default: none.
	Quota Quota

	// OnRequest, if set, is called once for each request answered, over
	// WebSocket (either dialect) or REST, with its operation (OpGet,
	// OpSet, ...; a DBX request is OpDBXPrefix and its method, one with
	// bad params included; OpInvalid when it names none) and the
	// code of its reply (for DBX, the HPKV code of its error, 200 without
	// one); for monitoring. It must be quick and safe for concurrent use.
	OnRequest func(op string, code int)

	// Logf reports connection errors: not a client going without a close
	// frame (its socket closed, reset or timed out), which is how many
	// connections end. Default: nothing is reported.
	Logf func(format string, args ...any)

	// Now is the clock for tokens. Default time.Now.
	Now func() time.Time
}

// ErrInvalidOptions is returned by New for options that cannot work.
var ErrInvalidOptions = errors.New("adapter: invalid options")

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if len(c.APIKeys) == 0 {
		return c, fmt.Errorf("%w: no API key", ErrInvalidOptions)
	}
	if c.CORSOrigins != nil {
		origins := make([]string, len(c.CORSOrigins))
		for i, s := range c.CORSOrigins {
			var err error
			if origins[i], err = ParseOrigin(s); err != nil {
				return c, fmt.Errorf("CORSOrigins: %w", err)
			}
		}
		c.CORSOrigins = origins // the caller's slice is left as it was
	}
	for _, p := range c.AllowedOrigins {
		// The handshake matches the patterns in turn and refuses the
		// page at the first that does not parse, whatever the later
		// ones allow.
		if _, err := path.Match(strings.ToLower(p), ""); err != nil {
			return c, fmt.Errorf("%w: AllowedOrigins: bad pattern %q", ErrInvalidOptions, p)
		}
	}
	for _, k := range c.APIKeys {
		switch {
		case k == "":
			return c, fmt.Errorf("%w: empty API key", ErrInvalidOptions)
		case strings.TrimSpace(k) != k:
			// HTTP trims a header's value: no client could send it in
			// x-api-key.
			return c, fmt.Errorf("%w: an API key starts or ends with white space", ErrInvalidOptions)
		}
	}
	if c.TokenSecret == nil {
		c.TokenSecret = make([]byte, 32)
		if _, err := rand.Read(c.TokenSecret); err != nil {
			return c, err
		}
	}
	if len(c.TokenSecret) < MinTokenSecretSize {
		return c, fmt.Errorf("%w: TokenSecret shorter than %d bytes", ErrInvalidOptions, MinTokenSecretSize)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.RequestBurst, 2000)
	def(&c.MaxInFlight, 64)
	def(&c.SendQueue, 1024)
	def(&c.MaxPatterns, 64)
	def(&c.MaxSubscriptions, 32)
	def(&c.MaxConnPatterns, 256)
	def(&c.MaxTokenSubscriptions, 256)
	def(&c.MaxRangeLimit, 1000)
	if c.MaxRangeLimit > 0 {
		// A MaxRangeLimit under the default DefaultRangeLimit, given
		// alone, bounds the default too.
		def(&c.DefaultRangeLimit, min(100, c.MaxRangeLimit))
	}
	def(&c.MaxExaminedKeys, 100_000)
	def(&c.MaxWriteBytes, 16<<20)
	def(&c.MaxReplyBytes, 2<<20)
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = 8 << 20
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 2 * time.Hour
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 2 << 20
	}
	if c.RequestRate == 0 {
		c.RequestRate = 20000
	}
	if c.SlowClientTimeout == 0 {
		c.SlowClientTimeout = 5 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.ScanTimeBudget == 0 {
		c.ScanTimeBudget = time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 30 * time.Second
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 30 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TokenTTL < 0 || c.MaxMessageSize < 0 || c.RequestRate < 0 || c.RequestBurst < 0 || c.MaxInFlight < 0 ||
		c.SendQueue < 0 || c.SlowClientTimeout < 0 || c.PingInterval < 0 || c.HeartbeatInterval < 0 || c.HeartbeatTimeout < 0 || c.MaxPatterns < 0 ||
		c.MaxSubscriptions < 0 || c.MaxConnPatterns < 0 || c.MaxTokenSubscriptions < 0 ||
		c.MaxReplyBytes < 0 || c.MaxQueuedBytes < 0 ||
		c.MaxRangeLimit < 0 || c.DefaultRangeLimit < 0 || c.MaxExaminedKeys < 0 || c.ScanTimeBudget < 0 || c.MaxWriteBytes < 0 || c.DefaultRangeLimit > c.MaxRangeLimit {
		return c, fmt.Errorf("%w: a negative value, or DefaultRangeLimit over MaxRangeLimit", ErrInvalidOptions)
	}
	return c, nil
}

// Adapter is an http.Handler serving one DB. It is safe for concurrent
// use.
type Adapter struct {
	db      Store
	pia     putIfAbsenter // db, when it has PutIfAbsent; else nil
	leveler ReadLeveler   // db, when it reads at levels; else nil, and every level reads the same
	opts    Options
	keySums [][sha256.Size]byte // of opts.APIKeys, compared by validAPIKey
	cursors cipher.AEAD         // seals the keys.scan cursors that name a key the connection may not read

	mu       sync.Mutex
	closing  bool               // guarded by mu
	conns    map[*conn]struct{} // guarded by mu
	inflight sync.WaitGroup     // HTTP requests being served, WebSocket ones included
	stats    counters

	tokens struct {
		sync.Mutex                // taken after a conn's mu, never before
		subs       map[string]int // subscriptions held per token (by MAC)
	}
}

// MinTokenSecretSize is the shortest Options.TokenSecret, in bytes.
const MinTokenSecretSize = 16

// New returns an adapter serving db, an *engine.DB or any other Store.
// The caller closes the DB after Shutdown.
func New(db Store, opts *Options) (*Adapter, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Adapter{db: db, opts: o, conns: make(map[*conn]struct{})}
	if a.cursors, err = newCursorAEAD(o.TokenSecret); err != nil {
		return nil, err
	}
	for _, k := range o.APIKeys {
		a.keySums = append(a.keySums, sha256.Sum256([]byte(k)))
	}
	a.pia, _ = db.(putIfAbsenter)
	a.leveler, _ = db.(ReadLeveler)
	a.tokens.subs = make(map[string]int)
	return a, nil
}

// ServeHTTP routes a request under the adapter's mount point.
func (a *Adapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.enter() {
		writeReply(w, errorReply(http.StatusServiceUnavailable, "shutting down"))
		return
	}
	defer a.inflight.Done()
	// A route may end in a slash; the key of record/{key} is all that
	// follows record/, a final slash included. record/atomic is the
	// increment's route for POST, which record/{key} does not take; for
	// GET and DELETE it is the key "atomic". Likewise record/ is the
	// set's route for POST; for GET and DELETE it names the empty key,
	// which is refused as a missing key is.
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	route := strings.TrimRight(path, "/")
	switch {
	case route == "ws":
		a.serveWebSocket(w, r)
	case route == "dbx/ws":
		a.serveDBX(w, r)
	case route == "token/websocket":
		if a.cors(w, r) {
			return // a preflight, answered
		}
		rw := &restWriter{ResponseWriter: w, a: a, op: restOp(route, r.Method)}
		a.serveToken(rw, r)
		a.observe(rw.op, rw.status)
	case route == "record" || route == "record/atomic" || route == "records" || strings.HasPrefix(path, "record/"):
		if a.cors(w, r) {
			return // a preflight, answered
		}
		keyed := strings.HasPrefix(path, "record/") && (r.Method == http.MethodGet || r.Method == http.MethodDelete)
		if keyed || route != "record" && route != "records" && (route != "record/atomic" || r.Method != http.MethodPost) {
			route = path // the key of record/{key} keeps its final slash
		}
		rw := &restWriter{ResponseWriter: w, a: a, op: restOp(route, r.Method)}
		a.serveREST(rw, r, route)
		a.observe(rw.op, rw.status)
	default:
		writeReply(w, errorReply(http.StatusNotFound, "no such endpoint"))
	}
}

// enter registers an HTTP request unless the adapter is shutting down.
func (a *Adapter) enter() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return false
	}
	a.inflight.Add(1)
	return true
}

// Shutdown stops accepting connections and requests, lets requests under
// way finish, closes every WebSocket connection (status 1001) and waits
// for all of the adapter's goroutines, or until ctx is done. Then it
// drops the connections still open, ending their reads and writes (a
// reply waiting for a client that reads nothing included), and returns
// ctx's error: their goroutines end as soon as the requests the store is
// running for them return.
func (a *Adapter) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	a.closing = true
	conns := make([]*conn, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	done := make(chan struct{})
	go func() {
		a.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		for c := range a.conns {
			c.cancel()
		}
		a.mu.Unlock()
		return ctx.Err()
	}
}

// validAPIKey reports whether key is one of the API keys, comparing in
// constant time. It compares digests, of one length: comparing the keys
// would take less time for a key of another length than theirs, and so
// tell their length.
func (a *Adapter) validAPIKey(key string) bool {
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for _, k := range a.keySums {
		ok |= subtle.ConstantTimeCompare(k[:], sum[:])
	}
	return key != "" && ok == 1
}

// access is what a connection or request may do.
type access struct {
	full    bool
	pattern *pattern.Pattern // keys a token may touch; nil with full
	claims  claims
	token   string // the token's MAC, which names it; "" with full
}

// allows reports whether the connection may touch key. undecided is
// true when the access pattern, a regex, ran out of time on key: then the
// key is neither allowed nor refused, and the caller must say so rather
// than answer 403, or drop a notification, as if it were refused.
func (ac *access) allows(key string) (ok, undecided bool) {
	if ac.full || ac.pattern == nil {
		return true, false
	}
	ok, err := ac.pattern.TryMatch(key)
	return ok, err != nil
}

// narrow returns the part of the keys from start to stop (excluded; ""
// no bound) that the access pattern can match, by its bounds (an anchored
// regex's literal prefix): a range with a token reads only those, not
// every key between its bounds. An empty part has stop <= start, not "".
func (ac *access) narrow(start, stop string) (string, string) {
	if ac.full || ac.pattern == nil {
		return start, stop
	}
	from, to := ac.pattern.Bounds()
	start = max(start, from)
	if to != "" && (stop == "" || to < stop) {
		stop = to
	}
	if stop != "" && stop < start {
		stop = start
	}
	return start, stop
}

// errUndecided is the message of a request's 503 when its access pattern
// ran out of time on a key: the client may try again.
const errUndecided = "the token's access pattern could not decide on the key in time; try again"

// errAccessUndecided stops a range whose access pattern ran out of time
// on one of its keys.
var errAccessUndecided = errors.New("livekv adapter: access pattern undecided")

// tokenAccess verifies a token and compiles its access pattern.
func (a *Adapter) tokenAccess(token string) (*access, int, error) {
	c, err := verifyToken(a.opts.TokenSecret, token, a.opts.Now(), maxTokenLen(a.opts.MaxPatterns))
	switch {
	case errors.Is(err, errTokenExpired):
		return nil, http.StatusUnauthorized, err
	case err != nil:
		return nil, http.StatusForbidden, err
	}
	// The token's subscriptions are counted under its MAC, the bytes
	// its signature decodes to, not under the signature's text: one
	// token, however spelled, has one share of MaxTokenSubscriptions.
	// (verifyToken admits one spelling only; this holds without it.)
	_, sig, _ := strings.Cut(token, ".")
	sum, err := tokenEncoding.DecodeString(sig)
	if err != nil {
		return nil, http.StatusForbidden, errTokenMalformed
	}
	ac := &access{claims: c, token: string(sum)}
	if c.AccessPattern != "" {
		p, err := accessPattern(c.AccessPattern)
		if err != nil {
			return nil, http.StatusForbidden, err
		}
		ac.pattern = p
	}
	return ac, 0, nil
}

// accessPattern compiles an access pattern: a regular expression, matched
// anywhere in the key unless it anchors itself. It is at most
// pattern.DefaultMaxLen bytes as given, without the slashes that make it
// a regex pattern, and its errors quote it as given.
func accessPattern(src string) (*pattern.Pattern, error) {
	const maxLen = pattern.DefaultMaxLen
	if len(src) > maxLen {
		return nil, &pattern.SyntaxError{Pattern: src, Pos: maxLen, Msg: fmt.Sprintf("pattern longer than %d bytes", maxLen)}
	}
	p, err := pattern.ParseWith("/"+src+"/", &pattern.Options{MaxLen: maxLen + 2})
	var se *pattern.SyntaxError
	if errors.As(err, &se) {
		// Where in src, not in "/" + src + "/".
		return nil, &pattern.SyntaxError{Pattern: src, Pos: min(max(se.Pos-1, 0), len(src)), Msg: se.Msg}
	}
	return p, err
}
