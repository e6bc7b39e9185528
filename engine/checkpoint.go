package engine

import (
	"errors"
	"fmt"

	"github.com/livekv/livekv/wal"
)

// Checkpoint writes a snapshot of the database to disk and removes the log
// segments and the older snapshot it replaces, so that disk use stays
// bounded and the next Open replays little. Writers and readers go on
// meanwhile: the snapshot is taken from a copy-on-write view as of the
// newest committed revision. A DB in memory has nothing to do. Checkpoints
// also run in the background; see Options.CheckpointBytes.
func (db *DB) Checkpoint() error {
	if db.closed.Load() {
		return ErrClosed
	}
	if db.log == nil {
		return nil
	}
	return db.checkpoint()
}

func (db *DB) checkpoint() error {
	db.ckpt.mu.Lock()
	defer db.ckpt.mu.Unlock()
	at := db.log.Written()
	s := db.snapshot()
	defer db.closeSnapshot(s)
	if s.rev == 0 {
		return nil // nothing was ever written
	}
	// Keep the log that the history of changes still holds, so that
	// subscribers can resume from it after a restart too.
	db.log.Retain(db.broker.Oldest() - 1)
	if err := db.log.Snapshot(s.rev, snapshotItems(s.t, s.rev)); err != nil {
		if errors.Is(err, wal.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("engine: checkpoint: %w", err)
	}
	db.ckpt.at.Store(at)
	return nil
}

// maybeCheckpoint starts a background checkpoint if enough has been logged
// since the last one and none is running.
func (db *DB) maybeCheckpoint() {
	if db.opts.CheckpointBytes < 0 || db.log.Written()-db.ckpt.at.Load() < db.opts.CheckpointBytes {
		return
	}
	if !db.ckpt.running.CompareAndSwap(false, true) {
		return
	}
	db.bg.mu.Lock()
	defer db.bg.mu.Unlock()
	if db.bg.closed {
		db.ckpt.running.Store(false)
		return
	}
	db.bg.wg.Add(1)
	go func() {
		defer db.bg.wg.Done()
		defer db.ckpt.running.Store(false)
		if err := db.checkpoint(); err != nil {
			db.opts.Logf("livekv: background checkpoint: %v", err)
		}
	}()
}
