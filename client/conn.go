package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/internal/wire"
)

// conn is one WebSocket connection and the requests and subscriptions on
// it.
type conn struct {
	c      *Client
	at     int // the index of its URL in c.urls
	ws     *websocket.Conn
	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc
	done   chan struct{}  // closed when the reader has ended
	writes sync.WaitGroup // the writes under way, which the reader waits for
	heard  atomic.Int64   // when the reader last read a message, unix ns

	unsubRetries atomic.Int64 // unsubscribes sent again after a refusal for now, for tests

	mu       sync.Mutex
	err      error                   // guarded by mu; why the connection ended
	pending  map[int64]*call         // guarded by mu; by messageId
	subs     map[int64]*Subscription // guarded by mu; by subscriptionId
	orphans  map[int64][]message     // guarded by mu; notifications that came before their subscribe reply
	norphans int                     // guarded by mu
	retired  map[int64]bool          // guarded by mu; subscriptions unsubscribed, whose last messages are dropped
	given    int                     // guarded by mu; subscribes given up, whose replies have not come
}

// maxOrphans bounds the notifications held for subscriptions whose
// subscribe reply has not come yet (the server may send a resumed
// subscription's first notifications before it): past it, the connection
// is dropped and the subscriptions resume on another.
const maxOrphans = 1 << 16

// call is a request waiting for its reply.
type call struct {
	reply chan message  // buffered: the reader never waits
	sub   *Subscription // for a subscribe: registered by the reader on success
	unsub int64         // for an unsubscribe: the subscription it ends
	tries int           // for an unsubscribe: the ones of unsub sent before it
	given bool          // guarded by cn.mu; a subscribe whose caller gave up (giveUp)
}

// request is a message to the server.
type request struct {
	Op             int      `json:"op"`
	Key            string   `json:"key,omitempty"`
	Value          any      `json:"value,omitempty"`
	EndKey         string   `json:"endKey,omitempty"`
	Limit          int      `json:"limit,omitempty"`
	MessageID      int64    `json:"messageId"`
	Patterns       []string `json:"patterns,omitempty"`
	FromRevision   *int64   `json:"fromRevision,omitempty"` // 0, given, is "after revision 0"
	SubscriptionID int64    `json:"subscriptionId,omitempty"`
	Revision       int64    `json:"revision,omitempty"`
	TTL            int64    `json:"ttl,omitempty"`
}

// roundTrip sends req and waits for its reply, ctx, or the end of the
// connection. A reply with a code other than 200 is returned as it came,
// without error.
func (cn *conn) roundTrip(ctx context.Context, req request, sub *Subscription) (message, error) {
	if err := ctx.Err(); err != nil {
		return message{}, err
	}
	cl := &call{reply: make(chan message, 1), sub: sub}
	id, err := cn.send(ctx, req, cl)
	if err != nil {
		if id != 0 { // ctx ended while the write waited: it may yet leave
			cn.giveUp(id, cl)
		}
		return message{}, err
	}
	select {
	case m := <-cl.reply:
		return m, nil
	case <-cn.ctx.Done():
		select {
		case m := <-cl.reply: // the reader delivers before it ends
			return m, nil
		default:
		}
		return message{}, cn.lost()
	case <-ctx.Done():
		cn.giveUp(id, cl)
		return message{}, ctx.Err()
	}
}

// giveUp forgets the request id, whose caller no longer waits for cl, its
// reply. A subscribe's reply may still make a place on the server: its
// call stays, given up, so that the reply is unsubscribed (dispatch), and
// until the reply comes the place counts as one the client has given up
// (settled).
func (cn *conn) giveUp(id int64, cl *call) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cl.sub == nil {
		delete(cn.pending, id)
	} else if _, ok := cn.pending[id]; ok { // not answered meanwhile
		cl.given = true
		cn.given++
	}
}

// send writes req with a new messageId, registering cl (if not nil) for
// its reply. A write waits while the server reads nothing (its requests in
// flight all taken, say): when ctx ends first, send returns the id and
// ctx's error, and the write goes on, bounded by the connection's life.
func (cn *conn) send(ctx context.Context, req request, cl *call) (int64, error) {
	req.MessageID = cn.c.nextID.Add(1)
	b, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("livekv client: encode: %w", err)
	}
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return 0, notSent{cn.lost()}
	}
	if cl != nil {
		cn.pending[req.MessageID] = cl
	}
	cn.writes.Add(1) // under mu, with err nil: before the reader waits
	cn.mu.Unlock()
	// Write is safe for concurrent use; the connection's context bounds
	// it, never ctx, whose end would close the connection in the middle
	// of a frame.
	write := func() error {
		defer cn.writes.Done()
		err := cn.ws.Write(cn.ctx, websocket.MessageText, b)
		if err != nil {
			cn.fail(err)
		}
		return err
	}
	if ctx.Done() == nil {
		if write() != nil {
			return 0, cn.lost()
		}
		return req.MessageID, nil
	}
	written := make(chan error, 1)
	go func() { written <- write() }()
	select {
	case err := <-written:
		if err != nil {
			return 0, cn.lost()
		}
		return req.MessageID, nil
	case <-ctx.Done():
		return req.MessageID, ctx.Err()
	}
}

// notSent is the error of a request that never left: the connection had
// ended (the reader may not have said so yet). It may be sent again on
// another.
type notSent struct{ error }

func (e notSent) Unwrap() error { return e.error }

// sendOn runs send on cn and, when its request never left (notSent),
// once more on a new connection; it returns the connection send last
// ran on.
func (c *Client) sendOn(ctx context.Context, cn *conn, send func(*conn) error) (*conn, error) {
	err := send(cn)
	if !errors.As(err, new(notSent)) {
		return cn, err
	}
	c.dropped(cn)
	if cn, err = c.conn(ctx); err != nil {
		return nil, err
	}
	return cn, send(cn)
}

// sendUnsubscribe sends an unsubscribe of id, whose reply nobody waits for,
// from a goroutine of its own: the reader must never wait on a write.
func (cn *conn) sendUnsubscribe(id int64) { cn.unsubscribeAfter(id, 0) }

// unsubscribeAfter is sendUnsubscribe for the tries-th time: after a
// pause, which grows with tries from Options.MinBackoff to MaxBackoff,
// when the server refused the ones before for now (over its rate).
func (cn *conn) unsubscribeAfter(id int64, tries int) {
	c := cn.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return // the connection is closing: nothing to stop on it
	}
	var wait time.Duration
	if tries > 0 {
		wait = c.opts.backoff(tries)
	}
	c.wg.Add(1) // under mu, so never once Close waits
	go func() {
		defer cn.c.wg.Done()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-cn.ctx.Done(): // the server's subscription ends with the connection
				t.Stop()
				return
			}
		}
		cn.send(context.Background(), request{Op: wire.OpUnsubscribe, SubscriptionID: id}, &call{reply: make(chan message, 1), unsub: id, tries: tries})
	}()
}

// lost is the error of a request whose connection ended.
func (cn *conn) lost() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.c.ctx.Err() != nil {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, cn.err)
}

// fail ends the connection with err (the first reason is kept).
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.err == nil {
		cn.err = err
	}
	cn.mu.Unlock()
	cn.cancel()
}

// close ends the connection with a normal close and waits for its reader.
func (cn *conn) close() {
	cn.mu.Lock()
	if cn.err == nil {
		cn.err = ErrClosed
	}
	cn.mu.Unlock()
	closed := make(chan struct{})
	go func() {
		cn.ws.Close(websocket.StatusNormalClosure, "")
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(time.Second): // a server that does not answer the close
		cn.cancel()
		<-closed
	}
	cn.cancel()
	<-cn.done
}

// read reads messages until the connection ends, then fails what waits on
// it and has its subscriptions made again.
func (cn *conn) read() {
	defer cn.c.wg.Done()
	defer close(cn.done)
	// final, when set, ends the subscriptions on cn instead of having
	// them made again: a message that resuming would only bring again.
	var final error
	for {
		_, b, err := cn.ws.Read(cn.ctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				err = fmt.Errorf("%w (Options.ReadLimit %d bytes): %w", ErrMessageTooLarge, cn.c.opts.ReadLimit, err)
				final = err
			}
			cn.fail(err)
			break
		}
		cn.heard.Store(time.Now().UnixNano())
		m, err := decodeMessage(b)
		if err == nil {
			err = cn.dispatch(m)
		}
		if err != nil {
			if errors.Is(err, ErrBadMessage) {
				final = err
			}
			cn.fail(err)
			cn.ws.Close(websocket.StatusProtocolError, "bad message")
			break
		}
	}
	cn.cancel()
	cn.ws.CloseNow()
	cn.writes.Wait() // none starts now: cn.err is set
	cn.mu.Lock()
	subs := cn.subs
	cn.subs = nil
	cn.pending = nil
	cn.orphans = nil
	cn.mu.Unlock()
	for _, s := range subs {
		if final != nil {
			s.end(final, false)
		} else {
			s.detach(cn)
		}
	}
	cn.c.dropped(cn)
}

// ping pings the server when nothing came from it for an interval, until
// the connection ends, and ends it, lost, when neither the pong nor any
// message comes within the next. (A message is as good as a pong: a
// server that refuses requests over its rate may leave a ping
// unanswered too, while it answers the requests with 429.) The reader
// reads the pongs.
func (cn *conn) ping(every time.Duration) {
	defer cn.c.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	quiet := func() bool { return time.Since(time.Unix(0, cn.heard.Load())) >= every }
	cn.heard.Store(time.Now().UnixNano())
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-t.C:
		}
		if !quiet() {
			continue
		}
		ctx, cancel := context.WithTimeout(cn.ctx, every)
		err := cn.ws.Ping(ctx)
		cancel()
		if err != nil && quiet() {
			cn.fail(fmt.Errorf("nothing from the server, not even a pong, for %v: %w", every, err))
			return
		}
	}
}

// dispatch hands one message to the request or subscription it is for,
// having noted the revision it carries in the client's session.
func (cn *conn) dispatch(m message) error {
	if m.Code == http.StatusOK || m.Type == "notification" {
		cn.c.noteSeen(m.Revision)
	}
	// A read, a 404 included, reflects the revision it was read at.
	cn.c.noteSeen(m.AtRevision)
	if m.MessageID != nil {
		cn.mu.Lock()
		cl := cn.pending[*m.MessageID]
		delete(cn.pending, *m.MessageID)
		if cl != nil && cl.given {
			// Nobody waits for it: as for a request forgotten, a
			// subscription it made is unsubscribed (subscribed).
			cn.given--
			cl = nil
		}
		cn.mu.Unlock()
		if m.Code == 200 && m.SubscriptionID > 0 && (cl == nil || cl.sub != nil) {
			cn.mu.Lock()
			_, live := cn.subs[m.SubscriptionID]
			cn.mu.Unlock()
			if live {
				// Unsubscribing it, as a reply nobody waits for, would
				// leave it attached and silent; attaching another
				// subscription to it would take its notifications.
				return fmt.Errorf("%w: a second subscribe reply for subscription %d", ErrBadMessage, m.SubscriptionID)
			}
			cn.subscribed(m, cl)
		}
		if cl != nil && cl.unsub > 0 {
			if m.Code == http.StatusTooManyRequests || m.Code == http.StatusServiceUnavailable {
				// Not run: the server holds the subscription, and
				// sends its notifications (dropped: retired), until an
				// unsubscribe runs. Again, after a pause.
				cn.unsubRetries.Add(1)
				cn.unsubscribeAfter(cl.unsub, cl.tries+1)
			} else {
				// The server sends nothing more for it after this reply.
				cn.mu.Lock()
				delete(cn.retired, cl.unsub)
				cn.mu.Unlock()
			}
		}
		if cl != nil {
			cl.reply <- m
		}
		return nil
	}
	if m.SubscriptionID <= 0 {
		// A token's own notifications, or a message about the whole
		// connection: this client makes no token subscriptions.
		return nil
	}
	cn.mu.Lock()
	s := cn.subs[m.SubscriptionID]
	if s == nil && cn.retired[m.SubscriptionID] {
		cn.mu.Unlock()
		return nil
	}
	if s == nil {
		if cn.norphans >= maxOrphans {
			cn.mu.Unlock()
			return errors.New("livekv client: too many notifications before their subscribe reply")
		}
		cn.orphans[m.SubscriptionID] = append(cn.orphans[m.SubscriptionID], m)
		cn.norphans++
		cn.mu.Unlock()
		return nil
	}
	cn.mu.Unlock()
	s.receive(cn, m)
	return nil
}

// subscribed registers the subscription a subscribe reply made, before
// the reader reads on, and gives it the notifications that came first. One
// nobody waits for any more is ended on the server.
func (cn *conn) subscribed(m message, cl *call) {
	id := m.SubscriptionID
	cn.mu.Lock()
	early := cn.orphans[id]
	delete(cn.orphans, id)
	cn.norphans -= len(early)
	cn.retired[id] = true // until it is known to be wanted: see settled
	cn.mu.Unlock()
	if cl == nil || !cl.sub.attach(cn, id, m.Revision) {
		cn.sendUnsubscribe(id)
		return
	}
	for _, e := range early {
		cl.sub.receive(cn, e)
	}
}

// settled reports whether the server has answered every unsubscribe of
// cn's, and every subscribe whose caller gave up: no place on the server
// that the client has given up is still held there, as seen from a
// request sent now.
func (cn *conn) settled() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.retired) == 0 && cn.given == 0
}

// retire forgets the server's subscription id, dropping its notifications
// still on the way, and reports whether cn had it. A subscription retires
// its id under its own mu, as it gives the id up, so that while the
// server may still hold the place, the id is retired (see settled).
func (cn *conn) retire(id int64) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	_, ok := cn.subs[id]
	if ok {
		delete(cn.subs, id)
		cn.retired[id] = true
	}
	return ok
}
