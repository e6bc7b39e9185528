package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func TestOptions_Validate(t *testing.T) {
	peers := []Peer{{"a", "127.0.0.1:1"}, {"b", "127.0.0.1:2"}}
	for _, tc := range []struct {
		name string
		o    *Options
		ok   bool
	}{
		{"nil", nil, false},
		{"no id", &Options{RaftAddr: "127.0.0.1:1"}, false},
		{"no addr", &Options{NodeID: "a"}, false},
		{"bad addr", &Options{NodeID: "a", RaftAddr: "nowhere"}, false},
		{"bad profile", &Options{NodeID: "a", RaftAddr: "127.0.0.1:1", Profile: "wan"}, false},
		{"self missing", &Options{NodeID: "c", RaftAddr: "127.0.0.1:3", Peers: peers}, false},
		{"self elsewhere", &Options{NodeID: "a", RaftAddr: "127.0.0.1:9", Peers: peers}, false},
		{"duplicate", &Options{NodeID: "a", RaftAddr: "127.0.0.1:1", Peers: append(peers, Peer{"a", "127.0.0.1:3"})}, false},
		{"empty peer", &Options{NodeID: "a", RaftAddr: "127.0.0.1:1", Peers: append(peers, Peer{"", "127.0.0.1:3"})}, false},
		{"negative interval", &Options{NodeID: "a", RaftAddr: "127.0.0.1:1", SnapshotInterval: -time.Second}, false},
		{"bad log store", &Options{NodeID: "a", RaftAddr: "127.0.0.1:1", LogStore: "rocks"}, false},
		{"wal", &Options{NodeID: "a", RaftAddr: "127.0.0.1:1", LogStore: LogStoreWAL}, true},
		{"single", &Options{NodeID: "a", RaftAddr: "127.0.0.1:1"}, true},
		{"peers", &Options{NodeID: "b", RaftAddr: "127.0.0.1:2", Peers: peers, Profile: ProfileLAN}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.withDefaults()
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrInvalidOptions)
			}
		})
	}
}

func TestOptions_Profiles(t *testing.T) {
	o, err := (&Options{NodeID: "a", RaftAddr: "127.0.0.1:1"}).withDefaults()
	require.NoError(t, err)
	require.Equal(t, ProfileDefault, o.Profile)
	require.Equal(t, LogStoreBolt, o.LogStore)
	rc := o.raftConfig()
	require.Equal(t, time.Second, rc.HeartbeatTimeout)
	require.Equal(t, time.Second, rc.ElectionTimeout)
	require.Equal(t, 500*time.Millisecond, rc.LeaderLeaseTimeout)
	require.EqualValues(t, 8192, rc.SnapshotThreshold)
	require.EqualValues(t, 10240, rc.TrailingLogs)

	o.Profile = ProfileLAN
	rc = o.raftConfig()
	require.Equal(t, 200*time.Millisecond, rc.HeartbeatTimeout)
	require.Equal(t, 200*time.Millisecond, rc.ElectionTimeout)
	require.Equal(t, 100*time.Millisecond, rc.LeaderLeaseTimeout)
	require.NoError(t, raft.ValidateConfig(rc))
}
