package pubsub

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed ends a subscription closed by its owner or by the broker's
	// (the database's) Close.
	ErrClosed = errors.New("pubsub: subscription closed")

	// ErrCompacted ends a subscription that needs events the history no
	// longer holds; the *CompactedError that wraps it says which
	// revision is the oldest still held.
	ErrCompacted = errors.New("pubsub: revision compacted")

	// ErrNoPatterns is returned by Subscribe without patterns.
	ErrNoPatterns = errors.New("pubsub: no patterns")
)

// CompactedError ends a subscription that fell behind the history, or that
// asked to resume from a revision older than the history holds. To go on,
// re-read the current state and subscribe again from its revision.
type CompactedError struct {
	Revision int64 // the revision the subscription needed to resume after
	Oldest   int64 // the oldest revision still held; events after Oldest-1 can be resumed
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("pubsub: revision %d compacted; the oldest held is %d", e.Revision, e.Oldest)
}

// Unwrap makes errors.Is(err, ErrCompacted) true.
func (e *CompactedError) Unwrap() error { return ErrCompacted }
