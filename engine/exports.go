package engine

import (
	"time"

	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
)

// What a program that embeds a DB needs from the packages below engine,
// under engine's name, so that it imports engine alone: the change feed's
// events and errors, the sync policies, and the errors of the files on
// disk. They are the same types and values, not copies: errors.Is and
// errors.As see no difference.

// Event is one committed change of one key; see pubsub.Event.
type Event = pubsub.Event

// EventType says what kind of change an event reports.
type EventType = pubsub.Type

// The kinds of change. A delete or an expiry has no value.
const (
	Put       = pubsub.Put
	Patch     = pubsub.Patch
	Increment = pubsub.Increment
	Delete    = pubsub.Delete
	Expire    = pubsub.Expire
)

// Position is a place in the stream of changes, between two events, to
// resume a subscription from exactly (SubscribeOptions.From).
type Position = pubsub.Position

// CompactedError ends a subscription, or refuses one, that needs changes
// older than the history holds; errors.Is(err, ErrCompacted) recognises it.
type CompactedError = pubsub.CompactedError

// PatternTimeoutError ends a subscription whose regex could not decide on a
// key in time; errors.Is(err, ErrPatternTimeout) recognises it.
type PatternTimeoutError = pubsub.PatternTimeoutError

// SyncPolicy says when a database on disk fsyncs its log (Options.Sync).
type SyncPolicy = wal.SyncPolicy

var (
	// SyncAlways, the default, returns a write once it is on disk.
	SyncAlways = wal.SyncAlways
	// SyncNever writes to the operating system and never fsyncs (Close
	// still does).
	SyncNever = wal.SyncNever
)

// SyncInterval returns a write once the operating system has it and
// fsyncs every d.
func SyncInterval(d time.Duration) SyncPolicy { return wal.SyncInterval(d) }

var (
	// ErrCompacted: a subscription needs changes the history no longer
	// holds.
	ErrCompacted = pubsub.ErrCompacted
	// ErrPatternTimeout: a regex pattern ran out of time on a key.
	ErrPatternTimeout = pubsub.ErrPatternTimeout
	// ErrLocked: another process, or another DB in this one, has the
	// folder open.
	ErrLocked = vfs.ErrLocked
	// ErrCorrupt: the files on disk are damaged; Options.Repair drops
	// what follows damage in the log.
	ErrCorrupt = wal.ErrCorrupt
)
