package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRaftLog_RepeatsAreThrottled: a line of a kind written less than
// raftLogEvery after the last written is counted, not written, and the
// next written says how many were left out; another peer, message or
// level is another kind.
func TestRaftLog_RepeatsAreThrottled(t *testing.T) {
	var got []string
	now := time.Unix(1000, 0)
	r := newRaftLog(func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) })
	r.now = func() time.Time { return now }
	hb := func(peer string, backoff int) string {
		return fmt.Sprintf(`%s [ERROR] raft: failed to heartbeat to: peer=%s backoff time=%dms error="cluster: dial: refused"`,
			now.UTC().Format(time.RFC3339Nano), peer, backoff)
	}
	ae := func(peer string) string {
		return fmt.Sprintf(`%s [ERROR] raft: failed to appendEntries to: peer="{Voter %s 127.0.0.1:17003}" error="refused"`,
			now.UTC().Format(time.RFC3339Nano), peer)
	}
	r.Logf("%s", hb("a:1", 10))
	r.Logf("%s", ae("n3"))
	for i := range 100 {
		now = now.Add(100 * time.Millisecond)
		r.Logf("%s", hb("a:1", 10+i))
		r.Logf("%s", ae("n3"))
	}
	r.Logf("%s", hb("b:2", 10)) // another peer
	r.Logf("%s", ae("n4"))
	r.Logf("%s", "2026-12-07T04:46:09.777Z [INFO]  raft: election won: term=3 tally=2")
	r.Logf("%s", "2026-12-07T04:46:19.777Z [INFO]  raft: election won: term=4 tally=2") // another term: news
	r.Logf("%s", "2026-12-07T04:46:19.778Z [INFO]  raft: election won: term=4 tally=3")
	r.Logf("%s", "no fields at all")
	r.Logf("%s", "no fields at all")
	require.Len(t, got, 7, "%q", got)
	now = now.Add(raftLogEvery)
	r.Logf("%s", hb("a:1", 100))
	r.Logf("%s", ae("n3"))
	require.Len(t, got, 9)
	require.Contains(t, got[7], "backoff time=100ms")
	require.Contains(t, got[7], "(and 100 more like it since the last written)")
	require.Contains(t, got[8], "(and 100 more like it since the last written)")
	r.Logf("%s", hb("a:1", 100))
	require.Len(t, got, 9)
}

// TestRaftLog_KindOf names the kinds of lines.
func TestRaftLog_KindOf(t *testing.T) {
	for line, want := range map[string]string{
		`2026-12-07T04:46:09.800Z [ERROR] raft: failed to heartbeat to: peer=127.0.0.1:17003 backoff time=10ms`: `[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:17003`,
		`2026-12-07T04:46:09.800Z [ERROR] raft: failed to appendEntries to: peer="{Voter n3 x:1}" error="e"`:    `[ERROR] raft: failed to appendEntries to: peer="{Voter n3 x:1}"`,
		`2026-12-07T04:46:09.800Z [WARN]  raft: failed to contact: server-id=n3 time=101ms`:                     `[WARN]  raft: failed to contact: server-id=n3`,
		`2026-12-07T04:46:09.800Z [INFO]  raft: entering leader state: leader="Node at x [Leader]"`:             `[INFO]  raft: entering leader state: leader="Node at x [Leader]"`,
		`plain text`:          `plain text`,
		`a=b`:                 `a=b`,
		`x [E] m: k="unended`: `[E] m: k="unended`,
		`x [E] m: k=`:         `[E] m: k=`,
	} {
		require.Equal(t, want, kindOf(line), line)
	}
}
