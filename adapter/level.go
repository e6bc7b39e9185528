package adapter

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/livekv/livekv/engine"
)

// reads is what a request reads through: a Store, or a Reader.
type reads interface {
	Get(key string) (engine.Item, error)
	View(fn func(tx *engine.Tx) error) error
}

// parseLevel checks a consistency a client gave: "" (not given) or one
// of the levels.
func parseLevel(s string) (string, error) {
	switch s {
	case "", LevelStale, LevelSession, LevelLeader, LevelLinearizable:
		return s, nil
	}
	return "", fmt.Errorf("%w: unknown consistency %.40q: give stale, session, leader or linearizable", errBadRequest, s)
}

// parseMinRevision checks a minRevision a client gave as text: "" is 0.
func parseMinRevision(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: bad minRevision %.40q: give a revision, 0 or more", errBadRequest, s)
	}
	return n, nil
}

// readParams reads the consistency and minRevision query parameters of a
// REST request or a WebSocket dial.
func readParams(q url.Values) (level string, minRev int64, err error) {
	if level, err = parseLevel(q.Get("consistency")); err != nil {
		return "", 0, err
	}
	minRev, err = parseMinRevision(q.Get("minRevision"))
	return level, minRev, err
}

// readLevelError is an error of the store's ReadAt: the read could not
// run at the level asked.
type readLevelError struct{ err error }

func (e *readLevelError) Error() string { return e.err.Error() }
func (e *readLevelError) Unwrap() error { return e.err }

// reader returns what a read at level, after revision minRev, reads
// through. The session level (and no level) is a stale read after minRev,
// which the caller has raised to its session's revision.
func (a *Adapter) reader(level string, minRev int64) (reads, error) {
	if a.leveler == nil {
		return a.db, nil
	}
	if level == "" || level == LevelSession {
		level = LevelStale
	}
	r, err := a.leveler.ReadAt(level, minRev)
	if err != nil {
		return nil, &readLevelError{err}
	}
	return r, nil
}

// readRevision is the revision a read through r has seen at least, given
// the revision of what it read: the store's revision after the read, when
// it tells it. A later read after it sees nothing older.
func readRevision(r reads, rev int64) int64 {
	if rv, ok := r.(interface{ Revision() int64 }); ok {
		rev = max(rev, rv.Revision())
	}
	return rev
}

// noteSeen records rev as sent to the connection: its session, for its
// session reads, is the highest revision sent. A store without levels
// (a DB) ignores the revision a read asks for, so none is kept for it.
func (c *conn) noteSeen(rev int64) {
	if c.a.leveler == nil {
		return
	}
	for {
		s := c.session.Load()
		if rev <= s || c.session.CompareAndSwap(s, rev) {
			return
		}
	}
}

// readLevel is the level and minimum revision of a request on c that
// asks for level (""; the connection's) and minRev.
func (c *conn) readLevel(level string, minRev int64) (string, int64) {
	if level == "" {
		level = c.level
	}
	if level == "" || level == LevelSession {
		minRev = max(minRev, c.session.Load())
	}
	return level, minRev
}
