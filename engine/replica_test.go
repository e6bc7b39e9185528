package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// errNotCommitted is what the test replicators give a writer whose commit
// they abandoned.
var errNotCommitted = errors.New("not committed")

// syncReplicator decides each commit's fate in the writer's WaitDurable,
// with no other goroutine: one time in five it abandons what is pending,
// else it ships it, framed as a cluster would, to the follower and
// publishes it on the leader.
type syncReplicator struct {
	r         *rand.Rand
	leader    *engine.Replica
	follower  *engine.Replica
	pending   []byte // framed records
	last      int64  // revision of the newest pending record
	abandoned bool   // the last commit was abandoned
}

func (s *syncReplicator) Append(tx *wal.Tx) error {
	s.pending = wal.AppendTxRecord(s.pending, tx)
	s.last = tx.Revision
	return nil
}

func (s *syncReplicator) WaitDurable(rev int64) error {
	if len(s.pending) == 0 {
		return nil // published before
	}
	if rev != s.last {
		return errors.New("waited for a revision that is not the newest pending")
	}
	defer func() { s.pending = s.pending[:0] }()
	if s.r.IntN(5) == 0 {
		s.abandoned = true
		if n := s.leader.Abandon(); n != 1 {
			return errors.New("abandoned other than one commit")
		}
		return errNotCommitted
	}
	for b := s.pending; len(b) > 0; {
		tx, n, err := wal.DecodeTxRecord(b)
		if err != nil {
			return err
		}
		if err := s.follower.ApplyCommitted(tx); err != nil {
			return err
		}
		b = b[n:]
	}
	s.leader.Publish(rev)
	return nil
}

// openReplicaPair opens a leader whose syncReplicator ships its commits
// to a follower; the caller closes both.
func openReplicaPair(t testing.TB, o *engine.Options, r *rand.Rand) (leader, follower *engine.DB, rep *syncReplicator) {
	t.Helper()
	rep = &syncReplicator{r: r}
	lo, fo := *o, *o
	lo.Replicator = rep
	fo.Replicator = refuse{}
	leader, lc, err := engine.OpenReplica(&lo)
	require.NoError(t, err)
	follower, fc, err := engine.OpenReplica(&fo)
	require.NoError(t, err)
	rep.leader, rep.follower = lc, fc
	return leader, follower, rep
}

// refuse is a follower's replicator: a follower executes no writes.
type refuse struct{}

var errFollower = errors.New("a follower executes no writes")

func (refuse) Append(*wal.Tx) error    { return errFollower }
func (refuse) WaitDurable(int64) error { return errFollower }

// raftSim is a replicated log in miniature: Append queues records, and
// the test decides, from another goroutine, when a prefix of them
// commits (shipped to the followers, published on the leader) and when
// the leader loses the rest (Abandon), as a leadership change does.
type raftSim struct {
	mu        sync.Mutex
	cond      *sync.Cond
	pending   []*wal.Tx
	committed int64          // newest committed revision
	lost      map[int64]bool // revisions abandoned, until appended again
	losses    int            // commits abandoned
	fenced    bool           // the leader is stepping down: appends fail
	closed    bool
	log       []*wal.Tx // every committed record, in order
}

func newRaftSim() *raftSim {
	s := &raftSim{lost: map[int64]bool{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *raftSim) Append(tx *wal.Tx) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced || s.closed {
		return errNotLeader
	}
	// Ship what a cluster ships: the framed record, decoded again.
	b := wal.AppendTxRecord(nil, tx)
	got, _, err := wal.DecodeTxRecord(b)
	if err != nil {
		return err
	}
	s.pending = append(s.pending, got)
	delete(s.lost, tx.Revision) // a new commit at a lost revision
	return nil
}

func (s *raftSim) WaitDurable(rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.lost[rev]:
			return errNotCommitted
		case rev <= s.committed:
			return nil
		case s.closed:
			return engine.ErrClosed
		}
		s.cond.Wait()
	}
}

// commit commits the first n pending records: every follower applies
// them, then the leader publishes them, then their writers hear.
func (s *raftSim) commit(t testing.TB, n int, leader *engine.Replica, followers ...*engine.Replica) {
	s.mu.Lock()
	n = min(n, len(s.pending))
	batch := s.pending[:n:n]
	s.pending = s.pending[n:]
	s.mu.Unlock()
	if n == 0 {
		return
	}
	for _, f := range followers {
		for _, tx := range batch {
			if err := f.ApplyCommitted(tx); err != nil {
				t.Errorf("apply %d: %v", tx.Revision, err)
			}
		}
	}
	leader.Publish(batch[n-1].Revision)
	s.mu.Lock()
	s.committed = batch[n-1].Revision
	s.log = append(s.log, batch...)
	s.cond.Broadcast()
	s.mu.Unlock()
}

// lose makes the leader lose its uncommitted tail, as on a change of
// leader: appends stop, Abandon rolls back, the writers hear.
func (s *raftSim) lose(t testing.TB, leader *engine.Replica) {
	s.mu.Lock()
	s.fenced = true
	s.mu.Unlock()
	n := leader.Abandon()
	s.mu.Lock()
	if n != len(s.pending) {
		t.Errorf("abandoned %d commits, %d pending", n, len(s.pending))
	}
	for _, tx := range s.pending {
		s.lost[tx.Revision] = true
	}
	s.losses += len(s.pending)
	s.pending = nil
	s.fenced = false
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *raftSim) close() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

var errNotLeader = errors.New("not the leader")

// collect gathers a subscription's revisions until it ends.
func collect(sub *engine.Subscription) <-chan []int64 {
	out := make(chan []int64, 1)
	go func() {
		var revs []int64
		for ev := range sub.Events() {
			if len(revs) == 0 || revs[len(revs)-1] != ev.Revision {
				revs = append(revs, ev.Revision)
			}
		}
		out <- revs
	}()
	return out
}

// TestReplica_Concurrent: writers on a leader while the log commits
// prefixes and loses tails at random. Every acknowledged increment is
// counted exactly once on the leader and the follower, nothing abandoned
// is; both end in the same state, byte for byte; subscribers on both see
// exactly the committed revisions, in order, with no gap.
func TestReplica_Concurrent(t *testing.T) {
	sim := newRaftSim()
	leader, lc, err := engine.OpenReplica(&engine.Options{Replicator: sim})
	require.NoError(t, err)
	defer leader.Close()
	follower, fc, err := engine.OpenReplica(&engine.Options{Replicator: refuse{}})
	require.NoError(t, err)
	defer follower.Close()

	subL, err := leader.Subscribe([]string{"*"}, &engine.SubscribeOptions{Buffer: 1 << 16})
	require.NoError(t, err)
	subF, err := follower.Subscribe([]string{"*"}, &engine.SubscribeOptions{Buffer: 1 << 16})
	require.NoError(t, err)
	gotL, gotF := collect(subL), collect(subF)

	const writers = 4
	acked := make([]int64, writers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			key := fmt.Sprintf("count/%d", w)
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch r.IntN(3) {
				case 0:
					_, _, err = leader.Increment(key, 1)
					if err == nil {
						acked[w]++
					}
				case 1:
					_, err = leader.Set(fmt.Sprintf("k%d", r.IntN(20)), fmt.Sprint(r.IntN(1000)), nil)
				default:
					// A CAS that fails reads the key's newest version,
					// maybe speculative: it must wait for it.
					_, err = leader.CompareAndSwap(fmt.Sprintf("k%d", r.IntN(20)), 1, "x", nil)
					if errors.Is(err, engine.ErrConflict) {
						err = nil
					}
				}
				if err != nil && !errors.Is(err, errNotCommitted) && !errors.Is(err, errNotLeader) && !errors.Is(err, engine.ErrAbandoned) {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	r := rand.New(rand.NewPCG(7, 7))
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
		if r.IntN(10) == 0 {
			sim.lose(t, lc)
		} else {
			sim.commit(t, 1+r.IntN(8), lc, fc)
		}
	}
	close(stop)
	// Writers still waiting are answered by the next commit or loss.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		default:
			sim.commit(t, 1<<30, lc, fc)
			time.Sleep(time.Millisecond)
		}
	}
	sim.commit(t, 1<<30, lc, fc)

	require.Equal(t, sim.committed, leader.Revision())
	require.Equal(t, sim.committed, follower.Revision())
	require.Positive(t, sim.losses, "some commits were abandoned")
	for w := range writers {
		for _, db := range []*engine.DB{leader, follower} {
			it, err := db.Get(fmt.Sprintf("count/%d", w))
			if acked[w] == 0 {
				require.ErrorIs(t, err, engine.ErrNotFound)
				continue
			}
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(acked[w]), it.Value, "writer %d", w)
		}
	}
	var bl, bf bytes.Buffer
	_, err = leader.Backup(&bl)
	require.NoError(t, err)
	_, err = follower.Backup(&bf)
	require.NoError(t, err)
	require.Equal(t, bl.Bytes(), bf.Bytes())
	require.Equal(t, leader.Stats().Keys, follower.Stats().Keys)

	sim.close()
	require.NoError(t, leader.Close())
	require.NoError(t, follower.Close())
	want := make([]int64, sim.committed)
	for i := range want {
		want[i] = int64(i + 1)
	}
	require.Equal(t, want, <-gotL, "leader's subscriber")
	require.Equal(t, want, <-gotF, "follower's subscriber")
}

// panicAppend panics in Append while boom is set, and refuses every
// write otherwise.
type panicAppend struct{ boom *atomic.Bool }

func (p panicAppend) Append(*wal.Tx) error {
	if p.boom.Load() {
		panic("append failure")
	}
	return errFollower
}
func (panicAppend) WaitDurable(int64) error { return errFollower }

// TestReplica_PanickingAppend: a Replicator whose Append panics under the
// writer lock lets the panic go on, and the transaction's writes are
// taken back and the lock released.
func TestReplica_PanickingAppend(t *testing.T) {
	var boom atomic.Bool
	db, _, err := engine.OpenReplica(&engine.Options{Replicator: panicAppend{&boom}})
	require.NoError(t, err)
	boom.Store(true)
	require.PanicsWithValue(t, "append failure", func() {
		_, _ = db.Update(func(tx *engine.Tx) error {
			_, err := tx.Set("a", "1", nil)
			return err
		})
	})
	boom.Store(false)
	require.True(t, setReturns(db), "Set blocked after the recovered panic: the writer lock was left held")
	require.NoError(t, db.View(func(tx *engine.Tx) error {
		_, err := tx.Get("a")
		require.ErrorIs(t, err, engine.ErrNotFound)
		return nil
	}))
	require.Zero(t, db.Stats().Keys)
	require.NoError(t, db.Close())
}
