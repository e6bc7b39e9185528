package adapter_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// undecidedKey makes the access regex undecidedAccess backtrack until it
// runs out of time.
var (
	undecidedAccess = `^(a+)+$`
	undecidedKey    = strings.Repeat("a", 28) + "!"
)

// TestWS_AccessUndecided_Request: a request whose key the token's access
// regex could not decide on in time gets 503, to try again, not a 403 as
// if the key were out of bounds; nothing is written.
func TestWS_AccessUndecided_Request(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("token=" + url.QueryEscape(f.token(`{"accessPattern":"`+undecidedAccess+`"}`)))
	require.Equal(t, 403.0, c.call(m{"op": 1, "key": "b"})["code"], "decided: out of bounds")
	require.Equal(t, 503.0, c.call(m{"op": 2, "key": undecidedKey, "value": "v"})["code"])
	require.Equal(t, 503.0, c.call(m{"op": 1, "key": undecidedKey})["code"])
	_, err := f.db.Get(undecidedKey)
	require.Error(t, err, "nothing written")
}

// TestWS_AccessUndecided_Notification: a notification whose key the
// token's access regex could not decide on is not dropped unsaid: the
// connection closes with 1013 (try again later), and the client resumes
// from the last revision it has.
func TestWS_AccessUndecided_Notification(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("token=" + url.QueryEscape(f.token(`{"subscribePatterns":["*"],"accessPattern":"`+undecidedAccess+`|^b"}`)))
	require.Equal(t, 404.0, c.call(m{"op": 1, "key": "b"})["code"])
	_, err := f.db.Set("b", "1", nil)
	require.NoError(t, err)
	require.Equal(t, "b", c.read()["key"], "a decided key is notified")
	_, err = f.db.Set(undecidedKey, "x", nil)
	require.NoError(t, err)
	require.Equal(t, websocket.StatusTryAgainLater, c.closeStatus())
}

// TestWebSocket_APIKeyInAHeader: a program (not a browser, which cannot
// set a handshake's headers) may give the API key as the x-api-key
// header, as to the REST API, so that it is in no URL that a proxy logs;
// on /ws and /dbx/ws alike. A wrong one is refused as in the query.
func TestWebSocket_APIKeyInAHeader(t *testing.T) {
	f := newFixture(t, nil)
	for _, path := range []string{"/ws", "/dbx/ws"} {
		ws, resp, err := f.dialPath(path, "", http.Header{"X-Api-Key": {apiKey}})
		require.NoError(t, err, "%s: status %v", path, resp)
		ws.CloseNow()
		_, resp, err = f.dialPath(path, "", http.Header{"X-Api-Key": {"wrong"}})
		require.Error(t, err, path)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, path)
	}
}
