package pubsub

import (
	"testing"
	"time"
)

// SetRegexBudget sets the regex lane's budget of the brokers made until
// the test ends.
func SetRegexBudget(t testing.TB, d time.Duration) {
	old := regexBudget
	regexBudget = d
	t.Cleanup(func() { regexBudget = old })
}

// InStep reports whether s's lane sends to it, rather than a goroutine of
// its own.
func InStep(s *Subscription) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

// SetLaneBudget sets the budget of b's regex lane from now on.
func SetLaneBudget(b *Broker, d time.Duration) { b.regex.budget.Store(int64(d)) }

// Indexed counts the patterns in b's lanes' indexes.
func Indexed(b *Broker) int {
	n := 0
	for _, l := range []*lane{b.cheap, b.regex} {
		l.mu.Lock()
		n += l.index.Len()
		l.mu.Unlock()
	}
	return n
}

// Handled reports whether both of b's lanes have handled revision rev.
func Handled(b *Broker, rev int64) bool {
	return b.cheap.cursor.Load() >= rev && b.regex.cursor.Load() >= rev
}

// OnRegexLane reports whether s is served by the regex lane, where a
// slow match falls on its own subscription.
func OnRegexLane(s *Subscription) bool { return s.regex }

// RoomLooks counts the looks of b's followers for room in a full buffer.
func RoomLooks(b *Broker) int64 { return b.stats.roomLooks.Load() }

// MatchTurns is how many goroutines may match regexes outside the regex
// lane at once, on procs processors.
func MatchTurns(procs int) int { return matchTurns(procs) }
