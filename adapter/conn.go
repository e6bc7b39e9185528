package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
	"github.com/livekv/livekv/pubsub"
)

// conn is one WebSocket connection.
type conn struct {
	a  *Adapter
	ws *websocket.Conn
	ac *access

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
	nextSub  int64
	nsubs    int  // subscriptions held or being made: counted against the caps
	npats    int  // the patterns of those
	closed   bool // run is ending: nothing new may start
}

// subscription is one of a connection's subscriptions, with its share of
// the caps.
type subscription struct {
	s        *engine.Subscription
	patterns int
}

// serveWebSocket authenticates, upgrades and runs one connection until it
// ends.
func (a *Adapter) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var ac *access
	switch {
	case q.Get("apiKey") != "":
		if !a.validAPIKey(q.Get("apiKey")) {
			writeJSON(w, http.StatusForbidden, reply{Code: http.StatusForbidden, Error: "invalid API key"})
			return
		}
		ac = &access{full: true}
	case q.Get("token") != "":
		var code int
		var err error
		if ac, code, err = a.tokenAccess(q.Get("token")); err != nil {
			writeJSON(w, code, reply{Code: code, Error: err.Error()})
			return
		}
	default:
		writeJSON(w, http.StatusUnauthorized, reply{Code: http.StatusUnauthorized, Error: "apiKey or token required"})
		return
	}
	var from int64
	if s := q.Get("fromRevision"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, reply{Code: http.StatusBadRequest, Error: "bad fromRevision"})
			return
		}
		from = n
	}
	bucket := &tokenBucket{rate: a.opts.RequestRate, burst: float64(a.opts.RequestBurst), tokens: float64(a.opts.RequestBurst), last: time.Now()}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: a.opts.AllowedOrigins,
		// A ping costs the server a pong, as a request costs a reply: one
		// over the rate gets none. It runs while a Read holds the reading
		// side, so the bucket still has one user at a time.
		OnPingReceived: func(context.Context, []byte) bool { return bucket.take() }})
	if err != nil {
		return // Accept has answered (403 for a foreign origin)
	}
	ws.SetReadLimit(a.opts.MaxMessageSize)
	c := &conn{a: a, ws: ws, ac: ac, out: make(chan []byte, a.opts.SendQueue), budget: newByteBudget(a.opts.MaxQueuedBytes),
		sem: make(chan struct{}, a.opts.MaxInFlight), subs: make(map[int64]subscription),
		bucket: bucket}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if !a.track(c) {
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer a.untrack(c)
	c.run(from)
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
func (c *conn) run(from int64) {
	c.tasks.Add(2)
	go c.writeLoop()
	go c.pingLoop()
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
			if _, rep := c.subscribe(pats, from, false); rep.Code != http.StatusOK {
				c.send(rep)
				c.fail(websocket.StatusPolicyViolation, rep.Error)
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
// each in a goroutine of its own, at most MaxInFlight at once.
func (c *conn) readLoop() {
	failed := false // the connection is closing: read only to let the close handshake end
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			if status := websocket.CloseStatus(err); status == -1 && !errors.Is(err, context.Canceled) {
				c.a.opts.Logf("livekv adapter: read: %v", err)
			}
			return
		}
		if failed {
			continue
		}
		if typ != websocket.MessageText {
			c.a.observe(OpInvalid, http.StatusBadRequest)
			c.send(reply{Code: http.StatusBadRequest, Error: "messages are JSON text frames"})
			continue
		}
		if !utf8.Valid(data) {
			// RFC 6455, section 8.1: a text frame that is not UTF-8 fails
			// the connection.
			failed = true
			c.fail(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
			continue
		}
		req, err := decodeRequest(data)
		if err != nil {
			c.a.observe(opName(req.Op), http.StatusBadRequest)
			c.send(reply{Code: http.StatusBadRequest, MessageID: req.MessageID, Error: err.Error()})
			continue
		}
		if !c.bucket.take() {
			c.a.observe(opName(req.Op), http.StatusTooManyRequests)
			c.send(reply{Code: http.StatusTooManyRequests, MessageID: req.MessageID, Error: "too many requests"})
			continue
		}
		c.mu.Lock()
		draining := c.draining
		if !draining {
			c.reqs.Add(1) // under mu, so that shutdown waits for it
		}
		c.mu.Unlock()
		if draining {
			c.a.observe(opName(req.Op), http.StatusServiceUnavailable)
			c.send(reply{Code: http.StatusServiceUnavailable, MessageID: req.MessageID, Error: "server shutting down"})
			continue
		}
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
			c.reqs.Done()
			return
		}
		go func() {
			defer c.reqs.Done()
			defer func() { <-c.sem }()
			c.send(c.handle(&req))
		}()
	}
}

// handle runs one request.
func (c *conn) handle(req *request) reply {
	var rep reply
	switch req.Op {
	case opSubscribe:
		rep = c.handleSubscribe(req)
	case opUnsubscribe:
		rep = c.handleUnsubscribe(req)
	default:
		rep = c.a.do(c.ac, req)
	}
	rep.MessageID = req.MessageID
	c.a.observe(opName(req.Op), rep.Code)
	return rep
}

func (c *conn) handleSubscribe(req *request) reply {
	if len(req.Patterns) == 0 || len(req.Patterns) > c.a.opts.MaxPatterns {
		return errorReply(http.StatusBadRequest, "patterns: give 1 to "+strconv.Itoa(c.a.opts.MaxPatterns))
	}
	pats := make([]*pattern.Pattern, len(req.Patterns))
	for i, s := range req.Patterns {
		p, err := pattern.Parse(s)
		if err != nil {
			return errorReply(http.StatusBadRequest, err.Error())
		}
		pats[i] = p
	}
	_, rep := c.subscribe(pats, req.FromRevision, true)
	return rep
}

func (c *conn) handleUnsubscribe(req *request) reply {
	c.mu.Lock()
	s, ok := c.subs[req.SubscriptionID]
	delete(c.subs, req.SubscriptionID)
	c.mu.Unlock()
	if !ok {
		return errorReply(http.StatusNotFound, "no such subscription")
	}
	s.s.Close()
	c.release(s.patterns)
	return reply{Code: http.StatusOK, Success: ptr(true), SubscriptionID: req.SubscriptionID}
}

// subscribe starts a subscription whose events become notifications on
// this connection; from > 0 resumes after that revision. tagged
// notifications carry the subscription's id (those of a token's own
// subscriptions do not, as in HPKV).
func (c *conn) subscribe(pats []*pattern.Pattern, from int64, tagged bool) (int64, reply) {
	if err := c.reserve(len(pats)); err != nil {
		return 0, errorReply(http.StatusTooManyRequests, err.Error())
	}
	s, err := c.a.db.SubscribePatterns(pats, &engine.SubscribeOptions{FromRevision: from})
	if err != nil {
		c.release(len(pats))
	}
	var compacted *pubsub.CompactedError
	switch {
	case errors.As(err, &compacted):
		return 0, reply{Code: http.StatusGone, Error: err.Error(), Oldest: compacted.Oldest, Revision: compacted.Revision}
	case errors.Is(err, engine.ErrClosed):
		return 0, errorReply(http.StatusServiceUnavailable, err.Error())
	case err != nil:
		return 0, errorReply(http.StatusBadRequest, err.Error())
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.Close()
		c.release(len(pats))
		return 0, errorReply(http.StatusServiceUnavailable, "connection closing")
	}
	c.nextSub++
	id := c.nextSub
	c.subs[id] = subscription{s, len(pats)}
	c.tasks.Add(1)
	c.mu.Unlock()
	go c.forward(id, tagged, s)
	return id, reply{Code: http.StatusOK, Success: ptr(true), SubscriptionID: id, Revision: s.Revision()}
}

// reserve counts a subscription of n patterns against the connection's
// and its token's caps, or says which it would pass. A subscription that
// ends by itself (410, 400) counts until it is unsubscribed or the
// connection ends.
func (c *conn) reserve(n int) error {
	o := &c.a.opts
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.nsubs >= o.MaxSubscriptions:
		return fmt.Errorf("this connection holds %d subscriptions, at most %d: unsubscribe one first", c.nsubs, o.MaxSubscriptions)
	case c.npats+n > o.MaxConnPatterns:
		return fmt.Errorf("this connection's subscriptions would hold %d patterns, at most %d", c.npats+n, o.MaxConnPatterns)
	case !c.a.takeTokenSubscription(c.ac.token):
		return fmt.Errorf("the connections of this token hold %d subscriptions, at most %d", o.MaxTokenSubscriptions, o.MaxTokenSubscriptions)
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

// forward turns a subscription's events into notifications.
func (c *conn) forward(id int64, tagged bool, s *engine.Subscription) {
	defer c.tasks.Done()
	for ev := range s.Events() {
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
		n := notification{Type: "notification", Key: ev.Key, Timestamp: ev.Time.UnixMilli(), Revision: ev.Revision}
		if tagged {
			n.SubscriptionID = id
		}
		if ev.Type != pubsub.Delete && ev.Type != pubsub.Expire {
			n.Value = ptr(ev.Value)
		}
		if !c.send(n) {
			return
		}
	}
	var compacted *pubsub.CompactedError
	var undecided *pubsub.PatternTimeoutError
	switch err := s.Err(); {
	case errors.As(err, &compacted):
		// The subscription fell behind the history: say so, once.
		c.send(reply{Code: http.StatusGone, Error: err.Error(), SubscriptionID: id, Oldest: compacted.Oldest, Revision: compacted.Revision})
	case errors.As(err, &undecided):
		// A regex of its own could not decide on a key: the message names
		// the pattern and the revision, not the key, which the client may
		// not be allowed to see.
		c.send(reply{Code: http.StatusBadRequest, Error: err.Error(), SubscriptionID: id, Revision: undecided.Revision - 1})
	}
}

// send queues a message (a Reply or a Notification) for the writer. It
// first takes room in the connection's byte budget for the message's
// largest encoding, so that what is held for a client stays within
// MaxQueuedBytes however many requests and subscriptions produce for it.
// If the budget or the queue stays full for SlowClientTimeout, the client
// is not reading: the connection is closed with 1008 and false returned.
func (c *conn) send(v any) bool {
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
	used, err := c.budget.acquire(c.ctx, int64(bound), c.a.opts.SlowClientTimeout)
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
	t := time.NewTimer(c.a.opts.SlowClientTimeout)
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

// slow closes the connection of a client that does not read.
func (c *conn) slow(reason string) {
	c.a.stats.slowClosed.Add(1)
	c.fail(websocket.StatusPolicyViolation, reason)
}

// writeLoop writes queued messages until the connection ends.
func (c *conn) writeLoop() {
	defer c.tasks.Done()
	for {
		select {
		case b := <-c.out:
			err := c.ws.Write(c.ctx, websocket.MessageText, b)
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

// pingLoop pings the peer every PingInterval; one that does not answer
// within the interval is gone.
func (c *conn) pingLoop() {
	defer c.tasks.Done()
	t := time.NewTicker(c.a.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.a.opts.PingInterval)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil && c.ctx.Err() == nil {
				c.a.stats.deadPeers.Add(1)
				c.fail(websocket.StatusPolicyViolation, "no answer to ping")
				return
			}
		}
	}
}

// fail closes the connection with a status and a reason; what runs on it
// ends.
func (c *conn) fail(code websocket.StatusCode, reason string) {
	c.closeWith(func() { c.closeFast(code, reason) })
}

// closeGrace is how long a close handshake may take before the connection
// is dropped: a peer that does not read never answers it.
const closeGrace = time.Second

// closeFast lets the writer send what is queued (for up to closeGrace),
// sends the close frame and waits closeGrace for the answer, then drops
// the connection. A client that does not read may never see the frame.
func (c *conn) closeFast(code websocket.StatusCode, reason string) {
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
	rate, burst, tokens float64
	last                time.Time
}

// take spends a token if there is one; only the reader calls it (a ping
// is read by a Read).
func (b *tokenBucket) take() bool {
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
