package pattern_test

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"github.com/livekv/livekv/pattern"
	"github.com/stretchr/testify/require"
)

// The tests here compare each matcher with a simple one written from
// docs/patterns.md alone.

// refTok is a token of a glob as refParse reads it: one literal byte, or
// a wildcard.
type refTok struct {
	op byte // 0: the literal byte b, '*' or '?'
	b  byte
}

// refParse reads a pattern that is not a regex as the doc says: \ escapes
// *, ? and \, and nothing else; ok is false on a syntax error.
func refParse(s string) (toks []refTok, ok bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) || !strings.ContainsRune(`*?\`, rune(s[i+1])) {
				return nil, false
			}
			i++
			toks = append(toks, refTok{b: s[i]})
		case '*', '?':
			toks = append(toks, refTok{op: c})
		default:
			toks = append(toks, refTok{b: c})
		}
	}
	return toks, true
}

// refIsRegex says whether a pattern is a regex, and its expression.
func refIsRegex(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '/' && s[len(s)-1] == '/' {
		return s[1 : len(s)-1], true
	}
	return s, strings.HasPrefix(s, "^")
}

// refGlobMatch matches by trying every way, remembering what each
// (token, place) pair gave: a * or ? steps over one UTF-8 character of
// the key, or over one byte that does not start one, read from where it
// stands; a literal byte matches itself.
func refGlobMatch(toks []refTok, key string) bool {
	memo := make([]int8, (len(toks)+1)*(len(key)+1)) // 0 unknown, 1 yes, 2 no
	var match func(t, k int) bool
	match = func(t, k int) bool {
		i := t*(len(key)+1) + k
		if memo[i] != 0 {
			return memo[i] == 1
		}
		next := func() int { _, n := utf8.DecodeRuneInString(key[k:]); return k + n }
		var ok bool
		switch {
		case t == len(toks):
			ok = k == len(key)
		case toks[t].op == '*': // nothing, or one character and * again
			ok = match(t+1, k) || k < len(key) && match(t, next())
		case toks[t].op == '?':
			ok = k < len(key) && match(t+1, next())
		default:
			ok = k < len(key) && key[k] == toks[t].b && match(t+1, k+1)
		}
		memo[i] = 2
		if ok {
			memo[i] = 1
		}
		return ok
	}
	return match(0, 0)
}

// refGoRegexp is the glob as a Go regexp, for globs that are valid UTF-8:
// Go's regexp also steps over an invalid byte of the key as one
// character.
func refGoRegexp(toks []refTok) *regexp.Regexp {
	var b, lit strings.Builder
	b.WriteString(`(?s)^`)
	flush := func() {
		b.WriteString(regexp.QuoteMeta(lit.String()))
		lit.Reset()
	}
	for _, t := range toks {
		switch t.op {
		case '*':
			flush()
			b.WriteString(`.*`)
		case '?':
			flush()
			b.WriteString(`.`)
		default:
			lit.WriteByte(t.b)
		}
	}
	flush()
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// refKind is the kind the doc says Parse picks for a glob.
func refKind(toks []refTok) pattern.Kind {
	// ** is *.
	var ts []refTok
	for _, t := range toks {
		if t.op == '*' && len(ts) > 0 && ts[len(ts)-1].op == '*' {
			continue
		}
		ts = append(ts, t)
	}
	stars, other := 0, 0
	for _, t := range ts {
		switch t.op {
		case '*':
			stars++
		case '?':
			other++
		}
	}
	lit := func(ts []refTok) string {
		var b []byte
		for _, t := range ts {
			b = append(b, t.b)
		}
		return string(b)
	}
	switch {
	case other > 0 || stars > 1:
		return pattern.Glob
	case stars == 0:
		return pattern.Exact
	case ts[len(ts)-1].op == '*':
		return pattern.Prefix
	case ts[0].op == '*' && utf8.ValidString(lit(ts[1:])):
		return pattern.Suffix
	}
	return pattern.Glob
}

// keysFor returns keys near what src can match: its literal bytes, each
// wildcard replaced in a few ways, with invalid UTF-8 and multi-byte
// characters among them.
func keysFor(src, key string) []string {
	keys := []string{key, "", src, key + src, src + key}
	fills := []string{"", "a", "é", "\xc3", "\xa9", "\xff", "😀", "ab"}
	if len(key) <= 8 {
		fills = append(fills, key)
	}
	for _, f := range fills {
		r := strings.NewReplacer(`\*`, "*", `\?`, "?", `\\`, `\`, "*", f, "?", f)
		keys = append(keys, r.Replace(src))
		for _, g := range []string{"a", "é", "\xff"} {
			keys = append(keys, r.Replace(src)+g, g+r.Replace(src))
		}
	}
	return keys
}

func checkGlob(t *testing.T, src, key string) {
	if len(src) > pattern.DefaultMaxLen {
		_, err := pattern.Parse(src)
		require.ErrorIs(t, err, pattern.ErrSyntax, "%d bytes", len(src))
		return
	}
	if _, re := refIsRegex(src); re || src == "" {
		return
	}
	toks, ok := refParse(src)
	p, err := pattern.Parse(src)
	if !ok {
		require.ErrorIs(t, err, pattern.ErrSyntax, "%q", src)
		return
	}
	require.NoError(t, err, "%q", src)
	require.Equal(t, refKind(toks), p.Kind(), "kind of %q", src)
	var goRe *regexp.Regexp
	if utf8.ValidString(src) {
		goRe = refGoRegexp(toks)
	}
	for _, k := range keysFor(src, key) {
		want := refGlobMatch(toks, k)
		require.Equal(t, want, p.Match(k), "%q (%v) on %q", src, p.Kind(), k)
		if goRe != nil {
			require.Equal(t, want, goRe.MatchString(k), "Go regexp of %q on %q", src, k)
		}
		if want {
			from, to := p.Bounds()
			require.True(t, k >= from && (to == "" || k < to), "%q matches %q outside [%q, %q)", src, k, from, to)
		}
	}
}

var globSeeds = [][2]string{
	{"user:*:profile", "user:7:profile"},
	{"log-202?", "log-2024"},
	{"*\xc3*\xa9", "éé"},
	{"?", "é"},
	{"?", "\xff"},
	{"??", "\xf0\x9f"},
	{"*\xa9", "é"},
	{"\xc3*", "é"},
	{`a\*`, "a*"},
	{`\\*`, `\x`},
	{`*\?`, "x?"},
	{`a\`, "a"},
	{`a\b`, `a\b`},
	{"**a**b**", "xaxbx"},
	{"*é*", "\xc3é"},
	{"a?*?b", "a😀b"},
	{"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 40)},
	{strings.Repeat("?", 256), strings.Repeat("é", 256)},
	{strings.Repeat("a", 255) + "*", strings.Repeat("a", 300)},
	{"*" + strings.Repeat("\xff", 255), strings.Repeat("\xff", 256)},
	{strings.Repeat("*\xe2", 128), strings.Repeat("€", 128)},
	{strings.Repeat("?", 257), strings.Repeat("a", 257)},
	{"*é?" + strings.Repeat("\xa9", 252), strings.Repeat("é", 512)},
}

// TestGlob_MatchesReference: globs, prefixes, suffixes and exact keys
// match as a matcher that tries every way says, on keys with invalid
// UTF-8 and multi-byte characters, up to the longest patterns.
func TestGlob_MatchesReference(t *testing.T) {
	for _, s := range globSeeds {
		checkGlob(t, s[0], s[1])
	}
}

func FuzzGlob(f *testing.F) {
	for _, s := range globSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, src, key string) {
		if len(key) > 1024 {
			return
		}
		checkGlob(t, src, key)
	})
}

// checkRegex: a regex matches as regexp2 in RE2 mode does, run on the
// whole key; the literal prefix that spares running it never changes the
// answer.
func checkRegex(t *testing.T, src, key string) {
	expr, ok := refIsRegex(src)
	if !ok || len(src) > pattern.DefaultMaxLen {
		return
	}
	ref, refErr := regexp2.Compile(expr, regexp2.RE2)
	p, err := pattern.Parse(src)
	if expr == "" || refErr != nil {
		require.ErrorIs(t, err, pattern.ErrSyntax, "%q", src)
		return
	}
	require.NoError(t, err, "%q", src)
	require.Equal(t, pattern.Regex, p.Kind())
	for _, k := range []string{key, "", src, expr, strings.TrimPrefix(expr, "^"), strings.TrimPrefix(expr, "^") + key} {
		want, err := ref.MatchString(k)
		require.NoError(t, err)
		got, err := p.TryMatch(k)
		if err != nil {
			continue // out of time: not what this compares
		}
		require.Equal(t, want, got, "%q on %q", src, k)
		if want {
			from, to := p.Bounds()
			require.True(t, k >= from && (to == "" || k < to), "%q matches %q outside [%q, %q)", src, k, from, to)
		}
	}
}

var regexSeeds = [][2]string{
	{`/^user:\d+$/`, "user:12"},
	{`^user:\d+$`, "user:1\n"},
	{`^todo:`, "todo:1"},
	{`^a\.b`, "a.b"},
	{`^ab?c`, "ac"},
	{`^ab(?#c)*`, "a"},
	{`^ab{0}c`, "ac"},
	{`^a|b`, "b"},
	{`/user/`, "x/user/y"},
	{`^\xff`, "\xff"},
	{"^\xff", "\xfe"},
	{`^a\-b`, "a-b"},
	{`^a\ b`, "a b"},
	{`^a b(?x) c`, "a bc"},
	{`^(?i)ab`, "AB"},
	{`^a(?i)b`, "aB"},
	{`^\$`, "$"},
	{`^é`, "é"},
	{`^\:`, ":"},
}

// TestRegex_MatchesReference: see checkRegex.
func TestRegex_MatchesReference(t *testing.T) {
	for _, s := range regexSeeds {
		checkRegex(t, s[0], s[1])
	}
}

func FuzzRegex(f *testing.F) {
	for _, s := range regexSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, src, key string) {
		if len(key) > 1024 {
			return
		}
		checkRegex(t, src, key)
	})
}

// checkIndex decodes patterns separated by NUL and checks Match,
// Candidates and Remove against a linear scan of every pattern.
func checkIndex(t *testing.T, pats, key string) {
	x := pattern.NewIndex[int]()
	var ps []*pattern.Pattern
	for _, s := range strings.Split(pats, "\x00") {
		if p, err := pattern.Parse(s); err == nil {
			x.Add(p, len(ps))
			ps = append(ps, p)
		}
		// The key itself, whatever it holds.
		x.Add(pattern.ExactKey(s), len(ps))
		ps = append(ps, pattern.ExactKey(s))
	}
	require.Equal(t, len(ps), x.Len())
	for _, k := range append(keysFor(pats, key), strings.Split(pats, "\x00")...) {
		var want []int
		for i, p := range ps {
			if p.Match(k) {
				want = append(want, i)
			}
		}
		got := collect(x.Match, k)
		require.Equal(t, want, got, "Match %q", k)
		cands := collect(x.Candidates, k)
		for _, v := range want {
			require.Contains(t, cands, v, "Candidates %q", k)
		}
		for _, v := range cands {
			// A candidate that is not a match needs a verification.
			if k := ps[v].Kind(); !slices.Contains(want, v) {
				require.True(t, k == pattern.Glob || k == pattern.Regex, "candidate %q of kind %v", ps[v], k)
			}
		}
	}
	// Remove every other pair; the rest still match as before.
	for i := 0; i < len(ps); i += 2 {
		require.True(t, x.Remove(ps[i], i), "Remove %q", ps[i])
	}
	require.Equal(t, len(ps)/2, x.Len())
	for _, k := range keysFor(pats, key) {
		var want []int
		for i := 1; i < len(ps); i += 2 {
			if ps[i].Match(k) {
				want = append(want, i)
			}
		}
		require.Equal(t, want, collect(x.Match, k), "Match %q after Remove", k)
	}
}

func collect(walk func(string, func(int) bool), key string) []int {
	var out []int
	walk(key, func(v int) bool { out = append(out, v); return true })
	slices.Sort(out)
	return out
}

var indexSeeds = [][2]string{
	{"user:*\x00*:s\x00a*b?\x00/^u\\d/\x00exact", "user:1:s"},
	{"*\x00?\x00\\*\x00a*\x00*a\x00a*a", "aa"},
	{"*\xc3*\xa9\x00\xc3*\x00*\xa9\x00?\xa9", "éé"},
	{"^todo:\x00^todo:\\d\x00/todo/\x00todo:*", "todo:1"},
	{"a*b\x00a*b\x00a\x00a\x00*\xff\x00\xff*", "ab"},
}

// TestIndex_MatchesLinearScan: see checkIndex.
func TestIndex_MatchesLinearScan(t *testing.T) {
	for _, s := range indexSeeds {
		checkIndex(t, s[0], s[1])
	}
}

func FuzzIndexLinear(f *testing.F) {
	for _, s := range indexSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pats, key string) {
		if len(pats) > 2048 || len(key) > 1024 {
			return
		}
		checkIndex(t, pats, key)
	})
}

// TestRegex_PrefixRandom builds regexes from pieces that a literal
// prefix must stop at (quantifiers, comments, options, alternations) and
// compares them with regexp2 on keys made of what they may match.
func TestRegex_PrefixRandom(t *testing.T) {
	pieces := []string{"a", "b", ":", `\.`, `\-`, `\ `, " ", "#", "*", "+", "?", "{0}", "{1,}", "{", "(?#c)", "(?i)", "(?x)", "|", "$", "(a)", "[ab]", `\d`, "é", `\\`, `\b`}
	keyPieces := []string{"a", "b", "A", "B", ":", ".", "-", " ", "#", "é", `\`, "1", "\xff", "\n"}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var b strings.Builder
		b.WriteString("^")
		for range 1 + rnd.IntN(6) {
			b.WriteString(pieces[rnd.IntN(len(pieces))])
		}
		src := b.String()
		if _, err := regexp2.Compile(src, regexp2.RE2); err != nil {
			continue
		}
		var k strings.Builder
		for range rnd.IntN(6) {
			k.WriteString(keyPieces[rnd.IntN(len(keyPieces))])
		}
		checkRegex(t, src, k.String())
		checkRegex(t, "/"+src+"/", k.String())
	}
}
