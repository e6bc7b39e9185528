package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
)

// subscribeWait is how long Subscribe waits for this node to apply the
// revision a subscription resumes from.
const subscribeWait = 5 * time.Second

// Subscribe subscribes to changes, as engine.DB.Subscribe, on this node:
// every node publishes the same events at the same revisions, so a
// subscriber resumes on any node from the revision it reached elsewhere.
// A FromRevision (or From) this node has not applied yet is waited for
// up to 5 s, then the call fails with ErrBehind. Initial items are a
// read: a node that has not caught up with the leader since it started
// refuses them with ErrBehind, as a stale read. A node that has had no
// leader for three heartbeat timeouts, or that failed to apply an entry
// (leaveAfterFailure), ends its subscriptions with ErrNoLeader: resume on
// another node.
func (n *Node) Subscribe(patterns []string, opts *engine.SubscribeOptions) (*engine.Subscription, error) {
	pats := make([]*pattern.Pattern, len(patterns))
	for i, s := range patterns {
		p, err := pattern.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("cluster: subscribe: %w", err)
		}
		pats[i] = p
	}
	return n.SubscribePatterns(pats, opts)
}

// SubscribePatterns is Subscribe with compiled patterns.
func (n *Node) SubscribePatterns(pats []*pattern.Pattern, opts *engine.SubscribeOptions) (*engine.Subscription, error) {
	if err := n.usable(); err != nil {
		return nil, err
	}
	if n.leaderless() {
		return nil, ErrNoLeader
	}
	var o engine.SubscribeOptions
	if opts != nil {
		o = *opts
	}
	start, err := o.Start(pats)
	if err != nil {
		return nil, err // as a single DB refuses them, at once
	}
	// Initial items are a read of this node's state, which a node that
	// has not caught up since it started does not serve, as for a stale
	// read.
	if o.Initial && !n.served.Load() {
		return nil, errNotCaughtUp
	}
	// The newest revision the start assumes this node has: the one
	// before it, or its own when it starts inside it (From with an
	// Index), as the engine checks (ErrRevisionAhead).
	need := start.Revision - 1
	if start.Index > 0 {
		need = start.Revision
	}
	if need > 0 {
		ctx, cancel := context.WithTimeout(n.ctx, subscribeWait)
		err := n.waitRevision(ctx, need)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	s, err := n.db.SubscribePatterns(pats, opts)
	if err != nil {
		return nil, err
	}
	n.subMu.Lock()
	n.subs[s] = struct{}{}
	n.subMu.Unlock()
	return s, nil
}

// leaderless reports whether this node has had no leader for longer than
// three heartbeat timeouts.
func (n *Node) leaderless() bool {
	if _, addr := n.Leader(); addr != "" {
		return false // watchLeader may not have seen it yet
	}
	since := n.noLeaderSince.Load()
	return since != 0 && time.Since(time.Unix(0, since)) > 3*n.heartbeat()
}

func (n *Node) heartbeat() time.Duration { return n.opts.raftConfig().HeartbeatTimeout }

// watchLeader ends the subscriptions once the node has had no leader for
// three heartbeat timeouts, or has failed to apply an entry, and forgets
// the subscriptions that ended.
func (n *Node) watchLeader() {
	defer n.wg.Done()
	t := time.NewTicker(n.heartbeat() / 4)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if _, addr := n.Leader(); addr != "" {
			n.noLeaderSince.Store(0)
		} else if n.noLeaderSince.Load() == 0 {
			n.noLeaderSince.Store(time.Now().UnixNano())
		}
		// A node that failed to apply serves nothing (not ErrClosed: a
		// closing node ends its subscriptions as closed, node_closed).
		leaderless := n.leaderless() || n.fsm != nil && n.fsm.err() != nil
		n.subMu.Lock()
		var end []*engine.Subscription
		for s := range n.subs {
			if s.Err() != nil || leaderless {
				delete(n.subs, s)
				if s.Err() == nil {
					end = append(end, s)
				}
			}
		}
		n.subMu.Unlock()
		for _, s := range end {
			s.CloseWith(ErrNoLeader)
		}
	}
}
