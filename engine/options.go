package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
)

// Options configure a DB. A nil *Options passed to Open means the defaults;
// the zero value of every field means its default too. Open copies the
// options, so changing them afterwards has no effect.
type Options struct {
	// MaxKeySize is the largest key accepted, in bytes. Default 1 KiB; at
	// most 2 GiB - 1.
	MaxKeySize int

	// MaxValueSize is the largest value accepted, in bytes, including the
	// result of a Patch or an Increment. Default 1 MiB; at most 4 GiB - 1.
	MaxValueSize int

	// SweepInterval is how often the background sweeper removes expired
	// keys. An expired key is invisible to reads from the instant it
	// expires whatever this is (except on a replica: see OpenReplica);
	// the sweep only reclaims its memory and publishes its expiry as a
	// change. Default 1s; negative disables the sweeper.
	SweepInterval time.Duration

	// HistoryEvents and HistoryBytes bound the recent changes kept so that
	// subscriptions can catch up and resume; see pubsub.Options. Defaults
	// 100,000 events and 64 MiB. On disk the log keeps the segments that
	// hold them, so that the history outlives a restart.
	HistoryEvents int
	HistoryBytes  int64

	// Sync says when a database on disk fsyncs its log, and so what a
	// crash can lose: SyncAlways (the zero value: a write returns once
	// it is on disk, and only then do readers and subscribers see it),
	// SyncInterval(d) or SyncNever. See docs/durability.md.
	Sync SyncPolicy

	// Repair makes Open of a damaged log truncate it at the first bad
	// record instead of failing with ErrCorrupt. What followed the
	// damage is lost.
	Repair bool

	// CheckpointBytes starts a checkpoint in the background (see
	// DB.Checkpoint) once this many bytes have been logged since the last
	// one, which bounds both the disk the log takes and the time Open
	// spends replaying it. Default 64 MiB; negative means only explicit
	// checkpoints.
	CheckpointBytes int64

	// SegmentSize is the size at which the log starts a new segment file.
	// Default 64 MiB.
	SegmentSize int64

	// FS is the file system a DB on disk keeps its files in. Default the
	// operating system's; tests pass a *vfs.MemFS to simulate crashes and
	// I/O errors.
	FS vfs.FS

	// Logf reports what recovery did, such as a torn tail truncated, and
	// failures of background checkpoints. Default: nothing is reported.
	Logf func(format string, args ...any)

	// Now returns the current time; it decides when keys expire. Default
	// time.Now. Tests set it to a fake clock. A clock that steps back
	// does not bring back a key a read has found expired: while the DB
	// is open, expiry is judged at no earlier time than such a read's.
	Now func() time.Time

	// Replicator makes a database whose commits a replicated log keeps
	// durable, in place of the write-ahead log; only OpenReplica takes
	// it, Open refuses it.
	Replicator Replicator

	// chunkSize and compactMinDead, if not zero, size the arena's chunks
	// and the dead bytes that start a compaction, so that tests see
	// compactions in a small store. A reference names an offset in a
	// chunk in 32 bits: chunkSize is below 4 GiB.
	chunkSize, compactMinDead int
}

// Default limits.
const (
	DefaultMaxKeySize    = 1 << 10
	DefaultMaxValueSize  = 1 << 20
	DefaultSweepInterval = time.Second

	DefaultCheckpointBytes = 64 << 20
	DefaultSegmentSize     = 64 << 20
)

// withDefaults returns a copy of o with every zero field set to its default.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.MaxKeySize == 0 {
		c.MaxKeySize = DefaultMaxKeySize
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CheckpointBytes == 0 {
		c.CheckpointBytes = DefaultCheckpointBytes
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.FS == nil {
		c.FS = vfs.OSFS{}
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// validate reports options that cannot work.
func (o *Options) validate() error {
	if o.Replicator != nil {
		return fmt.Errorf("%w: a Replicator needs OpenReplica", ErrInvalidOptions)
	}
	if o.MaxKeySize < 0 || int64(o.MaxKeySize) > keyLenMask {
		return fmt.Errorf("%w: MaxKeySize %d is outside 0..%d", ErrInvalidOptions, o.MaxKeySize, int64(keyLenMask))
	}
	if o.HistoryEvents < 0 || o.HistoryBytes < 0 {
		return fmt.Errorf("%w: negative history limit", ErrInvalidOptions)
	}
	if o.SegmentSize < 0 {
		return fmt.Errorf("%w: SegmentSize %d is negative", ErrInvalidOptions, o.SegmentSize)
	}
	if d := o.Sync.Interval(); d < 0 {
		// It would never fsync, where the caller asked for a bound on
		// what a crash loses.
		return fmt.Errorf("%w: SyncInterval(%v) is negative", ErrInvalidOptions, d)
	}
	if o.MaxValueSize < 0 || int64(o.MaxValueSize) > lenMask {
		return fmt.Errorf("%w: MaxValueSize %d is outside 0..%d", ErrInvalidOptions, o.MaxValueSize, int64(lenMask))
	}
	return nil
}

// maxRecord is the largest log record the DB writes and reads: room for a
// transaction that writes one value of the largest size under the largest
// key, and never less than the log's default. A transaction whose record is
// larger fails with ErrTooLarge and changes nothing. Records are framed
// with 32-bit lengths.
func (o *Options) maxRecord() int {
	n := int64(o.MaxKeySize) + int64(o.MaxValueSize) + 1<<10
	return int(min(max(n, wal.DefaultMaxRecord), math.MaxUint32, math.MaxInt))
}

// RecordLimit returns the largest record of the log that o writes, and
// reads: a folder whose log holds a larger one opens only with limits as
// large (see wal.RecordOverLimitError). Tools that read a folder's log
// without the engine (wal.Check) give it as wal.Options.MaxRecord.
func (o *Options) RecordLimit() int {
	c := o.withDefaults()
	return c.maxRecord()
}

// SetOptions modify a write. A nil *SetOptions means no options.
type SetOptions struct {
	// TTL makes the key expire this long after the write. Zero means the
	// key never expires; a negative TTL, or one that would end after the
	// year 2262 (the last instant a time.Time of unix nanoseconds names),
	// is ErrInvalidOptions.
	TTL time.Duration
}

// RangeOptions modify a range scan. A nil *RangeOptions means no options.
type RangeOptions struct {
	// Limit is the most items the scan yields; zero means no limit.
	Limit int

	// Reverse yields the items in descending key order, starting just
	// below the end of the range.
	Reverse bool

	// KeysOnly leaves Item.Value empty.
	KeysOnly bool
}

// KeyAfter returns the smallest key greater than key. A forward scan
// continues after the last key it saw with Range(KeyAfter(last), end, ...);
// a reverse scan continues with Range(start, last, ...).
func KeyAfter(key string) string { return key + "\x00" }

// historyEvents is how many events the history keeps.
func (o *Options) historyEvents() int {
	if o.HistoryEvents > 0 {
		return o.HistoryEvents
	}
	return pubsub.DefaultHistoryEvents
}
