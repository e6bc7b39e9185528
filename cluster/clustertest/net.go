// Package clustertest runs the nodes of a test cluster over real TCP on
// 127.0.0.1, with every directed link between two nodes passing through an
// in-process proxy that can delay, swallow or cut its traffic.
//
// Node i listens on Addr(i) and dials its peers with Dialer(i), which sends
// a connection for Addr(j) through the proxy of the link i→j. Raft dials
// one address per peer from every node, so one proxy per address would not
// do: each (source, destination) pair has its own.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Net is the network of a test cluster of n nodes.
type Net struct {
	addrs []string
	links [][]*Link // links[i][j] carries connections node i opens to node j

	mu     sync.Mutex     // guards fresh
	fresh  []net.Listener // listeners bound by New, not yet handed out
	closed bool
}

// New binds a port on 127.0.0.1 for each of n nodes and starts a proxy for
// each directed link between them.
func New(n int) (_ *Net, err error) {
	nt := &Net{links: make([][]*Link, n)}
	defer func() {
		if err != nil {
			nt.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		nt.fresh = append(nt.fresh, ln)
		nt.addrs = append(nt.addrs, ln.Addr().String())
	}
	for i := range n {
		nt.links[i] = make([]*Link, n)
		for j := range n {
			if i == j {
				continue
			}
			l, err := newLink(fmt.Sprintf("%d→%d", i, j), nt.addrs[j])
			if err != nil {
				return nil, err
			}
			nt.links[i][j] = l
		}
	}
	return nt, nil
}

// N is the number of nodes.
func (nt *Net) N() int { return len(nt.addrs) }

// Addr is node i's address, which the other nodes dial.
func (nt *Net) Addr(i int) string { return nt.addrs[i] }

// Listener returns a listener on Addr(i) for node i to serve on: the one
// New bound the first time, a new one on the same port after that (for a
// node restarted in the same test).
func (nt *Net) Listener(i int) (net.Listener, error) {
	nt.mu.Lock()
	ln := nt.fresh[i]
	nt.fresh[i] = nil
	nt.mu.Unlock()
	if ln != nil {
		return ln, nil
	}
	var err error
	for range 50 { // the port may linger briefly after the last close
		if ln, err = net.Listen("tcp", nt.addrs[i]); err == nil {
			return ln, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

// Dialer returns the dial function for node i: it connects to Addr(j)
// through the link i→j, and to any other address directly.
func (nt *Net) Dialer(i int) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		for j, a := range nt.addrs {
			if a == addr && j != i {
				return d.DialContext(ctx, "tcp", nt.links[i][j].addr)
			}
		}
		return d.DialContext(ctx, "tcp", addr)
	}
}

// Link is the link carrying the connections node i opens to node j.
func (nt *Net) Link(i, j int) *Link { return nt.links[i][j] }

// Isolate cuts every link to and from node i.
func (nt *Net) Isolate(i int) {
	for j := range nt.addrs {
		if j != i {
			nt.links[i][j].Cut()
			nt.links[j][i].Cut()
		}
	}
}

// Partition cuts every link between the nodes in group and the others.
func (nt *Net) Partition(group ...int) {
	in := map[int]bool{}
	for _, i := range group {
		in[i] = true
	}
	for i := range nt.addrs {
		for j := range nt.addrs {
			if i != j && in[i] != in[j] {
				nt.links[i][j].Cut()
			}
		}
	}
}

// Heal restores every link to a plain, fast connection.
func (nt *Net) Heal() {
	for i := range nt.links {
		for _, l := range nt.links[i] {
			if l != nil {
				l.Heal()
			}
		}
	}
}

// Close stops every proxy, closes their connections and any listener not
// handed out, and waits for the goroutines of the proxies.
func (nt *Net) Close() error {
	nt.mu.Lock()
	if nt.closed {
		nt.mu.Unlock()
		return nil
	}
	nt.closed = true
	fresh := nt.fresh
	nt.fresh = nil
	nt.mu.Unlock()
	var errs []error
	for _, ln := range fresh {
		if ln != nil {
			errs = append(errs, ln.Close())
		}
	}
	for i := range nt.links {
		for _, l := range nt.links[i] {
			if l != nil {
				errs = append(errs, l.close())
			}
		}
	}
	return errors.Join(errs...)
}
