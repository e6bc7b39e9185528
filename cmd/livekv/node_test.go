package main

import (
	"testing"

	"github.com/livekv/livekv/cluster"
	"github.com/stretchr/testify/require"
)

// TestClusterFlags_Check: serve checks --raft-profile and --raft-log with
// the cluster package's own parsers, so that the names it accepts are the
// ones cluster.Open accepts.
func TestClusterFlags_Check(t *testing.T) {
	raft, peers := "127.0.0.1:7001", "a=127.0.0.1:7001"
	for _, tc := range []struct {
		cf   clusterFlags
		want string // "" if it passes
	}{
		{clusterFlags{}, ""},
		{clusterFlags{profile: "default", raftLog: "bolt"}, ""},
		{clusterFlags{raft: raft, peers: peers, profile: "lan", raftLog: "wal"}, ""},
		{clusterFlags{raft: raft, join: raft, profile: "default"}, ""},
		{clusterFlags{raft: raft, peers: peers, profile: "wan"}, `--raft-profile: cluster: invalid options: unknown profile "wan": give default or lan`},
		{clusterFlags{profile: "LAN"}, "--raft-profile"},
		{clusterFlags{raft: raft, peers: peers, raftLog: "rocks"}, `--raft-log: cluster: invalid options: unknown log store "rocks": give bolt or wal`},
		{clusterFlags{raftLog: "wal"}, "--raft-log needs --peers or --join"},
		{clusterFlags{node: "a"}, "--node and --raft need --peers or --join"},
		{clusterFlags{peers: peers}, "cluster mode needs --raft HOST:PORT"},
		{clusterFlags{raft: raft, peers: "a"}, "is not ID=HOST:PORT"},
		{clusterFlags{node: "a", raft: raft, peers: peers, join: raft}, "not both"},
		{clusterFlags{raft: raft, join: raft + ", " + raft}, ""},
		{clusterFlags{raft: raft, join: raft + ",,"}, "an empty address"},
	} {
		err := tc.cf.check()
		if tc.want == "" {
			require.NoError(t, err, "%+v", tc.cf)
			continue
		}
		require.ErrorContains(t, err, tc.want, "%+v", tc.cf)
	}
	// The names the flags accept are those cluster accepts, and the error
	// says which it knows.
	for _, p := range []cluster.Profile{cluster.ProfileDefault, cluster.ProfileLAN} {
		require.NoError(t, clusterFlags{profile: string(p)}.check())
	}
	err := clusterFlags{profile: "wan"}.check()
	require.ErrorIs(t, err, cluster.ErrInvalidOptions)
	err = clusterFlags{raftLog: "rocks"}.check()
	require.ErrorIs(t, err, cluster.ErrInvalidOptions)
}
