package engine

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
