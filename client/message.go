package client

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// message is one message from the server: a reply to a request (it has a
// code and, when the request had one, its messageId), a notification
// (type "notification"), or the end of a subscription (a code, a
// subscriptionId and no messageId).
type message struct {
	Type           string   `json:"type"`
	Code           int      `json:"code"`
	MessageID      *int64   `json:"messageId"`
	Error          string   `json:"error"`
	ErrorCode      string   `json:"errorCode"`
	Success        bool     `json:"success"`
	Key            string   `json:"key"`
	Value          *string  `json:"value"` // a notification's null: the key was deleted or expired
	Records        []record `json:"records"`
	Truncated      bool     `json:"truncated"`
	NewValue       *int64   `json:"newValue"`
	Revision       int64    `json:"revision"`
	AtRevision     int64    `json:"atRevision"` // the revision a reply reflects, where it says more than Revision
	SubscriptionID int64    `json:"subscriptionId"`
	Oldest         int64    `json:"oldest"`
	Timestamp      int64    `json:"timestamp"`
}

type record struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Revision int64  `json:"revision"`
}

// decodeMessage decodes and checks one message from the server. A message
// it returns without error is a notification with a key and a positive
// revision, or a reply with a code.
func decodeMessage(b []byte) (message, error) {
	var m message
	if !utf8.Valid(b) {
		return m, fmt.Errorf("%w: not valid UTF-8", ErrBadMessage)
	}
	if err := json.Unmarshal(b, &m); err != nil { // one JSON value, nothing after it
		return message{}, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	switch {
	case m.Type == "notification":
		if m.Key == "" || m.Revision <= 0 || m.SubscriptionID < 0 {
			return message{}, fmt.Errorf("%w: a notification without a key or a revision", ErrBadMessage)
		}
	case m.Type != "":
		return message{}, fmt.Errorf("%w: unknown type %q", ErrBadMessage, m.Type)
	case m.Code < 100 || m.Code > 599:
		return message{}, fmt.Errorf("%w: code %d", ErrBadMessage, m.Code)
	case m.MessageID == nil && m.SubscriptionID <= 0 && m.Code == 200:
		return message{}, fmt.Errorf("%w: a reply to no request", ErrBadMessage)
	case m.Revision < 0 || m.Oldest < 0 || m.SubscriptionID < 0:
		return message{}, fmt.Errorf("%w: a negative revision or id", ErrBadMessage)
	}
	for _, r := range m.Records {
		if r.Key == "" {
			return message{}, fmt.Errorf("%w: a record without a key", ErrBadMessage)
		}
	}
	return m, nil
}
