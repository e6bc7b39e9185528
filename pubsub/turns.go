package pubsub

// Turns to match regexes outside the regex lane.
//
// A regex that backtracks runs until its MatchTimeout, on a core, and
// cannot be paused. The regex lane leaves a subscription stuck in one to
// the goroutine matching it and goes on in another (see lane), and a
// subscription whose regexes are slow is fed by a goroutine of its own:
// were each of them to match at will, 64 subscriptions meeting a key
// they cannot decide on would make 64 goroutines run regexes at once.
// Go's scheduler shares the cores among the goroutines that can run, so
// every other goroutine of the program, writers among them, would then
// wait its turn behind them: a writer preempted in the middle of a commit
// waited 100 to 600 ms so on two cores (TestSubscribe_WhileHostileMatching
// in the engine). So a goroutine matches outside the lane only while it
// holds a turn, and there are fewer turns than processors (one on one
// processor): with the lane's own goroutine, the feed's regexes take at
// most every core but one, or two goroutines on one. (A Subscribe with
// Initial matches its initial items in its caller's goroutine, at the
// caller's cost.) A subscription waiting for a turn waits, as its
// regexes make it, and its Filter, asked between its regexes, runs in
// its turn: it must be quick. The lane, when no turn is free, waits for
// its own match to end rather than leave it; a turn given back goes to a
// goroutine already waiting for one first, so while subscriptions wait
// for turns the lane takes over from a stuck match seldom.

// matchTurns is how many goroutines may match regexes outside the regex
// lane at once, on procs processors: one fewer, and at least one.
func matchTurns(procs int) int { return max(1, procs-1) }

// takeTurn waits for a turn to match outside the regex lane. It reports
// false if kill was closed first.
func (b *Broker) takeTurn(kill <-chan struct{}) bool {
	select {
	case b.matching <- struct{}{}:
		return true
	case <-kill:
		return false
	}
}

// tryTurn takes a turn if one is free.
func (b *Broker) tryTurn() bool {
	select {
	case b.matching <- struct{}{}:
		return true
	default:
		return false
	}
}

// endTurn gives a turn back.
func (b *Broker) endTurn() { <-b.matching }
