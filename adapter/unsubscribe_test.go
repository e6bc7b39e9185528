package adapter_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/stretchr/testify/require"
)

// Once the unsubscribe reply has come, the server sends nothing more for
// that subscription (the Go client forgets the id on that reply), even with
// events taken and waiting for a client that reads slowly.
func TestUnsubscribe_NothingAfterTheReply(t *testing.T) {
	f := newFixture(t, &adapter.Options{SendQueue: 1, SlowClientTimeout: 20 * time.Second})
	c := f.dial("apiKey=" + apiKey)
	r := c.call(m{"op": 100, "patterns": []string{"k:*"}})
	require.Equal(t, 200.0, r["code"], "%v", r)
	sub := r["subscriptionId"]
	big := strings.Repeat("v", 64<<10)
	for i := 0; i < 100; i++ { // more than the socket holds: the forwarder blocks, events wait in its buffer
		must(f.db.Set(fmt.Sprintf("k:%d", i), big, nil))
	}
	time.Sleep(200 * time.Millisecond)
	c.write(m{"op": 101, "subscriptionId": sub, "messageId": 99})
	replied, after := false, 0
	for {
		msg, err := c.tryRead(2 * time.Second)
		if err != nil {
			break
		}
		if msg["messageId"] == 99.0 {
			require.Equal(t, 200.0, msg["code"], "%v", msg)
			replied = true
			continue
		}
		if replied && msg["type"] == "notification" && msg["subscriptionId"] == sub {
			after++
		}
	}
	require.True(t, replied)
	require.Zero(t, after, "notifications of subscription %v after its unsubscribe reply", sub)
}
