package adapter

import (
	"context"
	"errors"
	"sync"
	"time"
	"unicode/utf8"
)

// byteBudget bounds the bytes of messages held for one connection, from
// the moment a message is about to be encoded until the writer has
// written it. It is a semaphore counted in bytes.
type byteBudget struct {
	max int64

	mu      sync.Mutex
	used    int64         // guarded by mu
	waiters int           // guarded by mu: acquires waiting for room
	freed   chan struct{} // guarded by mu; closed, and replaced, when bytes are released to waiters
}

func newByteBudget(max int64) *byteBudget {
	return &byteBudget{max: max, freed: make(chan struct{})}
}

// errNoRoom is acquire's error when the budget stayed full for its
// timeout: the client is not reading.
var errNoRoom = errors.New("adapter: no room in the connection's byte budget")

// acquire takes n bytes, waiting up to timeout for room. A message larger
// than the whole budget is let through alone, once nothing else is held,
// so that it is delayed, not refused. It returns the bytes held once n is
// taken, and how long it waited for them (0, reading no clock, when it
// did not wait).
func (b *byteBudget) acquire(ctx context.Context, n int64, timeout time.Duration) (used int64, waited time.Duration, err error) {
	var t *time.Timer
	var start time.Time
	for {
		b.mu.Lock()
		if b.used+n <= b.max || b.used == 0 {
			b.used += n
			used := b.used
			b.mu.Unlock()
			if t != nil {
				t.Stop()
				waited = time.Since(start)
			}
			return used, waited, nil
		}
		freed := b.freed
		b.waiters++
		b.mu.Unlock()
		if t == nil {
			start = time.Now()
			t = time.NewTimer(timeout)
		}
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			t.Stop()
			err = ctx.Err()
		case <-t.C:
			err = errNoRoom
		}
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
		if err != nil {
			return 0, time.Since(start), err
		}
	}
}

// release gives back n bytes.
func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.waiters > 0 { // a new channel only when someone waits on the old
		close(b.freed)
		b.freed = make(chan struct{})
	}
	b.mu.Unlock()
}

// Fixed parts of encoded messages, at most: field names, codes, numbers,
// messageId, true and false.
const (
	messageOverhead = 512
	recordOverhead  = len(`{"key":,"value":,"revision":-9223372036854775808},`)
)

// encodedBound returns at least the length of v encoded by json.Marshal,
// or false for a type it does not know.
func encodedBound(v any) (int, bool) {
	switch m := v.(type) {
	case reply:
		n := messageOverhead + jsonStringBound(m.Error) + jsonStringBound(m.Message) + jsonStringBound(m.Key)
		if m.Value != nil {
			n += jsonStringBound(*m.Value)
		}
		if m.Records != nil {
			if m.recordsBound > 0 {
				n += m.recordsBound
			} else {
				for _, r := range *m.Records {
					n += recordBound(r.Key, r.Value)
				}
			}
		}
		return n, true
	case notification:
		n := messageOverhead + jsonStringBound(m.Type) + jsonStringBound(m.Key)
		if m.Value != nil {
			n += jsonStringBound(*m.Value)
		}
		return n, true
	case dbxMessage:
		// An id is echoed compacted, with HTML characters escaped: six
		// bytes for each of its bytes at most.
		n := messageOverhead + 6*len(m.ID) + anyBound(m.Result)
		if m.Error != nil {
			n += jsonStringBound(m.Error.Message)
		}
		if m.Key != nil {
			n += jsonStringBound(*m.Key)
		}
		if m.Value != nil {
			n += jsonStringBound(*m.Value)
		}
		return n, true
	}
	return 0, false
}

func recordBound(key, value string) int {
	return recordOverhead + jsonStringBound(key) + jsonStringBound(value)
}

// jsonStringBound returns at least the length of s encoded as a JSON
// string by encoding/json: HTML characters, control characters, U+2028,
// U+2029 and invalid bytes take up to six bytes each.
func jsonStringBound(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			case c == '"' || c == '\\':
				n += 2
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}
