package client

import (
	"context"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/stretchr/testify/require"
)

// TestSubscribe_RacingTheSupervisorIsSentOnce: Subscribe makes its new
// subscription known to the client before the reply to its subscribe
// comes; a supervisor pass in that window (woken by other subscriptions'
// resumes) sent a second subscribe for it, which, over a connection cap
// of 1, was refused and ended the live subscription.
func TestSubscribe_RacingTheSupervisorIsSentOnce(t *testing.T) {
	_, url := serveInPackage(t, adapter.Options{MaxSubscriptions: 1}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, &Options{APIKey: "k"})
	require.NoError(t, err)
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // stands for other subscriptions' resumes waking the supervisor
		for {
			select {
			case <-stop:
				return
			default:
				c.wake()
				time.Sleep(10 * time.Microsecond)
			}
		}
	}()
	for i := range 100 {
		sub, err := c.Subscribe(ctx, []string{"a"}, nil)
		require.NoError(t, err, "try %d", i)
		time.Sleep(5 * time.Millisecond)
		require.NoError(t, sub.Err(), "try %d: the only subscription, under a cap of 1, ended", i)
		sub.Close()
		c.mu.Lock()
		cn := c.cur
		c.mu.Unlock()
		require.Eventually(t, cn.settled, 5*time.Second, time.Millisecond)
	}
}
