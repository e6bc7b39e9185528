package engine

import (
	"errors"

	"github.com/livekv/livekv/pubsub"
)

// Errors returned by the engine. Each is a sentinel that errors.Is recognises;
// an operation may wrap one with detail (the key, the size, the limit).
var (
	// ErrNotFound is returned when a key does not exist or has expired.
	ErrNotFound = errors.New("engine: key not found")

	// ErrConflict is returned by CompareAndSwap and PutIfAbsent when the key's
	// current revision is not the one expected.
	ErrConflict = errors.New("engine: revision conflict")

	// ErrNotInteger is returned by Increment when the stored value is not a
	// base-10 64-bit integer.
	ErrNotInteger = errors.New("engine: value is not an integer")

	// ErrOverflow is returned by Increment when the result does not fit in an
	// int64. The stored value is left unchanged.
	ErrOverflow = errors.New("engine: integer overflow")

	// ErrInvalidKey is returned for an empty key.
	ErrInvalidKey = errors.New("engine: invalid key")

	// ErrTooLarge is returned when a key or a value (including the result of
	// a Patch) is over the configured size limit.
	ErrTooLarge = errors.New("engine: too large")

	// ErrInvalidOptions is returned by Open, and by operations, for options
	// that make no sense (a negative TTL or limit, say).
	ErrInvalidOptions = errors.New("engine: invalid options")

	// ErrRevisionAhead is returned by Subscribe for a revision to start
	// after that is past the newest this DB has committed: a revision of
	// another history (a store in memory that restarted, one restored
	// from an older backup, or one that lost its last writes in a crash
	// under a sync policy that allows it). Resuming from it would skip
	// every change up to it unsaid: read the state again (Initial).
	ErrRevisionAhead = errors.New("engine: revision ahead of the store")

	// ErrClosed is returned by every operation on a DB after Close, and
	// ends a subscription closed by its own Close or the DB's
	// (Subscription.Err): one error for both.
	ErrClosed = pubsub.ErrClosed

	// ErrTxDone is returned when a Tx is used after its function returned.
	ErrTxDone = errors.New("engine: transaction done")

	// ErrReadOnly is returned by a write inside View.
	ErrReadOnly = errors.New("engine: read-only transaction")
)
