package adapter_test

import (
	"strings"
	"testing"

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
