package pattern

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// Kind is the form of a pattern.
type Kind uint8

// The kinds of pattern, from the cheapest to match to the dearest.
const (
	Exact  Kind = iota + 1 // user:42
	Prefix                 // user:*
	Suffix                 // *:session
	Glob                   // user:*:profile, log-202?
	Regex                  // /^user:\d+$/ or ^user:\d+$
)

var kindNames = [...]string{"", "exact", "prefix", "suffix", "glob", "regex"}

// String returns the kind's lower-case name.
func (k Kind) String() string {
	if k == 0 || int(k) >= len(kindNames) {
		return "unknown"
	}
	return kindNames[k]
}

var (
	// ErrSyntax is the error of every pattern that does not parse; the
	// *SyntaxError that wraps it says where and why.
	ErrSyntax = errors.New("pattern: syntax error")

	// ErrTimeout is TryMatch's error when a regex could not decide within
	// its MatchTimeout whether a key matches.
	ErrTimeout = errors.New("pattern: regex match ran out of time")
)

// SyntaxError describes a pattern that does not parse.
type SyntaxError struct {
	Pattern string
	Pos     int // byte offset of the problem in Pattern
	Msg     string
}

func (e *SyntaxError) Error() string {
	p, more := e.Pattern, ""
	if len(p) > quoteMax {
		i := quoteMax
		for i > 0 && !utf8.RuneStart(p[i]) {
			i--
		}
		p, more = p[:i], "..."
	}
	return fmt.Sprintf("pattern: %s at offset %d in %q%s", e.Msg, e.Pos, p, more)
}

// quoteMax is the most of a pattern that a SyntaxError's message quotes,
// in bytes: a pattern too long, which may come from a client, is not
// echoed back whole (quoted, it can be several times its size).
const quoteMax = 2 * DefaultMaxLen

// Unwrap makes errors.Is(err, ErrSyntax) true.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Options configure Parse. The zero value of each field means its default.
type Options struct {
	// MaxLen is the longest pattern accepted, in bytes. Default 256.
	MaxLen int

	// MatchTimeout bounds a regex match. A match that runs out of time
	// before MatchTimeout has passed (regexp2's clock can jump on a loaded
	// machine) is tried once more; one that still cannot decide is
	// ErrTimeout from TryMatch, and no match from Match, and is counted by
	// Pattern.Timeouts. Default 10ms. regexp2 checks deadlines on a clock
	// that this package sets to tick every 2ms (clockPeriod), so a runaway
	// match runs for about MatchTimeout plus a tick or two (see
	// docs/patterns.md).
	MatchTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultMaxLen       = 256
	DefaultMatchTimeout = 10 * time.Millisecond
)

// Pattern is a compiled key pattern. It is safe for concurrent use.
type Pattern struct {
	src  string
	kind Kind

	// lit is the key (Exact), the prefix (Prefix) or the suffix (Suffix).
	lit string
	// glob is the parsed glob: literal runs and wildcards.
	glob []token
	re   *regexp2.Regexp

	// anchor: every matching key starts with pre and ends with suf.
	pre, suf string
	// onlyPre: the regex says no more than "starts with pre", so that a
	// prefix test decides without running it (and so never runs out of
	// time).
	onlyPre bool
	// costly: see Costly.
	costly bool
	// partial: a literal of the glob is not valid UTF-8, so that it can
	// match part of a character of the key (matchGlobPartial).
	partial bool

	timeouts atomic.Int64
}

// cheapGlobTokens bounds the tokens (literal runs and wildcards) a glob
// may have after one of its * and before the next, and still be cheap: on
// a key it does not match, a glob tries them again from each character
// past that *, so that a match costs up to their number times the key's
// length. A glob with a literal that is not valid UTF-8 may try every
// token after its first * at each character (matchGlobPartial): they
// count as one run.
const cheapGlobTokens = 16

type token struct {
	op  byte   // 0: literal, '*': any run, '?': one character
	lit string // the literal, for op 0
}

// Parse compiles s with the default options.
func Parse(s string) (*Pattern, error) { return ParseWith(s, nil) }

// MustParse is Parse for patterns known to be valid; it panics on error.
func MustParse(s string) *Pattern {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// ParseWith compiles s. It recognises the kind by form: /.../ or a leading
// ^ is a regex; otherwise * and ? are wildcards and \ escapes *, ? and \. A
// pattern whose only wildcard is one * at the end is a prefix, at the start
// a suffix; one without wildcards is exact.
func ParseWith(s string, o *Options) (*Pattern, error) {
	maxLen, timeout := DefaultMaxLen, DefaultMatchTimeout
	if o != nil && o.MaxLen > 0 {
		maxLen = o.MaxLen
	}
	if o != nil && o.MatchTimeout > 0 {
		timeout = o.MatchTimeout
	}
	if s == "" {
		return nil, &SyntaxError{Pattern: s, Msg: "empty pattern"}
	}
	if len(s) > maxLen {
		return nil, &SyntaxError{Pattern: s, Pos: maxLen, Msg: fmt.Sprintf("pattern longer than %d bytes", maxLen)}
	}
	if expr, ok := regexBody(s); ok {
		return parseRegex(s, expr, timeout)
	}
	return parseGlob(s)
}

// regexBody returns the regular expression of a regex pattern.
func regexBody(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '/' && s[len(s)-1] == '/' {
		return s[1 : len(s)-1], true
	}
	if s[0] == '^' {
		return s, true
	}
	return "", false
}

func parseRegex(src, expr string, timeout time.Duration) (*Pattern, error) {
	if expr == "" {
		return nil, &SyntaxError{Pattern: src, Pos: 1, Msg: "empty regular expression"}
	}
	// RE2 mode: $ is the end of the key, not also the place before a
	// final newline, and \d, \w, \s are ASCII classes, as in Go's regexp.
	// An anchored pattern then means the whole key, which is what a reader
	// of an access pattern expects.
	re, err := regexp2.Compile(expr, regexp2.RE2)
	if err != nil {
		return nil, &SyntaxError{Pattern: src, Msg: "bad regular expression: " + err.Error()}
	}
	re.MatchTimeout = timeout
	pre, whole := regexPrefix(expr)
	return &Pattern{src: src, kind: Regex, re: re, pre: pre, onlyPre: whole && pre != ""}, nil
}

// regexPrefix returns a literal that every string the expression matches
// starts with, or "", and whether the expression is that literal anchored
// at the start and nothing else (as the access pattern "^todo:" is). It
// errs towards "": a wrong prefix would hide matches.
func regexPrefix(expr string) (string, bool) {
	if !strings.HasPrefix(expr, "^") || strings.ContainsRune(expr, '|') {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c == '\\':
			if i+1 < len(expr) && strings.IndexByte(`.*+?()[]{}|^$\/-:#"' `, expr[i+1]) >= 0 {
				// An escaped punctuation character is itself.
				if quantified(expr[i+2:]) {
					return b.String(), false
				}
				b.WriteByte(expr[i+1])
				i++
				continue
			}
			return b.String(), false
		case c < utf8.RuneSelf && (isAlnum(c) || strings.IndexByte(`:_-/@!%&=<>,;~'" `, c) >= 0):
			if quantified(expr[i+1:]) {
				return b.String(), false // the character is optional or repeated
			}
			b.WriteByte(c)
		default:
			return b.String(), false
		}
	}
	return b.String(), true
}

// quantified reports whether rest, what follows a character in an
// expression, may make that character optional or repeated: it starts
// with a quantifier, or with a (? construct, which may be a comment or
// an option that regexp2 skips before it looks for one (in ^ab(?#c)* the
// b is optional).
func quantified(rest string) bool {
	return rest != "" && isQuantifier(rest[0]) || strings.HasPrefix(rest, "(?")
}

func isQuantifier(c byte) bool { return c == '*' || c == '+' || c == '?' || c == '{' }

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func parseGlob(src string) (*Pattern, error) {
	var toks []token
	var lit strings.Builder
	endLit := func() {
		if lit.Len() > 0 {
			toks = append(toks, token{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '\\':
			if i+1 == len(src) {
				return nil, &SyntaxError{Pattern: src, Pos: i, Msg: `trailing \`}
			}
			if n := src[i+1]; n != '*' && n != '?' && n != '\\' {
				return nil, &SyntaxError{Pattern: src, Pos: i, Msg: fmt.Sprintf(`\ before %q: only *, ? and \ are escaped`, n)}
			}
			lit.WriteByte(src[i+1])
			i++
		case '*', '?':
			endLit()
			if c == '*' && len(toks) > 0 && toks[len(toks)-1].op == '*' {
				continue // ** is *
			}
			toks = append(toks, token{op: c})
		default:
			lit.WriteByte(c)
		}
	}
	endLit()
	p := &Pattern{src: src}
	switch {
	case len(toks) == 1 && toks[0].op == 0:
		p.kind, p.lit = Exact, toks[0].lit
	case len(toks) == 1 && toks[0].op == '*':
		p.kind = Prefix // "*": every key
	case len(toks) == 2 && toks[0].op == 0 && toks[1].op == '*':
		p.kind, p.lit = Prefix, toks[0].lit
	case len(toks) == 2 && toks[0].op == '*' && toks[1].op == 0 && utf8.ValidString(toks[1].lit):
		// A literal that is not UTF-8 may start inside a character,
		// which a glob's * never stops in: such a pattern stays a glob.
		p.kind, p.lit = Suffix, toks[1].lit
	default:
		p.kind, p.glob = Glob, toks
		if toks[0].op == 0 {
			p.pre = toks[0].lit
		}
		for _, t := range toks {
			p.partial = p.partial || t.op == 0 && !utf8.ValidString(t.lit)
		}
		// A mismatch goes back to the last * and tries the tokens after it
		// again, one character further on: the longest run of tokens
		// after a * is what a match may repeat up to the key's length.
		// A partial glob's match may try every token after the first *
		// at each character (matchGlobPartial).
		run := -1 // tokens since the last * (the first, if partial); -1 before the first
		for _, t := range toks {
			switch {
			case t.op == '*' && (run < 0 || !p.partial):
				run = 0
			case run >= 0:
				run++
				p.costly = p.costly || run > cheapGlobTokens
			}
		}
		if last := toks[len(toks)-1]; last.op == 0 {
			p.suf = last.lit
		}
	}
	switch p.kind {
	case Exact:
		p.pre, p.suf = p.lit, p.lit
	case Prefix:
		p.pre = p.lit
	case Suffix:
		p.suf = p.lit
	}
	return p, nil
}

// ExactKey returns the pattern that matches key and nothing else, whatever
// characters key holds: a subscription to one key, not to a pattern.
func ExactKey(key string) *Pattern {
	return &Pattern{src: key, kind: Exact, lit: key, pre: key, suf: key}
}

// String returns the pattern as it was written.
func (p *Pattern) String() string { return p.src }

// Kind returns the pattern's form.
func (p *Pattern) Kind() Kind { return p.kind }

// Costly reports whether matching the pattern may take long: a regex,
// which may run up to its MatchTimeout on a key, or a glob with a run of
// more than 16 tokens (literal runs and wildcards) after one of its *
// (after its first * when a literal of it is not valid UTF-8), whose
// cost grows with their number times the key's length. Package
// pubsub matches such patterns where a slow match falls on its own
// subscription.
func (p *Pattern) Costly() bool { return p.kind == Regex || p.costly }

// Literal returns the key of an exact pattern, the prefix of a prefix
// pattern or the suffix of a suffix pattern; "" for the other kinds.
func (p *Pattern) Literal() string { return p.lit }

// Timeouts returns how many regex matches ran out of time.
func (p *Pattern) Timeouts() int64 { return p.timeouts.Load() }

// Match reports whether key matches the pattern. Keys are bytes: a glob's ?
// matches one UTF-8 character or one byte that is not valid UTF-8; a regex
// reads the key as UTF-8, with each invalid byte read as U+FFFD. A regex
// match that runs out of time counts as no match; TryMatch tells the two
// apart.
func (p *Pattern) Match(key string) bool {
	ok, _ := p.TryMatch(key)
	return ok
}

// MatchAny reports whether key matches one of pats. When none does, it
// returns the first pattern that could not decide (a regex out of time),
// or nil if every one surely does not match.
func MatchAny(pats []*Pattern, key string) (bool, *Pattern) {
	var undecided *Pattern
	for _, p := range pats {
		ok, err := p.TryMatch(key)
		if ok {
			return true, nil
		}
		if err != nil && undecided == nil {
			undecided = p
		}
	}
	return false, undecided
}

// MatchAnyTwice is MatchAny for a caller that a wrong "could not decide"
// costs dearly, as a subscription, which ends: when a pattern could not
// decide, it runs MatchAny once more and returns what that says. A try
// can run out of time without having used it: the goroutine that matches
// can wait, on a loaded machine, longer than the timeout in the middle of
// a short match, which the retry of a try that ran out of time early
// (matchRunes) does not catch. A runaway regex costs two tries so.
func MatchAnyTwice(pats []*Pattern, key string) (bool, *Pattern) {
	ok, undecided := MatchAny(pats, key)
	if undecided != nil {
		ok, undecided = MatchAny(pats, key)
	}
	return ok, undecided
}

// TryMatch is Match that says when it could not decide: a regex match that
// runs out of time (see Options.MatchTimeout) returns false and an error
// that errors.Is recognises as ErrTimeout. Only a regex can fail.
func (p *Pattern) TryMatch(key string) (bool, error) {
	switch p.kind {
	case Exact:
		return key == p.lit, nil
	case Prefix:
		return strings.HasPrefix(key, p.lit), nil
	case Suffix:
		return strings.HasSuffix(key, p.lit), nil
	case Glob:
		if p.partial {
			return matchGlobPartial(p.glob, key), nil
		}
		return matchGlob(p.glob, key), nil
	case Regex:
		if !strings.HasPrefix(key, p.pre) {
			return false, nil // a key outside its literal prefix never runs the regex
		}
		if p.onlyPre {
			return true, nil
		}
		buf := runeBufs.Get().(*[]rune)
		*buf = appendRunes((*buf)[:0], key)
		ok, err := p.matchRunes(*buf)
		runeBufs.Put(buf)
		if err != nil {
			p.timeouts.Add(1)
			return false, fmt.Errorf("%w: %s after %v", ErrTimeout, p.src, p.re.MatchTimeout)
		}
		return ok, nil
	}
	return false, nil
}

// matchRunes runs the regex, and once more if it ran out of time before
// its timeout had passed. regexp2 reads time from a clock that a goroutine
// of its own moves forward; on a loaded machine that goroutine can be
// starved, then jump, and fail a match that had barely started, which
// would end a subscription for nothing. A runaway match that has used its
// time is not tried again: its cost stays one timeout.
func (p *Pattern) matchRunes(r []rune) (bool, error) {
	start := time.Now()
	ok, err := regexMatch(p.re, r)
	if err != nil && time.Since(start) < p.re.MatchTimeout {
		ok, err = regexMatch(p.re, r)
	}
	return ok, err
}

// regexMatch is regexp2's match; tests replace it to make a try run out of
// time.
var regexMatch = (*regexp2.Regexp).MatchRunes

// runeBufs holds the rune slices that regex matches read keys into, so
// that a match does not allocate one.
var runeBufs = sync.Pool{New: func() any { b := make([]rune, 0, 64); return &b }}

// appendRunes decodes key as regexp2's MatchString would: invalid bytes
// become U+FFFD.
func appendRunes(buf []rune, key string) []rune {
	for _, r := range key {
		buf = append(buf, r)
	}
	return buf
}

// matchGlob matches with the usual greedy-star backtracking: on a mismatch,
// the last * takes one more character. It runs in O(len(key)·len(toks)).
// It is right when every literal is valid UTF-8: then every place a token
// can start at is where a character of the key, read from its start,
// begins or ends, so that a later * reaches every place an earlier one
// would. A literal that is not UTF-8 can end inside a character, from
// where a * steps byte by byte: see matchGlobPartial.
func matchGlob(toks []token, key string) bool {
	ti, ki := 0, 0
	starTok, starKey := -1, 0
	for {
		if ti < len(toks) {
			t := toks[ti]
			switch t.op {
			case '*':
				starTok, starKey = ti, ki
				ti++
				continue
			case '?':
				if ki < len(key) {
					_, n := utf8.DecodeRuneInString(key[ki:])
					ti, ki = ti+1, ki+n
					continue
				}
			default:
				if strings.HasPrefix(key[ki:], t.lit) {
					ti, ki = ti+1, ki+len(t.lit)
					continue
				}
			}
		} else if ki == len(key) {
			return true
		}
		if starTok < 0 || starKey >= len(key) {
			return false
		}
		_, n := utf8.DecodeRuneInString(key[starKey:])
		starKey += n
		ti, ki = starTok+1, starKey
	}
}

// matchGlobPartial matches a glob some of whose literals are not valid
// UTF-8, which matchGlob's backtracking gets wrong: a * that starts
// inside a character, after such a literal, steps byte by byte, so that
// it reaches places that a * started earlier skips, and the other way
// round ("*\xc3*\xa9" matches "éé": the first * takes the first é, the
// second starts after \xc3, inside the second é). It tries every way,
// each pair of a token and a place in the key once:
// O(len(key)·len(toks)).
func matchGlobPartial(toks []token, key string) bool {
	// tried has a bit for each token and place in the key: toks[t:]
	// tried on key[k:] is bit t*(len(key)+1)+k.
	tried := make([]uint64, ((len(toks)+1)*(len(key)+1)+63)/64)
	first := func(t, k int) bool { // sets the bit, and reports whether it was not set
		i := t*(len(key)+1) + k
		if tried[i/64]&(1<<(i%64)) != 0 {
			return false
		}
		tried[i/64] |= 1 << (i % 64)
		return true
	}
	var match func(t, k int) bool
	match = func(t, k int) bool {
		for ; t < len(toks); t++ {
			// Tried before, it did not match: a match ends the search.
			if !first(t, k) {
				return false
			}
			switch tok := toks[t]; tok.op {
			case '*':
				for !match(t+1, k) {
					if k == len(key) {
						return false
					}
					_, n := utf8.DecodeRuneInString(key[k:])
					if k += n; !first(t, k) {
						return false
					}
				}
				return true
			case '?':
				if k == len(key) {
					return false
				}
				_, n := utf8.DecodeRuneInString(key[k:])
				k += n
			default:
				if !strings.HasPrefix(key[k:], tok.lit) {
					return false
				}
				k += len(tok.lit)
			}
		}
		return k == len(key)
	}
	return match(0, 0)
}

// Bounds returns the smallest key range [start, end) that holds every key
// the pattern matches: a range scan over it finds them all. end "" means no
// upper bound; ("", "") means the pattern has no literal prefix to narrow
// the scan (a suffix, say).
func (p *Pattern) Bounds() (start, end string) {
	if p.kind == Exact {
		return p.lit, p.lit + "\x00"
	}
	if p.pre == "" {
		return "", ""
	}
	return p.pre, PrefixEnd(p.pre)
}

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, or "" when there is none (a prefix of 0xff bytes only).
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// clockPeriod is how often regexp2's clock moves on while a match with a
// timeout may be running: its matches read that clock, not the time, to
// see whether their MatchTimeout has passed, and its default period of
// 100ms made a runaway match given 10ms run for about 200ms. At 2ms it
// runs for 10 to 13ms (20 runs each of /^(a+)+$/ on 28 a's and a !,
// alone, on a 2-core machine: 197 to 202ms before). The clock's goroutine
// then wakes every 2ms while matches run, and stops a second after the
// last deadline. The period is regexp2's, for the whole program: one
// that sets it after this package is initialized has its way.
const clockPeriod = 2 * time.Millisecond

func init() { regexp2.SetTimeoutCheckPeriod(clockPeriod) }
