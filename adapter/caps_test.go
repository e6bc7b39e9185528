package adapter_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/internal/wire"
	"github.com/stretchr/testify/require"
)

// TestWS_SubscriptionsPerConnection: with the default options, one
// connection holds at most 32 subscriptions; the next subscribe gets 429
// until one is unsubscribed.
func TestWS_SubscriptionsPerConnection(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	var first any
	for i := 0; i < 32; i++ {
		r := c.call(m{"op": 100, "patterns": []string{"k:*"}})
		require.Equal(t, 200.0, r["code"], "subscription %d: %v", i, r)
		if i == 0 {
			first = r["subscriptionId"]
		}
	}
	for i := 0; i < 10; i++ {
		r := c.call(m{"op": 100, "patterns": []string{"k:*"}})
		require.Equal(t, 429.0, r["code"], "%v", r)
		require.Contains(t, r["error"], "subscriptions")
	}
	require.Equal(t, 200.0, c.call(m{"op": 101, "subscriptionId": first})["code"])
	require.Equal(t, 200.0, c.call(m{"op": 100, "patterns": []string{"k:*"}})["code"])
	require.Equal(t, 429.0, c.call(m{"op": 100, "patterns": []string{"k:*"}})["code"])

	// One write reaches each subscription once: 32 notifications, not more.
	_, err := f.db.Set("k:1", "v", nil)
	require.NoError(t, err)
	for i := 0; i < 32; i++ {
		require.Equal(t, "k:1", c.note()["key"])
	}
	_, err = c.tryRead(100 * time.Millisecond)
	require.Error(t, err, "no 33rd notification")
}

// TestWS_PatternsPerConnection: the patterns of one connection's
// subscriptions are bounded as a whole, not only per message.
func TestWS_PatternsPerConnection(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxPatterns: 3, MaxConnPatterns: 5})
	c := f.dial("apiKey=" + apiKey)
	require.Equal(t, 200.0, c.call(m{"op": 100, "patterns": []string{"a", "b", "c"}})["code"])
	r := c.call(m{"op": 100, "patterns": []string{"d", "e", "f"}})
	require.Equal(t, 429.0, r["code"], "%v", r)
	require.Contains(t, r["error"], "patterns")
	require.Equal(t, 200.0, c.call(m{"op": 100, "patterns": []string{"d", "e"}})["code"])
	require.Equal(t, 429.0, c.call(m{"op": 100, "patterns": []string{"f"}})["code"])
	require.Equal(t, 400.0, c.call(m{"op": 100, "patterns": []string{"1", "2", "3", "4"}})["code"], "over MaxPatterns in one message")
}

// TestWS_SubscriptionsPerToken: all the connections of one token hold at
// most MaxTokenSubscriptions subscriptions, the token's own included; a
// connection whose token's own subscriptions do not fit gets a 429 message
// and is closed with 1008. Closing a connection frees its share.
func TestWS_SubscriptionsPerToken(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxTokenSubscriptions: 4})
	tok := url.QueryEscape(f.token(`{"subscribePatterns":["room:*"]}`))
	c1 := f.dial("token=" + tok) // 1: its own
	require.Equal(t, 200.0, c1.call(m{"op": 100, "patterns": []string{"room:1"}})["code"])
	require.Equal(t, 200.0, c1.call(m{"op": 100, "patterns": []string{"room:2"}})["code"])
	c2 := f.dial("token=" + tok) // 4
	require.Equal(t, 404.0, c2.call(m{"op": 1, "key": "room:x"})["code"])
	r := c2.call(m{"op": 100, "patterns": []string{"room:3"}})
	require.Equal(t, 429.0, r["code"], "%v", r)
	require.Contains(t, r["error"], "token")

	c3 := f.dial("token=" + tok)
	r = c3.read()
	require.Equal(t, 429.0, r["code"], "%v", r)
	require.Equal(t, websocket.StatusPolicyViolation, c3.closeStatus())

	// Other tokens and the API key have their own counts.
	other := f.dial("token=" + url.QueryEscape(f.token(`{"subscribePatterns":["room:*"]}`)))
	require.Equal(t, 200.0, other.call(m{"op": 100, "patterns": []string{"room:3"}})["code"])
	admin := f.dial("apiKey=" + apiKey)
	require.Equal(t, 200.0, admin.call(m{"op": 100, "patterns": []string{"room:3"}})["code"])

	c1.ws.Close(websocket.StatusNormalClosure, "")
	require.Eventually(t, func() bool {
		return c2.call(m{"op": 100, "patterns": []string{"room:3"}})["code"] == 200.0
	}, 5*time.Second, 20*time.Millisecond, "c1's three are free again")
}

// TestWS_TokenAliasesShareTheCap: a token has one spelling. Another
// spelling of its signature (a line break inside, which base64 decoders
// skip, or final bits that are not zero) is refused at the handshake with
// 403, rather than admitted with a MaxTokenSubscriptions share of its
// own.
func TestWS_TokenAliasesShareTheCap(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxTokenSubscriptions: 1})
	tok := f.token(`{"accessPattern":"^room:1:"}`)
	c1 := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 200.0, c1.call(m{"op": 100, "patterns": []string{"room:1:*"}})["code"])
	c2 := f.dial("token=" + url.QueryEscape(tok))
	r := c2.call(m{"op": 100, "patterns": []string{"room:1:*"}})
	require.Equal(t, 429.0, r["code"], "%v", r)

	payload, sig, _ := strings.Cut(tok, ".")
	// The MAC's 32 bytes take 43 characters, whose last carries 2 bits
	// of it and 4 of zero: setting the lowest one spells the same bytes.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	for _, alias := range []string{
		payload + "." + sig[:5] + "\n" + sig[5:],
		payload + "." + sig[:5] + "\r\n" + sig[5:],
		payload[:3] + "\n" + payload[3:] + "." + sig,
		payload + "." + sig[:len(sig)-1] + string(alphabet[last|1]),
		payload + "=." + sig,
		payload + "." + sig + "=",
	} {
		ws, resp, err := f.dialRaw("token="+url.QueryEscape(alias), nil)
		if err == nil {
			ws.CloseNow()
		}
		require.Error(t, err, "alias %q of the token is admitted", alias)
		require.Equal(t, 403, resp.StatusCode, "alias %q", alias)
	}
}

// TestWS_CapRefusalsSayWhichCap: a subscribe over a cap gets 429, as one
// over the request rate does, with an error that starts with the cap's
// text, so that a client can tell a refusal that waiting cures (the rate)
// from one only an unsubscribe does.
func TestWS_CapRefusalsSayWhichCap(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxSubscriptions: 1, MaxTokenSubscriptions: 1, MaxConnPatterns: 2, MaxPatterns: 3})
	refused := func(c *client, prefix string, patterns ...string) {
		t.Helper()
		r := c.call(m{"op": 100, "patterns": patterns})
		require.Equal(t, 429.0, r["code"], "%v", r)
		require.True(t, strings.HasPrefix(r["error"].(string), prefix), "error %q, want it to start %q", r["error"], prefix)
	}
	c := f.dial("apiKey=" + apiKey)
	refused(c, wire.ConnSubscriptionLimit+": ", "a", "b", "c") // patterns
	require.Equal(t, 200.0, c.call(m{"op": 100, "patterns": []string{"a"}})["code"])
	refused(c, wire.ConnSubscriptionLimit+": ", "b") // subscriptions

	tok := url.QueryEscape(f.token(`{}`))
	t1, t2 := f.dial("token="+tok), f.dial("token="+tok)
	require.Equal(t, 200.0, t1.call(m{"op": 100, "patterns": []string{"a"}})["code"])
	refused(t2, wire.TokenSubscriptionLimit+": ", "a")

	slow := newFixture(t, &adapter.Options{RequestRate: 0.001, RequestBurst: 1})
	r := slow.dial("apiKey=" + apiKey)
	require.Equal(t, 200.0, r.call(m{"op": 100, "patterns": []string{"a"}})["code"])
	refused(r, "too many requests", "b")
}

func TestNew_NegativeCaps(t *testing.T) {
	f := newFixture(t, nil)
	for _, o := range []*adapter.Options{{APIKeys: []string{"k"}, MaxSubscriptions: -1},
		{APIKeys: []string{"k"}, MaxConnPatterns: -1}, {APIKeys: []string{"k"}, MaxTokenSubscriptions: -1}} {
		_, err := adapter.New(f.db, o)
		require.ErrorIs(t, err, adapter.ErrInvalidOptions, "%+v", o)
	}
}

// TestWS_PingsCountAsRequests: a client's pings spend the connection's
// request rate like requests do, so that a ping flood is limited too.
func TestWS_PingsCountAsRequests(t *testing.T) {
	f := newFixture(t, &adapter.Options{RequestRate: 1, RequestBurst: 5})
	c := f.dial("apiKey=" + apiKey)
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		c.ws.Ping(ctx) // no reader here to see the pong: only the ping counts
		cancel()
	}
	require.Equal(t, 429.0, c.call(m{"op": 1, "key": "k"})["code"], "the pings spent the burst")
}
