package engine_test

import (
	"errors"
	"math/rand/v2"
	"testing"

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
