package adapter

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/livekv/livekv/internal/wire"
	"github.com/livekv/livekv/pattern"
)

// writeJSON writes v with the HTTP status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeReply writes a reply as a REST response, shaped as HPKV's: the code
// is the HTTP status, not a field, and there is no revision of the reply's
// own (a range's records keep theirs, which HPKV clients ignore).
func writeReply(w http.ResponseWriter, r reply) {
	if r.seen != nil {
		w.Header().Set(RevisionHeader, strconv.FormatInt(*r.seen, 10))
	}
	code := r.Code
	r.Code, r.Revision = 0, nil
	writeJSON(w, code, r)
}

// RevisionHeader is the header of a REST reply that carries the revision
// it reflects: the revision a write committed at, or at least the one a
// read saw. A client that sends it back as minRevision= reads its writes,
// and nothing older than it has read, on any node.
const RevisionHeader = "X-Livekv-Revision"

// restAuth checks the x-api-key header.
func (a *Adapter) restAuth(w http.ResponseWriter, r *http.Request) bool {
	key := r.Header.Get("x-api-key")
	if key == "" {
		writeReply(w, errorReply(http.StatusUnauthorized, "x-api-key header required"))
		return false
	}
	if !a.validAPIKey(key) {
		writeReply(w, errorReply(http.StatusForbidden, "invalid API key"))
		return false
	}
	return true
}

// decodeBody decodes a JSON request body of at most MaxMessageSize bytes:
// one JSON value, with nothing but white space after it, and valid UTF-8
// (see checkJSONText).
func (a *Adapter) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	mw := w
	if rw, ok := w.(*restWriter); ok {
		mw = rw.ResponseWriter // so that a body too large closes the connection
	}
	body, err := io.ReadAll(http.MaxBytesReader(mw, r.Body, a.opts.MaxMessageSize))
	if err != nil {
		code := http.StatusBadRequest
		if _, ok := err.(*http.MaxBytesError); ok {
			code = http.StatusRequestEntityTooLarge
		}
		writeReply(w, errorReply(code, fmt.Sprintf("bad body: %v", err)))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		writeReply(w, errorReply(http.StatusBadRequest, fmt.Sprintf("bad JSON body: %v", err)))
		return false
	}
	if !atEnd(dec) {
		writeReply(w, errorReply(http.StatusBadRequest, "bad JSON body: more after its value"))
		return false
	}
	if err := checkJSONText(body); err != nil {
		writeReply(w, errorReply(http.StatusBadRequest, "body: "+err.Error()))
		return false
	}
	return true
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeReply(w, errorReply(http.StatusMethodNotAllowed, "method not allowed; use "+allow))
}

var full = &access{full: true}

// serveREST serves the REST API: /record, /record/{key}, /record/atomic,
// /records.
func (a *Adapter) serveREST(w http.ResponseWriter, r *http.Request, path string) {
	if !a.restAuth(w, r) {
		return
	}
	level, minRev, err := readParams(r.URL.Query())
	if err != nil {
		writeReply(w, errorReply(http.StatusBadRequest, err.Error()))
		return
	}
	do := func(req *request) reply {
		req.Consistency, req.MinRevision = level, minRev
		return a.do(full, req)
	}
	switch {
	case path == "record":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		var body struct {
			Key           string          `json:"key"`
			Value         json.RawMessage `json:"value"`
			PartialUpdate bool            `json:"partialUpdate"`
		}
		if !a.decodeBody(w, r, &body) {
			return
		}
		req := request{Op: wire.OpSet, Key: body.Key}
		if body.PartialUpdate {
			req.Op = wire.OpPatch
			if rw, ok := w.(*restWriter); ok {
				rw.op = OpPatch
			}
		}
		if len(body.Value) > 0 && string(body.Value) != "null" {
			v, err := valueText(body.Value)
			if err != nil {
				writeReply(w, errorReply(http.StatusBadRequest, err.Error()))
				return
			}
			req.Value, req.HasValue = v, true
		}
		writeReply(w, do(&req))
	case path == "record/atomic" && r.Method == http.MethodPost:
		var body struct {
			Key       string      `json:"key"`
			Increment json.Number `json:"increment"`
		}
		if !a.decodeBody(w, r, &body) {
			return
		}
		req := request{Op: wire.OpIncrement, Key: body.Key, Value: body.Increment.String(), HasValue: body.Increment != ""}
		rep := do(&req)
		rep.Key = ""
		writeReply(w, rep)
	case path == "records":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		q := r.URL.Query()
		limit := 0
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				writeReply(w, errorReply(http.StatusBadRequest, "bad limit"))
				return
			}
			limit = n
		}
		req := request{Op: wire.OpRange, Key: q.Get("startKey"), EndKey: q.Get("endKey"), Limit: limit}
		writeReply(w, do(&req))
	default: // record/{key}
		key, err := url.PathUnescape(strings.TrimPrefix(path, "record/"))
		if err != nil {
			writeReply(w, errorReply(http.StatusBadRequest, "bad key in path"))
			return
		}
		req := request{Key: key}
		switch r.Method {
		case http.MethodGet:
			req.Op = wire.OpGet
		case http.MethodDelete:
			req.Op = wire.OpDelete
		default:
			methodNotAllowed(w, "GET, DELETE")
			return
		}
		writeReply(w, do(&req))
	}
}

// serveToken issues a token: POST /token/websocket with x-api-key.
func (a *Adapter) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if !a.restAuth(w, r) {
		return
	}
	var tc TokenConfig
	if !a.decodeBody(w, r, &tc) {
		return
	}
	token, expires, err := a.IssueToken(tc)
	if err != nil {
		writeReply(w, errorReply(http.StatusBadRequest, err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expiresAt"`
	}{token, expires.UTC().Format(time.RFC3339)})
}

// IssueToken returns a token for cfg, as POST /token/websocket does, for a
// server that hands scoped tokens to its own pages without giving them the
// API key, and the instant it expires: TokenTTL from now, rounded up to a
// whole second. A config whose token would be longer than MaxTokenSize,
// which a handshake could not carry, gets ErrTokenTooLarge.
func (a *Adapter) IssueToken(cfg TokenConfig) (token string, expires time.Time, err error) {
	if err := a.checkTokenConfig(&cfg); err != nil {
		return "", time.Time{}, err
	}
	var id [9]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", time.Time{}, err
	}
	// A token keeps its expiry in whole seconds: rounded up, so that it
	// is valid for all of TokenTTL (and less than a second more), not
	// up to a second less, or not at all for a TTL under a second.
	exp := a.opts.Now().Add(a.opts.TokenTTL)
	sec := exp.Unix()
	if exp.Nanosecond() > 0 {
		sec++
	}
	token, err = signToken(a.opts.TokenSecret, claims{Version: tokenVersion, TokenConfig: cfg, Expires: sec,
		ID: base64.RawURLEncoding.EncodeToString(id[:])})
	if err != nil {
		return "", time.Time{}, err
	}
	if len(token) > MaxTokenSize {
		return "", time.Time{}, fmt.Errorf("%w: %d bytes, at most %d: give fewer or shorter subscribe keys and patterns",
			ErrTokenTooLarge, len(token), MaxTokenSize)
	}
	return token, time.Unix(sec, 0), nil
}

// checkTokenConfig refuses what a token may not carry.
func (a *Adapter) checkTokenConfig(tc *TokenConfig) error {
	switch n := len(tc.SubscribeKeys) + len(tc.SubscribePatterns); {
	case n > a.opts.MaxPatterns:
		return fmt.Errorf("%d subscribe keys and patterns, at most %d", n, a.opts.MaxPatterns)
	case n > a.opts.MaxConnPatterns:
		// Each connection made with the token holds them all: none
		// could.
		return fmt.Errorf("%d subscribe keys and patterns, more than a connection holds (MaxConnPatterns, %d)", n, a.opts.MaxConnPatterns)
	}
	for _, k := range tc.SubscribeKeys {
		if k == "" || len(k) > pattern.DefaultMaxLen {
			return fmt.Errorf("subscribe key %.40q: empty or over %d bytes", k, pattern.DefaultMaxLen)
		}
	}
	for _, s := range tc.SubscribePatterns {
		if _, err := pattern.Parse(s); err != nil {
			return err
		}
	}
	if tc.AccessPattern != "" {
		if _, err := accessPattern(tc.AccessPattern); err != nil {
			return fmt.Errorf("accessPattern: %w", err)
		}
	}
	return nil
}
