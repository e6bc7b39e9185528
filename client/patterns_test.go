package client_test

import (
	"strings"
	"testing"

	"github.com/livekv/livekv/client"
	"github.com/livekv/livekv/pattern"
	"github.com/stretchr/testify/require"
)

func TestKeyAndPrefixPattern(t *testing.T) {
	keys := []string{"a", "a*", "a?b", `a\b`, "^x", "/x/", "/", "^", "a.b", "x$", "é*", "user:1", "(a|b)", "a#b c"}
	for _, k := range keys {
		p, err := pattern.Parse(client.KeyPattern(k))
		require.NoError(t, err, k)
		for _, other := range keys {
			require.Equal(t, k == other, p.Match(other), "KeyPattern(%q) on %q", k, other)
		}
		q, err := pattern.Parse(client.PrefixPattern(k))
		require.NoError(t, err, k)
		require.True(t, q.Match(k), "PrefixPattern(%q)", k)
		require.True(t, q.Match(k+"more"), "PrefixPattern(%q)", k)
		require.False(t, q.Match("~"+k), "PrefixPattern(%q)", k)
	}
	all, err := pattern.Parse(client.PrefixPattern(""))
	require.NoError(t, err)
	require.True(t, all.Match("anything"))
}

// TestKeyPattern_InvalidUTF8: a key is bytes; its pattern keeps those
// that are not valid UTF-8 rather than read them as U+FFFD.
func TestKeyPattern_InvalidUTF8(t *testing.T) {
	for _, k := range []string{"a\xff", "\xc3*", "x?\xa9"} {
		p, err := pattern.Parse(client.KeyPattern(k))
		require.NoError(t, err)
		require.True(t, p.Match(k), "KeyPattern(%q)", k)
		require.False(t, p.Match(strings.ToValidUTF8(k, "\uFFFD")), "KeyPattern(%q)", k)
		q, err := pattern.Parse(client.PrefixPattern(k))
		require.NoError(t, err)
		require.True(t, q.Match(k+"more"), "PrefixPattern(%q)", k)
	}
}

// TestKeyPattern_SlashIsAGlob: a key that starts with / but does not end
// with one, or a prefix that starts with /, is no regex: its pattern is a
// glob, which keeps bytes that are not valid UTF-8.
func TestKeyPattern_SlashIsAGlob(t *testing.T) {
	p, err := pattern.Parse(client.KeyPattern("/a\xff"))
	require.NoError(t, err)
	require.True(t, p.Match("/a\xff"))
	require.False(t, p.Match("/a\xfe"))
	q, err := pattern.Parse(client.PrefixPattern("/a\xff"))
	require.NoError(t, err)
	require.True(t, q.Match("/a\xff/b"))
	require.False(t, q.Match("/a\xfe/b"))
}

// TestKeyPattern_RegexLength: docs/operations.md's count of the bytes a
// regex adds: four for a key, three for a prefix, and one per escape.
func TestKeyPattern_RegexLength(t *testing.T) {
	require.Equal(t, `/^\^a$/`, client.KeyPattern("^a"))
	require.Equal(t, `/^\^a/`, client.PrefixPattern("^a"))
}
