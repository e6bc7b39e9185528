package main

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// raftLogEvery is how often a line of one kind (raftLog) is written at
// most.
const raftLogEvery = 30 * time.Second

// raftLog passes raft's log lines (cluster.Options.Logf) to logf, each
// kind at most once every raftLogEvery. A peer that is down makes raft
// log a failed heartbeat and a failed append every 100 ms or so, for as
// long as it stays down: the first of a kind is written, the others are
// counted, and the next written says how many were left out. A line's
// kind is its level, its message and its first field (the peer, mostly):
// a second peer failing is news.
type raftLog struct {
	logf  func(format string, args ...any)
	now   func() time.Time
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*lineKind
}

// lineKind is what raftLog keeps of a kind of line.
type lineKind struct {
	last    time.Time // when one was written
	dropped int       // left out since
}

// maxLineKinds bounds the kinds raftLog keeps: raft has a few dozen
// messages, a cluster a few peers. Past it the kinds start afresh.
const maxLineKinds = 1024

func newRaftLog(logf func(format string, args ...any)) *raftLog {
	return &raftLog{logf: logf, now: time.Now, every: raftLogEvery, kinds: map[string]*lineKind{}}
}

// Logf is the cluster.Options.Logf that throttles.
func (r *raftLog) Logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	k := kindOf(line)
	now := r.now()
	r.mu.Lock()
	kd := r.kinds[k]
	if kd == nil {
		if len(r.kinds) >= maxLineKinds {
			clear(r.kinds)
		}
		kd = &lineKind{}
		r.kinds[k] = kd
	} else if now.Sub(kd.last) < r.every {
		kd.dropped++
		r.mu.Unlock()
		return
	}
	dropped := kd.dropped
	kd.last, kd.dropped = now, 0
	r.mu.Unlock()
	if dropped > 0 {
		line += fmt.Sprintf(" (and %d more like it since the last written)", dropped)
	}
	r.logf("%s", line)
}

// kindOf returns the kind of an hclog line, "TIME [LEVEL] name: message:
// key=value key=value...": the line without its time, up to the end of
// its first key=value field (a quoted value whole). A line without
// fields is its own kind.
func kindOf(line string) string {
	if _, rest, ok := strings.Cut(line, " "); ok && strings.Contains(rest, "[") {
		line = rest
	}
	eq := strings.IndexByte(line, '=')
	if eq < 0 {
		return line
	}
	end := eq + 1
	if end < len(line) && line[end] == '"' {
		if q := strings.IndexByte(line[end+1:], '"'); q >= 0 {
			return line[:end+1+q+1]
		}
		return line
	}
	if sp := strings.IndexByte(line[end:], ' '); sp >= 0 {
		return line[:end+sp]
	}
	return line
}
