// Package pubsub delivers committed changes to the subscriptions whose key
// patterns match them.
//
// A Broker takes batches (the events of one committed transaction, one
// revision) in revision order through Publish, which never waits for a
// subscriber, and keeps the recent ones in a bounded history. Two lanes,
// a goroutine each, follow the history. The cheap lane matches each
// event's key against every subscription without a costly pattern (a
// regex, or a long glob: pattern.Pattern.Costly) at once through a
// pattern.Index and puts the events of a transaction into each matching
// subscription's buffer, all of them or, when there is not room, none:
// that subscription then falls behind, and a goroutine of its own feeds it
// from the history until it is back in step. A subscription that falls
// behind the history ends with a *CompactedError naming the oldest
// revision still held; nothing is dropped silently.
//
// The regex lane serves the subscriptions with a costly pattern the same
// way, running each one's patterns only on the keys their literal anchors
// admit. A regex can backtrack for as long as its MatchTimeout allows, so
// its cost stays on that lane: the cheap lane, Publish and Subscribe never
// wait for it. A key that a regex cannot decide on in time ends the
// subscription with a *PatternTimeoutError before that transaction, rather
// than skip it, so each such regex delays the other regex subscriptions
// once at most; one whose matching is merely slow is left to a goroutine
// of its own.
//
// Each subscription sees the matching events in revision order, each once,
// with no gap, and the events of one transaction one after another. A
// subscription can resume from a revision (SubscribeOptions.FromRevision)
// or from a Position inside a transaction (SubscribeOptions.From):
// subscribing again from a closed subscription's Position goes on exactly
// where its reader stopped, re-delivering what it left unread.
package pubsub
