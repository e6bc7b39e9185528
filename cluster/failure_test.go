package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// TestNode_FailureToApplyLeavesRaft: a node that fails to apply an entry
// holds a state behind the log. It must not take a raft snapshot (raft
// would label it with the index it reached, and compact the log behind
// it), nor lead or vote: it leaves raft, serves nothing (ErrNoLeader, so
// that clients go to another node), and ends its subscriptions so. The
// others go on; a failed leader's place is taken.
func TestNode_FailureToApplyLeavesRaft(t *testing.T) {
	for _, which := range []string{"follower", "leader"} {
		t.Run(which, func(t *testing.T) {
			c := newDBCluster(t, 3, nil)
			c.caughtUp()
			li := c.settle()
			bad := (li + 1) % 3
			if which == "leader" {
				bad = li
			}
			n := c.node(bad)
			sub, err := n.Subscribe([]string{"k*"}, nil)
			require.NoError(t, err)
			defer sub.Close()

			n.fsm.fail(errors.New("injected: an entry that does not apply"))
			_, err = n.fsm.Snapshot()
			require.Error(t, err, "a snapshot of a state behind the log")
			require.Eventually(t, func() bool { return n.rn.raft.State() == raft.Shutdown }, 5*time.Second, time.Millisecond, "still in raft")
			_, err = n.Get("k")
			require.ErrorIs(t, err, ErrNoLeader)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = sub.Next(ctx)
			require.ErrorIs(t, err, ErrNoLeader, "its subscription goes on, silent")

			now := c.leader(bad)
			require.NotEqual(t, bad, now)
			_, err = c.node(now).Set("k", "after", nil)
			require.NoError(t, err, "the others go on")
		})
	}
}
