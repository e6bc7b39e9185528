package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
	"github.com/livekv/livekv/pattern"
)

// Item is a key and its value.
type Item struct {
	Key   string
	Value string
	// Revision is the revision of the key's last change (what
	// CompareAndSwap compares against), from Get and from Range alike.
	Revision int64
}

// SetOptions modify a Set or a CompareAndSwap.
type SetOptions struct {
	// TTL makes the key expire this long after the write, to the
	// millisecond. Zero means never (and clears an earlier TTL).
	TTL time.Duration
}

// do runs one request and returns its reply, or the reply's error. A
// request over the server's rate (429) is sent again, after a wait that
// doubles each time.
func (c *Client) do(ctx context.Context, req request) (message, error) {
	cn, err := c.conn(ctx)
	if err != nil {
		return message{}, err
	}
	var m message
	try := func(cn *conn) (err error) {
		m, err = cn.roundTrip(ctx, req, nil)
		return err
	}
	cn, err = c.sendOn(ctx, cn, try)
	for wait := time.Millisecond; err == nil && m.Code == http.StatusTooManyRequests; wait = min(2*wait, time.Second) {
		// Over the connection's request rate: the request did not run.
		// Slow down, as HPKV's clients do.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return message{}, ctx.Err()
		case <-t.C:
		}
		// A connection that ended meanwhile left the request unsent:
		// it goes on a new one.
		cn, err = c.sendOn(ctx, cn, try)
	}
	if err != nil {
		return message{}, err
	}
	if m.Code != http.StatusOK {
		return m, replyError(&m)
	}
	return m, nil
}

// Get returns key's value and the revision of its last change;
// errors.Is(err, engine.ErrNotFound) when there is none.
func (c *Client) Get(ctx context.Context, key string) (Item, error) {
	m, err := c.do(ctx, request{Op: wire.OpGet, Key: key})
	if err != nil {
		return Item{}, err
	}
	it := Item{Key: m.Key, Revision: m.Revision}
	if m.Value != nil {
		it.Value = *m.Value
	}
	return it, nil
}

func ttl(opts *SetOptions) (int64, error) {
	if opts == nil || opts.TTL == 0 {
		return 0, nil
	}
	if opts.TTL < time.Millisecond {
		return 0, fmt.Errorf("%w: TTL %v: give 0 (never) or at least a millisecond", engine.ErrInvalidOptions, opts.TTL)
	}
	return opts.TTL.Milliseconds(), nil
}

// Set sets key to value and returns the revision it committed at. The
// server refuses an empty value.
func (c *Client) Set(ctx context.Context, key, value string, opts *SetOptions) (int64, error) {
	t, err := ttl(opts)
	if err != nil {
		return 0, err
	}
	m, err := c.do(ctx, request{Op: wire.OpSet, Key: key, Value: value, TTL: t})
	return m.Revision, err
}

// Patch merges value into key's JSON object (RFC 7396), or appends it to
// a value that is not one; a missing key is created. It returns the
// revision it committed at.
func (c *Client) Patch(ctx context.Context, key, value string) (int64, error) {
	m, err := c.do(ctx, request{Op: wire.OpPatch, Key: key, Value: value})
	return m.Revision, err
}

// Delete deletes key and returns the revision it committed at;
// errors.Is(err, engine.ErrNotFound) when there was no key.
func (c *Client) Delete(ctx context.Context, key string) (int64, error) {
	m, err := c.do(ctx, request{Op: wire.OpDelete, Key: key})
	return m.Revision, err
}

// Increment adds delta to key's integer (a missing key starts at 0) and
// returns the result and the revision it committed at.
func (c *Client) Increment(ctx context.Context, key string, delta int64) (n, rev int64, err error) {
	m, err := c.do(ctx, request{Op: wire.OpIncrement, Key: key, Value: delta})
	if err != nil {
		return 0, 0, err
	}
	if m.NewValue == nil {
		return 0, 0, fmt.Errorf("%w: increment reply without newValue", ErrBadMessage)
	}
	return *m.NewValue, m.Revision, nil
}

// CompareAndSwap sets key to value only if the revision of its last change
// is rev (0: only if it does not exist), and returns the revision it
// committed at; errors.Is(err, engine.ErrConflict) when it was not.
func (c *Client) CompareAndSwap(ctx context.Context, key string, rev int64, value string, opts *SetOptions) (int64, error) {
	t, err := ttl(opts)
	if err != nil {
		return 0, err
	}
	if rev < 0 {
		return 0, fmt.Errorf("%w: negative revision", engine.ErrInvalidOptions)
	}
	// A revision of 0 is left out of the message, which the server reads
	// as 0: the key must not exist.
	m, err := c.do(ctx, request{Op: wire.OpCAS, Key: key, Value: value, Revision: rev, TTL: t})
	return m.Revision, err
}

// RangeOptions modify a Range.
type RangeOptions struct {
	// Limit stops the range after this many items; 0 means no limit.
	Limit int
	// PageSize is how many items one request asks for (the server sends
	// at most 1,000, and at most 2 MiB of keys and values). Default 1,000.
	PageSize int
}

// page is one range reply.
type page struct {
	items     []Item
	truncated bool
	revision  int64
	next      string // where the next page starts
}

// rangePage reads the keys from start to end (excluded; "" no bound), at
// most limit.
func (c *Client) rangePage(ctx context.Context, start, end string, limit int) (page, error) {
	if start == "" {
		start = "\x00" // the smallest key; the wire wants one
	}
	m, err := c.do(ctx, request{Op: wire.OpRange, Key: start, EndKey: end, Limit: limit})
	if err != nil {
		return page{}, err
	}
	p := page{truncated: m.Truncated, revision: m.Revision}
	for _, r := range m.Records {
		if r.Key < start || end != "" && r.Key >= end { // endKey is included on the wire
			continue
		}
		p.items = append(p.items, Item(r))
	}
	if n := len(m.Records); n > 0 {
		p.next = engine.KeyAfter(m.Records[n-1].Key)
	}
	if m.Truncated && len(m.Records) == 0 {
		return page{}, fmt.Errorf("%w: a truncated range with no records", ErrBadMessage)
	}
	if m.Truncated && p.next <= start {
		// The next page would start where this one did, for ever.
		return page{}, fmt.Errorf("%w: a truncated range whose last record is before its start", ErrBadMessage)
	}
	return p, nil
}

// Range yields the items whose keys k satisfy start <= k < end (end ""
// means no upper bound), in key order, asking for one page at a time as
// the loop goes. Each page is read at one revision, but unlike the
// engine's Range, the whole range is not: a write between two pages shows
// in the later one. It yields a non-nil error, once and last, if a page
// could not be read.
func (c *Client) Range(ctx context.Context, start, end string, opts *RangeOptions) iter.Seq2[Item, error] {
	var o RangeOptions
	if opts != nil {
		o = *opts
	}
	return func(yield func(Item, error) bool) {
		if o.Limit < 0 || o.PageSize < 0 {
			yield(Item{}, fmt.Errorf("%w: negative Limit or PageSize", engine.ErrInvalidOptions))
			return
		}
		if end != "" && end <= start {
			return
		}
		size := o.PageSize
		if size == 0 {
			size = 1000
		}
		n := 0
		for {
			ask := size
			if o.Limit > 0 {
				ask = min(ask, o.Limit-n)
			}
			p, err := c.rangePage(ctx, start, end, ask)
			if err != nil {
				yield(Item{}, err)
				return
			}
			for _, it := range p.items {
				if !yield(it, nil) {
					return
				}
				if n++; o.Limit > 0 && n == o.Limit {
					return
				}
			}
			if !p.truncated {
				return
			}
			if start = p.next; end != "" && start >= end {
				return
			}
		}
	}
}

// Prefix yields the items whose keys start with prefix; see Range.
func (c *Client) Prefix(ctx context.Context, prefix string, opts *RangeOptions) iter.Seq2[Item, error] {
	return c.Range(ctx, prefix, pattern.PrefixEnd(prefix), opts)
}
