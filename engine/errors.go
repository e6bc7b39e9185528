package engine

import (
	"errors"
	"fmt"
	"strings"

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

// OverLimitError is returned by Open for a folder, and by RestoreDir for a
// backup, that holds a key or a value over Options.MaxKeySize or
// MaxValueSize: written by a store with larger limits, it must be opened
// with limits as large (served with smaller ones, such a key could be
// listed but not read, written or deleted). It is ErrTooLarge to
// errors.Is.
type OverLimitError struct {
	What  string // "key" or "value"
	Size  int    // its bytes
	Limit int    // MaxKeySize or MaxValueSize
	Key   string // its key, cut to 64 bytes
}

func (e *OverLimitError) Error() string {
	limit := "MaxKeySize"
	if e.What == "value" {
		limit = "MaxValueSize"
	}
	return fmt.Sprintf("engine: a %s of %d bytes (key %q), over %s %d: written with larger limits, it needs them to be read",
		e.What, e.Size, e.Key, limit, e.Limit)
}

func (e *OverLimitError) Unwrap() error { return ErrTooLarge }

// checkLimits returns an *OverLimitError if key or value is over the
// limits of o.
func (o *Options) checkLimits(key, value string) error {
	what, size, limit := "key", len(key), o.MaxKeySize
	if size <= limit {
		what, size, limit = "value", len(value), o.MaxValueSize
		if size <= limit {
			return nil
		}
	}
	return &OverLimitError{What: what, Size: size, Limit: limit, Key: strings.Clone(key[:min(len(key), 64)])}
}
