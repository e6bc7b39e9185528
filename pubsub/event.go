package pubsub

import (
	"time"
	"unsafe"
)

// Type says what kind of change an event reports.
type Type uint8

// The kinds of change. A delete or an expiry has no value.
const (
	Put Type = iota + 1
	Patch
	Increment
	Delete
	Expire
)

var typeNames = [...]string{"", "put", "patch", "increment", "delete", "expire"}

// String returns the type's lower-case name ("put", "delete", ...).
func (t Type) String() string {
	if t == 0 || int(t) >= len(typeNames) {
		return "unknown"
	}
	return typeNames[t]
}

// Event is one committed change of one key. Value is the key's value after
// the change (the result of a patch or an increment, not the operation);
// it is empty for a delete or an expiry.
type Event struct {
	Revision int64
	Type     Type
	Key      string
	Value    string
	Time     time.Time // the transaction's time (Tx.Now, by which its TTLs count): when it began

	// Index is the event's place among all the events of its transaction,
	// from 0; a subscription sees those that match. The broker sets it on
	// the events it delivers.
	Index int
}

// After returns the position right after the event: a subscription from
// it goes on with the next matching event.
func (e Event) After() Position { return Position{Revision: e.Revision, Index: e.Index + 1} }

// Batch is the events of one committed transaction, all of its revision.
type Batch struct {
	Revision int64
	Events   []Event
}

// size estimates the memory an event holds, for the history's byte limit:
// its key, its value and the Event itself (80 bytes on 64-bit machines).
func (e *Event) size() int64 { return int64(len(e.Key)+len(e.Value)) + eventSize }

const eventSize = int64(unsafe.Sizeof(Event{}))
