package engine

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestIndexShard_Size: readers of one shard touch its lock and counter on
// every Get; at a cache line's size, two neighbouring shards share at most
// one line whatever the array's alignment.
func TestIndexShard_Size(t *testing.T) {
	require.Equal(t, uintptr(64), unsafe.Sizeof(indexShard{}))
}
