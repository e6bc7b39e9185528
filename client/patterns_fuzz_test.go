package client_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/livekv/livekv/client"
	"github.com/livekv/livekv/pattern"
	"github.com/stretchr/testify/require"
)

// checkKeyPattern: KeyPattern(k) matches k and no other key, and
// PrefixPattern(k) exactly the keys that start with k, whatever bytes k
// holds, when the pattern fits in pattern.DefaultMaxLen. A regex, which
// reads each byte that is not valid UTF-8 as U+FFFD, tells keys apart
// only as far as their runes do.
func checkKeyPattern(t *testing.T, k, other string) {
	same := func(p *pattern.Pattern, a, b string) bool {
		if p.Kind() == pattern.Regex {
			return slices.Equal([]rune(a), []rune(b))
		}
		return a == b
	}
	hasPrefix := func(p *pattern.Pattern, a, b string) bool {
		if p.Kind() == pattern.Regex {
			ra, rb := []rune(a), []rune(b)
			return len(ra) >= len(rb) && slices.Equal(ra[:len(rb)], rb)
		}
		return strings.HasPrefix(a, b)
	}
	others := []string{other, "", k + "a", "a" + k, k + "\xff", k + "é", "\xff" + k, strings.ToUpper(k), strings.ToValidUTF8(k, "\uFFFD"), strings.ToValidUTF8(k, "\xfe")}
	if k != "" {
		others = append(others, k[:len(k)-1], k[1:], k[:len(k)-1]+"\xfe", "\xfe"+k[1:])
	}
	if s := client.KeyPattern(k); k != "" && len(s) <= pattern.DefaultMaxLen { // a key is never empty
		p, err := pattern.Parse(s)
		require.NoError(t, err, "KeyPattern(%q) = %q", k, s)
		require.True(t, p.Match(k), "KeyPattern(%q) = %q on itself", k, s)
		for _, o := range others {
			require.Equal(t, same(p, o, k), p.Match(o), "KeyPattern(%q) = %q on %q", k, s, o)
		}
	}
	if s := client.PrefixPattern(k); len(s) <= pattern.DefaultMaxLen {
		p, err := pattern.Parse(s)
		require.NoError(t, err, "PrefixPattern(%q) = %q", k, s)
		for _, o := range append(others, k) {
			require.Equal(t, hasPrefix(p, o, k), p.Match(o), "PrefixPattern(%q) = %q on %q", k, s, o)
		}
	}
}

var keyPatternSeeds = [][2]string{
	{"a", "b"},
	{"a*", "ab"},
	{`a\b`, `a\\b`},
	{"^x", "x"},
	{"/x/", "x"},
	{"é?", "éé"},
	{"a\xff", "a\uFFFD"},
	{"^\xff", "^\xfe"},
	{"/\xc3", "/é"},
	{"^\uFFFD", "^\xff"},
	{"^a.b$", "^axb$"},
	{"^ #(?x)", "^#"},
	{"\xc3*", "é"},
	{strings.Repeat("*", 128), strings.Repeat("*", 127)},
	{"^" + strings.Repeat("a", 251), "^" + strings.Repeat("a", 252)},
}

func TestKeyPattern_AnyBytes(t *testing.T) {
	for _, s := range keyPatternSeeds {
		checkKeyPattern(t, s[0], s[1])
	}
}

func FuzzKeyPattern(f *testing.F) {
	for _, s := range keyPatternSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(checkKeyPattern)
}
