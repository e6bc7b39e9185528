package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/raft"
)

// Errors of Recover.
var (
	// ErrNoRaftState is returned by Recover for a directory that holds no
	// raft state: nothing to recover (a wrong path, most likely).
	ErrNoRaftState = errors.New("cluster: no raft state in the directory")

	// ErrNodeRunning is returned by Open and Recover for a directory
	// whose raft store another process, or this one, has open: stop the
	// node first. (Where the lock cannot be tested, outside unix, Open
	// waits for it.)
	ErrNodeRunning = errors.New("cluster: the node's raft store is open; stop the node first")
)

// Recover rewrites the membership of the stopped node opts.NodeID, whose
// raft state is in dir, to peers, the voters of the new configuration
// (this node among them): the way out for a cluster that has lost its
// majority for good. Run it on every surviving node's directory with the
// same peers, then open them with Open as usual: they elect a leader
// among themselves and serve again. See docs/cluster.md, "Majority lost".
//
// It is hashicorp/raft's RecoverCluster over the node's own log store
// and state machine. The node keeps every entry it had: the entries up to
// its last snapshot, or to the last configuration change in its log if
// that comes later, go into a new snapshot that carries the new
// configuration; the entries after it stay in the log, and the node
// applies them once the new cluster's leader commits, so that its
// subscriptions' history is rebuilt as on any restart. (RecoverCluster
// alone cuts at the log's end and deletes the whole log, and with it the
// history subscriptions resume from. Cut at the last configuration change
// or later, the entries left hold no configuration that would override
// the new one.) Entries that never committed are kept as raft keeps any:
// the new cluster's leader decides.
//
// opts are the node's options as Open takes them; only NodeID,
// RaftAddr (default: this node's address in peers), LogStore (default:
// the store whose files dir holds), Engine and Logf matter. Recover
// returns ErrInvalidOptions for peers that are empty, list a node or an
// address twice, or leave this node out, ErrNoRaftState for a directory
// without raft state, and ErrNodeRunning when the node still runs.
func Recover(dir string, opts *Options, peers []Peer) error {
	if opts == nil {
		return fmt.Errorf("%w: nil options", ErrInvalidOptions)
	}
	if len(peers) == 0 {
		return fmt.Errorf("%w: no peers to recover with", ErrInvalidOptions)
	}
	o := *opts
	o.Peers, o.Join = peers, nil
	if o.RaftAddr == "" {
		for _, p := range peers {
			if p.ID == o.NodeID {
				o.RaftAddr = p.Addr
			}
		}
		if o.RaftAddr == "" {
			return fmt.Errorf("%w: peers do not include this node %q", ErrInvalidOptions, o.NodeID)
		}
	}
	boltPath, walPath := filepath.Join(dir, raftDBFile), filepath.Join(dir, walDir)
	_, boltErr := os.Stat(boltPath)
	_, walErr := os.Stat(walPath)
	if o.LogStore == "" && walErr == nil && boltErr != nil {
		o.LogStore = LogStoreWAL
	}
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	if boltErr != nil && walErr != nil {
		return fmt.Errorf("%w: %s holds neither %s nor %s", ErrNoRaftState, dir, raftDBFile, walDir)
	}
	// openLogStore refuses a store that a running node holds
	// (ErrNodeRunning), and a directory of the other store.
	return recoverDir(dir, &o, peers)
}

// recoverDir is Recover once its arguments are checked.
func recoverDir(dir string, o *Options, peers []Peer) (err error) {
	sm, err := openStateMachine(o, func() error { return ErrNotLeader })
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sm.db.Close()) }()
	f := &recoverFSM{fsm: sm.fsm}
	defer f.release()

	logs, err := openLogStore(dir, o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, logs.Close()) }()
	snaps, err := openSnapStore(dir, o, f.tracker())
	if err != nil {
		return err
	}
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("cluster: read raft state: %w", err)
	}
	if !has {
		return fmt.Errorf("%w: %s", ErrNoRaftState, dir)
	}
	cut, err := recoveryPoint(logs, snaps)
	if err != nil {
		return err
	}
	cfg := voters(sortedPeers(peers))
	_, trans := raft.NewInmemTransport(raft.ServerAddress(o.RaftAddr))
	defer trans.Close()
	if err := raft.RecoverCluster(o.raftConfig(), f, &cutLog{logStore: logs, last: cut}, logs, snaps, trans, cfg); err != nil {
		return fmt.Errorf("cluster: recover %s: %w", dir, err)
	}
	if err := f.err(); err != nil {
		return fmt.Errorf("cluster: recover %s: %w", dir, err)
	}
	o.logf()("cluster: recovered %s as %s with the voters %v; snapshot at raft index %d", dir, o.NodeID, peers, cut)
	return nil
}

// sortedPeers is peers in the order of their IDs, so that every survivor
// recovered with the same list writes the same configuration.
func sortedPeers(peers []Peer) []Peer {
	s := slices.Clone(peers)
	slices.SortFunc(s, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// recoveryPoint is the raft index at which the recovered node's new
// snapshot is cut: its newest snapshot's index, or the index of the last
// configuration entry in its log if that is later (raft would take that
// entry, past the snapshot, for the configuration); the log's last index
// if neither is known.
func recoveryPoint(logs raft.LogStore, snaps raft.SnapshotStore) (uint64, error) {
	var cut uint64
	list, err := snaps.List()
	if err != nil {
		return 0, fmt.Errorf("cluster: list snapshots: %w", err)
	}
	if len(list) > 0 {
		cut = list[0].Index
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("cluster: read raft log: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("cluster: read raft log: %w", err)
	}
	if first == 0 {
		return cut, nil // an empty log: all is in the snapshot
	}
	for i := max(first, cut+1); i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("cluster: read raft log entry %d: %w", i, err)
		}
		switch l.Type {
		case raft.LogConfiguration, raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated:
			cut = i
		}
	}
	if cut == 0 {
		cut = last
	}
	return cut, nil
}

// cutLog is the node's log as RecoverCluster sees it: ending at last.
// RecoverCluster applies the entries up to it, snapshots there, and
// deletes them; those after it stay.
type cutLog struct {
	logStore
	last uint64
}

func (l *cutLog) LastIndex() (uint64, error) {
	last, err := l.logStore.LastIndex()
	return min(last, l.last), err
}

func (l *cutLog) DeleteRange(lo, hi uint64) error {
	first, err := l.logStore.FirstIndex()
	if err != nil {
		return err
	}
	lo, hi = max(lo, first), min(hi, l.last)
	if first == 0 || lo > hi {
		return nil
	}
	return l.logStore.DeleteRange(lo, hi)
}

// recoverFSM is the node's state machine during a recovery. It releases
// the snapshot RecoverCluster takes, which RecoverCluster does not.
type recoverFSM struct {
	*fsm
	snap raft.FSMSnapshot
}

func (f *recoverFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.fsm.Snapshot()
	if err == nil {
		f.snap = s
	}
	return s, err
}

func (f *recoverFSM) release() {
	if f.snap != nil {
		f.snap.Release()
		f.snap = nil
	}
}
