// Package wire holds what the adapter (the server) and the client share of
// the HPKV WebSocket protocol: its operation codes, and the error codes of
// a cluster node's refusals, which package cluster's errors name
// themselves with. docs/protocol.md describes the messages.
package wire

import (
	"errors"

	"github.com/livekv/livekv/engine"
)

// Refused reports whether err refuses a write on the state it found (a
// missing key, a revision that does not match, a value that is not an
// integer or would overflow), rather than on the cluster's or the
// request's: such a reply reflects that state, and a session's later
// reads must not go below its revision.
func Refused(err error) bool {
	return errors.Is(err, engine.ErrNotFound) || errors.Is(err, engine.ErrConflict) ||
		errors.Is(err, engine.ErrNotInteger) || errors.Is(err, engine.ErrOverflow)
}

// Operations of the wire protocol. 1 to 6 are HPKV's; the others are
// livekv's own, which HPKV clients never send.
const (
	OpGet         = 1
	OpSet         = 2
	OpPatch       = 3
	OpDelete      = 4
	OpRange       = 5
	OpIncrement   = 6
	OpSubscribe   = 100 // patterns, fromRevision: start a subscription on this connection
	OpUnsubscribe = 101 // subscriptionId: end one
	OpCAS         = 102 // key, value, revision: set only if the key's revision is revision (0: absent)
)

// Error codes of a cluster node's refusals, which a reply carries beside
// its status so that a client can tell a write that did not happen from
// one that may have: in the HPKV dialect as errorCode (REST and
// WebSocket), in the DBX dialect as the error's code. Package cluster's
// errors name themselves with them (their ErrorCode method), the adapter
// passes them on, and the client turns them back into its errors.
const (
	// CodeNotCommitted: the write did not commit and never will (another
	// leader's entry took its revision); retrying it is safe.
	CodeNotCommitted = "not_committed"
	// CodeUncertain: the node could not learn in time whether the write
	// committed; it may have happened or not.
	CodeUncertain = "uncertain"
	// CodeNoLeader: the node reached no leader (an election, or a
	// minority partition); nothing was done, and retrying is safe.
	CodeNoLeader = "no_leader"
	// CodeNotLeader: only the leader may serve the request (a read at the
	// leader level, a transaction); nothing was done.
	CodeNotLeader = "not_leader"
	// CodeBehind: the node has not applied the revision the request asks
	// for within the wait allowed; another node, or a later try, may have.
	CodeBehind = "behind"
	// CodeNodeClosed: the node is shutting down; nothing was done.
	CodeNodeClosed = "node_closed"
)

// Texts that the error of a 429 reply to a subscribe starts with when a
// cap on subscriptions refused it, rather than the request rate (whose
// error is "too many requests"): the connection's own (MaxSubscriptions,
// MaxConnPatterns), which only its unsubscribes free, or its token's
// (MaxTokenSubscriptions), which all the token's connections share. The
// status stays 429, as HPKV's clients expect.
const (
	ConnSubscriptionLimit  = "connection subscription limit"
	TokenSubscriptionLimit = "token subscription limit"
)

// KeyRequired is the error of a 400 reply to a request with no key, or an
// empty one, which the adapter refuses before the engine sees it; the Go
// client matches it to engine.ErrInvalidKey, the engine's refusal of an
// empty key.
const KeyRequired = "key is required"
