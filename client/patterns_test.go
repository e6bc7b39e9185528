package client_test

import (
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
