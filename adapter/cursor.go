package adapter

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// A keys.scan cursor is the last key the scan examined, so that the next
// page starts after it. A token's scan examines keys its access pattern
// does not allow too (those between the pattern's bounds, or every key
// for a pattern without a literal prefix), and a page that a long run of
// them takes out of ScanTimeBudget, or of MaxExaminedKeys, may end on one
// of them: its cursor would then tell the connection a key it may not
// read.
// Such a cursor is sealed instead: the key encrypted and authenticated
// (AES-256-GCM, a random nonce) under a key derived from
// Options.TokenSecret, in base64url, after sealedCursorPrefix. The server
// opens it when it comes back; the client learns nothing of the key but
// its length (AES-GCM keeps it), and cannot make one up. A cursor naming
// a key the connection may read stays
// the key itself, unless it starts with sealedCursorPrefix: then it is
// sealed too, so that a plain cursor the server gives never does, and a
// cursor that does and does not open was not the server's.

// sealedCursorPrefix starts a sealed cursor.
const sealedCursorPrefix = "~sealed:"

// errCursor refuses a cursor that starts with sealedCursorPrefix but was
// not sealed by this server (or one sharing its TokenSecret).
var errCursor = errors.New("not a cursor this server gave: start the scan again without one")

// newCursorAEAD returns the cipher that seals cursors. Its key is an HMAC
// of a label under the token secret: a secret of its own, that no token's
// MAC can be, as a token's payload is base64url and the label is not.
func newCursorAEAD(secret []byte) (cipher.AEAD, error) {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("livekv adapter: keys.scan cursor"))
	block, err := aes.NewCipher(h.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// scanCursor returns the cursor of a page that ended on key: the key
// itself when the connection may read it (readable), else key sealed.
func (a *Adapter) scanCursor(key string, readable bool) string {
	if readable && !strings.HasPrefix(key, sealedCursorPrefix) {
		return key
	}
	nonce := make([]byte, a.cursors.NonceSize(), a.cursors.NonceSize()+len(key)+a.cursors.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail since Go 1.24
	}
	return sealedCursorPrefix + base64.RawURLEncoding.EncodeToString(a.cursors.Seal(nonce, nonce, []byte(key), nil))
}

// openCursor returns the key a cursor names: a plain cursor is the key, a
// sealed one is opened, or refused with errCursor.
func (a *Adapter) openCursor(cursor string) (string, error) {
	sealed, ok := strings.CutPrefix(cursor, sealedCursorPrefix)
	if !ok {
		return cursor, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(sealed)
	if err != nil || !isTokenPart(sealed) || len(b) < a.cursors.NonceSize() {
		return "", errCursor
	}
	nonce, box := b[:a.cursors.NonceSize()], b[a.cursors.NonceSize():]
	key, err := a.cursors.Open(nil, nonce, box, nil)
	if err != nil {
		return "", errCursor
	}
	return string(key), nil
}
