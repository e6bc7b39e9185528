// Package wire holds what the adapter (the server) and the client share of
// the HPKV WebSocket protocol: its operation codes. docs/protocol.md
// describes the messages.
package wire

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
