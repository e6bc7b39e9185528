// Package pattern defines livekv's key patterns and an index that matches
// a key against many patterns at once.
//
// # The language
//
//	form     example            matches
//	exact    user:42            that key only
//	prefix   user:*             keys that start with "user:" ("*" alone: every key)
//	suffix   *:session          keys that end with ":session"
//	glob     user:*:profile     * is any run of characters, also empty;
//	         log-202?           ? is exactly one character
//	regex    /^user:\d+$/       regexp2 syntax between slashes,
//	         ^user:\d+$         or any pattern that begins with ^
//
// In a glob, prefix, suffix or exact pattern, \ escapes *, ? and \ (and
// nothing else: any other character after \ is a syntax error). Parse picks
// the cheapest kind that means the same: "user:*" is a prefix and "a\*" is
// the exact key "a*". Consecutive stars are one star.
//
// Keys are bytes. A glob's ? and * step over whole UTF-8 characters, and
// over single bytes that are not valid UTF-8. A regex reads the key as UTF-8,
// with each invalid byte read as U+FFFD. Regexes run with a MatchTimeout,
// because regexp2 backtracks: a match that cannot decide in time is
// ErrTimeout from Pattern.TryMatch (no match from Pattern.Match) and is
// counted by Pattern.Timeouts. So that a timeout is kept to within a few
// milliseconds, the package sets the period of regexp2's timeout clock,
// a setting of the whole program, to 2ms as it is initialized (its
// default, 100ms, let a 10ms timeout run about 200ms): a program that
// sets it afterwards with regexp2.SetTimeoutCheckPeriod has its way.
//
// Patterns are at most 256 bytes by default (Options.MaxLen). A pattern
// that does not parse gets a *SyntaxError, which errors.Is recognises as
// ErrSyntax.
//
// # The index
//
// Index matches one key against all its patterns without looking at each:
// see Index for how.
package pattern
