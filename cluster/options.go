package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/engine"
)

// Peer is one voting member of the cluster: its node ID and the address of
// its raft port.
type Peer struct {
	ID   string
	Addr string
}

// Profile names a set of raft timeouts.
type Profile string

// Timing profiles.
const (
	// ProfileDefault is hashicorp/raft's defaults: heartbeat and election
	// timeouts 1 s, leader lease 500 ms. It suits nodes on different
	// machines and is the zero value.
	ProfileDefault Profile = "default"

	// ProfileLAN is 200 ms heartbeat and election timeouts and a 100 ms
	// leader lease, for nodes on one LAN or one machine: failover is about
	// five times faster, at the price of more elections when the network
	// or the disk stalls. Its commit timeout is 5 ms: when writes pause,
	// the leader tells the followers of its last commit within 5 to 10 ms
	// (the default: 50 to 100), so that their reads and subscribers see
	// it sooner. The price: while idle, the leader sends each follower an
	// empty append every 5 to 10 ms.
	ProfileLAN Profile = "lan"
)

// profiles are the known profiles, the default first; a new one is added
// here and in raftConfig and ioTimeout.
var profiles = []Profile{ProfileDefault, ProfileLAN}

// ParseProfile returns the profile a name gives; "" is ProfileDefault. An
// unknown name is an error that wraps ErrInvalidOptions and lists the
// known ones. Open checks Options.Profile with it.
func ParseProfile(s string) (Profile, error) { return parseName(s, profiles, "profile") }

// LogStore names the store that keeps a node's raft log and its stable
// state (current term, vote).
type LogStore string

// Log stores.
const (
	// LogStoreBolt keeps the raft log and stable state in one BoltDB file,
	// raft.db, with hashicorp/raft-boltdb. It is the default and the zero
	// value.
	LogStoreBolt LogStore = "bolt"

	// LogStoreWAL keeps the raft log in append-only segment files with
	// hashicorp/raft-wal, in the directory wal/, and the stable state in
	// its wal-meta.db. An append costs one fsync rather than BoltDB's two.
	// raft-wal calls itself experimental.
	LogStoreWAL LogStore = "wal"
)

// logStores are the known log stores, the default first; a new one is
// added here and in openLogStore.
var logStores = []LogStore{LogStoreBolt, LogStoreWAL}

// ParseLogStore returns the log store a name gives; "" is LogStoreBolt.
// An unknown name is an error that wraps ErrInvalidOptions and lists the
// known ones. Open checks Options.LogStore with it.
func ParseLogStore(s string) (LogStore, error) { return parseName(s, logStores, "log store") }

// parseName returns the one of known that s names, known[0] for "", or
// an error that wraps ErrInvalidOptions and lists them.
func parseName[T ~string](s string, known []T, what string) (T, error) {
	if s == "" {
		return known[0], nil
	}
	for _, k := range known {
		if s == string(k) {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: unknown %s %.40q: give %s", ErrInvalidOptions, what, s, orList(known))
}

// orList is names as "a, b or c".
func orList[T ~string](names []T) string {
	var b strings.Builder
	for i, n := range names {
		switch {
		case i == 0:
		case i == len(names)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(n))
	}
	return b.String()
}

// Options configure a Node. Open copies them; the zero value of every field
// means its default.
type Options struct {
	// NodeID is this node's unique, stable name in the cluster. Required.
	NodeID string

	// RaftAddr is the host:port of this node's one TCP port, which serves
	// both raft and the cluster RPC. Other nodes dial it, so it must be
	// reachable from them (not 0.0.0.0). Required. The node listens on
	// it unless Listener is set.
	RaftAddr string

	// Peers are the voters of a new cluster, this node included. Every
	// founding node gets the same list. They are used only when Dir holds
	// no raft state yet; a restarted node ignores them and takes its
	// membership from its log.
	Peers []Peer

	// Join lists raft addresses of existing members. A node that has no
	// raft state and no Peers asks them, in order, to add it; its raft
	// takes part in nothing until the leader has (see Node.Join). The
	// leader refuses, and Open fails with ErrInvalidOptions, a node whose
	// ID is a voter: one whose folder was lost, which must be removed
	// and join under a new ID. A node with raft state joins again when
	// the configuration it holds lists it as no voter at RaftAddr
	// (missing, a non-voter, or at another address), or when the leader,
	// asked once through Join, does not list it (removed while it was
	// down);
	// one whose configuration shares no member with the cluster's is
	// refused, ErrJoinRefused, as holding another cluster's state.
	Join []string

	// Profile chooses the raft timeouts. Default ProfileDefault.
	Profile Profile

	// LogStore chooses where the raft log is kept. Default LogStoreBolt.
	// A directory that already holds raft state must be opened with the
	// store that wrote it; Open refuses the other with ErrInvalidOptions.
	LogStore LogStore

	// SnapshotThreshold and SnapshotInterval say when raft takes a
	// snapshot: once this many entries were applied since the last one,
	// checked every interval. Defaults 8192 and 120 s.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration

	// TrailingLogs is how many entries stay in the log after a snapshot, so
	// that a follower that was down briefly catches up from the log rather
	// than by a full snapshot. Default 10240.
	TrailingLogs uint64

	// WriteTimeout bounds how long a write waits to learn whether it
	// committed; past it the write fails with ErrUncertain. It also
	// bounds a linearizable read's wait for the leader. Default 10 s.
	WriteTimeout time.Duration

	// LeaseReads lets the leader serve linearizable reads under a lease
	// instead of confirming its leadership with a quorum round per batch
	// of reads: while a quorum of voters has promised, by their heartbeat
	// timeouts, not to elect anyone else, the leader reads locally, as
	// fast as a stale read; followers' linearizable reads get the read
	// index from the leader without its round. It assumes the nodes'
	// clocks run at rates within 10% of each other (see lease.go and
	// docs/cluster.md). Default false: every linearizable read is
	// confirmed by a quorum round (ReadIndex).
	LeaseReads bool

	// Engine configures the node's database: its size limits, history
	// and clock. Its Sync, checkpoint and file-system fields do not
	// apply: the raft log keeps the data durable. Only the leader sweeps
	// expired keys, as soon as the first is due and at least every
	// SweepInterval (1 s if it is 0 or negative: a cluster always
	// sweeps); every node shows a key until its expiry commits.
	Engine *engine.Options

	// Listener, if set, is the listener the node serves on instead of
	// listening on RaftAddr itself; the node closes it. Tests pass a
	// listener bound to port 0.
	Listener net.Listener

	// Dial, if set, opens connections to other nodes instead of a plain
	// TCP dial. Tests route every link through a proxy that can delay,
	// drop or cut it (see package clustertest).
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// TLS, if set, makes the node speak mutual TLS to the others, raft
	// and RPC alike: it serves its port with TLS, asks every connecting
	// node for a certificate that RootCAs (ClientCAs, if set) verifies,
	// and shows its own certificate when it dials, verifying the other's
	// against RootCAs and the host of its address (a name or an IP
	// address the certificate must carry; ServerName instead, if set,
	// for every node dialed). Every node and every Remote
	// of the cluster needs it, with certificates for both server and
	// client authentication (or for neither usage restricted). Without
	// TLS the cluster's port takes any connection: anyone who can reach
	// it can join raft's traffic, so keep it on a private network.
	// RootCAs may not be nil, ClientCAs set or not (the system's roots,
	// which sign certificates for anyone, would verify the nodes
	// dialed), nor InsecureSkipVerify be set without a VerifyConnection
	// or VerifyPeerCertificate that does the verification it skips. The
	// config's ClientAuth is overridden, as is that of the configs its
	// GetConfigForClient returns; the node keeps a copy. TLS runs over
	// Listener and Dial, when they are set.
	TLS *tls.Config

	// Logf receives raft's log lines (level info and above). Default:
	// nothing is logged.
	Logf func(format string, args ...any)

	// walSegmentSize is the size of raft-wal's segment files; 0 for
	// raft-wal's default (64 MiB, preallocated). Tests make them small.
	walSegmentSize int

	// storeFault, if set, runs before every write to the raft log,
	// stable and snapshot stores and fails it with its error. Tests
	// make the disk full this way.
	storeFault func() error

	// beforeApply, if set, runs between the proposer's packing of an
	// entry and its handing to raft. Tests make that moment long.
	beforeApply func()

	// applyEntry, if set, runs as the FSM starts to apply a command
	// entry. Tests hold a node's applying there.
	applyEntry func()

	// linearized, if set, runs as a linearizable read that waited for
	// its read index is about to read. Tests stall reads there.
	linearized func()

	// afterReadIndex, if set, runs between a leader's taking of a read
	// index and the confirming of its leadership. Tests stall there.
	afterReadIndex func()

	// sweepHeld, if set, holds the leader's sweeps while it returns true.
	sweepHeld func() bool
}

// withDefaults returns a validated copy of o with every zero field set to
// its default.
func (o *Options) withDefaults() (Options, error) {
	if o == nil {
		return Options{}, fmt.Errorf("%w: nil options", ErrInvalidOptions)
	}
	c := *o
	c.Peers = append([]Peer(nil), o.Peers...)
	c.Join = append([]string(nil), o.Join...)
	if c.NodeID == "" {
		return c, fmt.Errorf("%w: NodeID is empty", ErrInvalidOptions)
	}
	if c.RaftAddr == "" {
		return c, fmt.Errorf("%w: RaftAddr is empty", ErrInvalidOptions)
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return c, fmt.Errorf("%w: RaftAddr %q: %v", ErrInvalidOptions, c.RaftAddr, err)
	}
	var err error
	if c.Profile, err = ParseProfile(string(c.Profile)); err != nil {
		return c, err
	}
	if c.LogStore, err = ParseLogStore(string(c.LogStore)); err != nil {
		return c, err
	}
	if len(c.Peers) > 0 {
		ids, addrs := map[string]bool{}, map[string]bool{}
		self := false
		for _, p := range c.Peers {
			if p.ID == "" || p.Addr == "" {
				return c, fmt.Errorf("%w: peer %q at %q lacks an ID or address", ErrInvalidOptions, p.ID, p.Addr)
			}
			if ids[p.ID] || addrs[p.Addr] {
				return c, fmt.Errorf("%w: peer %s at %s is listed twice", ErrInvalidOptions, p.ID, p.Addr)
			}
			ids[p.ID], addrs[p.Addr] = true, true
			if p.ID == c.NodeID {
				if p.Addr != c.RaftAddr {
					return c, fmt.Errorf("%w: Peers give %s the address %s, RaftAddr is %s", ErrInvalidOptions, p.ID, p.Addr, c.RaftAddr)
				}
				self = true
			}
		}
		if !self {
			return c, fmt.Errorf("%w: Peers do not include this node %s", ErrInvalidOptions, c.NodeID)
		}
	}
	if c.TLS != nil {
		if len(c.TLS.Certificates) == 0 && (c.TLS.GetCertificate == nil || c.TLS.GetClientCertificate == nil) {
			// The node shows its certificate when it serves and when it dials.
			return c, fmt.Errorf("%w: TLS has no certificate (Certificates, or both GetCertificate and GetClientCertificate)", ErrInvalidOptions)
		}
		if err := verifiesNodes(c.TLS); err != nil {
			return c, err
		}
		c.TLS = c.TLS.Clone()
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 120 * time.Second
	}
	if c.SnapshotInterval < 0 {
		return c, fmt.Errorf("%w: SnapshotInterval %v is negative", ErrInvalidOptions, c.SnapshotInterval)
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.WriteTimeout < 0 {
		return c, fmt.Errorf("%w: WriteTimeout %v is negative", ErrInvalidOptions, c.WriteTimeout)
	}
	if c.Engine != nil {
		e := *c.Engine
		c.Engine = &e
	}
	return c, nil
}

// raftConfig returns the raft configuration for o, whose defaults are set.
func (o *Options) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(o.NodeID)
	if o.Profile == ProfileLAN {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	rc.SnapshotThreshold = o.SnapshotThreshold
	rc.SnapshotInterval = o.SnapshotInterval
	rc.TrailingLogs = o.TrailingLogs
	rc.LogOutput = o.logWriter()
	rc.LogLevel = "INFO"
	return rc
}

// ioTimeout bounds one raft RPC on the network; a link that swallows
// packets holds replication to a peer up for at most this long.
func (o *Options) ioTimeout() time.Duration {
	if o.Profile == ProfileLAN {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// logf returns Logf, or a function that logs nothing.
func (o *Options) logf() func(string, ...any) {
	if o.Logf == nil {
		return func(string, ...any) {}
	}
	return o.Logf
}

// logWriter returns the writer raft's loggers write to.
func (o *Options) logWriter() io.Writer {
	if o.Logf == nil {
		return io.Discard
	}
	return logfWriter(o.Logf)
}

// logfWriter passes each line written to it to a Logf function.
type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		f("%s", line)
	}
	return len(p), nil
}
