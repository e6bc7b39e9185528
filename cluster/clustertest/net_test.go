package clustertest_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/cluster/clustertest"
	"github.com/stretchr/testify/require"
)

// echo serves node i's listener with an echo server until the net closes.
func echo(t *testing.T, nt *clustertest.Net, i int) {
	t.Helper()
	ln, err := nt.Listener(i)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		require.NoError(t, nt.Close())
		wg.Wait()
	})
}

// roundTrip sends a line over c and returns the echo, or an error after d.
func roundTrip(c net.Conn, line string, d time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	s, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return s[:len(s)-1], nil
}

func dial(t *testing.T, nt *clustertest.Net, from, to int) net.Conn {
	t.Helper()
	c, err := nt.Dialer(from)(context.Background(), nt.Addr(to))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLink_PassesDelaysDropsAndCuts(t *testing.T) {
	nt, err := clustertest.New(2)
	require.NoError(t, err)
	echo(t, nt, 1)

	c := dial(t, nt, 0, 1)
	got, err := roundTrip(c, "hello", time.Second)
	require.NoError(t, err)
	require.Equal(t, "hello", got)

	// A delay applies in both directions to the open connection.
	nt.Link(0, 1).SetDelay(50 * time.Millisecond)
	start := time.Now()
	got, err = roundTrip(c, "slow", 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "slow", got)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "round trip through a 50 ms link each way")

	// Dropping swallows data but keeps the connection open.
	nt.Link(0, 1).SetDelay(0)
	nt.Link(0, 1).SetDrop(true)
	_, err = roundTrip(c, "lost", 200*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "got %v, want a timeout", err)

	// A cut closes open connections and refuses new ones.
	nt.Link(0, 1).Cut()
	_, err = roundTrip(c, "cut", time.Second)
	require.Error(t, err)
	c2 := dial(t, nt, 0, 1)
	_, err = roundTrip(c2, "refused", time.Second)
	require.Error(t, err)

	// The reverse link is a different proxy and was never cut.
	// (Node 0 has no server here, so only check it is a distinct link.)
	require.NotEqual(t, nt.Link(0, 1).String(), nt.Link(1, 0).String())

	nt.Heal()
	c3 := dial(t, nt, 0, 1)
	got, err = roundTrip(c3, "back", time.Second)
	require.NoError(t, err)
	require.Equal(t, "back", got)
}

func TestNet_PartitionCutsOnlyAcrossGroups(t *testing.T) {
	nt, err := clustertest.New(3)
	require.NoError(t, err)
	for i := range 3 {
		echo(t, nt, i)
	}
	nt.Partition(0)
	for from := range 3 {
		for to := range 3 {
			if from == to {
				continue
			}
			c := dial(t, nt, from, to)
			_, err := roundTrip(c, "x", time.Second)
			if (from == 0) != (to == 0) {
				require.Error(t, err, "%d→%d crosses the partition", from, to)
			} else {
				require.NoError(t, err, "%d→%d is inside one side", from, to)
			}
		}
	}
}

func TestNet_ListenerRebindsAfterClose(t *testing.T) {
	nt, err := clustertest.New(1)
	require.NoError(t, err)
	defer nt.Close()
	ln, err := nt.Listener(0)
	require.NoError(t, err)
	require.Equal(t, nt.Addr(0), ln.Addr().String())
	require.NoError(t, ln.Close())
	ln, err = nt.Listener(0)
	require.NoError(t, err)
	require.Equal(t, nt.Addr(0), ln.Addr().String())
	require.NoError(t, ln.Close())
}
