package pattern_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"github.com/livekv/livekv/internal/leaktest"
	"github.com/livekv/livekv/pattern"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestParse_Kinds(t *testing.T) {
	tests := []struct {
		src      string
		kind     pattern.Kind
		lit      string
		yes, no  []string
		from, to string
	}{
		{`user:42`, pattern.Exact, "user:42", []string{"user:42"}, []string{"user:4", "user:421", ""}, "user:42", "user:42\x00"},
		{`user:*`, pattern.Prefix, "user:", []string{"user:", "user:1", "user:1:x"}, []string{"user", "xuser:1"}, "user:", "user;"},
		{`*`, pattern.Prefix, "", []string{"", "a", "\xff"}, nil, "", ""},
		{`**`, pattern.Prefix, "", []string{"", "a"}, nil, "", ""},
		{`*:session`, pattern.Suffix, ":session", []string{":session", "a:session"}, []string{"a:sessions", "session"}, "", ""},
		{`user:*:profile`, pattern.Glob, "", []string{"user::profile", "user:1:profile", "user:1:2:profile"}, []string{"user:1:profile2", "user:1:prof"}, "user:", "user;"},
		{`log-202?`, pattern.Glob, "", []string{"log-2024", "log-202x", "log-202é"}, []string{"log-202", "log-20245"}, "log-202", "log-203"},
		{`a*b*c`, pattern.Glob, "", []string{"abc", "aXbYc", "abbbc", "acbc"}, []string{"ab", "acb", "abcd"}, "a", "b"},
		{`*a*`, pattern.Glob, "", []string{"a", "xay", "aaa"}, []string{"", "bcd"}, "", ""},
		{`?`, pattern.Glob, "", []string{"a", "é", "\xff"}, []string{"", "ab", "é\xff"}, "", ""},
		{`*?`, pattern.Glob, "", []string{"a", "ab"}, []string{""}, "", ""},
		{`a\*`, pattern.Exact, "a*", []string{"a*"}, []string{"ab", "a"}, "a*", "a*\x00"},
		{`a\**`, pattern.Prefix, "a*", []string{"a*", "a*b"}, []string{"ab"}, "a*", "a+"},
		{`\?x`, pattern.Exact, "?x", []string{"?x"}, []string{"ax"}, "?x", "?x\x00"},
		{`\\*`, pattern.Prefix, `\`, []string{`\`, `\a`}, []string{"a"}, `\`, "]"},
		{`*\*`, pattern.Suffix, "*", []string{"a*", "*"}, []string{"a"}, "", ""},
		{"*\xa9", pattern.Glob, "", []string{"\xa9", "x\xa9"}, []string{"é"}, "", ""}, // as "a*\xa9" does not match "aé"
		{"a*\xa9", pattern.Glob, "", []string{"a\xa9", "ax\xa9"}, []string{"aé"}, "a", "b"},
		{`héllo*`, pattern.Prefix, "héllo", []string{"héllo wörld"}, []string{"hello"}, "héllo", "héllp"},
		{"\xff\xff*", pattern.Prefix, "\xff\xff", []string{"\xff\xff", "\xff\xffa"}, []string{"\xff"}, "\xff\xff", ""},
		{`/^user:\d+$/`, pattern.Regex, "", []string{"user:1", "user:42"}, []string{"user:", "user:x", "xuser:1"}, "user:", "user;"},
		{`^user:\d+$`, pattern.Regex, "", []string{"user:1"}, []string{"user:a"}, "user:", "user;"},
		{`/user/`, pattern.Regex, "", []string{"user", "a user b"}, []string{"usr"}, "", ""},
		{`^(a|b):x`, pattern.Regex, "", []string{"a:x", "b:x"}, []string{"c:x"}, "", ""},
		{`^ab|cd`, pattern.Regex, "", []string{"abx", "xcd"}, []string{"xab"}, "", ""},
		{`^abc?d`, pattern.Regex, "", []string{"abd", "abcd"}, []string{"acd"}, "ab", "ac"},
		{`^a\.b`, pattern.Regex, "", []string{"a.b"}, []string{"axb"}, "a.b", "a.c"},
		{`^a\.?b`, pattern.Regex, "", []string{"ab", "a.b"}, []string{"a,b"}, "a", "b"},
		{`^a\db`, pattern.Regex, "", []string{"a1b"}, []string{"ab"}, "a", "b"},
		{`^(?i)abc`, pattern.Regex, "", []string{"ABC", "abc"}, []string{"ab"}, "", ""},
		{`^é+`, pattern.Regex, "", []string{"é", "éé"}, []string{"e"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := pattern.Parse(tt.src)
			require.NoError(t, err)
			require.Equal(t, tt.kind, p.Kind(), "kind")
			require.Equal(t, tt.src, p.String())
			require.Equal(t, tt.lit, p.Literal(), "literal")
			for _, k := range tt.yes {
				require.True(t, p.Match(k), "%q should match %q", tt.src, k)
			}
			for _, k := range tt.no {
				require.False(t, p.Match(k), "%q should not match %q", tt.src, k)
			}
			from, to := p.Bounds()
			require.Equal(t, tt.from, from, "bounds start")
			require.Equal(t, tt.to, to, "bounds end")
			for _, k := range tt.yes {
				require.True(t, k >= from && (to == "" || k < to), "%q outside its bounds [%q, %q)", k, from, to)
			}
		})
	}
}

func TestParse_Errors(t *testing.T) {
	tests := []struct {
		src string
		pos int
	}{
		{"", 0},
		{`abc\`, 3},
		{`a\b`, 1},
		{`/(/`, 0},
		{`^a[`, 0},
		{`//`, 1},
		{strings.Repeat("a", 257), 256},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := pattern.Parse(tt.src)
			require.ErrorIs(t, err, pattern.ErrSyntax)
			var se *pattern.SyntaxError
			require.True(t, errors.As(err, &se))
			require.Equal(t, tt.pos, se.Pos)
			require.True(t, strings.HasPrefix(err.Error(), "pattern: "), err.Error())
		})
	}
	_, err := pattern.ParseWith(strings.Repeat("a", 300), &pattern.Options{MaxLen: 512})
	require.NoError(t, err)
	require.Panics(t, func() { pattern.MustParse(`a\`) })
}

func TestKind_String(t *testing.T) {
	require.Equal(t, "prefix", pattern.Prefix.String())
	require.Equal(t, "unknown", pattern.Kind(0).String())
}

// TestRegex_ReDoS runs catastrophic regexes on 100 KB keys: each returns
// no match within the timeout (plus regexp2's clock period) and counts it.
func TestRegex_ReDoS(t *testing.T) {
	long := strings.Repeat("a", 100_000) + "!"
	for _, src := range []string{`/(a+)+$/`, `/(a|aa)+$/`, `/(a|a?)+$/`, `/^(a*)*b$/`, `/(.*a){20}$/`} {
		t.Run(src, func(t *testing.T) {
			p, err := pattern.ParseWith(src, &pattern.Options{MatchTimeout: 20 * time.Millisecond})
			require.NoError(t, err)
			start := time.Now()
			require.False(t, p.Match(long))
			require.Less(t, time.Since(start), 2*time.Second, "a runaway match must stop")
		})
	}
	p, err := pattern.ParseWith(`/(a+)+$/`, &pattern.Options{MatchTimeout: 10 * time.Millisecond})
	require.NoError(t, err)
	require.False(t, p.Match(long))
	require.Equal(t, int64(1), p.Timeouts(), "the timeout is counted")
}

func TestExactKey(t *testing.T) {
	for _, key := range []string{"user:42", "a*b", "^x", "/re/", `back\slash`, "?"} {
		p := pattern.ExactKey(key)
		require.Equal(t, pattern.Exact, p.Kind())
		require.True(t, p.Match(key), key)
		require.False(t, p.Match(key+"x"), key)
		start, end := p.Bounds()
		require.Equal(t, key, start)
		require.Equal(t, key+"\x00", end)
		x := pattern.NewIndex[int]()
		x.Add(p, 1)
		n := 0
		x.Match(key, func(int) bool { n++; return true })
		require.Equal(t, 1, n, key)
	}
}

// TestParse_RegexWholeKey: a regex's $ is the end of the key, not the
// place before a final newline (regexp2's default), and \d is an ASCII
// digit: an anchored regex means the whole key, as its reader expects.
func TestParse_RegexWholeKey(t *testing.T) {
	for src, no := range map[string][]string{
		`^user:[0-9]+$`: {"user:1\n", "user:1\n\n"},
		`/^user:\d+$/`:  {"user:1\n", "user:\u0661"},
		`/^a\w$/`:       {"a\u00e9"},
	} {
		p, err := pattern.Parse(src)
		require.NoError(t, err)
		for _, key := range no {
			require.False(t, p.Match(key), "%s matches %q", src, key)
		}
	}
	require.True(t, pattern.MustParse(`^user:[0-9]+$`).Match("user:12"))
	require.True(t, pattern.MustParse(`/^a(?m:$)\n/`).Match("a\n"), "multiline mode is asked for")
}

// TestParse_RegexPrefixSkipsNoQuantifier: regexp2 skips an inline
// comment, (?#...), before it looks for a quantifier, so in ^ab(?#c)* the
// b is optional. The literal prefix kept it: "a" never matched, fell
// outside Bounds, and a subscriber was never offered its events. A
// character followed by any (? construct is now left out of the prefix.
func TestParse_RegexPrefixSkipsNoQuantifier(t *testing.T) {
	keys := []string{"a", "ab", "abb", "ax", "abx", "user:0", "user:10", "aB", "A"}
	for _, src := range []string{`^ab(?#c)*`, `/^ab(?#c)?x/`, `^user:1(?#id)?0`, `^a\-(?#c)*`,
		`^ab(?#c)(?#d)+`, `^ab(?i)*`, `^ab(?x) *`, `^ab(?i:)*`, `^ab(?:c)*`} {
		expr := strings.TrimSuffix(strings.TrimPrefix(src, "/"), "/")
		re, err := regexp2.Compile(expr, regexp2.RE2)
		if err != nil {
			continue // regexp2 refuses it: so does Parse
		}
		p := pattern.MustParse(src)
		from, to := p.Bounds()
		for _, key := range keys {
			want, err := re.MatchString(key)
			require.NoError(t, err)
			require.Equal(t, want, p.Match(key), "%s on %q", src, key)
			if want {
				require.True(t, key >= from && (to == "" || key < to), "%s: %q outside its Bounds [%q, %q)", src, key, from, to)
			}
		}
	}
}

// TestMatchAny: a sure match wins over a regex that runs out of time, in
// either order; with no sure match the first undecided pattern is named.
func TestMatchAny(t *testing.T) {
	long := strings.Repeat("a", 100_000) + "!"
	slow, err := pattern.ParseWith(`/(a+)+$/`, &pattern.Options{MatchTimeout: time.Millisecond})
	require.NoError(t, err)
	prefix, err := pattern.Parse("aaa*")
	require.NoError(t, err)
	other, err := pattern.Parse("b*")
	require.NoError(t, err)

	ok, undecided := pattern.MatchAny([]*pattern.Pattern{slow, prefix}, long)
	require.True(t, ok)
	require.Nil(t, undecided)
	ok, undecided = pattern.MatchAny([]*pattern.Pattern{prefix, slow}, long)
	require.True(t, ok)
	require.Nil(t, undecided)

	ok, undecided = pattern.MatchAny([]*pattern.Pattern{other, slow}, long)
	require.False(t, ok)
	require.Same(t, slow, undecided)

	ok, undecided = pattern.MatchAny([]*pattern.Pattern{other}, long)
	require.False(t, ok)
	require.Nil(t, undecided)
}

// TestPattern_Costly: regexes and globs with more than 16 tokens after
// their first * are costly; exact, prefix, suffix and other globs are not.
func TestPattern_Costly(t *testing.T) {
	for src, want := range map[string]bool{
		"user:1":                               false,
		"user:*":                               false,
		"*:session":                            false,
		"user:*:session:*":                     false,
		"*" + strings.Repeat("a?", 8):          false, // 16 tokens after the *
		"*" + strings.Repeat("a?", 8) + "b":    true,
		strings.Repeat("a?", 40):               false, // no *: linear
		"*" + strings.Repeat("a?", 126) + "x*": true,
		strings.Repeat("a*", 40):               false, // short runs between the *s
		"a*" + strings.Repeat("b?", 9) + "*c":  true,  // 18 after the first *
		"*x*" + strings.Repeat("a?", 8):        false, // 16 after the last *
		"*\xc3*" + strings.Repeat("a?", 8):     true,  // not UTF-8: 18 after the first *
		"/^user:/":                             true,
		"/^(a+)+$/":                            true,
	} {
		p, err := pattern.Parse(src)
		require.NoError(t, err, src)
		require.Equal(t, want, p.Costly(), src)
	}
}

// TestGlob_LiteralInsideACharacter: a glob whose literals are not valid
// UTF-8 can match part of a character of the key; its * still stops only
// where a character of the key, read from where the * began, ends. "*\xc3*\xa9"
// matches "éé": the first * takes the first é, \xc3 the lead byte of the
// second, the second * nothing, \xa9 its last byte. Checked against
// a matcher that tries every way, on every key of up to four pieces.
func TestGlob_LiteralInsideACharacter(t *testing.T) {
	p := pattern.MustParse("*\xc3*\xa9")
	require.True(t, p.Match("éé"))
	x := pattern.NewIndex[int]()
	x.Add(p, 1)
	n := 0
	x.Match("éé", func(int) bool { n++; return true })
	require.Equal(t, 1, n, "the index finds it too")

	pieces := []string{"a", "é", "\xc3", "\xa9", "\xff", "😀", "\xf0\x9f"}
	var keys []string
	var grow func(k string, n int)
	grow = func(k string, n int) {
		keys = append(keys, k)
		if n > 0 {
			for _, s := range pieces {
				grow(k+s, n-1)
			}
		}
	}
	grow("", 4)
	for _, src := range []string{"*\xc3*\xa9", "*\xc3?*", "?\xa9*\xc3*", "*\x9f*\xa9*", "a*\xc3*\xa9?", "*\xc3*\xa9*\xc3*"} {
		p := pattern.MustParse(src)
		toks := refGlob(src)
		for _, k := range keys {
			require.Equal(t, refMatch(toks, k), p.Match(k), "%q on %q", src, k)
		}
	}
}

// refGlob reads a glob without escapes into tokens of one byte or one
// wildcard each, for refMatch.
func refGlob(src string) []string {
	var toks []string
	for i := range len(src) {
		toks = append(toks, src[i:i+1])
	}
	return toks
}

// refMatch matches a glob trying every way: ? takes one character, *
// any run of them (each a UTF-8 character, or a byte that is not one),
// a literal byte itself.
func refMatch(toks []string, key string) bool {
	if len(toks) == 0 {
		return key == ""
	}
	switch toks[0] {
	case "?":
		_, n := utf8.DecodeRuneInString(key)
		return key != "" && refMatch(toks[1:], key[n:])
	case "*":
		for {
			if refMatch(toks[1:], key) {
				return true
			}
			if key == "" {
				return false
			}
			_, n := utf8.DecodeRuneInString(key)
			key = key[n:]
		}
	}
	return strings.HasPrefix(key, toks[0]) && refMatch(toks[1:], key[1:])
}
