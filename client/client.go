// Package client is a Go client for a livekv server: the WebSocket API of
// package adapter (docs/protocol.md), as `livekv serve` mounts it.
//
//	c, err := client.Dial(ctx, "http://127.0.0.1:8080/kv", &client.Options{APIKey: key})
//	defer c.Close()
//	rev, err := c.Set(ctx, "user:1", `{"name":"Ada"}`, nil)
//	it, err := c.Get(ctx, "user:1") // errors.Is(err, engine.ErrNotFound) when missing
//	sub, err := c.Subscribe(ctx, []string{"user:*"}, nil)
//	for ev := range sub.Events() { ... }
//
// One connection carries every call, many in flight at once. When it
// drops, the next call connects again, and subscriptions reconnect by
// themselves, with backoff, resuming after the last change they
// delivered: a subscriber's stream has no gap and no duplicate across a
// server restart, or ends with an error that errors.Is recognises as
// engine.ErrCompacted when the server's history no longer reaches back.
//
// Against a cluster, Options.URLs names the other nodes: a connection
// that drops, or whose node ends or refuses a subscription because it
// has no leader or is behind, is made again to the next node that
// answers, and it carries
// the client's session there (see Client.SessionRevision), so that reads
// after the move see the client's writes and nothing older than what it
// read before.
package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/engine"
)

// Options configure a Client. The zero value of each field means its
// default.
type Options struct {
	// APIKey gives full access. Token, if set instead, is a token from the
	// server's POST /token/websocket.
	APIKey string
	Token  string

	// HTTPClient makes the WebSocket handshakes (for TLS settings, say).
	// Default http.DefaultClient.
	HTTPClient *http.Client

	// DialTimeout bounds one connection attempt. Default 10 s.
	DialTimeout time.Duration

	// MinBackoff and MaxBackoff bound the wait between a subscription's
	// attempts to reconnect, which doubles (with jitter) from the one to
	// the other. Defaults 100 ms and 5 s; MaxBackoff alone, below 100 ms,
	// is MinBackoff's default too; MaxBackoff below MinBackoff is
	// engine.ErrInvalidOptions.
	MinBackoff, MaxBackoff time.Duration

	// ReadLimit is the largest message the client reads. Default 32 MiB.
	// A larger one drops its connection and ends the subscriptions on it
	// with ErrMessageTooLarge (resuming would only bring it again).
	ReadLimit int64

	// PingInterval: when nothing has come from the server for this
	// long, the client pings it, and a connection from which nothing,
	// not even the pong, comes within one more interval is lost: its
	// requests return ErrConnectionLost and its subscriptions connect
	// again, where a flow that went silent (a hung server, a NAT or
	// firewall that dropped it) would leave them waiting for ever. Any
	// message counts as an answer: a server may leave a ping over its
	// request rate unanswered while it answers requests with 429.
	// Default 15 s; negative, never.
	PingInterval time.Duration

	// URLs are the other nodes of a cluster, each a URL as Dial takes,
	// where the same credentials are valid. The client connects to the URL given to Dial first, then, when a
	// connection cannot be made, to the next in the list, and round to the
	// first; a connection that drops is made again to the URL after its
	// own. Every connection starts with the client's session (see
	// SessionRevision).
	URLs []string
}

// Client is a connection to a livekv server, made again when it drops.
// Its methods may be called from many goroutines at once.
type Client struct {
	urls []*url.URL // the WebSocket URLs with credentials, Dial's first
	opts Options
	seen atomic.Int64 // the highest revision the server has sent

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // readers, the supervisor, subscriptions' pumps
	kick   chan struct{}  // wakes the supervisor
	nextID atomic.Int64

	mu      sync.Mutex
	at      int           // guarded by mu; the index in urls to connect to first
	cur     *conn         // guarded by mu; nil when there is none
	dialing chan struct{} // guarded by mu; closed when the dial under way ends
	subs    map[*Subscription]struct{}
	closed  bool
	// closeDone is closed when the first Close has seen every goroutine
	// of the client end; later calls wait for it.
	closeDone chan struct{}
}

// backoff is the pause after tries failures in a row (tries ≥ 1):
// MinBackoff, doubled with each failure after the first, up to
// MaxBackoff. Dial has set both, MinBackoff ≤ MaxBackoff.
func (o *Options) backoff(tries int) time.Duration {
	b := o.MinBackoff
	for range tries - 1 {
		if b > o.MaxBackoff/2 {
			return o.MaxBackoff
		}
		b *= 2
	}
	return b
}

// Dial connects to the server at u, the URL the adapter is mounted at
// (http://host:8080/kv, as livekv serve prints it) or its WebSocket
// (ws://host:8080/kv/ws). It returns once connected, or with the reason it
// could not: errors.Is(err, ErrUnauthorized) or ErrForbidden for bad
// credentials.
func Dial(ctx context.Context, u string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.MaxBackoff > 0 && o.MinBackoff > o.MaxBackoff {
		return nil, fmt.Errorf("%w: MaxBackoff %v below MinBackoff %v", engine.ErrInvalidOptions, o.MaxBackoff, o.MinBackoff)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
		if o.MaxBackoff > 0 {
			o.MinBackoff = min(o.MinBackoff, o.MaxBackoff)
		}
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = max(o.MinBackoff, 5*time.Second)
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 32 << 20
	}
	if o.PingInterval == 0 {
		o.PingInterval = 15 * time.Second
	}
	c := &Client{opts: o, kick: make(chan struct{}, 1), subs: make(map[*Subscription]struct{}), closeDone: make(chan struct{})}
	for _, u := range append([]string{u}, o.URLs...) {
		p, err := socketURL(u, &o)
		if err != nil {
			return nil, err
		}
		c.urls = append(c.urls, p)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if _, err := c.conn(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.wg.Add(1)
	go c.supervise()
	return c, nil
}

// socketURL turns the mount URL into the WebSocket's, with credentials.
func socketURL(u string, o *Options) (*url.URL, error) {
	p, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("livekv client: %w", err)
	}
	switch p.Scheme {
	case "http":
		p.Scheme = "ws"
	case "https":
		p.Scheme = "wss"
	case "ws", "wss":
	default:
		return nil, fmt.Errorf("livekv client: URL %q: want http, https, ws or wss", u)
	}
	if p.Host == "" {
		return nil, fmt.Errorf("livekv client: URL %q has no host", u)
	}
	if !strings.HasSuffix(p.Path, "/ws") {
		p.Path = strings.TrimSuffix(p.Path, "/") + "/ws"
	}
	q := p.Query()
	switch {
	case o.APIKey != "":
		// Sent as the handshake's x-api-key header (dialURL): in no
		// URL, which proxies and access logs write down.
	case o.Token != "":
		q.Set("token", o.Token)
	default:
		return nil, fmt.Errorf("%w: give Options.APIKey or Options.Token", ErrUnauthorized)
	}
	p.RawQuery = q.Encode()
	return p, nil
}

// SessionRevision is the highest revision the client has been sent: by
// its writes' replies, the revisions its reads were read at (a read that
// found nothing included), and its subscriptions' notifications.
// Every connection the client makes asks the server, with minRevision,
// to serve its reads (at the default session level) only once it has
// applied this revision, so that a client that moves to another node of a
// cluster still reads its writes, and never reads older than it did. A
// node behind it makes the read wait, or fail with ErrUnavailable.
func (c *Client) SessionRevision() int64 { return c.seen.Load() }

// noteSeen raises the session revision to rev.
func (c *Client) noteSeen(rev int64) {
	for {
		s := c.seen.Load()
		if rev <= s || c.seen.CompareAndSwap(s, rev) {
			return
		}
	}
}

// Close closes the connection and ends every subscription (with an
// error that is engine.ErrClosed and ErrClosed); calls under way return ErrClosed or
// ErrConnectionLost. It returns once every goroutine of the client has.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.closeDone
		return nil
	}
	c.closed = true
	cur := c.cur
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	for s := range subs {
		s.end(errClientClosed, true)
	}
	if cur != nil {
		cur.close() // a close handshake, before the context ends the reads
	}
	c.cancel()
	c.wg.Wait()
	close(c.closeDone)
	return nil
}

// conn returns the open connection, making one if there is none.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if c.cur != nil {
			cn := c.cur
			c.mu.Unlock()
			return cn, nil
		}
		if wait := c.dialing; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.dialing = done
		c.mu.Unlock()

		cn, err := c.dial(ctx)
		c.mu.Lock()
		c.dialing = nil
		close(done)
		if err == nil && c.closed {
			err = ErrClosed
		}
		if err != nil {
			c.mu.Unlock()
			if cn != nil {
				cn.ws.CloseNow()
			}
			return nil, err
		}
		c.cur = cn
		c.wg.Add(1)
		if c.opts.PingInterval > 0 {
			c.wg.Add(1)
			go cn.ping(c.opts.PingInterval)
		}
		c.mu.Unlock()
		go cn.read()
		return cn, nil
	}
}

// dial makes one connection, trying each URL in turn from the one to try
// first, until one answers or one refuses the credentials.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	first := c.at
	c.mu.Unlock()
	var err error
	for k := range c.urls {
		at := (first + k) % len(c.urls)
		var cn *conn
		if cn, err = c.dialURL(ctx, at); err == nil {
			c.mu.Lock()
			c.at = at
			c.mu.Unlock()
			return cn, nil
		}
		if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// dialURL makes one connection to urls[at], with the client's session.
func (c *Client) dialURL(ctx context.Context, at int) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel) // Close ends a dial under way
	defer stop()
	u := *c.urls[at]
	if rev := c.seen.Load(); rev > 0 {
		q := u.Query()
		q.Set("minRevision", strconv.FormatInt(rev, 10))
		u.RawQuery = q.Encode()
	}
	var h http.Header
	if c.opts.APIKey != "" {
		h = http.Header{"X-Api-Key": {c.opts.APIKey}}
	}
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: c.opts.HTTPClient, HTTPHeader: h})
	if err != nil {
		err = c.redact(err)
		if resp != nil {
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
			case http.StatusForbidden:
				return nil, fmt.Errorf("%w: %v", ErrForbidden, err)
			}
		}
		if c.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("livekv client: connect: %w", err)
	}
	ws.SetReadLimit(c.opts.ReadLimit)
	cn := &conn{c: c, at: at, ws: ws, pending: make(map[int64]*call), subs: make(map[int64]*Subscription),
		orphans: make(map[int64][]message), retired: make(map[int64]bool), done: make(chan struct{})}
	cn.ctx, cn.cancel = context.WithCancel(c.ctx)
	return cn, nil
}

// redact returns err with the API key or token, which the URL it may
// quote carries, replaced: errors end up in logs.
func (c *Client) redact(err error) error {
	msg := err.Error()
	for _, secret := range []string{c.opts.APIKey, c.opts.Token} {
		if secret != "" {
			msg = strings.ReplaceAll(msg, url.QueryEscape(secret), "REDACTED")
			msg = strings.ReplaceAll(msg, secret, "REDACTED")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// redactedError is an error whose text has had its secrets replaced; it
// unwraps to the original, for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// dropped forgets cn, which has failed, and has the subscriptions it
// carried made again; the next connection tries the URL after cn's first.
func (c *Client) dropped(cn *conn) {
	c.mu.Lock()
	if c.cur == cn {
		c.cur = nil
		c.at = (cn.at + 1) % len(c.urls)
	}
	c.mu.Unlock()
	c.wake()
}

// moveOn has the subscriptions that need it made again after cn's server
// could not serve one (a cluster node without a leader, or behind):
// with other URLs, cn is dropped, so that they, and the calls after,
// go to the next node (the calls under way on cn fail with
// ErrConnectionLost); otherwise they are tried on cn again, with backoff.
func (c *Client) moveOn(cn *conn, why error) {
	if c.movesAway() {
		cn.fail(fmt.Errorf("livekv client: moving to another node: %w", why))
		return
	}
	c.wake()
}

// movesAway reports whether moveOn drops the connection: there are other
// URLs to go to.
func (c *Client) movesAway() bool { return len(c.urls) > 1 }

func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// supervise (re)subscribes the subscriptions that need it, connecting
// again with backoff when there is no connection.
func (c *Client) supervise() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		}
		tries := 0 // failed in a row
		for {
			c.mu.Lock()
			var todo []*Subscription
			for s := range c.subs {
				if s.needsSubscribe() {
					todo = append(todo, s)
				}
			}
			c.mu.Unlock()
			if len(todo) == 0 {
				break
			}
			failed := false
			cn, err := c.conn(c.ctx)
			switch {
			case c.ctx.Err() != nil:
				return
			case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrForbidden):
				for _, s := range todo {
					s.end(err, false)
				}
				continue
			case err != nil:
				failed = true
			default:
				for _, s := range todo {
					if err := s.subscribeOn(c.ctx, cn); err != nil {
						failed = true
					}
				}
			}
			if !failed {
				tries = 0
				continue
			}
			tries++
			// Jitter spreads the clients of a restarted server.
			backoff := c.opts.backoff(tries)
			wait := backoff/2 + rand.N(backoff/2+1)
			t := time.NewTimer(wait)
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}
