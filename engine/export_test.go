package engine

// Sweep runs one sweep of expired keys now and returns how many it removed.
func Sweep(db *DB) int {
	n, _ := db.sweep()
	return n
}
