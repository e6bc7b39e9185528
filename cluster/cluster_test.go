package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/cluster/clustertest"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dbCluster is n Nodes with databases on a clustertest.Net.
type dbCluster struct {
	t     testing.TB
	net   *clustertest.Net
	dir   string
	peers []Peer
	mu    sync.Mutex // guards nodes when writers run beside faults
	nodes []*Node
	eo    *engine.Options
	store LogStore // the raft log store; "" for the default
	lease bool     // Options.LeaseReads

	snapThreshold, trailing uint64 // raft log limits; 0 for the defaults
	founders                []Peer
	join                    []string                    // Options.Join of the nodes started next
	full                    []atomic.Bool               // per node: its disk is full (see diskFault)
	slowHandoff             atomic.Bool                 // every node sleeps between packing an entry and handing it to raft
	readStall               atomic.Pointer[func(i int)] // runs on node i between taking a read index and confirming it
	clockSkew               []atomic.Int64              // per node: how far its engine's clock is ahead, in ns
	sweepHeld               atomic.Bool                 // the leader does not sweep
	applyHold               atomic.Pointer[func(i int)] // runs on node i as its FSM starts to apply a command entry
	readHold                atomic.Pointer[func(i int)] // runs on node i as a linearizable read that waited for its index is about to read
}

// newDBCluster starts n nodes bootstrapped together, with room on the
// network for extra[0] more to join later.
func newDBCluster(t testing.TB, n int, eo *engine.Options, extra ...int) *dbCluster {
	t.Helper()
	return newDBClusterOn(t, "", n, eo, extra...)
}

// newDBClusterOn is newDBCluster with the raft log in store.
func newDBClusterOn(t testing.TB, store LogStore, n int, eo *engine.Options, extra ...int) *dbCluster {
	t.Helper()
	return newDBClusterLease(t, store, false, n, eo, extra...)
}

// newDBClusterLease is newDBClusterOn with Options.LeaseReads set to
// lease.
func newDBClusterLease(t testing.TB, store LogStore, lease bool, n int, eo *engine.Options, extra ...int) *dbCluster {
	t.Helper()
	total := n
	if len(extra) > 0 {
		total += extra[0]
	}
	nt, err := clustertest.New(total)
	require.NoError(t, err)
	c := &dbCluster{t: t, net: nt, dir: t.TempDir(), nodes: make([]*Node, total), eo: eo, store: store, lease: lease,
		full: make([]atomic.Bool, total), clockSkew: make([]atomic.Int64, total)}
	for i := range total {
		c.peers = append(c.peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: nt.Addr(i)})
	}
	c.founders = c.peers[:n]
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
		require.NoError(t, nt.Close())
	})
	c.caughtUp() // the faults the tests make are of a cluster that has formed (voteGate)
	return c
}

func (c *dbCluster) start(i int) {
	c.t.Helper()
	c.nodes[i] = c.open(i)
}

// open opens node i from its directory, without registering it.
func (c *dbCluster) open(i int) *Node {
	c.t.Helper()
	ln, err := c.net.Listener(i)
	require.NoError(c.t, err)
	peers := c.founders
	if i >= len(c.founders) {
		peers = nil // a newcomer joins
	}
	eo := engine.Options{}
	if c.eo != nil {
		eo = *c.eo
	}
	if eo.Now == nil {
		eo.Now = func() time.Time { return time.Now().Add(time.Duration(c.clockSkew[i].Load())) }
	}
	n, err := Open(filepath.Join(c.dir, c.peers[i].ID), &Options{
		NodeID: c.peers[i].ID, RaftAddr: c.peers[i].Addr, Peers: peers, Join: c.join,
		Profile: ProfileLAN, Listener: ln, Dial: c.net.Dialer(i),
		WriteTimeout: 5 * time.Second, Engine: &eo,
		SnapshotThreshold: c.snapThreshold, TrailingLogs: c.trailing,
		LogStore: c.store, walSegmentSize: testSegmentSize,
		storeFault: c.diskFault(i), LeaseReads: c.lease,
		beforeApply: func() {
			if c.slowHandoff.Load() {
				time.Sleep(20 * time.Millisecond)
			}
		},
		afterReadIndex: func() {
			if f := c.readStall.Load(); f != nil {
				(*f)(i)
			}
		},
		sweepHeld: c.sweepHeld.Load,
		applyEntry: func() {
			if f := c.applyHold.Load(); f != nil {
				(*f)(i)
			}
		},
		linearized: func() {
			if f := c.readHold.Load(); f != nil {
				(*f)(i)
			}
		},
	})
	require.NoError(c.t, err)
	return n
}

// caughtUp waits until every running node has caught up (Node.served):
// before that a node serves no read, and a founder that started with no
// state holds back its vote (voteGate).
func (c *dbCluster) caughtUp() {
	c.t.Helper()
	for i := range c.nodes {
		if n := c.node(i); n != nil {
			require.Eventually(c.t, n.served.Load, 10*time.Second, time.Millisecond, "node %d never caught up", i)
		}
	}
}

// node returns node i, nil while it is down.
func (c *dbCluster) node(i int) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// kill closes node i, as a crash would stop it serving.
func (c *dbCluster) kill(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	require.NoError(c.t, n.Close())
}

// restart opens node i again from its directory.
func (c *dbCluster) restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start(i)
}

func (c *dbCluster) stop(i int) {
	if c.nodes[i] != nil {
		require.NoError(c.t, c.nodes[i].Close())
		c.nodes[i] = nil
	}
}

// steady runs f and reports whether node i was in state ("Leader",
// "Follower") throughout, in one term: under load (-race, a busy CI
// machine) an election may come in between, and a check of what a leader
// or a follower does tells nothing about a call that met one.
func (c *dbCluster) steady(i int, state string, f func()) bool {
	before := c.nodes[i].Status()
	f()
	after := c.nodes[i].Status()
	return before.State == state && after.State == state && before.Term == after.Term
}

// onSteadyLeader runs f on the ready leader, given its index, and again
// on the next leader when the leader did not stay leader in one term
// through it (see steady); it returns the index of the run that counts,
// and fails the test after 5 tries. What f checks or counts of a leader
// tells something only of that run.
func (c *dbCluster) onSteadyLeader(f func(li int)) int {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		li := c.leader()
		if c.steady(li, "Leader", func() { f(li) }) {
			return li
		}
		require.Less(c.t, attempt, 5, "leadership kept moving")
		c.settle()
	}
}

// awayFrom readies another try of a check that node f, meant to be a
// follower, did not stay one through (see steady): it hands leadership
// away from f if f leads, and waits for a leader other than f. It fails
// the test after 5 tries.
func (c *dbCluster) awayFrom(f, attempt int) {
	c.t.Helper()
	require.Less(c.t, attempt, 5, "leadership kept moving")
	if c.nodes[f].IsLeader() {
		require.NoError(c.t, c.nodes[f].TransferLeadership(context.Background(), ""))
	}
	c.settle(f)
}

// settleFor is how long settle wants a leader to keep its term: five
// of ProfileLAN's heartbeat timeouts.
const settleFor = time.Second

// settle waits for a ready leader, not in skip, that stays leader in one
// term for settleFor, and returns its index; it fails the test if none
// does within 30 s. A check retried after an election (see steady) runs
// after settle, so that a burst of elections on a loaded machine does
// not use up its tries one election each.
func (c *dbCluster) settle(skip ...int) int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		li := c.leader(skip...)
		n := c.node(li)
		before := n.Status()
		time.Sleep(settleFor)
		after := n.Status()
		if before.State == "Leader" && after.State == "Leader" && before.Term == after.Term {
			return li
		}
		require.True(c.t, time.Now().Before(deadline), "no leader kept its term for %v", settleFor)
	}
}

// leader waits for a ready leader among the running nodes not in skip.
func (c *dbCluster) leader(skip ...int) int {
	c.t.Helper()
	l := -1
	require.Eventually(c.t, func() bool {
	next:
		for i := range c.nodes {
			n := c.node(i)
			for _, s := range skip {
				if s == i {
					continue next
				}
			}
			if n != nil && n.isReady() {
				l = i
				return true
			}
		}
		return false
	}, 15*time.Second, 5*time.Millisecond, "no ready leader")
	return l
}

// stateHash hashes every item of node n, read in one View, and returns
// the revision it read at.
func stateHash(t testing.TB, n *Node) (rev int64, hash string) {
	h := sha256.New()
	require.NoError(t, n.DB().View(func(tx *engine.Tx) error {
		rev = tx.Revision()
		items, err := tx.Range("", "", nil)
		if err != nil {
			return err
		}
		for it, err := range items {
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%q=%q@%d/%d/%d/%d\n", it.Key, it.Value, it.Revision, it.CreateRevision, it.Version, it.ExpiresAt.UnixNano())
		}
		return nil
	}))
	return rev, hex.EncodeToString(h.Sum(nil))
}

// converged waits until every running node is at one revision and
// checks that they hold the same state there: each node's state is read
// at the revision it reports with it, so that a change committed between
// two reads (an expiry the leader sweeps) makes the check look again
// rather than fail.
func (c *dbCluster) converged() int64 {
	c.t.Helper()
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var revs []int64
		for i := range c.nodes {
			if n := c.node(i); n != nil {
				revs = append(revs, n.Revision())
			}
		}
		if slices.Min(revs) != slices.Max(revs) { // cheap to ask, unlike a hash
			require.True(c.t, time.Now().Before(end), "nodes at different revisions: %v", revs)
			continue
		}
		var hashes []string
		var nodes []int
		revs = revs[:0]
		for i := range c.nodes {
			if n := c.node(i); n != nil {
				rev, h := stateHash(c.t, n)
				revs, hashes, nodes = append(revs, rev), append(hashes, h), append(nodes, i)
			}
		}
		if slices.Min(revs) != slices.Max(revs) { // moved since (the sweeper's expiries)
			require.True(c.t, time.Now().Before(end), "nodes at different revisions: %v", revs)
			continue
		}
		for j := range hashes {
			require.Equal(c.t, hashes[0], hashes[j], "state of node %d at revision %d", nodes[j], revs[j])
		}
		return revs[0]
	}
}

func TestCluster_WritesReplicateAndReadEverywhere(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3

	it, err := c.nodes[l].Set("a", "1", nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), it.Revision)
	it, err = c.nodes[f].Set("b", "2", nil) // forwarded
	require.NoError(t, err)
	require.Equal(t, int64(2), it.Revision)
	require.Equal(t, "b", it.Key)

	n, rev, err := c.nodes[f].Increment("n", 5)
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	_, err = c.nodes[f].CompareAndSwap("a", 99, "x", nil)
	require.ErrorIs(t, err, engine.ErrConflict, "engine errors keep their identity across forwarding")
	_, err = c.nodes[f].PutIfAbsent("a", "x", nil)
	require.ErrorIs(t, err, engine.ErrConflict)
	it, err = c.nodes[f].Patch("j", `{"x":1}`)
	require.NoError(t, err)
	require.JSONEq(t, `{"x":1}`, it.Value)
	drev, err := c.nodes[f].Delete("b")
	require.NoError(t, err)
	require.Greater(t, drev, rev)

	// A follower refuses Update, naming the leader, which runs it. The
	// check counts only if the leader kept its role through it (under
	// -race on a busy machine an election may come in between).
	var urev int64
	var errF, errL error
	l = c.onSteadyLeader(func(li int) {
		_, errF = c.nodes[(li+1)%3].Update(func(tx *engine.Tx) error { return nil })
		urev, errL = c.nodes[li].Update(func(tx *engine.Tx) error {
			if _, err := tx.Set("u1", "x", nil); err != nil {
				return err
			}
			_, err := tx.Set("u2", "y", nil)
			return err
		})
	})
	require.ErrorIs(t, errF, ErrNotLeader)
	var nl *NotLeaderError
	require.ErrorAs(t, errF, &nl)
	require.Equal(t, c.nodes[l].Addr(), nl.Addr)
	require.NoError(t, errL)

	// A linearizable read on any node sees every acknowledged write.
	for i, n := range c.nodes {
		it, err := n.Get("u2")
		require.NoError(t, err, "node %d", i)
		require.Equal(t, urev, it.Revision)
		_, err = n.Get("b")
		require.ErrorIs(t, err, engine.ErrNotFound)
		it, err = n.Get("u1", Read(Stale, MinRevision(urev)))
		require.NoError(t, err)
		require.Equal(t, "x", it.Value)
	}
	c.onSteadyLeader(func(li int) {
		_, errF = c.nodes[(li+1)%3].Get("a", Leader)
		_, errL = c.nodes[li].Get("a", Leader)
	})
	require.ErrorIs(t, errF, ErrNotLeader)
	require.NoError(t, errL)
	c.converged()
}

// writeLog records each write's outcome, by its unique key.
type writeLog struct {
	mu      sync.Mutex
	acked   map[string]int64 // key → revision
	refused map[string]error // definitely not committed
	unknown map[string]error
}

func newWriteLog() *writeLog {
	return &writeLog{acked: map[string]int64{}, refused: map[string]error{}, unknown: map[string]error{}}
}

func (w *writeLog) record(key string, rev int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.acked[key] = rev
	case errors.Is(err, ErrNotCommitted), errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrUncertain):
		w.refused[key] = err
	default:
		w.unknown[key] = err
	}
}

// check verifies on every running node that each acknowledged write holds
// its value at its revision and each refused one is absent.
func (w *writeLog) check(t testing.TB, c *dbCluster) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range c.nodes {
		n := c.node(i)
		if n == nil {
			continue
		}
		for k, rev := range w.acked {
			it, err := n.DB().Get(k)
			require.NoError(t, err, "node %d lost acknowledged %s@%d", i, k, rev)
			require.Equal(t, rev, it.Revision, "node %d: %s", i, k)
			require.Equal(t, k, it.Value)
		}
		for k, why := range w.refused {
			_, err := n.DB().Get(k)
			require.ErrorIs(t, err, engine.ErrNotFound, "node %d holds %s, refused with %v", i, k, why)
		}
	}
}

// settle waits for a leader and for the running nodes to agree, checks
// the writes on each (see check), and returns the revision they agree at.
func (w *writeLog) settle(t testing.TB, c *dbCluster) int64 {
	t.Helper()
	c.leader()
	rev := c.converged()
	w.check(t, c)
	require.NotEmpty(t, w.acked)
	t.Logf("acknowledged %d, refused %d, uncertain %d", len(w.acked), len(w.refused), len(w.unknown))
	return rev
}

// writerIDs numbers writers, so that their keys never collide.
var writerIDs atomic.Int64

// writers runs k writers, each setting fresh keys through pick(), until
// stop closes.
func writers(k int, w *writeLog, pick func() *Node, stop chan struct{}) *sync.WaitGroup {
	return runWriters(k, stop, 5*time.Millisecond, func(g int64, seq int) error {
		key := fmt.Sprintf("w/%d/%d", g, seq)
		it, err := pick().Set(key, key, nil)
		w.record(key, it.Revision, err)
		return err
	})
}

// ttlWriters runs k writers, each writing a few keys under "ttl/" again
// and again through pick() until stop closes: by turns with a TTL of
// 1 µs to 3.5 ms and without one, so that keys expire, and are written
// again before, during and after their sweep, while faults strike. It
// counts the writes acknowledged in acked; expireAll checks where they
// end.
func ttlWriters(k int, pick func() *Node, stop chan struct{}, acked *atomic.Int64) *sync.WaitGroup {
	return runWriters(k, stop, 5*time.Millisecond, func(g int64, seq int) error {
		key := fmt.Sprintf("ttl/%d/%d", g, seq/2%4)
		var o *engine.SetOptions
		if seq%2 == 0 {
			o = &engine.SetOptions{TTL: time.Microsecond + time.Duration(seq/2%8)*500*time.Microsecond}
		}
		_, err := pick().Set(key, key, o)
		if err == nil {
			acked.Add(1)
		}
		return err
	})
}

// expireAll waits until no running node holds a key under "ttl/" with an
// expiry: every expiry was swept and reached every node. Then the nodes
// converge. acked is the count of ttlWriters.
func (c *dbCluster) expireAll(acked *atomic.Int64) {
	c.t.Helper()
	require.Positive(c.t, acked.Load(), "no write under ttl/ was acknowledged")
	c.t.Logf("%d writes under ttl/ acknowledged", acked.Load())
	c.leader()
	require.Eventually(c.t, func() bool {
		for i := range c.nodes {
			n := c.node(i)
			if n == nil {
				continue
			}
			for it := range enginetest.Items(n.DB().Range("ttl/", "ttl0", nil)) {
				if !it.ExpiresAt.IsZero() {
					return false
				}
			}
		}
		return true
	}, 15*time.Second, 10*time.Millisecond, "keys with a TTL never expired")
	c.converged()
}

// runWriters runs k goroutines, each numbered g (writerIDs), calling
// write with g and 0, 1, 2, ... until stop closes; after a failed write,
// a goroutine pauses for pause.
func runWriters(k int, stop chan struct{}, pause time.Duration, write func(g int64, seq int) error) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range k {
		g := writerIDs.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if write(g, seq) != nil {
					time.Sleep(pause)
				}
			}
		}()
	}
	return &wg
}

// TestCluster_JoinAndLeaveUnderWrites adds a fourth node while writers
// write, through a follower's address, and later takes a node out: the
// newcomer ends with the same state as the others.
func TestCluster_JoinAndLeaveUnderWrites(t *testing.T) {
	c := newDBCluster(t, 3, nil, 1)
	l := c.leader()
	for k := range 200 {
		_, err := c.nodes[l].Set(fmt.Sprintf("pre/%d", k), "v", nil)
		require.NoError(t, err)
	}
	require.NoError(t, c.nodes[l].rn.raft.Snapshot().Error())
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(2, w, func() *Node { return c.node(l) }, stop)
	c.join = []string{c.net.Addr((l + 1) % 3)}
	c.restart(3)
	require.Len(t, c.node(l).Status().Servers, 4)
	it, err := c.node(3).Get("pre/199") // linearizable, through the leader
	require.NoError(t, err)
	require.Equal(t, "v", it.Value)

	// A follower leaves; the others go on.
	f := (l + 2) % 3
	require.NoError(t, c.node(f).Leave(ctxT(t)))
	c.kill(f)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	require.Len(t, c.node(l).Status().Servers, 3)
	c.converged()
	w.check(t, c)
	require.NotEmpty(t, w.acked)
}

func TestCluster_ConcurrentLinearizableReadsShareRounds(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	it, err := c.nodes[l].Set("k", "v", nil)
	require.NoError(t, err)
	const readers, each = 16, 20
	var wg sync.WaitGroup
	for g := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.nodes[[]int{l, f}[g%2]]
			for range each {
				got, err := n.Get("k")
				if !assert.NoError(t, err) || !assert.Equal(t, it.Revision, got.Revision) {
					return
				}
			}
		}()
	}
	wg.Wait()
	rounds := c.nodes[l].reads.rounds.Load()
	t.Logf("%d linearizable reads took %d quorum rounds", readers*each, rounds)
	require.Less(t, rounds, int64(readers*each), "concurrent reads share rounds")
}

// TestCluster_FollowerLinearizableReadsShareRequests reads on one
// follower from many goroutines while the leader writes: the follower
// sends far fewer read-index requests than it serves reads, one at a
// time, and every read still sees each write acknowledged before it
// began.
func TestCluster_FollowerLinearizableReadsShareRequests(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	// A slower link to the leader makes each request last, so that
	// readers pile up behind it.
	c.net.Link(f, l).SetDelay(2 * time.Millisecond)
	var acked atomic.Int64
	it, err := c.nodes[l].Set("k", "0", nil)
	require.NoError(t, err)
	acked.Store(it.Revision)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			it, err := c.nodes[l].Set("k", fmt.Sprint(i), nil)
			if !assert.NoError(t, err) {
				return
			}
			acked.Store(it.Revision)
		}
	}()
	const readers, each = 16, 25
	var rg sync.WaitGroup
	for range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for range each {
				before := acked.Load()
				got, err := c.nodes[f].Get("k")
				if !assert.NoError(t, err) || !assert.GreaterOrEqual(t, got.Revision, before, "a linearizable read on a follower missed an acknowledged write") {
					return
				}
			}
		}()
	}
	rg.Wait()
	close(stop)
	wg.Wait()
	sent := c.nodes[f].remoteReads.rounds.Load()
	t.Logf("%d linearizable reads on a follower sent %d read-index requests", readers*each, sent)
	require.Less(t, sent, int64(readers*each/2), "concurrent reads on a follower share requests")
}

// TestCluster_WriteForwardedToAClosingLeaderGoesOn: a leader that is
// closing (here held in Close by an entry its FSM has not applied)
// refuses a forwarded write before doing anything. The forwarding node
// is not closed: its write waits for the next leader, as for one that
// no longer leads, rather than fail with ErrClosed.
func TestCluster_WriteForwardedToAClosingLeaderGoesOn(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.settle()
	f := (l + 1) % 3
	hold := make(chan struct{})
	held := func(i int) {
		if i == l {
			<-hold
		}
	}
	c.applyHold.Store(&held)
	defer func() {
		select {
		case <-hold:
		default:
			close(hold)
		}
	}()
	ln := c.nodes[l]
	go func() { _, _ = ln.Set("held", "v", nil) }() // in flight on the leader: its Close waits for it
	require.Eventually(t, func() bool { return c.nodes[f].Revision() >= 1 }, 5*time.Second, time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- ln.Close() }()
	require.Eventually(t, ln.closed, 5*time.Second, time.Millisecond)

	type outcome struct {
		err error
		at  time.Duration
	}
	got := make(chan outcome, 1)
	start := time.Now()
	go func() {
		_, err := c.nodes[f].Set("k", "v", nil)
		got <- outcome{err, time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond)
	c.applyHold.Store(nil)
	close(hold)
	require.NoError(t, <-closed)
	c.mu.Lock()
	c.nodes[l] = nil
	c.mu.Unlock()
	o := <-got
	t.Logf("after %v: %v", o.at, o.err)
	require.NotErrorIs(t, o.err, ErrClosed, "the forwarding node is open")
	require.NoError(t, o.err)
	it, err := c.nodes[f].Get("k")
	require.NoError(t, err)
	require.Equal(t, "v", it.Value)
}
