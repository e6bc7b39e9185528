package main

// The cluster workloads: livekv replicated on three nodes (package
// cluster), each in this process with its own folder, talking over TCP on
// 127.0.0.1. Throughput, latency and reads run interleaved with a single
// durable livekv node in every run, so that the disk's drift over minutes
// hits both alike.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/client"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/engine"
)

// clusterStore is a raft log store the cluster workloads run with; each
// store gets rows of its own. Another store (raft-wal, say) is one more
// entry whose set chooses it in the options.
type clusterStore struct {
	name  string                   // in the engine or case column
	about string                   // for the settings table
	set   func(o *cluster.Options) // chooses the store
}

var clusterStores = []clusterStore{
	{"bolt", "raft log and stable store in raft-boltdb v2 (the default)", func(*cluster.Options) {}},
	{"wal", "raft log in raft-wal's segment files (opt-in)", func(o *cluster.Options) { o.LogStore = cluster.LogStoreWAL }},
}

// clusterNodes is the number of voters of a benchmark cluster.
const clusterNodes = 3

// clusterProfile is the timing profile of the throughput workloads: the
// nodes share one machine. It changes only timeouts, not how a write or a
// read travels.
const clusterProfile = cluster.ProfileLAN

// readsProfile is the timing profile of the read workload. There the
// readers spin in the process that runs all three nodes, on this
// machine's two cores, and starve raft's goroutines: under the LAN
// profile's 100 ms leader lease the leader stepped down during the
// 8-goroutine stale case (its term moved from 2 to 3), and the cases
// after it measured an election. The default profile's timeouts ride
// that out; reads do not travel differently under it.
const readsProfile = cluster.ProfileDefault

// readYield is how many reads a reader makes before it yields the
// processor. Readers that never block are not what a node serves (a
// server's readers wait on their connections), and 64 of them in the
// process of all three nodes starved raft's goroutines, which the
// network poller readies onto the global run queue that a busy
// processor checks only every 61st scheduling: the leader stepped down
// during the 64-goroutine stale case even with the default timings, in
// three attempts of three. A yield every 256 reads costs under 1 ns a
// read.
const readYield = 256

// errLeaderMoved says that the leader changed during a read case.
var errLeaderMoved = errors.New("the leader changed during the case")

// clusterSettings says how the cluster rows were configured, for the
// report's settings table.
func clusterSettings() []Setting {
	var s []Setting
	for _, st := range clusterStores {
		s = append(s, Setting{Engine: "cluster, " + st.name, Memory: "",
			Durable: fmt.Sprintf("%d nodes in one process over TCP on 127.0.0.1, each its own folder; %s; an acknowledged write is fsynced on a majority", clusterNodes, st.about)})
	}
	return s
}

// benchCluster is a cluster of clusterNodes nodes in this process.
type benchCluster struct {
	dir     string
	store   clusterStore
	profile cluster.Profile
	peers   []cluster.Peer
	nodes   []*cluster.Node // nil while a node is down
	lease   bool            // cluster.Options.LeaseReads
}

// startCluster founds a cluster in a new temporary folder and waits until
// its leader has acknowledged a write that every node has applied.
func startCluster(store clusterStore, profile cluster.Profile) (_ *benchCluster, err error) {
	return startClusterLease(store, profile, false)
}

// startClusterLease is startCluster with cluster.Options.LeaseReads set
// to lease.
func startClusterLease(store clusterStore, profile cluster.Profile, lease bool) (_ *benchCluster, err error) {
	dir, err := os.MkdirTemp("", "livekv-bench-cluster-")
	if err != nil {
		return nil, err
	}
	c := &benchCluster{dir: dir, store: store, profile: profile, nodes: make([]*cluster.Node, clusterNodes), lease: lease}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.close())
		}
	}()
	// Every port is bound before the first node starts, so that each
	// node knows every address.
	lns := make([]net.Listener, clusterNodes)
	defer func() {
		for _, ln := range lns {
			if ln != nil {
				ln.Close()
			}
		}
	}()
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		c.peers = append(c.peers, cluster.Peer{ID: fmt.Sprintf("n%d", i), Addr: lns[i].Addr().String()})
	}
	for i := range lns {
		ln := lns[i]
		lns[i] = nil // the node closes it
		if err := c.open(i, ln); err != nil {
			ln.Close()
			return nil, err
		}
	}
	if _, _, err := c.settled(); err != nil {
		return nil, err
	}
	return c, nil
}

// open starts node i, on ln or, if ln is nil, listening on its address
// itself (a restart).
func (c *benchCluster) open(i int, ln net.Listener) error {
	o := &cluster.Options{
		NodeID:     c.peers[i].ID,
		RaftAddr:   c.peers[i].Addr,
		Peers:      c.peers,
		Profile:    c.profile,
		Listener:   ln,
		LeaseReads: c.lease,
	}
	c.store.set(o)
	n, err := cluster.Open(filepath.Join(c.dir, c.peers[i].ID), o)
	if err != nil {
		return fmt.Errorf("cluster node %d: %w", i, err)
	}
	c.nodes[i] = n
	return nil
}

// close closes every node and removes the folder.
func (c *benchCluster) close() error {
	var errs []error
	for i, n := range c.nodes {
		if n != nil {
			errs = append(errs, n.Close())
			c.nodes[i] = nil
		}
	}
	return errors.Join(append(errs, os.RemoveAll(c.dir))...)
}

// settleTimeout bounds the wait for a leader and for nodes to catch up.
const settleTimeout = 60 * time.Second

// leader returns the index of the node that leads, waiting for one.
func (c *benchCluster) leader() (int, error) {
	deadline := time.Now().Add(settleTimeout)
	for {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				return i, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no leader after %v", settleTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled waits until the cluster has a leader that acknowledges a write
// and every running node has applied it, and returns that leader and the
// write's revision.
func (c *benchCluster) settled() (leader int, rev int64, err error) {
	deadline := time.Now().Add(settleTimeout)
	for {
		if leader, err = c.leader(); err != nil {
			return 0, 0, err
		}
		it, err := c.nodes[leader].Set("bench:settled", "yes", nil)
		if err == nil {
			rev = it.Revision
			break
		}
		if !retryableWrite(err) || time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("settling the cluster: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, n := range c.nodes {
		if n != nil {
			if err := c.caughtUp(n, rev, deadline); err != nil {
				return 0, 0, err
			}
		}
	}
	return leader, rev, nil
}

// caughtUp waits until n serves reads and has applied rev.
func (c *benchCluster) caughtUp(n *cluster.Node, rev int64, deadline time.Time) error {
	for {
		_, err := n.Get("bench:settled", cluster.Read(cluster.Stale, cluster.MinRevision(rev)))
		if err == nil {
			return nil
		}
		if !errors.Is(err, cluster.ErrBehind) || time.Now().After(deadline) {
			return fmt.Errorf("node %s catching up to revision %d: %w", n.ID(), rev, err)
		}
	}
}

// follower returns a running node other than i.
func (c *benchCluster) follower(i int) int {
	for j := 1; j < len(c.nodes); j++ {
		if k := (i + j) % len(c.nodes); c.nodes[k] != nil {
			return k
		}
	}
	return i
}

// retryableWrite reports whether a write that failed with err did not,
// or may not, have happened because the leader changed: the writer tries
// again.
func retryableWrite(err error) bool {
	return errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrNoLeader) ||
		errors.Is(err, cluster.ErrNotCommitted) || errors.Is(err, cluster.ErrUncertain)
}

// firstWrite writes key through node i until a write is acknowledged and
// returns its revision.
func (c *benchCluster) firstWrite(i int, key string) (int64, error) {
	deadline := time.Now().Add(settleTimeout)
	for {
		it, err := c.nodes[i].Set(key, value100, nil)
		if err == nil {
			return it.Revision, nil
		}
		if !retryableWrite(err) || time.Now().After(deadline) {
			return 0, fmt.Errorf("writing through %s: %w", c.nodes[i].ID(), err)
		}
		time.Sleep(time.Millisecond)
	}
}

// driven is what drive measured.
type driven struct {
	perSec float64
	lat    []time.Duration // every operation's, sorted; nil unless timed
}

// drive runs w goroutines for about d, each calling the operation newOp
// makes for it (with the goroutine's number) until the time is up, and
// returns the operations done per second and, if timed, the latency of
// each. The first error stops every goroutine and is returned.
func drive(w int, d time.Duration, timed bool, newOp func(g int) func(i int) error) (driven, error) {
	var stop atomic.Bool
	var done atomic.Int64
	var mu sync.Mutex
	var first error
	lats := make([][]time.Duration, w)
	ops := make([]func(int) error, w)
	for g := range ops {
		ops[g] = newOp(g)
	}
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for g := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := ops[g]
			var mine []time.Duration
			n := 0
			for ; !stop.Load(); n++ {
				var t time.Time
				if timed {
					t = time.Now()
				}
				if err := op(n); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					stop.Store(true)
					break
				}
				if timed {
					mine = append(mine, time.Since(t))
				}
			}
			done.Add(int64(n))
			lats[g] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return driven{}, first
	}
	out := driven{perSec: opsPerSec(int(done.Load()), elapsed)}
	if timed {
		out.lat = slices.Concat(lats...)
		slices.Sort(out.lat)
	}
	return out, nil
}

// quantile returns the q quantile of sorted by the nearest rank: the
// smallest value that at least a share q of the values are at or below,
// s[⌈q·n⌉-1] (the first for q = 0). The p99 of 100 values is the 99th,
// not the largest.
func quantile[T any](sorted []T, q float64) T {
	// The epsilon keeps a product a hair above a whole number, such as
	// 0.07·100 = 7.000000000000001, from rising a rank.
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	return sorted[min(len(sorted)-1, max(0, rank-1))]
}

func millis(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// series gathers a workload's runs per engine and case, in the order
// first seen.
type series struct {
	workload, unit string
	higher         bool
	asSeen         bool        // cases as first seen, not as sortCases orders them
	keys           [][2]string // engine, case
	runs           map[[2]string][]float64
}

func newSeries(workload, unit string, higher bool) *series {
	return &series{workload: workload, unit: unit, higher: higher, runs: map[[2]string][]float64{}}
}

func (s *series) add(eng, cas string, v ...float64) {
	k := [2]string{eng, cas}
	if _, ok := s.runs[k]; !ok {
		s.keys = append(s.keys, k)
	}
	s.runs[k] = append(s.runs[k], v...)
}

// results returns one result per engine and case: by case, as sortCases
// orders them (or as first seen), then engine as first seen.
func (s *series) results() []Result {
	var cases []string
	for _, k := range s.keys {
		if !slices.Contains(cases, k[1]) {
			cases = append(cases, k[1])
		}
	}
	if !s.asSeen {
		sortCases(cases)
	}
	var out []Result
	for _, c := range cases {
		for _, k := range s.keys {
			if k[1] == c {
				out = append(out, newResult(s.workload, c, k[0], s.unit, s.higher, s.runs[k]))
			}
		}
	}
	return out
}

var writerCounts = []int{1, 8, 64}

// replicatedWrites runs Set at 1, 8 and 64 writers for cfg.durableIn
// each: on a single durable livekv node, on each store's cluster through
// its leader, and through a follower, which forwards to the leader. The
// three alternate within every run. measure turns each case into its
// results.
func replicatedWrites(cfg config, progress func(string), timed bool, measure func(eng string, w int, d driven)) error {
	single := peers[0]
	for r := 0; r < cfg.runs; r++ {
		clusters := make([]*benchCluster, len(clusterStores))
		closeAll := func() error {
			var errs []error
			for _, c := range clusters {
				if c != nil {
					errs = append(errs, c.close())
				}
			}
			return errors.Join(errs...)
		}
		for i, st := range clusterStores {
			progress(fmt.Sprintf("run %d of %d, starting the %s cluster", r+1, cfg.runs, st.name))
			c, err := startCluster(st, clusterProfile)
			if err != nil {
				return errors.Join(err, closeAll())
			}
			clusters[i] = c
		}
		err := func() error {
			for _, w := range writerCounts {
				progress(fmt.Sprintf("run %d of %d, writers=%d, one node", r+1, cfg.runs, w))
				kv, done, err := openFresh(single, true)
				if err != nil {
					return err
				}
				d, err := drive(w, cfg.durableIn, timed, func(g int) func(int) error {
					return func(i int) error { return kv.Set(keyOf(g*1_000_000+i%100_000), value100) }
				})
				if err = errors.Join(err, done()); err != nil {
					return fmt.Errorf("livekv, writers=%d: %w", w, err)
				}
				measure("livekv", w, d)
				for i, c := range clusters {
					for _, follower := range []bool{false, true} {
						name := "cluster, " + clusterStores[i].name
						if follower {
							name += ", via a follower"
						}
						progress(fmt.Sprintf("run %d of %d, writers=%d, %s", r+1, cfg.runs, w, name))
						d, err := clusterWrites(c, follower, w, cfg.durableIn, timed, func(err error) {
							progress(fmt.Sprintf("run %d of %d, writers=%d, %s: a change of leader (%v), again", r+1, cfg.runs, w, name, err))
						})
						if err != nil {
							return fmt.Errorf("%s, writers=%d: %w", name, w, err)
						}
						measure(name, w, d)
					}
				}
			}
			return nil
		}()
		if err := errors.Join(err, closeAll()); err != nil {
			return err
		}
	}
	return nil
}

// caseAttempts is how many times a cluster write case runs when a change
// of leader interrupts it.
const caseAttempts = 3

// clusterWrites runs w writers for d through c's leader, or through a
// follower. A case that a change of leader interrupts (an election under
// load) runs again once the cluster has settled; see retryCase.
func clusterWrites(c *benchCluster, follower bool, w int, d time.Duration, timed bool, again func(error)) (driven, error) {
	return retryCase(func() (driven, error) {
		l, _, err := c.settled()
		if err != nil {
			return driven{}, err
		}
		if follower {
			l = c.follower(l)
		}
		n := c.nodes[l]
		return drive(w, d, timed, func(g int) func(int) error {
			return func(i int) error {
				_, err := n.Set(keyOf(g*1_000_000+i%100_000), value100, nil)
				return err
			}
		})
	}, again)
}

// retryCase runs a case, and runs it again while a change of leader
// interrupts it (a write refused for it, or errLeaderMoved), up to
// caseAttempts times in all, telling again why each time. Any other error
// ends it at once. A figure thus never includes retried writes, nor a
// read case that saw an election.
func retryCase(run func() (driven, error), again func(error)) (driven, error) {
	for attempt := 1; ; attempt++ {
		res, err := run()
		if err == nil || !retryableWrite(err) && !errors.Is(err, errLeaderMoved) || attempt == caseAttempts {
			return res, err
		}
		again(err)
	}
}

func runReplicated(cfg config, progress func(string)) ([]Result, error) {
	s := newSeries("replicated", "writes/s", true)
	err := replicatedWrites(cfg, progress, false, func(eng string, w int, d driven) {
		s.add(eng, fmt.Sprintf("writers=%d", w), d.perSec)
	})
	return s.results(), err
}

func runReplicatedLatency(cfg config, progress func(string)) ([]Result, error) {
	s := newSeries("replicated-latency", "ms", false)
	err := replicatedWrites(cfg, progress, true, func(eng string, w int, d driven) {
		if len(d.lat) == 0 {
			return
		}
		s.add(eng, fmt.Sprintf("p50, writers=%d", w), millis(quantile(d.lat, 0.5)))
		s.add(eng, fmt.Sprintf("p99, writers=%d", w), millis(quantile(d.lat, 0.99)))
	})
	return s.results(), err
}

// readKeys is how many keys the read workload loads: reads cost the same
// at any size, loading does not.
const readKeys = 100_000

// loadBatches writes keys with update, a thousand to a transaction.
func loadBatches(update func(func(tx *engine.Tx) error) (int64, error), keys []string) error {
	for b := range slices.Chunk(keys, 1000) {
		if _, err := update(func(tx *engine.Tx) error {
			for _, k := range b {
				if _, err := tx.Set(k, value100, nil); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// runReplicatedReads reads random keys at 1, 8 and 64 goroutines from a
// single durable node and from the cluster's leader and a follower, at
// the Stale and Linearizable levels, and from a second cluster's leader
// and follower at the Linearizable level with lease reads, in turn
// within every run.
func runReplicatedReads(cfg config, progress func(string)) ([]Result, error) {
	return replicatedReads(cfg, progress, "replicated-reads", false)
}

// runReplicatedReadsWS is runReplicatedReads over WebSocket: each node
// serves the adapter on loopback, and each goroutine is a Go client of
// its own, with its connection's read level (the single node's: the
// default, session).
func runReplicatedReadsWS(cfg config, progress func(string)) ([]Result, error) {
	return replicatedReads(cfg, progress, "replicated-reads-ws", true)
}

// replicatedReads runs the reads of workload, in process or, if wire,
// through the adapter and the Go client.
func replicatedReads(cfg config, progress func(string), workload string, wire bool) (_ []Result, err error) {
	keys := shuffled(min(cfg.keys, readKeys), 1)
	// urls holds, in a run over the wire, the adapter's URL for each
	// store read: the single node's database and each node of a cluster.
	urls := map[any]string{}
	var defers []func() error
	defer func() {
		for i := len(defers) - 1; i >= 0; i-- {
			err = errors.Join(err, defers[i]())
		}
	}()
	serve := func(key any, st adapter.Store) error {
		if !wire {
			return nil
		}
		u, stop, err := serveReads(st)
		if err != nil {
			return err
		}
		urls[key] = u
		defers = append(defers, stop)
		return nil
	}
	progress("loading one node")
	kv, done, err := openFresh(peers[0], true)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, done()) }()
	lkv, ok := kv.(livekvKV)
	if !ok {
		return nil, fmt.Errorf("the single node is %s, not livekv", peers[0].name)
	}
	db := lkv.db // loaded a thousand keys to a transaction, as the cluster
	if err := loadBatches(db.Update, keys); err != nil {
		return nil, err
	}
	if err := serve(db, db); err != nil {
		return nil, err
	}
	// A reader reads through one role's node of a cluster (nil for the
	// single node), resolved again at the start of every case.
	type reader struct {
		name  string
		c     *benchCluster
		lead  bool // the leader, or a follower
		level cluster.Consistency
	}
	readers := []reader{{name: "livekv"}}
	// Two clusters: linearizable reads confirmed by a quorum round
	// (the default), and under the leader's lease.
	for _, lease := range []bool{false, true} {
		progress(fmt.Sprintf("loading the cluster, lease reads %v", lease))
		var c *benchCluster
		if c, err = startClusterLease(clusterStores[0], readsProfile, lease); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, c.close()) }() // err: the named result
		var l int
		if l, err = c.leader(); err != nil {
			return nil, err
		}
		if err := loadBatches(c.nodes[l].Update, keys); err != nil {
			return nil, err
		}
		for _, n := range c.nodes {
			if err := serve(n, n.With()); err != nil {
				return nil, err
			}
		}
		for _, at := range []struct {
			lead  bool
			where string
		}{{true, "leader"}, {false, "follower"}} {
			levels := []struct {
				level cluster.Consistency
				name  string
			}{{cluster.Stale, "stale"}, {cluster.Linearizable, "linearizable"}}
			if lease {
				levels = levels[1:]
				levels[0].name = "linearizable (lease)"
			}
			for _, lv := range levels {
				readers = append(readers, reader{lv.name + ", " + at.where, c, at.lead, lv.level})
			}
		}
	}
	runtime.GC()

	// readCase runs one case. A change of leader during it would put
	// its rows under the wrong role: it reports that as errLeaderMoved.
	readCase := func(rd reader, g int) (driven, error) {
		get := func(k string) error { _, err := db.Get(k); return err }
		var lead *cluster.Node
		var term uint64
		var at any = db // the store read, for its URL
		if rd.c != nil {
			l, _, err := rd.c.settled()
			if err != nil {
				return driven{}, err
			}
			lead = rd.c.nodes[l]
			term = lead.Status().Term
			n := lead
			if !rd.lead {
				n = rd.c.nodes[rd.c.follower(l)]
			}
			get = func(k string) error { _, err := n.Get(k, rd.level); return err }
			at = n
		}
		// Over the wire, each goroutine dials a client of its own before
		// the clock starts; they are closed after the case.
		var clients []*client.Client
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		gets := make([]func(string) error, g)
		for w := range gets {
			gets[w] = get
			if !wire {
				continue
			}
			u := urls[at]
			if rd.c != nil {
				u += "?consistency=" + levelNames[rd.level]
			}
			c, err := client.Dial(context.Background(), u, &client.Options{APIKey: "bench"})
			if err != nil {
				return driven{}, err
			}
			clients = append(clients, c)
			gets[w] = func(k string) error { _, err := c.Get(context.Background(), k); return err }
		}
		d, err := drive(g, cfg.readsIn, false, func(w int) func(int) error {
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			get := gets[w]
			return func(i int) error {
				if i%readYield == readYield-1 {
					runtime.Gosched()
				}
				return get(keys[rnd.IntN(len(keys))])
			}
		})
		if err == nil && lead != nil && (!lead.IsLeader() || lead.Status().Term != term) {
			err = errLeaderMoved
		}
		return d, err
	}
	s := newSeries(workload, "reads/s", true)
	for r := 0; r < cfg.runs; r++ {
		for _, g := range []int{1, 8, 64} {
			for _, rd := range readers {
				progress(fmt.Sprintf("run %d of %d, goroutines=%d, %s", r+1, cfg.runs, g, rd.name))
				d, err := retryCase(func() (driven, error) { return readCase(rd, g) }, func(err error) {
					progress(fmt.Sprintf("run %d of %d, goroutines=%d, %s: %v, again", r+1, cfg.runs, g, rd.name, err))
				})
				if err != nil {
					return nil, fmt.Errorf("%s, goroutines=%d: %w", rd.name, g, err)
				}
				s.add(rd.name, fmt.Sprintf("goroutines=%d", g), d.perSec)
			}
		}
	}
	return s.results(), nil
}

// changeOfLeader measures, over cfg.rounds rounds for each store and
// profile, the time from the start of a change of leader (made by start,
// given the leader) to the first write acknowledged through another node.
// after, if not nil, runs after each round, untimed, given the old
// leader.
func changeOfLeader(cfg config, progress func(string), workload string,
	start func(c *benchCluster, l int) error, after func(c *benchCluster, l int, rev int64) error) ([]Result, error) {
	s := newSeries(workload, "ms", false)
	s.asSeen = true // each store's LAN rows, then its default ones
	for _, st := range clusterStores {
		for _, prof := range []cluster.Profile{cluster.ProfileLAN, cluster.ProfileDefault} {
			progress(fmt.Sprintf("%s, %s profile, starting", st.name, prof))
			c, err := startCluster(st, prof)
			if err != nil {
				return nil, err
			}
			times, err := func() ([]float64, error) {
				var times []float64
				for r := 0; r < cfg.rounds; r++ {
					progress(fmt.Sprintf("%s, %s profile, round %d of %d", st.name, prof, r+1, cfg.rounds))
					l, _, err := c.settled()
					if err != nil {
						return nil, err
					}
					via := c.follower(l)
					t0 := time.Now()
					if err := start(c, l); err != nil {
						return nil, err
					}
					rev, err := c.firstWrite(via, fmt.Sprintf("bench:%s:%d", workload, r))
					if err != nil {
						return nil, err
					}
					times = append(times, millis(time.Since(t0)))
					if after != nil {
						if err := after(c, l, rev); err != nil {
							return nil, err
						}
					}
				}
				return times, nil
			}()
			if err := errors.Join(err, c.close()); err != nil {
				return nil, fmt.Errorf("%s, %s profile: %w", st.name, prof, err)
			}
			cas := fmt.Sprintf("%s, %s", st.name, prof)
			// The p50 row keeps every round, so that its median is
			// the p50 and its spread the fastest and slowest rounds.
			// The slowest has a row of its own: with 50 rounds, a p99
			// could not be told from it.
			s.add("livekv", cas+", p50", times...)
			s.add("livekv", cas+", slowest", slices.Max(times))
		}
	}
	return s.results(), nil
}

// runFailover closes the leader, as a crash would stop it, then writes
// through a survivor until a write is acknowledged. The closed node
// restarts from its folder and catches up before the next round.
//
// Node.Close is the kill: hashicorp/raft's Shutdown tells the followers
// nothing (no leadership transfer, no last message) and the node's
// connections close as a killed process's would, so the followers learn
// of the loss only when heartbeats stop, as after a crash. The time
// includes the Close.
func runFailover(cfg config, progress func(string)) ([]Result, error) {
	return changeOfLeader(cfg, progress, "failover",
		func(c *benchCluster, l int) error {
			n := c.nodes[l]
			c.nodes[l] = nil
			return n.Close()
		},
		func(c *benchCluster, l int, rev int64) error {
			if err := c.open(l, nil); err != nil {
				return err
			}
			return c.caughtUp(c.nodes[l], rev, time.Now().Add(settleTimeout))
		})
}

// runTransfer asks the leader to hand leadership to another voter, then
// writes through a node other than the old leader until a write is
// acknowledged.
func runTransfer(cfg config, progress func(string)) ([]Result, error) {
	return changeOfLeader(cfg, progress, "transfer",
		func(c *benchCluster, l int) error {
			ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
			defer cancel()
			return c.nodes[l].TransferLeadership(ctx, "")
		}, nil)
}

// levelNames are the adapter's names of the read levels the reads
// workloads use.
var levelNames = map[cluster.Consistency]string{cluster.Stale: "stale", cluster.Linearizable: "linearizable"}

// serveReads serves the adapter over st on loopback, with no limit on a
// connection's request rate, and returns its URL and what stops it.
func serveReads(st adapter.Store) (url string, stop func() error, err error) {
	a, err := adapter.New(st, &adapter.Options{APIKeys: []string{"bench"}, RequestRate: 1e12, RequestBurst: 1 << 30})
	if err != nil {
		return "", nil, err
	}
	srv := httptest.NewServer(a)
	return srv.URL, func() error {
		err := a.Shutdown(context.Background())
		srv.Close()
		return err
	}, nil
}
