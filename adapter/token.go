package adapter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
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
	Expires int64 `json:"exp"` // unix seconds
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
// returns its claims.
func verifyToken(secret []byte, token string, now time.Time) (claims, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > maxTokenLen {
		return claims{}, errTokenMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return claims{}, errTokenMalformed
	}
	if !hmac.Equal(got, mac(secret, payload)) {
		return claims{}, errTokenSignature
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
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

// maxTokenLen bounds what verifyToken decodes.
const maxTokenLen = 64 << 10
