package adapter

import (
	"fmt"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestCountItems_ReadsAtMostOnePastTheLimit: a count with a limit reads
// at most that many keys plus one, whatever the prefix holds, so that a
// recount under the writer lock takes a bounded time; without a limit it
// reads them all.
func TestCountItems_ReadsAtMostOnePastTheLimit(t *testing.T) {
	reads := 0
	items := func(yield func(engine.Item, error) bool) {
		for i := range 5000 {
			reads++
			if !yield(engine.Item{Key: fmt.Sprintf("todo:%04d", i), Value: "v"}, nil) {
				return
			}
		}
	}
	u, whole, err := countItems(items, 2)
	require.NoError(t, err)
	require.False(t, whole)
	require.Equal(t, QuotaUsage{Keys: 3, Bytes: 3 * 10}, u)
	require.Equal(t, 3, reads, "keys read past the limit")

	reads = 0
	u, whole, err = countItems(items, 5000)
	require.NoError(t, err)
	require.True(t, whole)
	require.Equal(t, int64(5000), u.Keys)
	u, whole, err = countItems(items, -1)
	require.NoError(t, err)
	require.True(t, whole)
	require.Equal(t, int64(5000), u.Keys)
}
