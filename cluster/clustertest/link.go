package clustertest

import (
	"errors"
	"net"
	"sync"
	"time"
)

// A Link is a TCP proxy for the connections one node opens to another.
// Both directions of those connections (requests and their replies) pass
// through it. Its faults apply at once to the connections already open.
type Link struct {
	name   string
	addr   string // the proxy's own address
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every pipe

	mu    sync.Mutex // guards the fields below
	delay time.Duration
	drop  bool
	cut   bool
	conns map[*proxied]struct{}
	done  bool
}

func newLink(name, target string) (*Link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &Link{name: name, addr: ln.Addr().String(), target: target, ln: ln, conns: map[*proxied]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// String names the link, as "0→1".
func (l *Link) String() string { return l.name }

// SetDelay holds every chunk of data, in both directions, for d before
// passing it on; order is kept. Zero removes the delay.
func (l *Link) SetDelay(d time.Duration) {
	l.mu.Lock()
	l.delay = d
	l.mu.Unlock()
}

// SetDrop makes the link swallow all data in both directions while on,
// leaving connections open: what the peers see is a network that lost
// every packet, and only their timeouts tell them.
func (l *Link) SetDrop(on bool) {
	l.mu.Lock()
	l.drop = on
	l.mu.Unlock()
}

// Cut closes the link's connections and refuses new ones until Heal.
func (l *Link) Cut() {
	l.mu.Lock()
	l.cut = true
	conns := l.conns
	l.conns = map[*proxied]struct{}{}
	l.mu.Unlock()
	for p := range conns {
		p.close()
	}
}

// Heal removes every fault from the link.
func (l *Link) Heal() {
	l.mu.Lock()
	l.delay, l.drop, l.cut = 0, false, false
	l.mu.Unlock()
}

func (l *Link) state() (delay time.Duration, drop bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delay, l.drop
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		l.mu.Lock()
		refuse := l.cut || l.done
		l.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", l.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p := &proxied{client: c, server: s, done: make(chan struct{})}
		l.mu.Lock()
		if l.cut || l.done {
			l.mu.Unlock()
			p.close()
			continue
		}
		l.conns[p] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(4)
		go l.pipe(p, c, s)
		go l.pipe(p, s, c)
	}
}

// chunk is data read from one side, due to be written to the other.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst through the link's faults; it starts a writer
// and is the reader. Either ending closes the whole connection.
func (l *Link) pipe(p *proxied, src, dst net.Conn) {
	defer l.wg.Done()
	q := make(chan chunk, 256)
	go func() {
		defer l.wg.Done()
		defer p.close()
		for c := range q {
			if d := time.Until(c.due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-p.done:
					t.Stop()
					return
				}
			}
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
	}()
	defer close(q)
	defer func() {
		p.close()
		l.mu.Lock()
		delete(l.conns, p)
		l.mu.Unlock()
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			delay, drop := l.state()
			if !drop {
				select {
				case q <- chunk{data: buf[:n], due: time.Now().Add(delay)}:
				case <-p.done:
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (l *Link) close() error {
	l.mu.Lock()
	l.done = true
	conns := l.conns
	l.conns = map[*proxied]struct{}{}
	l.mu.Unlock()
	err := l.ln.Close()
	for p := range conns {
		p.close()
	}
	l.wg.Wait()
	return err
}

// proxied is one proxied connection: the client's side and the server's.
type proxied struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (p *proxied) close() {
	p.once.Do(func() {
		close(p.done)
		p.client.Close()
		p.server.Close()
	})
}
