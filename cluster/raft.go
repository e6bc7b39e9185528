package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Files in a node's directory.
const (
	snapshotDir = "." // FileSnapshotStore adds "snapshots" below it
	snapRetain  = 2   // raft snapshots kept on disk
	maxPool     = 3   // pooled outbound raft connections per peer
)

// keyCurrentTerm is raft's key for its current term in the stable store.
var keyCurrentTerm = []byte("CurrentTerm")

// keyVoteGate, in the stable store, is 1 while the votes of a founder
// whose folder was lost are gated (voteGate): restarted before it has
// caught up, it gates them again.
var keyVoteGate = []byte("livekv_vote_gate")

// raftNode is raft with its stores and transport, on a mux.
type raftNode struct {
	dir   string // the node's raft directory: log store and snapshots
	opts  Options
	mux   *mux
	raft  *raft.Raft
	trans *raft.NetworkTransport
	gate  *voteGate // the votes of a founder that started with no state, until caught up; nil for other nodes
	store *raftStore
	snaps raft.SnapshotStore

	// snapsWritten counts the snapshots persisted since start, taken or
	// received from a leader.
	snapsWritten *atomic.Int64

	// heartbeat is raft's HeartbeatTimeout: a follower that heard from
	// its leader within it refuses to vote for anyone else.
	heartbeat time.Duration

	// bootstrapped says whether this start founded the cluster.
	bootstrapped bool

	// fresh says whether this start found no raft state and founded no
	// cluster: a new node, or one whose folder was lost. Its mux keeps
	// raft's connections out until a leader has accepted it (Join).
	fresh bool

	stopOnce sync.Once
	stopped  raft.Future // raft's shutdown, once stop ran
}

// stop shuts raft down, once, without waiting for it: raft's own
// goroutines may call it. close waits for the shutdown.
func (n *raftNode) stop() raft.Future {
	n.stopOnce.Do(func() { n.stopped = n.raft.Shutdown() })
	return n.stopped
}

// startRaft opens the stores in dir, serves raft on the mux m and starts
// raft with fsm. A dir without raft state is bootstrapped with o.Peers, if
// any; without them the node is fresh, and m's raft stays shut (see
// mux.raftOpen), else startRaft opens it. closing is closed when the node starts closing (see raftStore).
// With gateVotes, a node bootstrapped here, or restarted with its gate
// still up (keyVoteGate), withholds votes until it has caught up with a
// leader (voteGate).
// On error everything opened is closed again, m included.
func startRaft(dir string, o *Options, m *mux, fsm stateMachine, closing <-chan struct{}, gateVotes bool) (_ *raftNode, err error) {
	n := &raftNode{dir: dir, opts: *o, mux: m}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	inner, err := openLogStore(dir, o)
	if err != nil {
		return nil, err
	}
	n.store = &raftStore{logStore: inner, fault: o.storeFault, tracker: fsm.tracker(), closing: closing, logf: o.logf(),
		cut: func() { _ = m.Close() }}
	snaps, err := openSnapStore(dir, o, fsm.tracker())
	if err != nil {
		return nil, err
	}
	n.snaps, n.snapsWritten = snaps, snaps.written
	if o.storeFault != nil {
		n.snaps = faultySnaps{snaps, o.storeFault}
	}
	n.trans = raft.NewNetworkTransport(raftLayer{m.raft}, maxPool, o.ioTimeout(), o.logWriter())
	var trans raft.Transport = syncTransport{n.trans}
	rc := o.raftConfig()
	n.heartbeat = rc.HeartbeatTimeout
	exists, err := raft.HasExistingState(n.store, n.store, n.snaps)
	if err != nil {
		return nil, fmt.Errorf("cluster: read raft state: %w", err)
	}
	n.fresh = !exists && len(o.Peers) == 0
	if !n.fresh {
		m.openRaft()
	}
	if exists {
		// A restarted node has forgotten its leader and would vote at
		// once; before it went down it may have told a leader it would
		// not, for up to a heartbeat timeout (a lease, lease.go). Wait
		// that out before raft runs.
		select {
		case <-time.After(rc.HeartbeatTimeout):
		case <-closing:
			return nil, ErrClosed
		}
	}
	held := false // the votes were gated when the node stopped
	if exists && gateVotes {
		v, err := n.store.GetUint64(keyVoteGate)
		if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
			return nil, fmt.Errorf("cluster: read raft state: %w", err)
		}
		held = v == 1
	}
	if !exists && len(o.Peers) > 0 {
		cfg := voters(o.Peers)
		if err := raft.BootstrapCluster(rc, n.store, n.store, n.snaps, trans, cfg); err != nil {
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
		n.bootstrapped = true
	}
	if gateVotes && (n.bootstrapped || held) {
		n.gate = newVoteGate(syncTransport{n.trans}, o.NodeID, o.RaftAddr)
		n.gate.held = held
		trans = n.gate
	}
	// raft saves its term as it starts and panics if it cannot: find
	// out first whether the disk takes a write, then let raft's stable
	// writes wait for space rather than fail.
	term, err := n.store.GetUint64(keyCurrentTerm)
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return nil, fmt.Errorf("cluster: read raft state: %w", err)
	}
	if err := n.store.SetUint64(keyCurrentTerm, term); err != nil {
		return nil, fmt.Errorf("cluster: the raft store takes no write: %w", err)
	}
	n.store.retry.Store(true)
	n.raft, err = raft.NewRaft(rc, fsm, n.store, n.store, n.snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	if n.gate != nil {
		n.gate.start(n.trans.Consumer(), n.raft, n.termAt)
	}
	return n, nil
}

// termAt returns the term of the entry at idx, if this node holds it: in
// its log, or as the last entry of one of its snapshots. A node that
// caught up by installing its leader's snapshot holds the entries it
// covers there alone (raft trims the log up to it).
func (n *raftNode) termAt(idx uint64) (uint64, bool) {
	if term, ok := n.store.termAt(idx); ok {
		return term, true
	}
	metas, err := n.snaps.List()
	if err != nil {
		return 0, false
	}
	for _, m := range metas {
		if m.Index == idx {
			return m.Term, true
		}
	}
	return 0, false
}

// openSnapStore opens the raft snapshot store in dir, once the log store
// is open (no other node runs on dir), and removes what snapshots a
// crash cut short left there.
func openSnapStore(dir string, o *Options, t *appliedTracker) (snapStore, error) {
	fss, err := raft.NewFileSnapshotStore(filepath.Join(dir, snapshotDir), snapRetain, o.logWriter())
	if err != nil {
		return snapStore{}, fmt.Errorf("cluster: open snapshots: %w", err)
	}
	if err := removePartialSnapshots(filepath.Join(dir, snapshotDir, "snapshots"), o.logf()); err != nil {
		return snapStore{}, err
	}
	return snapStore{fss, t, new(atomic.Int64)}, nil
}

// removePartialSnapshots removes from the snapshot folder path the
// folders of snapshots that were being written, by this node or received
// from its leader, when the node stopped: raft's FileSnapshotStore writes
// a snapshot under a ".tmp" name and renames it once complete, passes
// over such folders, and never removes them. Each is as large as the
// state.
func removePartialSnapshots(path string, logf func(string, ...any)) error {
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("cluster: open snapshots: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(path, e.Name())); err != nil {
			return fmt.Errorf("cluster: remove a partial snapshot: %w", err)
		}
		logf("cluster: removed %s, a snapshot cut short when the node stopped", e.Name())
	}
	return nil
}

// voters is the raft configuration whose voters are peers.
func voters(peers []Peer) raft.Configuration {
	var cfg raft.Configuration
	for _, p := range peers {
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	return cfg
}

// syncTransport is raft's network transport without pipelined
// replication: every AppendEntries to a follower waits for the answer to
// the one before (raft still packs up to MaxAppendEntries entries in one).
// In raft v1.7.2 the pipeline wedges when a follower refuses entries, as
// one whose disk is full does: the pipeline's decoder stops reading at
// the refusal while the sender may already be blocked on the next send,
// both on unbuffered channels; replication to that follower then stops
// for good while heartbeats keep it from calling an election. hashicorp
// measured the pipeline to bring little (NetworkTransportConfig's
// MaxRPCsInFlight).
type syncTransport struct{ *raft.NetworkTransport }

func (syncTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// close stops raft, then the transport and every connection, then the
// stores. It leaves no goroutine running.
func (n *raftNode) close() error {
	var errs []error
	if n.raft != nil {
		if err := n.stop().Error(); err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
			errs = append(errs, err)
		}
	}
	if n.trans != nil {
		n.trans.Close()
		n.trans.CloseStreams()
	}
	if n.gate != nil {
		n.gate.close()
	}
	if n.mux != nil {
		if err := n.mux.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := n.store.fenceErr(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
