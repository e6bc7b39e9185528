package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/engine"
)

// clusterFlags are serve's cluster-mode flags; without --peers or --join
// serve opens a single database.
type clusterFlags struct {
	node, raft, peers, join, profile, raftLog string
	leaseReads                                bool
	tls                                       raftTLSFlags
	tlsConfig                                 *tls.Config // tls loaded, once serve has checked the flags
}

// errTLSFlagsTogether is the usage error of some --raft-tls-* flags
// given without the others.
const errTLSFlagsTogether = "--raft-tls-cert, --raft-tls-key and --raft-tls-ca go together"

// raftTLSFlags are the files of mutual TLS between nodes
// (cluster.Options.TLS): this node's certificate and key, and the CA that
// signed every node's certificate. All three, or none.
type raftTLSFlags struct{ cert, key, ca string }

// addRaftTLSFlags defines the --raft-tls-* flags on fs.
func addRaftTLSFlags(fs *flag.FlagSet) *raftTLSFlags {
	var t raftTLSFlags
	fs.StringVar(&t.cert, "raft-tls-cert", "", "cluster mode: speak mutual TLS to the other nodes with this PEM certificate (chain) file, "+
		"for server and client authentication, naming the host of --raft (checked at the start); needs --raft-tls-key and --raft-tls-ca, as does every node")
	fs.StringVar(&t.key, "raft-tls-key", "", "cluster mode: the PEM private key of --raft-tls-cert, unencrypted")
	fs.StringVar(&t.ca, "raft-tls-ca", "", "cluster mode: the PEM certificate(s) of the CA that signed the nodes' certificates; a node shown no certificate it signed is refused")
	return &t
}

// set reports whether any of the flags is given.
func (t raftTLSFlags) set() bool { return t.cert != "" || t.key != "" || t.ca != "" }

// partial reports whether some of the flags are given, not all three.
func (t raftTLSFlags) partial() bool { return t.set() && (t.cert == "" || t.key == "" || t.ca == "") }

// load reads the files into a config for cluster.Options.TLS and
// cluster.NewRemoteTLS; nil when no flag is given. A node's raft address
// (serve's --raft; "" for livekv cluster) is the one the other nodes dial:
// its certificate must name its host, and the CA sign it for both usages,
// or they refuse it.
func (t raftTLSFlags) load(raft string) (*tls.Config, error) {
	if !t.set() {
		return nil, nil
	}
	if t.partial() {
		return nil, errors.New(errTLSFlagsTogether)
	}
	cert, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil && encryptedKey(t.key) {
		return nil, fmt.Errorf("--raft-tls-key: %s is encrypted, and livekv asks no passphrase: decrypt it (openssl pkey -in %[1]s -out FILE) into a file only the node's user can read", t.key)
	}
	if err != nil {
		return nil, fmt.Errorf("--raft-tls-cert, --raft-tls-key: %w", err)
	}
	pem, err := os.ReadFile(t.ca)
	if err != nil {
		return nil, fmt.Errorf("--raft-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--raft-tls-ca: %s holds no PEM certificate", t.ca)
	}
	if raft != "" {
		if err := checkNodeCert(cert, pool, raft); err != nil {
			return nil, err
		}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// encryptedKey reports whether the PEM file holds an encrypted private
// key, which crypto/tls reports only as one it cannot parse.
func encryptedKey(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return false
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return true
		}
	}
}

// checkNodeCert checks that the other nodes, which dial raft and trust
// the CAs of pool, would take cert, so that a node that cannot join its
// cluster says why at its start, rather than nothing while it stays
// without a leader.
func checkNodeCert(cert tls.Certificate, pool *x509.CertPool, raft string) error {
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("--raft-tls-cert: %w", err)
		}
	}
	opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool()}
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			opts.Intermediates.AddCert(c)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		opts.KeyUsages = []x509.ExtKeyUsage{usage}
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("--raft-tls-cert: the other nodes would refuse it, verified with --raft-tls-ca: %w", err)
		}
	}
	host, _, err := net.SplitHostPort(raft)
	if err != nil {
		return fmt.Errorf("--raft %s: %w", raft, err)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("--raft-tls-cert does not name %s, the host of --raft that the other nodes dial and check it against: %w", host, err)
	}
	return nil
}

// check finds the cluster flags that make no sense together, or whose
// values make none.
func (cf clusterFlags) check() error {
	if _, err := cluster.ParseProfile(cf.profile); err != nil {
		return fmt.Errorf("--raft-profile: %w", err)
	}
	store, err := cluster.ParseLogStore(cf.raftLog)
	if err != nil {
		return fmt.Errorf("--raft-log: %w", err)
	}
	if cf.peers == "" && cf.join == "" {
		if cf.node != "" || cf.raft != "" {
			return errors.New("--node and --raft need --peers or --join")
		}
		if store != cluster.LogStoreBolt {
			return errors.New("--raft-log needs --peers or --join")
		}
		if cf.leaseReads {
			return errors.New("--lease-reads needs --peers or --join")
		}
		if cf.tls.set() {
			return errors.New("--raft-tls-cert, --raft-tls-key and --raft-tls-ca need --peers or --join")
		}
		return nil
	}
	if cf.peers != "" && cf.join != "" {
		// A new node given both would found a cluster of its own with
		// --peers and never join: two clusters.
		return errors.New("give --peers (the nodes that found the cluster) or --join (the nodes to join), not both")
	}
	if cf.raft == "" {
		return errors.New("cluster mode needs --raft HOST:PORT")
	}
	if cf.tls.partial() {
		return errors.New(errTLSFlagsTogether)
	}
	if _, err := cf.joinList(); err != nil {
		return err
	}
	_, err = cf.peerList()
	return err
}

// joinList is --join, each address without the spaces around it, as
// --peers takes them: "a:7001, b:7002" is two addresses.
func (cf clusterFlags) joinList() ([]string, error) {
	if cf.join == "" {
		return nil, nil
	}
	var out []string
	for _, a := range strings.Split(cf.join, ",") {
		if a = strings.TrimSpace(a); a == "" {
			return nil, fmt.Errorf("--join %q: an empty address", cf.join)
		}
		out = append(out, a)
	}
	return out, nil
}

// peerList is --peers.
func (cf clusterFlags) peerList() ([]cluster.Peer, error) {
	if cf.peers == "" {
		return nil, nil
	}
	var out []cluster.Peer
	for _, p := range strings.Split(cf.peers, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return nil, fmt.Errorf("--peers: %q is not ID=HOST:PORT", p)
		}
		out = append(out, cluster.Peer{ID: id, Addr: addr})
	}
	return out, nil
}

// store is what serve serves: a database, or a cluster node.
type store struct {
	store adapter.Store
	db    *engine.DB    // single-node mode
	node  *cluster.Node // cluster mode
}

// local is the database on this machine: the node's own copy in cluster
// mode.
func (s *store) local() *engine.DB {
	if s.node != nil {
		return s.node.DB()
	}
	return s.db
}

// ready reports whether the store takes writes, with its revision: its
// database is open and its log works, and, in cluster mode, the node
// knows a leader (one without refuses every write).
func (s *store) ready() (int64, error) {
	db := s.local()
	if err := db.Err(); err != nil {
		return 0, err
	}
	if s.node != nil {
		if id, _ := s.node.Leader(); id == "" {
			return 0, cluster.ErrNoLeader
		}
	}
	return db.Revision(), nil
}

func (s *store) Close() error {
	if s.node != nil {
		return s.node.Close()
	}
	return s.db.Close()
}

// openStore opens the database in dir, or, with cluster flags (which
// check has passed), the cluster node whose raft state is in dir/raft. A
// node serves each read at its client's level and forwards writes to the
// leader. ctx ending stops a node's opening (cluster.OpenContext).
func openStore(ctx context.Context, dir string, eo engine.Options, cf clusterFlags) (*store, error) {
	if cf.peers == "" && cf.join == "" {
		db, err := engine.Open(dir, &eo)
		if err != nil {
			return nil, err
		}
		return &store{store: db, db: db}, nil
	}
	o := &cluster.Options{NodeID: cf.node, RaftAddr: cf.raft, Profile: cluster.Profile(cf.profile),
		LogStore: cluster.LogStore(cf.raftLog), LeaseReads: cf.leaseReads, TLS: cf.tlsConfig, Engine: &eo}
	if eo.Logf != nil {
		o.Logf = newRaftLog(eo.Logf).Logf // raft's lines, repeats throttled
	}
	if o.NodeID == "" {
		o.NodeID = cf.raft
	}
	var err error
	if o.Peers, err = cf.peerList(); err != nil {
		return nil, err
	}
	if o.Join, err = cf.joinList(); err != nil {
		return nil, err
	}
	n, err := cluster.OpenContext(ctx, filepath.Join(dir, "raft"), o)
	if err != nil {
		return nil, err
	}
	// The adapter reads each request through the handle's ReadAt, at the
	// level its client asks for: session (read-your-writes) by default.
	return &store{store: n.With(), node: n}, nil
}

// clusterCmd is livekv cluster status|remove ID|transfer [ID] --raft ADDR,
// or cluster recover (recover.go).
func clusterCmd(args []string) error {
	if len(args) > 0 && args[0] == "recover" {
		return clusterRecover(args[1:])
	}
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	addr := fs.String("raft", "127.0.0.1:7001", "the raft address of any node of the cluster")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	tlsFlags := addRaftTLSFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv cluster status|remove ID|transfer [ID] [--raft HOST:PORT] [--raft-tls-cert FILE --raft-tls-key FILE --raft-tls-ca FILE]\n"+
			"       livekv cluster recover --data DIR --node ID --peers ID=HOST:PORT,...\n\n"+
			"status prints a node's view of the cluster as JSON; remove takes a member out (a dead node, say;\n"+
			"an ID that is no member is an error, exit 1); transfer hands leadership to ID, or to any up-to-date\n"+
			"voter; recover, on a stopped node's folder, makes the voters in --peers its cluster, once a majority\n"+
			"is lost for good (see cluster recover --help).")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	var op, id string
	if len(rest) > 0 {
		op = rest[0]
	}
	if len(rest) > 1 {
		id = rest[1]
	}
	switch {
	case op == "":
		return badUsage(fs, "give status, remove ID or transfer [ID]")
	case op != "status" && op != "remove" && op != "transfer":
		return badUsage(fs, fmt.Sprintf("unknown cluster command %q", op))
	case op == "remove" && id == "":
		return badUsage(fs, "remove needs the ID of the node to remove")
	case op == "status" && len(rest) > 1 || len(rest) > 2:
		return badUsage(fs, fmt.Sprintf("%s: too many arguments (%d)", op, len(rest)-1))
	case *timeout <= 0:
		return badUsage(fs, "--timeout must be positive")
	case tlsFlags.partial():
		return badUsage(fs, errTLSFlagsTogether)
	}
	tlsConfig, err := tlsFlags.load("")
	if err != nil {
		return err
	}
	r, err := cluster.NewRemoteTLS(*addr, tlsConfig)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	switch op {
	case "remove":
		return explainTLS(r.RemoveServer(ctx, id), tlsConfig != nil)
	case "transfer":
		return explainTLS(r.TransferLeadership(ctx, id), tlsConfig != nil)
	}
	s, err := r.Status(ctx)
	if err != nil {
		return explainTLS(err, tlsConfig != nil)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// explainTLS adds to err, a node's answer, what it shows when the
// --raft-tls-* flags do not match the cluster's TLS: a node that hangs
// up (one with TLS on a connection without, or one without TLS on a
// handshake), or one that refuses the certificate shown.
func explainTLS(err error, withTLS bool) error {
	var op *net.OpError
	switch {
	case err == nil:
		return nil
	case withTLS && errors.As(err, &op) && op.Op == "remote error":
		return fmt.Errorf("%w (the node refused --raft-tls-cert: it takes certificates that the CA of the cluster's nodes signed, for client authentication)", err)
	case !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET):
		return err
	case withTLS:
		return fmt.Errorf("%w (the node hung up: if the cluster's nodes speak no TLS, leave out the --raft-tls-* flags)", err)
	default:
		return fmt.Errorf("%w (the node hung up: if the cluster's nodes speak TLS, give --raft-tls-cert, --raft-tls-key and --raft-tls-ca)", err)
	}
}
