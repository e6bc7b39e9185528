package adapter

// Failing reports whether a connection of a is closing for cause: its
// token expired, say.
func Failing(a *Adapter) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for c := range a.conns {
		if c.failed.Load() {
			return true
		}
	}
	return false
}
