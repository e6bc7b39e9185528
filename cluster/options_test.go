package cluster

import (
	"strings"
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
	require.Equal(t, 50*time.Millisecond, rc.CommitTimeout)
	require.EqualValues(t, 8192, rc.SnapshotThreshold)
	require.EqualValues(t, 10240, rc.TrailingLogs)

	o.Profile = ProfileLAN
	rc = o.raftConfig()
	require.Equal(t, 200*time.Millisecond, rc.HeartbeatTimeout)
	require.Equal(t, 200*time.Millisecond, rc.ElectionTimeout)
	require.Equal(t, 100*time.Millisecond, rc.LeaderLeaseTimeout)
	require.Equal(t, 5*time.Millisecond, rc.CommitTimeout)
	require.NoError(t, raft.ValidateConfig(rc))
}

// TestOptions_ParseNames: the names of profiles and log stores, which
// livekv serve's flags check with the same functions.
func TestOptions_ParseNames(t *testing.T) {
	for s, want := range map[string]Profile{"": ProfileDefault, "default": ProfileDefault, "lan": ProfileLAN} {
		p, err := ParseProfile(s)
		require.NoError(t, err, "%q", s)
		require.Equal(t, want, p)
	}
	for s, want := range map[string]LogStore{"": LogStoreBolt, "bolt": LogStoreBolt, "wal": LogStoreWAL} {
		l, err := ParseLogStore(s)
		require.NoError(t, err, "%q", s)
		require.Equal(t, want, l)
	}
	for _, s := range []string{"wan", "LAN", " lan", "bolt"} {
		_, err := ParseProfile(s)
		require.ErrorIs(t, err, ErrInvalidOptions, "%q", s)
		require.ErrorContains(t, err, "give default or lan")
	}
	for _, s := range []string{"rocks", "WAL", "lan"} {
		_, err := ParseLogStore(s)
		require.ErrorIs(t, err, ErrInvalidOptions, "%q", s)
		require.ErrorContains(t, err, "give bolt or wal")
	}
	_, err := ParseProfile(strings.Repeat("x", 1000))
	require.Less(t, len(err.Error()), 200, "a long name is cut in the error")
	require.Equal(t, "a, b or c", orList([]string{"a", "b", "c"}))
	require.Equal(t, "a", orList([]string{"a"}))
}
