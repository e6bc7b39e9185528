package client

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/livekv/livekv/engine"
)

// FuzzDecodeMessage: whatever a server sends, the decoder neither panics
// nor lets through a message the client cannot route; an error reply maps
// to an error, and a message it accepts decodes the same once re-encoded.
// Its seeds, the messages of docs/protocol.md, run in plain go test.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"code":200,"messageId":1,"key":"user:1","value":"{\"name\":\"Ada\"}","revision":7}`,
		`{"code":200,"messageId":2,"success":true,"message":"Record inserted/updated successfully","revision":7}`,
		`{"code":200,"messageId":5,"records":[{"key":"r:1","value":"a"},{"key":"r:2","value":"b"}],"count":2,"truncated":true,"revision":9}`,
		`{"code":200,"messageId":6,"success":true,"key":"visits","newValue":5,"revision":10}`,
		`{"code":404,"messageId":1,"error":"Record not found"}`,
		`{"code":400,"messageId":3,"error":"engine: value is not an integer"}`,
		`{"code":410,"subscriptionId":2,"error":"compacted","oldest":40,"revision":12}`,
		`{"code":400,"subscriptionId":2,"error":"pattern timed out","revision":12}`,
		`{"code":429,"error":"too many requests"}`,
		`{"code":503,"messageId":4,"error":"cluster: write not committed: revision 7 went to another leader's write","errorCode":"not_committed"}`,
		`{"code":504,"messageId":4,"error":"cluster: write outcome unknown","errorCode":"uncertain"}`,
		`{"code":503,"messageId":1,"error":"cluster: no leader","errorCode":"no_leader"}`,
		`{"code":503,"messageId":1,"error":"cluster: node closed","errorCode":"node_closed"}`,
		`{"code":503,"messageId":1,"error":"x","errorCode":"not_yet_known"}`,
		`{"type":"notification","key":"user:2","value":"x","timestamp":1764000000000,"revision":12,"subscriptionId":1}`,
		`{"type":"notification","key":"user:2","value":null,"timestamp":1764000000001,"revision":13}`,
		`{"code":200,"messageId":1,"success":true,"subscriptionId":1,"revision":12}`,
		`{"type":"notification","key":"","revision":1}`,
		`{"code":200}`, `{"code":200,"messageId":1} {}`, `[]`, `null`, "\xff", `{"records":[{"key":""}],"code":200,"messageId":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("an error that is not ErrBadMessage: %v", err)
			}
			return
		}
		switch {
		case m.Type == "notification" && (m.Key == "" || m.Revision <= 0):
			t.Fatalf("a notification without key or revision: %+v", m)
		case m.Type == "" && (m.Code < 100 || m.Code > 599):
			t.Fatalf("a reply with code %d", m.Code)
		case m.Type != "" && m.Type != "notification":
			t.Fatalf("type %q", m.Type)
		}
		if m.Type == "" && m.Code != 200 {
			err := replyError(&m)
			if err == nil || err.Error() == "" {
				t.Fatalf("no error for code %d", m.Code)
			}
			if m.Code == 404 && !errors.Is(err, engine.ErrNotFound) || m.Code == 410 && !errors.Is(err, engine.ErrCompacted) {
				t.Fatalf("code %d maps to %v", m.Code, err)
			}
			if k, ok := codeErrors[m.ErrorCode]; ok && m.Code != 410 && !errors.Is(err, k) {
				t.Fatalf("errorCode %q maps to %v", m.ErrorCode, err)
			}
			if errors.Is(err, ErrUncertain) && m.ErrorCode != "uncertain" {
				t.Fatalf("uncertain without the code: %+v", m)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeMessage(again)
		if err != nil {
			t.Fatalf("re-encoded %s: %v", again, err)
		}
		if b1, _ := json.Marshal(m2); string(b1) != string(again) {
			t.Fatalf("not stable: %s then %s", again, b1)
		}
	})
}

// TestDecodeMessage_OneValue: a frame holding two JSON values, or a value
// and anything after it, is refused as a whole.
func TestDecodeMessage_OneValue(t *testing.T) {
	_, err := decodeMessage([]byte(`{"code":200,"messageId":1}`))
	if err != nil {
		t.Fatalf("a reply: %v", err)
	}
	for _, b := range []string{`{"code":200,"messageId":1}{"code":200,"messageId":2}`, `{"code":200,"messageId":1} x`} {
		if _, err := decodeMessage([]byte(b)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", b, err)
		}
	}
}
