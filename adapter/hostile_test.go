package adapter_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWS_PatternTimeout: a subscription whose regex cannot decide on a key
// ends with one 400 message that names the pattern and the revision it
// delivered everything up to, not the key.
func TestWS_PatternTimeout(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	r := c.call(m{"op": 100, "patterns": []string{`/^(a+)+$/`}})
	require.Equal(t, 200.0, r["code"], "%v", r)
	id := r["subscriptionId"]
	_, err := f.db.Set("b", "v", nil)
	require.NoError(t, err)
	key := strings.Repeat("a", 28) + "!"
	_, err = f.db.Set(key, "v", nil)
	require.NoError(t, err)
	r = c.read()
	require.Equal(t, 400.0, r["code"], "%v", r)
	require.Equal(t, id, r["subscriptionId"])
	require.Equal(t, 1.0, r["revision"], "delivered everything up to revision 1")
	require.Contains(t, r["error"], `/^(a+)+$/`)
	require.NotContains(t, r["error"], key)
}

// TestWS_PatternTimeoutAtRevisionZero: a subscription whose regex cannot
// decide on the store's first change ends with a 400 that carries
// "revision": 0, the revision it delivered everything up to; DBX's error
// message likewise. Before, revision 0 was left out of those messages.
func TestWS_PatternTimeoutAtRevisionZero(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	r := c.call(m{"op": 100, "patterns": []string{`/^(a+)+$/`}})
	require.Equal(t, 200.0, r["code"], "%v", r)
	d := f.dbx("api_key=" + apiKey)
	d.ok("subscribe", obj{"patterns": []string{`/^(a+)+$/`}})
	must(f.db.Set(strings.Repeat("a", 28)+"!", "v", nil))
	r = c.read()
	require.Equal(t, 400.0, r["code"], "%v", r)
	require.Equal(t, 0.0, r["revision"], "delivered everything up to revision 0: %v", r)
	r = d.read()
	e, ok := r["error"].(map[string]any)
	require.True(t, ok, "%v", r)
	require.Equal(t, "invalid_request", e["code"], "%v", r)
	require.Equal(t, 0.0, e["revision"], "DBX: %v", r)
}

// TestWS_PatternTimeoutOnAForeignKey: a token's subscription runs its
// regexes only on the keys the token may read, so one that cannot decide
// on another key, whether in the history it resumes from or written live,
// neither ends the subscription nor tells the client of it: the key is
// passed over as one the regex does not match. On a key the token may
// read, it ends the subscription as with an API key.
func TestWS_PatternTimeoutOnAForeignKey(t *testing.T) {
	f := newFixture(t, nil)
	key := strings.Repeat("a", 28) + "!"
	_, err := f.db.Set("admin:"+key, "secret", nil)
	require.NoError(t, err)
	c := f.dial("token=" + url.QueryEscape(f.token(`{"accessPattern":"^room:1:"}`)))
	r := c.call(m{"op": 100, "fromRevision": 0, "patterns": []string{`/^(admin:)?(a+)+$|^room:1:/`}})
	require.Equal(t, 200.0, r["code"], "%v", r)
	id := r["subscriptionId"]
	_, err = f.db.Set(key, "secret", nil)
	require.NoError(t, err)
	_, err = f.db.Set("room:1:x", "v", nil)
	require.NoError(t, err)
	n := c.read()
	require.Equal(t, "room:1:x", n["key"], "the first message is the readable key's: %v", n)
	require.Equal(t, id, n["subscriptionId"])
	_, err = c.tryRead(300 * time.Millisecond)
	require.Error(t, err, "nothing else")

	d := f.dial("token=" + url.QueryEscape(f.token(`{"accessPattern":"^room:1:"}`)))
	r = d.call(m{"op": 100, "patterns": []string{`/^room:1:(a+)+$/`}})
	require.Equal(t, 200.0, r["code"], "%v", r)
	_, err = f.db.Set("room:1:"+key, "v", nil)
	require.NoError(t, err)
	r = d.read()
	require.Equal(t, 400.0, r["code"], "a readable key: %v", r)
	require.NotContains(t, r["error"], key)
}
