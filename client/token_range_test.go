package client_test

import (
	"testing"

	"github.com/livekv/livekv/client"
	"github.com/stretchr/testify/require"
)

// TestClient_TokenPrefixAndInitial: with a token scoped to "^room:1:",
// Range, Prefix and a Subscribe's Initial read the keys the token may
// read, and only those, though the bounds they send ("room:1;", the end
// of the prefix; "\x00", the start of everything) are outside it.
func TestClient_TokenPrefixAndInitial(t *testing.T) {
	s := newServer(t, nil)
	ctx := ctxT(t)
	tok := s.token(t, `{"accessPattern":"^room:1:"}`)
	for _, k := range []string{"room:0:a", "room:1:a", "room:1:b", "room:2:a"} {
		_, err := s.db.Set(k, "x", nil)
		require.NoError(t, err)
	}
	c := s.dial(t, &client.Options{Token: tok})

	keys := func(items func(func(client.Item, error) bool)) []string {
		var keys []string
		for it, err := range items {
			require.NoError(t, err)
			keys = append(keys, it.Key)
		}
		return keys
	}
	want := []string{"room:1:a", "room:1:b"}
	require.Equal(t, want, keys(c.Prefix(ctx, "room:1:", nil)))
	require.Equal(t, want, keys(c.Range(ctx, "", "", nil)))
	require.Equal(t, want, keys(c.Prefix(ctx, "room:", &client.RangeOptions{PageSize: 1})))

	sub, err := c.Subscribe(ctx, []string{"room:*"}, &client.SubscribeOptions{Initial: true})
	require.NoError(t, err)
	defer sub.Close()
	var initial []string
	for _, it := range sub.Initial {
		initial = append(initial, it.Key)
	}
	require.Equal(t, want, initial)
}
