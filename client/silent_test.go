package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/client"
	"github.com/stretchr/testify/require"
)

// freezer is a TCP proxy whose connections can be frozen: they stay open,
// and nothing more goes through either way (a server that hangs, a NAT or
// firewall that drops a flow's state, a laptop's Wi-Fi gone).
type freezer struct {
	ln     net.Listener
	frozen atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, backend string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezer{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				a.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, a, b)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(a, b)
			go p.pipe(b, a)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.frozen.Store(false)
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *freezer) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.frozen.Load() { // hold what came: it never arrives
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// TestClient_SilentConnectionIsLost: a connection that goes silent, the
// server up behind a flow that passes nothing any more, is found by the
// client's pings: a call waiting on it, with no deadline of its own,
// returns ErrConnectionLost, and a subscription on it resumes on a new
// connection once one can be made, with the change made meanwhile. The
// server's own pings are left at their default (30 s), so that only the
// client's can find it.
func TestClient_SilentConnectionIsLost(t *testing.T) {
	s := newServer(t, nil)
	p := newFreezer(t, strings.TrimPrefix(s.srv.URL, "http://"))
	ctx := ctxT(t)
	c, err := client.Dial(ctx, "http://"+p.ln.Addr().String()+"/kv", &client.Options{APIKey: apiKey,
		PingInterval: 200 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	sub, err := c.Subscribe(ctx, []string{"k"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	_, err = s.db.Set("k", "1", nil)
	require.NoError(t, err)
	ev, err := sub.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "1", ev.Value)

	p.frozen.Store(true)
	got := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), "k")
		got <- err
	}()
	select {
	case err := <-got:
		require.ErrorIs(t, err, client.ErrConnectionLost)
	case <-time.After(10 * time.Second):
		t.Fatal("a call on a silent connection still waits after 10 s, 50 ping intervals")
	}
	_, err = s.db.Set("k", "2", nil)
	require.NoError(t, err)
	p.frozen.Store(false)
	ev, err = sub.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "2", ev.Value)
}

// TestClient_RateLimitedConnectionIsNotLost: a server that refuses
// requests over its rate may leave the client's pings unanswered too (a
// ping takes from the same rate), while it answers the requests with
// 429: the client, hearing from it, keeps the connection.
func TestClient_RateLimitedConnectionIsNotLost(t *testing.T) {
	s := newServer(t, nil)
	s.mu.Lock()
	s.ao = adapter.Options{RequestRate: 20, RequestBurst: 1}
	s.mu.Unlock()
	s.restart()
	ctx := ctxT(t)
	c := s.dial(t, &client.Options{APIKey: apiKey, PingInterval: time.Second})
	_, err := s.db.Set("k", "v", nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var lost atomic.Int64
	end := time.Now().Add(3 * time.Second) // three intervals
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if _, err := c.Get(ctx, "k"); errors.Is(err, client.ErrConnectionLost) {
					lost.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, lost.Load(), "calls lost with their connection, which the server answered all along")
}
