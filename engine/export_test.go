package engine

import "fmt"

// Sweep runs one sweep of expired keys now and returns how many it removed.
func Sweep(db *DB) int {
	n, _ := db.sweep()
	return n
}

// Heads counts the entries that hold a version object, and Held the
// versions waiting in pub.held to be let go.
func Heads(db *DB) int { return heads(db) }

func Held(db *DB) int {
	db.pub.mu.Lock()
	defer db.pub.mu.Unlock()
	return len(db.pub.held)
}

// WithChunkSize sets the size of o's value chunks, so that a small store
// fills many and compacts them, and returns o.
func WithChunkSize(o *Options, size int) *Options {
	o.chunkSize = size
	return o
}

// Compactions returns how many compactions of the value chunks ran.
func Compactions(db *DB) int64 { return db.arena().compactions.Load() }

// ArenaStats describes the value chunks, for a failure message.
func ArenaStats(db *DB) string { return fmt.Sprintf("%+v", db.arena().stats()) }
