package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
	"github.com/livekv/livekv/pattern"
	"github.com/livekv/livekv/pubsub"
)

// conn is one WebSocket connection, in one of the dialects the adapter
// speaks. What the dialects share is here: authentication, the limits
// (rate, requests in flight, the send queue and byte budget, pings),
// subscriptions and their caps; the dialect decodes messages, runs them
// and shapes the answers.
type conn struct {
	a  *Adapter
	ws *websocket.Conn
	ac *access
	d  dialect

	clientID string       // what the client calls itself (DBX's client_id), for logs
	level    string       // the read level the connection asked for at dial; "" is session
	session  atomic.Int64 // the highest revision the connection has been sent: its session reads wait for it
	lastRead atomic.Int64 // when the last message, or part of one, arrived, in unix ns
	waiting  atomic.Bool  // the reader waits for a request slot, reading nothing: the client is not silent
	waited   atomic.Int64 // when it last stopped waiting, in unix ns
	wrote    atomic.Int64 // when the writer last wrote a part of a large message, in unix ns: the peer takes what it is sent
	arrived  atomic.Int64 // when a part of a large message last arrived, past its first readChunk bytes, in unix ns: the peer sends

	ctx     context.Context // ends when the connection does
	cancel  context.CancelFunc
	out     chan []byte   // the send queue
	unsent  atomic.Int64  // messages queued and not yet written
	budget  *byteBudget   // bytes of messages being encoded, queued or written
	sem     chan struct{} // a slot per request running
	reqs    sync.WaitGroup
	tasks   sync.WaitGroup // the writer, the pinger, subscription forwarders
	closers sync.WaitGroup // goroutines closing the connection
	bucket  *tokenBucket   // the request rate, spent by requests and by the client's pings

	mu       sync.Mutex
	draining bool // Shutdown: no new requests
	subs     map[int64]subscription
	nextSub  int64 // the last id given to a client's subscription
	nextOwn  int64 // the last id of a token's own: below zero, never given out
	nsubs    int   // subscriptions held or being made: counted against the caps
	npats    int   // the patterns of those
	closed   bool  // run is ending: nothing new may start

	failed atomic.Bool // fail has been called
}

// subscription is one of a connection's subscriptions, with its share of
// the caps.
type subscription struct {
	s        *engine.Subscription
	patterns int
	stop     chan struct{} // closed by unsubscribe: forward sends no more
	done     chan struct{} // closed when forward has returned
}

// A dialect is one wire protocol over a conn: HPKV's (hpkvDialect) or
// DBX's (dbxDialect).
type dialect interface {
	// decode decodes one text message into a request to run, or returns
	// the answer to send instead (nil: nothing) and, with it, the request
	// as far as it decoded: never nil, so that a refusal of the message
	// (over the rate) carries its id when it had one, and naming an
	// operation only if that is known, for observed.
	decode(b []byte) (req any, answer any)
	// refuse is the answer to a request that is not run: req is nil for a
	// frame that is not text (code 400); code 429 is over the rate, 503
	// the server shutting down. nil: nothing.
	refuse(req any, code int, msg string) any
	// run runs a request on c and returns its answer (nil: nothing).
	run(c *conn, req any) any
	// notification is an event of subscription sub as a message; tagged
	// is false for a token's own subscriptions.
	notification(sub int64, tagged bool, ev *engine.Event) any
	// failure is a message for an error that ends something without a
	// request: the token's own subscriptions not starting (sub 0), or a
	// subscription ending by itself (a *pubsub.CompactedError or a
	// *pubsub.PatternTimeoutError, or a cluster node's error, such as
	// one without a leader).
	failure(sub int64, err *wireError) any
	// start starts the dialect's own goroutines on c, counted in c.tasks.
	start(c *conn)
	// observed names, for Options.OnRequest, the operation of req (nil:
	// none could be decoded) and the HPKV code of answer, its answer.
	observed(req, answer any) (op string, code int)
	// inOrder says whether a connection's requests take effect in the
	// order they arrive, each after the one before has been answered; if
	// not, they run concurrently.
	inOrder() bool
}

// wireError is an error with the HPKV code (an HTTP status) that says
// what kind it is; each dialect shapes it its own way.
type wireError struct {
	code      int
	msg       string
	oldest    int64  // a 410's oldest revision held
	revision  *int64 // a pattern's 400: the revision it delivered everything up to, 0 included; a 410: the one it needed, when above 0
	errorCode string // a cluster node's refusal: its code (internal/wire)
	err       error  // the engine's error, when it came from one
}

func (e *wireError) Error() string { return e.msg }

// credentials checks the credentials of a connection or request: an API
// key or a token (only one is given). It returns the access they give, or
// the HTTP status and error that refuse them.
func (a *Adapter) credentials(apiKey, token string) (*access, int, error) {
	switch {
	case apiKey != "":
		if !a.validAPIKey(apiKey) {
			return nil, http.StatusForbidden, errors.New("invalid API key")
		}
		return &access{full: true}, 0, nil
	case token != "":
		return a.tokenAccess(token)
	}
	return nil, http.StatusUnauthorized, errors.New("credentials required")
}

// fromRevision reads the fromRevision query parameter: where a token's
// own subscriptions start (startAfter); from now when absent or empty.
func fromRevision(q url.Values) (engine.SubscribeOptions, error) {
	s := q.Get("fromRevision")
	if s == "" {
		return startAfter(0, false), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return engine.SubscribeOptions{}, errors.New("bad fromRevision")
	}
	return startAfter(n, true), nil
}

// startAfter is where a subscription starts: after revision rev if given,
// or from now. 0, given, is every change after revision 0: what a client
// that subscribed to a new DB, and has seen nothing yet, resumes from.
func startAfter(rev int64, given bool) engine.SubscribeOptions {
	if given && rev == 0 {
		return engine.SubscribeOptions{From: engine.Position{Revision: 1}}
	}
	return engine.SubscribeOptions{FromRevision: rev}
}

// handshakeKey is the API key of a WebSocket handshake: the one in its
// query, else its x-api-key header, which a program (not a browser) may
// send instead, so that the key is in no URL a proxy logs.
func handshakeKey(r *http.Request, query string) string {
	if query != "" {
		return query
	}
	return r.Header.Get("x-api-key")
}

// serveWebSocket authenticates, upgrades and runs one connection of the
// HPKV dialect until it ends.
func (a *Adapter) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ac, code, err := a.credentials(handshakeKey(r, q.Get("apiKey")), q.Get("token"))
	if err != nil {
		if code == http.StatusUnauthorized && !errors.Is(err, errTokenExpired) {
			err = errors.New("apiKey or token required")
		}
		writeJSON(w, code, reply{Code: code, Error: err.Error()})
		return
	}
	from, err := fromRevision(q)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, reply{Code: http.StatusBadRequest, Error: err.Error()})
		return
	}
	level, minRev, err := readParams(q)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, reply{Code: http.StatusBadRequest, Error: err.Error()})
		return
	}
	a.serveConn(w, r, ac, dial{from: from, level: level, minRev: minRev}, hpkvDialect{}, "")
}

// dial is what a WebSocket connection asked for when it opened: where its
// token's own subscriptions start, its read level and the revision its
// session starts at.
type dial struct {
	from   engine.SubscribeOptions // where a token's own subscriptions start
	level  string
	minRev int64
}

// serveConn upgrades an authenticated request and runs the connection in
// dialect d until it ends.
func (a *Adapter) serveConn(w http.ResponseWriter, r *http.Request, ac *access, dl dial, d dialect, clientID string) {
	bucket := &tokenBucket{rate: a.opts.RequestRate, burst: float64(a.opts.RequestBurst), tokens: float64(a.opts.RequestBurst), last: time.Now()}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: a.opts.AllowedOrigins,
		// A ping costs the server a pong, as a request costs a reply: one
		// over the rate gets none. It runs in a Read, the reader's or, as
		// the connection closes, the close handshake's, beside the
		// reader's last take: the bucket has a lock.
		OnPingReceived: func(context.Context, []byte) bool { return bucket.take() }})
	if err != nil {
		return // Accept has answered (403 for a foreign origin)
	}
	ws.SetReadLimit(a.opts.MaxMessageSize)
	c := &conn{a: a, ws: ws, ac: ac, d: d, clientID: clientID, out: make(chan []byte, a.opts.SendQueue), budget: newByteBudget(a.opts.MaxQueuedBytes),
		sem: make(chan struct{}, a.opts.MaxInFlight), subs: make(map[int64]subscription),
		bucket: bucket, level: dl.level}
	c.session.Store(dl.minRev)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if !a.track(c) {
		// Shutdown has begun: closed as Shutdown closes the others, the
		// client given closeGrace to answer, not the library's 5s for
		// the close frame and 5s for the answer, which Shutdown would
		// wait for.
		ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		ws.CloseRead(ctx) // reads the answer; once ctx ends, drops the connection
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer a.untrack(c)
	c.run(dl.from)
}

func (a *Adapter) track(c *conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return false
	}
	a.conns[c] = struct{}{}
	return true
}

func (a *Adapter) untrack(c *conn) {
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}

// run serves the connection: the reader loop here, the writer, the pinger
// and the subscriptions in goroutines of their own. It returns when all
// of them have.
func (c *conn) run(from engine.SubscribeOptions) {
	c.lastRead.Store(time.Now().UnixNano())
	c.tasks.Add(2)
	go c.writeLoop()
	go c.pingLoop()
	c.d.start(c)
	if cl := c.ac.claims; !c.ac.full {
		expires := time.Unix(cl.Expires, 0).Sub(c.a.opts.Now())
		t := time.AfterFunc(expires, func() { c.fail(websocket.StatusPolicyViolation, "token expired") })
		defer t.Stop()
		var pats []*pattern.Pattern
		for _, k := range cl.SubscribeKeys {
			pats = append(pats, pattern.ExactKey(k))
		}
		for _, s := range cl.SubscribePatterns {
			p, err := pattern.Parse(s) // checked when the token was made
			if err == nil {
				pats = append(pats, p)
			}
		}
		if len(pats) > 0 {
			if _, _, err := c.subscribe(pats, from, false); err != nil {
				if m := c.d.failure(0, err); m != nil {
					c.send(m)
				}
				c.fail(websocket.StatusPolicyViolation, err.msg)
			}
		}
	}
	c.readLoop()
	c.reqs.Wait()
	c.mu.Lock()
	c.closed = true
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	for _, s := range subs {
		s.s.Close()
		c.release(s.patterns)
	}
	c.cancel()
	c.tasks.Wait()
	c.closers.Wait()
	c.ws.CloseNow()
}

// readLoop reads requests until the connection fails or closes, and starts
// each in a goroutine of its own, at most MaxInFlight at once. In a
// dialect whose requests run in order, each goroutine first waits for the
// one before to have answered: the reader still reads ahead, up to
// MaxInFlight requests, and notifications flow meanwhile.
func (c *conn) readLoop() {
	failed := false        // the connection is closing (as c.failed says): read only to let the close handshake end
	var prev chan struct{} // closed once the request before has answered (inOrder)
	for {
		typ, data, err := c.read()
		if err != nil {
			if status := websocket.CloseStatus(err); status == -1 && !dropped(err) {
				c.a.opts.Logf("livekv adapter: read%s: %v", c.logName(), err)
			}
			return
		}
		if failed || c.failed.Load() {
			// Closing for cause (a token expired, a client too slow or
			// gone): what arrives meanwhile is not run.
			continue
		}
		if typ == websocket.MessageText && !utf8.Valid(data) {
			// RFC 6455, section 8.1: a text frame that is not UTF-8 fails
			// the connection.
			failed = true
			c.fail(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
			continue
		}
		// Every message takes from the bucket, one that does not decode
		// too: it costs a reply as a request does.
		limited := !c.bucket.take()
		var req, answer any
		if typ == websocket.MessageText {
			req, answer = c.d.decode(data)
		} else {
			answer = c.d.refuse(nil, http.StatusBadRequest, "messages are JSON text frames")
		}
		if limited {
			c.reply(req, c.d.refuse(req, http.StatusTooManyRequests, "too many requests"))
			continue
		}
		if req == nil || answer != nil {
			c.reply(req, answer)
			continue
		}
		c.mu.Lock()
		draining := c.draining
		if !draining {
			c.reqs.Add(1) // under mu, so that shutdown waits for it
		}
		c.mu.Unlock()
		if draining {
			c.reply(req, c.d.refuse(req, http.StatusServiceUnavailable, "server shutting down"))
			continue
		}
		select {
		case c.sem <- struct{}{}:
		default: // every slot taken: wait, reading nothing meanwhile
			c.waiting.Store(true)
			select {
			case c.sem <- struct{}{}:
			case <-c.ctx.Done():
				c.reqs.Done()
				return
			}
			now := time.Now().UnixNano()
			c.waited.Store(now)
			c.lastRead.Store(now) // what came meanwhile is unread, not missing
			c.waiting.Store(false)
		}
		var after, done chan struct{}
		if c.d.inOrder() {
			after, done = prev, make(chan struct{})
			prev = done
		}
		go func() {
			defer c.reqs.Done()
			defer func() { <-c.sem }()
			if after != nil {
				<-after
			}
			c.reply(req, c.d.run(c, req))
			if done != nil {
				close(done)
			}
		}()
	}
}

// dropped reports whether err, a read's, is a connection ending without
// a close frame: the peer's socket closed or reset (its process killed),
// or timed out (its network gone), or the connection ended here. That is
// how many connections end; what else a read fails with (a frame breaking
// the protocol, a message over MaxMessageSize) is logged.
func dropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled)
}

// readChunk is the most of a message read at once: the library's reader
// returns only once it has filled what it is given.
const readChunk = 16 << 10

// read reads the next message. Its end moves lastRead on, and so does
// each part of a large one past its first readChunk bytes, which moves
// arrived too: a client sending a large message slowly is not silent,
// though it can send neither a heartbeat nor a pong before the message
// ends.
func (c *conn) read() (websocket.MessageType, []byte, error) {
	typ, r, err := c.ws.Reader(c.ctx)
	if err != nil {
		return 0, nil, err
	}
	b := make([]byte, 0, 512)
	for {
		n, err := r.Read(b[len(b):min(cap(b), len(b)+readChunk)])
		b = b[:len(b)+n]
		if n > 0 && len(b) > readChunk {
			now := time.Now().UnixNano()
			c.lastRead.Store(now)
			c.arrived.Store(now)
		}
		switch {
		case err == io.EOF:
			c.lastRead.Store(time.Now().UnixNano())
			return typ, b, nil
		case err != nil:
			return 0, nil, err
		case len(b) == cap(b):
			b = append(b, 0)[:len(b)] // room to read into
		}
	}
}

// reply sends answer, the answer to req, unless it is nil, and counts it
// (Options.OnRequest, Stats).
func (c *conn) reply(req, answer any) {
	if answer == nil {
		return
	}
	c.a.observe(c.d.observed(req, answer))
	c.send(answer)
}

// answer sends m unless it is nil.
func (c *conn) answer(m any) {
	if m != nil {
		c.send(m)
	}
}

// logName names the connection in logs by its client id, if it gave one.
func (c *conn) logName() string {
	if c.clientID == "" {
		return ""
	}
	return fmt.Sprintf(" (client %q)", c.clientID)
}

// parsePatterns parses the patterns of a subscribe request: 1 to
// MaxPatterns of them.
func (c *conn) parsePatterns(srcs []string) ([]*pattern.Pattern, *wireError) {
	if len(srcs) == 0 || len(srcs) > c.a.opts.MaxPatterns {
		return nil, &wireError{code: http.StatusBadRequest, msg: "patterns: give 1 to " + strconv.Itoa(c.a.opts.MaxPatterns)}
	}
	pats := make([]*pattern.Pattern, len(srcs))
	for i, s := range srcs {
		p, err := pattern.Parse(s)
		if err != nil {
			return nil, &wireError{code: http.StatusBadRequest, msg: err.Error(), err: err}
		}
		pats[i] = p
	}
	return pats, nil
}

// unsubscribe ends subscription id; false if there is none. It returns
// once its forwarder has sent its last notification, so that none follows
// the reply: a client forgets the id when the reply comes. Events the
// subscription had taken and not sent are dropped.
func (c *conn) unsubscribe(id int64) bool {
	if id <= 0 {
		return false // none the client was given: a token's own, or none
	}
	c.mu.Lock()
	s, ok := c.subs[id]
	delete(c.subs, id)
	c.mu.Unlock()
	if !ok {
		return false
	}
	close(s.stop)
	s.s.Close()
	<-s.done
	c.release(s.patterns)
	return true
}

// subscribe starts a subscription whose events become notifications on
// this connection, starting where o says. tagged
// notifications carry the subscription's id (those of a token's own
// subscriptions do not, as in HPKV). It returns the subscription's id and
// the revision it starts after.
func (c *conn) subscribe(pats []*pattern.Pattern, o engine.SubscribeOptions, tagged bool) (int64, int64, *wireError) {
	if err := c.reserve(len(pats)); err != nil {
		return 0, 0, &wireError{code: http.StatusTooManyRequests, msg: err.Error()}
	}
	if !c.ac.full && c.ac.pattern != nil {
		// The client's regexes run only on the keys it may read: on
		// another key, one running out of time would end the
		// subscription with its revision, telling the client of a key
		// it may not see, and one that merely backtracked would tell
		// it by its time. An undecided key goes through, to be matched
		// and then decided on again by forward.
		o.Filter = func(key string) bool {
			ok, undecided := c.ac.allows(key)
			return ok || undecided
		}
	}
	o.Buffer = subscriptionBuffer
	s, err := c.a.db.SubscribePatterns(pats, &o)
	if err != nil {
		c.release(len(pats))
	}
	if err != nil {
		return 0, 0, subscriptionError(err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.Close()
		c.release(len(pats))
		return 0, 0, &wireError{code: http.StatusServiceUnavailable, msg: "connection closing"}
	}
	// A token's own subscriptions take ids below zero, which unsubscribe
	// refuses: their client was never given one, and an id it gives
	// (one left from an earlier connection, say) must not end them.
	var id int64
	if tagged {
		c.nextSub++
		id = c.nextSub
	} else {
		c.nextOwn--
		id = c.nextOwn
	}
	sub := subscription{s: s, patterns: len(pats), stop: make(chan struct{}), done: make(chan struct{})}
	c.subs[id] = sub
	c.tasks.Add(1)
	c.mu.Unlock()
	// The revision it starts after, read before the forwarder takes
	// events, which moves it on.
	rev := s.Revision()
	go c.forward(id, tagged, sub)
	c.noteSeen(rev)
	return id, rev, nil
}

// subscriptionError is the wireError of a subscription that did not
// start: one of subscriptionEnd's, or 503 for a closed DB, or 400.
func subscriptionError(err error) *wireError {
	if e := subscriptionEnd(err); e != nil {
		return e
	}
	if errors.Is(err, engine.ErrClosed) {
		return &wireError{code: http.StatusServiceUnavailable, msg: err.Error(), err: err}
	}
	if errors.Is(err, engine.ErrRevisionAhead) {
		// A revision of another history: the changes after it are not
		// here to give, as for a history compacted past it, and the
		// client reads the state again.
		return &wireError{code: http.StatusGone, msg: err.Error(), err: err}
	}
	return &wireError{code: http.StatusBadRequest, msg: err.Error(), err: err}
}

// subscriptionEnd is the wireError of a subscription that ended by
// itself, which the client is told of, or nil for one that was closed
// (unsubscribed, or its connection or DB closing). A cluster node's error
// (no leader, behind the revision asked for, closing) has the status and
// code it has for a request: 503, and the client resumes elsewhere or
// later.
func subscriptionEnd(err error) *wireError {
	var compacted *pubsub.CompactedError
	var undecided *pubsub.PatternTimeoutError
	if code, status := errorCode(err); status != 0 {
		return &wireError{code: status, msg: err.Error(), errorCode: code, err: err}
	}
	switch {
	case errors.As(err, &compacted):
		e := &wireError{code: http.StatusGone, msg: err.Error(), oldest: compacted.Oldest, err: err}
		if compacted.Revision > 0 {
			e.revision = &compacted.Revision
		}
		return e
	case errors.As(err, &undecided):
		// A regex of its own could not decide on a key: the message names
		// the pattern and the revision, not the key. With a token, the
		// key is one it may read (or whose access was undecided): its
		// regexes run on no other (subscribe's filter).
		return &wireError{code: http.StatusBadRequest, msg: err.Error(), revision: ptr(undecided.Revision - 1), err: err}
	}
	return nil
}

// reserve counts a subscription of n patterns against the connection's
// and its token's caps, or says which it would pass, in an error that
// starts with that cap's text (internal/wire), so that a client can tell
// it from the request rate's 429. A subscription that
// ends by itself (410, 400, a cluster node's 503) counts until it is
// unsubscribed or the connection ends.
func (c *conn) reserve(n int) error {
	o := &c.a.opts
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.nsubs >= o.MaxSubscriptions:
		return fmt.Errorf("%s: this connection holds %d subscriptions, at most %d: unsubscribe one first",
			wire.ConnSubscriptionLimit, c.nsubs, o.MaxSubscriptions)
	case c.npats+n > o.MaxConnPatterns:
		return fmt.Errorf("%s: this connection's subscriptions would hold %d patterns, at most %d",
			wire.ConnSubscriptionLimit, c.npats+n, o.MaxConnPatterns)
	case !c.a.takeTokenSubscription(c.ac.token):
		return fmt.Errorf("%s: the connections of this token hold %d subscriptions, at most %d",
			wire.TokenSubscriptionLimit, o.MaxTokenSubscriptions, o.MaxTokenSubscriptions)
	}
	c.nsubs++
	c.npats += n
	return nil
}

// release gives back what reserve took for a subscription of n patterns.
func (c *conn) release(n int) {
	c.mu.Lock()
	c.nsubs--
	c.npats -= n
	c.mu.Unlock()
	c.a.releaseTokenSubscription(c.ac.token)
}

// takeTokenSubscription counts one more subscription for a token ("" is
// the API key, which is not counted), unless it has its share.
func (a *Adapter) takeTokenSubscription(token string) bool {
	if token == "" {
		return true
	}
	a.tokens.Lock()
	defer a.tokens.Unlock()
	if a.tokens.subs[token] >= a.opts.MaxTokenSubscriptions {
		return false
	}
	a.tokens.subs[token]++
	return true
}

func (a *Adapter) releaseTokenSubscription(token string) {
	if token == "" {
		return
	}
	a.tokens.Lock()
	defer a.tokens.Unlock()
	if a.tokens.subs[token]--; a.tokens.subs[token] <= 0 {
		delete(a.tokens.subs, token)
	}
}

// forward turns a subscription's events into notifications, until the
// subscription ends or unsubscribe stops it.
func (c *conn) forward(id int64, tagged bool, sub subscription) {
	defer c.tasks.Done()
	defer close(sub.done)
	s := sub.s
	for {
		// Next, not Events: as it takes an event, it wakes the
		// subscription's feeder if the reader fell behind.
		ev, err := s.Next(context.Background())
		if err != nil {
			break
		}
		select {
		case <-sub.stop:
			return
		default:
		}
		switch ok, undecided := c.ac.allows(ev.Key); {
		case undecided:
			// Neither allowed nor refused: dropping the notification
			// would skip it unsaid. The client reconnects and resumes
			// from the last revision it has.
			c.fail(websocket.StatusTryAgainLater, "the token's access pattern could not decide on a key in time")
			s.Close()
			return
		case !ok:
			continue
		}
		c.noteSeen(ev.Revision)
		if !c.send(c.d.notification(id, tagged, &ev)) {
			return
		}
	}
	// A subscription that fell behind the history, one of whose regexes
	// could not decide on a key, or one a cluster node ended (it has had
	// no leader for a while), says so, once.
	if e := subscriptionEnd(s.Err()); e != nil {
		if !tagged {
			id = 0 // an id the client was never given tells it nothing
		}
		c.answer(c.d.failure(id, e))
		if !tagged {
			// The token's own subscription, whose end its client has no
			// id to be told of by (HPKV's clients know nothing of it):
			// the connection would go on silent. Closed, it is made
			// again, as after the access pattern's undecided key.
			c.fail(websocket.StatusTryAgainLater, "the token's subscription ended; connect again")
		}
	}
}

// send queues a message (a Reply or a Notification) for the writer. It
// first takes room in the connection's byte budget for the message's
// largest encoding, so that what is held for a client stays within
// MaxQueuedBytes however many requests and subscriptions produce for it.
// If the message waits SlowClientTimeout, for the budget and the queue
// together, the client is not reading: the connection is closed with
// 1008 and false returned.
//
// A connection closing for cause queues nothing more (false): the close
// lets the writer drain what was queued before, and meanwhile a stream
// of writes would keep its forwarders queuing notifications of changes
// made after it began to close (after its token expired, say), and
// requests under way their answers.
func (c *conn) send(v any) bool {
	if c.failed.Load() {
		return false
	}
	var b []byte
	bound, known := encodedBound(v)
	if !known {
		var err error
		if b, err = json.Marshal(v); err != nil {
			c.a.opts.Logf("livekv adapter: encode: %v", err)
			return false
		}
		bound = len(b)
	}
	used, waited, err := c.budget.acquire(c.ctx, int64(bound), c.a.opts.SlowClientTimeout)
	if errors.Is(err, errNoRoom) {
		c.slow("client too slow: byte budget full")
		return false
	} else if err != nil {
		return false
	}
	c.a.stats.notePeak(used)
	if known {
		if b, err = json.Marshal(v); err != nil {
			c.budget.release(int64(bound))
			c.a.opts.Logf("livekv adapter: encode: %v", err)
			return false
		}
		c.budget.release(int64(bound - len(b))) // keep what the message holds
	}
	c.unsent.Add(1)
	select {
	case c.out <- b:
		return true
	default:
	}
	t := time.NewTimer(c.a.opts.SlowClientTimeout - waited) // what the budget left of the wait
	defer t.Stop()
	select {
	case c.out <- b:
		return true
	case <-c.ctx.Done():
	case <-t.C:
		c.slow("client too slow: send queue full")
	}
	c.unsent.Add(-1)
	c.budget.release(int64(len(b)))
	return false
}

// slow closes the connection of a client that does not read. Every
// sender that waited on it comes here: the connection counts once.
func (c *conn) slow(reason string) {
	c.failCounting(&c.a.stats.slowClosed, websocket.StatusPolicyViolation, reason)
}

// writeLoop writes queued messages until the connection ends.
func (c *conn) writeLoop() {
	defer c.tasks.Done()
	for {
		select {
		case b := <-c.out:
			err := c.write(b)
			if err == nil {
				c.a.stats.bytesOut.Add(int64(len(b)))
			}
			c.unsent.Add(-1)
			c.budget.release(int64(len(b)))
			if err != nil {
				c.cancel()
				return
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// writeChunk is the most of a message written in one frame. The library
// writes a frame whole, the pings between frames: a large message goes in
// parts, so that a ping waits for one part, not for a slow reader to take
// the whole message. A part written once the socket's buffer is full
// tells pingLoop that the peer reads. (A small message written says
// nothing: the socket's buffer takes it, read or not.)
const writeChunk = 32 << 10

// write writes one message, in frames of at most writeChunk bytes.
func (c *conn) write(b []byte) error {
	if len(b) <= writeChunk {
		return c.ws.Write(c.ctx, websocket.MessageText, b)
	}
	w, err := c.ws.Writer(c.ctx, websocket.MessageText)
	if err != nil {
		return err
	}
	for len(b) > 0 {
		n := min(len(b), writeChunk)
		if _, err := w.Write(b[:n]); err != nil {
			return err // the connection ends: the writer is not closed
		}
		c.wrote.Store(time.Now().UnixNano())
		b = b[n:]
	}
	return w.Close()
}

// pingLoop pings the peer every PingInterval; one that does not answer
// within the interval is gone, unless the reader, which reads the pong,
// was waiting for a request slot meanwhile, or the peer was taking a
// large message. A ping goes out behind what was written before it
// (between two parts of a large message, at the earliest): a peer that
// reads a large message slowly answers late, and is alive while the
// writer writes its parts, and for an interval after, as it reads the last
// of them. A client that reads slowly is SlowClientTimeout's to close,
// once what waits for it has waited that long; one that stops reading
// stops the writer, and then answers no ping.
func (c *conn) pingLoop() {
	defer c.tasks.Done()
	t := time.NewTicker(c.a.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			sent := time.Now().UnixNano()
			ctx, cancel := context.WithTimeout(c.ctx, c.a.opts.PingInterval)
			err := c.ws.Ping(ctx)
			cancel()
			// The pong is read by the reader, which reads nothing while it
			// waits for a request slot: the client then only seems dead.
			// Likewise a peer taking a large message as the writer writes
			// its parts, or that took the last an interval before the
			// ping: the pong comes after them.
			reading := c.wrote.Load() > sent-int64(c.a.opts.PingInterval)
			// And a peer whose large message arrives meanwhile: the pong
			// comes after its end. (Small ones say nothing: a peer that
			// sends and never reads answers no ping, and is gone.)
			sending := c.arrived.Load() > sent
			if err != nil && c.ctx.Err() == nil && !c.waiting.Load() && c.waited.Load() < sent && !reading && !sending {
				c.failCounting(&c.a.stats.deadPeers, websocket.StatusPolicyViolation, "no answer to ping")
				return
			}
		}
	}
}

// fail closes the connection with a status and a reason; what runs on it
// ends.
func (c *conn) fail(code websocket.StatusCode, reason string) {
	c.failCounting(nil, code, reason)
}

// failCounting is fail that, if it is the first to fail the connection,
// first adds one to n: what is counted of why connections close counts
// each once, and before the client can see the close.
func (c *conn) failCounting(n *atomic.Int64, code websocket.StatusCode, reason string) {
	if c.failed.CompareAndSwap(false, true) && n != nil {
		n.Add(1)
	}
	c.closeWith(func() { c.closeFast(code, reason) })
}

// closeGrace is how long a close handshake may take before the connection
// is dropped: a peer that does not read never answers it.
const closeGrace = time.Second

// closeFast lets the writer send what is queued (for up to closeGrace),
// sends the close frame and waits closeGrace for the answer, then drops
// the connection. A client that does not read may never see the frame.
func (c *conn) closeFast(code websocket.StatusCode, reason string) {
	reason = closeReason(reason)
	for end := time.Now().Add(closeGrace); c.unsent.Load() > 0 && c.ctx.Err() == nil && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		c.ws.Close(code, reason)
		close(done)
	}()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		// Ending the context ends the reader's Read, which holds what the
		// handshake waits for, and drops the connection.
		c.cancel()
		<-done
	}
}

// maxCloseReason is the most bytes a close frame's reason may hold (RFC
// 6455, section 5.5: 125 bytes of payload, 2 of them the status).
const maxCloseReason = 123

// closeReason cuts reason to fit in a close frame, at a character's
// start: with a longer one the frame could not be sent at all, and the
// connection would end without its status.
func closeReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	n := maxCloseReason
	for n > 0 && !utf8.RuneStart(reason[n]) {
		n--
	}
	return reason[:n]
}

// shutdown drains the connection: no new requests; once those under way
// have replied and the replies are written, it closes with 1001.
func (c *conn) shutdown() {
	c.mu.Lock()
	c.draining = true
	c.mu.Unlock()
	c.closeWith(func() {
		c.reqs.Wait()
		c.closeFast(websocket.StatusGoingAway, "server shutting down")
	})
}

// closeWith runs close, then ends the connection's context, in a goroutine
// that run waits for; once run is ending it does nothing.
func (c *conn) closeWith(close func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closers.Add(1)
	go func() {
		defer c.closers.Done()
		close()
		c.cancel()
	}()
}

// tokenBucket limits a connection's request rate.
type tokenBucket struct {
	mu                  sync.Mutex // the reader, and a close handshake reading pings
	rate, burst, tokens float64
	last                time.Time
}

// take spends a token if there is one.
func (b *tokenBucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// subscriptionBuffer is how many events a connection's subscription holds
// that its forwarder has not taken. The forwarder hands each to send,
// which waits for room in the byte budget; events beyond these wait in
// the change history, which every subscriber shares and which lets them
// go as it must. A larger buffer would keep, per subscription of a client
// that does not read, that many values alive past the history, outside
// any budget (256 of up to 1 MiB each by default).
const subscriptionBuffer = 1
