package adapter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/livekv/livekv/pattern"
)

// TokenConfig is what POST /token/websocket asks for: the subscriptions a
// connection made with the token gets, and the keys it may touch.
type TokenConfig struct {
	SubscribeKeys     []string `json:"subscribeKeys,omitempty"`
	SubscribePatterns []string `json:"subscribePatterns,omitempty"`
	// AccessPattern is a regular expression (regexp2 syntax); a key it
	// does not match is refused with 403. Empty: every key.
	AccessPattern string `json:"accessPattern,omitempty"`
}

// claims are what a token carries, signed.
type claims struct {
	Version int `json:"v"`
	TokenConfig
	Expires int64 `json:"exp"` // unix seconds: the first instant it is no longer valid (issued rounded up)
	// ID is random, so that two tokens issued alike are two tokens, each
	// with its own share of MaxTokenSubscriptions.
	ID string `json:"id,omitempty"`
}

const tokenVersion = 1

// Errors of token verification.
var (
	errTokenMalformed = errors.New("malformed token")
	errTokenSignature = errors.New("token signature does not match")
	errTokenExpired   = errors.New("token expired")
)

// signToken returns a token: base64url(JSON claims) "." base64url(HMAC-SHA256).
func signToken(secret []byte, c claims) (string, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac(secret, payload)), nil
}

func mac(secret []byte, payload string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// verifyToken checks a token's signature (in constant time) and expiry and
// returns its claims. It accepts one spelling of a token only, the one
// signToken gives: the base64url alphabet and no other byte, and final
// bits that are zero. The decoder alone would skip '\r' and '\n' and
// ignore those bits, so that one token had many spellings, and a count
// kept under its text (MaxTokenSubscriptions) one share per spelling.
func verifyToken(secret []byte, token string, now time.Time, maxLen int) (claims, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > maxLen || !isTokenPart(payload) || !isTokenPart(sig) {
		return claims{}, errTokenMalformed
	}
	got, err := tokenEncoding.DecodeString(sig)
	if err != nil {
		return claims{}, errTokenMalformed
	}
	if !hmac.Equal(got, mac(secret, payload)) {
		return claims{}, errTokenSignature
	}
	body, err := tokenEncoding.DecodeString(payload)
	if err != nil {
		return claims{}, errTokenMalformed
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil {
		return claims{}, fmt.Errorf("%w: %v", errTokenMalformed, err)
	}
	if c.Version != tokenVersion {
		return claims{}, fmt.Errorf("%w: version %d", errTokenMalformed, c.Version)
	}
	if now.Unix() >= c.Expires {
		return claims{}, errTokenExpired
	}
	return c, nil
}

// MaxTokenSize is the most bytes a token may have: IssueToken refuses a
// config whose token would be longer, with ErrTokenTooLarge. A token
// travels in the WebSocket handshake's URL (or a header), and an
// http.Server with the default MaxHeaderBytes refuses a request whose
// line and headers pass 1 MiB: this leaves the rest of the request
// 64 KiB. At the default MaxPatterns a token stays far below it
// (maxTokenLen); a MaxPatterns raised several times over lets a config
// pass it.
const MaxTokenSize = http.DefaultMaxHeaderBytes - 64<<10

// ErrTokenTooLarge is returned by IssueToken for a config whose token
// would be longer than MaxTokenSize.
var ErrTokenTooLarge = errors.New("adapter: token too large")

// maxTokenLen bounds what verifyToken decodes: the longest token
// IssueToken makes with at most maxPatterns subscribe keys and patterns.
// Each of them, and the access pattern, is at most pattern.DefaultMaxLen
// bytes, which JSON may escape to six times as many (&, <, >, control
// characters), in quotes, and base64 makes a third longer; the rest of
// the claims and the signature take far less than 1 KiB. It is never
// over MaxTokenSize.
func maxTokenLen(maxPatterns int) int {
	return min(MaxTokenSize, max(64<<10, (maxPatterns+1)*(6*pattern.DefaultMaxLen+3)*4/3+1024))
}

// tokenEncoding decodes a token's parts. Strict refuses final bits that
// are not zero, which would give a part of the same bytes another
// spelling; it still skips '\r' and '\n', which isTokenPart refuses.
var tokenEncoding = base64.RawURLEncoding.Strict()

// isTokenPart reports whether s is a non-empty run of base64url's
// alphabet, without padding: the only bytes of a token's parts.
func isTokenPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9', b == '-', b == '_':
		default:
			return false
		}
	}
	return true
}
