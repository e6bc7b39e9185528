// Package pubsub delivers committed changes to the subscriptions whose key
// patterns match them.
//
// A Broker takes batches (the events of one committed transaction, one
// revision) in revision order through Publish, which never waits for a
// subscriber, and keeps the recent ones in a bounded history. One
// dispatcher goroutine matches each event's key against every subscription
// at once through a pattern.Index and puts the events of a transaction into
// each matching subscription's buffer, all of them or, when there is not
// room, none: that subscription then falls behind, and a goroutine of its
// own feeds it from the history until it is back in step. A subscription
// that falls behind the history ends with a *CompactedError naming the
// oldest revision still held; nothing is dropped silently.
//
// A subscription with a regex pattern is fed from the history by a
// goroutine of its own, never by the dispatcher, since a regex can
// backtrack for as long as its MatchTimeout allows: its cost falls on its
// own subscription. A key that a regex cannot decide on in time ends the
// subscription with a *PatternTimeoutError before that transaction, rather
// than skip it. Matching holds no lock that Subscribe or Publish need.
//
// Each subscription sees the matching events in revision order, each once,
// with no gap, and the events of one transaction one after another. A
// subscription can resume from a revision (SubscribeOptions.FromRevision)
// or from a Position inside a transaction (SubscribeOptions.From):
// subscribing again from a closed subscription's Position goes on exactly
// where its reader stopped, re-delivering what it left unread.
package pubsub
