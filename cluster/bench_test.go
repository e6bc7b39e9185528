package cluster

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
)

// The benchmarks run 3 nodes in the test process over plain TCP on
// 127.0.0.1 (no fault proxies), with the default (bolt) raft log: the
// read benchmarks with the default timing profile, BenchmarkReplicatedSet
// with the LAN profile, BenchmarkFollowerLag with each. Each top-level
// benchmark starts one cluster and its sub-benchmarks share it (but
// BenchmarkFollowerLag, whose sub-benchmarks start one each). Run them
// with, for example:
//
//	go test -run '^$' -bench . -benchtime 1s -count 5 ./cluster/

// benchNodes starts a 3-node cluster and returns its nodes, the ready
// leader first.
func benchNodes(b *testing.B) []*Node { return benchNodesWith(b, ProfileLAN, false) }

// benchNodesWith is benchNodes with the timing profile p and
// Options.LeaseReads set to lease.
func benchNodesWith(b *testing.B, p Profile, lease bool) []*Node {
	b.Helper()
	const n = 3
	lns := make([]net.Listener, n)
	peers := make([]Peer, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns[i] = ln
		peers[i] = Peer{ID: fmt.Sprintf("n%d", i), Addr: ln.Addr().String()}
	}
	dir := b.TempDir()
	nodes := make([]*Node, n)
	b.Cleanup(func() {
		for _, nd := range nodes {
			if nd != nil {
				if err := nd.Close(); err != nil {
					b.Error(err)
				}
			}
		}
	})
	for i := range nodes {
		nd, err := Open(filepath.Join(dir, peers[i].ID), &Options{
			NodeID: peers[i].ID, RaftAddr: peers[i].Addr, Peers: peers,
			Profile: p, Listener: lns[i], LeaseReads: lease,
		})
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = nd
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for i, nd := range nodes {
			if nd.isReady() {
				nodes[0], nodes[i] = nodes[i], nodes[0]
				it, err := nodes[0].Set("bench:settled", "yes", nil)
				if err != nil {
					b.Fatal(err)
				}
				for _, f := range nodes {
					if _, err := f.Get("bench:settled", Read(Stale, MinRevision(it.Revision))); err != nil {
						b.Fatal(err)
					}
				}
				return nodes
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("no leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runParallel runs fn b.N times in all, on g goroutines, and reports
// allocations and, if timed, the slowest call (worst-ms), which shows
// stalls that an average hides.
func runParallel(b *testing.B, g int, timed bool, fn func(i int) error) {
	b.Helper()
	b.ReportAllocs()
	var worst atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	b.ResetTimer()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				var start time.Time
				if timed {
					start = time.Now()
				}
				if err := fn(int(i)); err != nil {
					once.Do(func() { first = err })
					return
				}
				if timed {
					d := int64(time.Since(start))
					for w := worst.Load(); d > w && !worst.CompareAndSwap(w, d); w = worst.Load() {
					}
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	if timed {
		b.ReportMetric(float64(worst.Load())/1e6, "worst-ms")
	}
}

const benchKeys = 10000

// BenchmarkRead reads random keys of a loaded 3-node cluster: the node's
// database directly (what a plain engine Get costs), then at Stale and at
// Linearizable on the leader and on a follower, with 1, 8 and 64
// readers.
func BenchmarkRead(b *testing.B) { benchRead(b, false) }

// BenchmarkReadLease is BenchmarkRead on a cluster with
// Options.LeaseReads: its linearizable reads on the leader are under the
// lease, beside stale ones in the same run.
func BenchmarkReadLease(b *testing.B) { benchRead(b, true) }

func benchRead(b *testing.B, lease bool) {
	// The default timings: readers that spin in the process of all three
	// nodes starve raft's goroutines, and under the LAN profile's 100 ms
	// leader lease the leader may step down in the middle of a case.
	nodes := benchNodesWith(b, ProfileDefault, lease)
	leader, follower := nodes[0], nodes[1]
	var rev int64
	for i := 0; i < benchKeys; i += 1000 {
		r, err := leader.Update(func(tx *engine.Tx) error {
			for k := i; k < i+1000; k++ {
				if _, err := tx.Set("k"+strconv.Itoa(k), "value", nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		rev = r
	}
	for _, nd := range nodes {
		if _, err := nd.Get("k0", Read(Stale, MinRevision(rev))); err != nil {
			b.Fatal(err)
		}
	}
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	key := func(i int) string { return keys[(i*7919)%benchKeys] }
	stale := Stale
	cases := []struct {
		name  string
		timed bool
		node  *Node
		get   func(nd *Node, k string) (engine.Item, error)
	}{
		{"engine/follower", false, follower, func(nd *Node, k string) (engine.Item, error) { return nd.db.Get(k) }},
		{"stale/follower", false, follower, func(nd *Node, k string) (engine.Item, error) { return nd.Get(k, stale) }},
		{"stale/leader", false, leader, func(nd *Node, k string) (engine.Item, error) { return nd.Get(k, stale) }},
		{"linearizable/leader", true, leader, func(nd *Node, k string) (engine.Item, error) { return nd.Get(k) }},
		{"linearizable/follower", true, follower, func(nd *Node, k string) (engine.Item, error) { return nd.Get(k) }},
	}
	if lease {
		cases = cases[2:] // stale and linearizable
	}
	for _, c := range cases {
		for _, g := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/readers=%d", c.name, g), func(b *testing.B) {
				sent := c.node.remoteReads.rounds.Load()
				runParallel(b, g, c.timed, func(i int) error {
					it, err := c.get(c.node, key(i))
					if err == nil && it.Value != "value" {
						err = fmt.Errorf("read %q: %q", it.Key, it.Value)
					}
					return err
				})
				if sent := c.node.remoteReads.rounds.Load() - sent; sent != 0 {
					// a follower's read-index requests to the leader
					b.ReportMetric(float64(sent)/float64(b.N), "requests/read")
				}
			})
		}
	}
}

// BenchmarkReplicatedSet sets 100-byte values through the leader of a
// 3-node cluster with 1, 8 and 64 writers, and, for the ratio, on a
// single durable node (engine.Open on disk, SyncAlways) in the same run.
func BenchmarkReplicatedSet(b *testing.B) {
	nodes := benchNodes(b)
	leader := nodes[0]
	value := string(make([]byte, 100))
	for _, g := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("single/writers=%d", g), func(b *testing.B) {
			db, err := engine.Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			runParallel(b, g, true, func(i int) error {
				_, err := db.Set("k"+strconv.Itoa(i%100000), value, nil)
				return err
			})
		})
		b.Run(fmt.Sprintf("cluster/writers=%d", g), func(b *testing.B) {
			runParallel(b, g, true, func(i int) error {
				_, err := leader.Set("k"+strconv.Itoa(i%100000), value, nil)
				return err
			})
		})
	}
}

// BenchmarkFollowerLag writes through the leader and then waits until a
// follower has applied the write, one write at a time, so that writes
// pause between: ns/op is the acknowledgement and the wait, lag-ns/op the
// wait alone (how long after the acknowledgement a follower's reads and
// subscribers see the write), with each timing profile.
func BenchmarkFollowerLag(b *testing.B) {
	for _, p := range profiles {
		b.Run(string(p), func(b *testing.B) {
			nodes := benchNodesWith(b, p, false)
			leader, follower := nodes[0], nodes[1].DB()
			ctx := context.Background()
			var lag time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				it, err := leader.Set("k"+strconv.Itoa(i%1000), "v", nil)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if err := follower.WaitRevision(ctx, it.Revision); err != nil {
					b.Fatal(err)
				}
				lag += time.Since(t0)
			}
			b.ReportMetric(float64(lag.Nanoseconds())/float64(b.N), "lag-ns/op")
		})
	}
}
