package pubsub

import (
	"errors"
	"fmt"

	"github.com/livekv/livekv/pattern"
)

var (
	// ErrClosed ends a subscription closed by its owner or by the broker's
	// (the database's) Close. The engine returns the same error from every
	// operation on a closed database (engine.ErrClosed), so one errors.Is
	// test covers both.
	ErrClosed = errors.New("livekv: closed")

	// ErrCompacted ends a subscription that needs events the history no
	// longer holds; the *CompactedError that wraps it says which
	// revision is the oldest still held.
	ErrCompacted = errors.New("pubsub: revision compacted")

	// ErrNoPatterns is returned by Subscribe without patterns.
	ErrNoPatterns = errors.New("pubsub: no patterns")

	// ErrInvalidOptions is returned by Subscribe for a nil pattern or for
	// SubscribeOptions that make no sense (a negative revision, say, or a
	// Buffer over MaxBuffer).
	ErrInvalidOptions = errors.New("pubsub: invalid options")
)

// CompactedError ends a subscription that fell behind the history, or that
// asked to resume from a revision older than the history holds. To go on,
// re-read the current state and subscribe again from its revision.
type CompactedError struct {
	Revision int64 // the revision the subscription needed to resume after
	Oldest   int64 // the oldest revision still held: FromRevision Oldest-1, or From Position{Revision: Oldest}, or later can be resumed
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("pubsub: revision %d compacted; the oldest held is %d", e.Revision, e.Oldest)
}

// Unwrap makes errors.Is(err, ErrCompacted) true.
func (e *CompactedError) Unwrap() error { return ErrCompacted }

// ErrPatternTimeout ends a subscription one of whose regexes could not
// decide, within its pattern.Options.MatchTimeout, whether a key matches;
// the *PatternTimeoutError that wraps it says which pattern, and where.
// The subscription delivered every event before that change and none of
// it: nothing is skipped unsaid.
var ErrPatternTimeout = errors.New("pubsub: pattern match ran out of time")

// PatternTimeoutError ends a subscription whose regex could not decide
// whether a key matches. Its message names the pattern and the revision,
// not the key, which a caller may not be allowed to see.
type PatternTimeoutError struct {
	Pattern  string // the regex, as written
	Key      string // the key it could not decide on
	Revision int64  // the revision that changed Key; the subscription delivered everything before it
}

func (e *PatternTimeoutError) Error() string {
	return fmt.Sprintf("pubsub: pattern %q could not decide on a key of revision %d in time", e.Pattern, e.Revision)
}

// Unwrap makes errors.Is(err, ErrPatternTimeout) and errors.Is(err,
// pattern.ErrTimeout) true.
func (e *PatternTimeoutError) Unwrap() []error { return []error{ErrPatternTimeout, pattern.ErrTimeout} }
