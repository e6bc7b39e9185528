package engine

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// patch returns old changed by p: an RFC 7396 merge when both are JSON
// objects, else old with p appended. The members the merge does not
// change keep their bytes (whitespace between tokens aside): strings are
// not decoded and encoded again, so their escapes, and any text the
// decoder would have to replace (a lone surrogate, bytes that are not
// UTF-8), stay as they were; numbers keep their text.
func patch(old, p string) string {
	po, ok := jsonObject(p)
	if !ok {
		return old + p
	}
	oo, ok := jsonObject(old)
	if !ok {
		return old + p
	}
	merged, err := mergePatch(oo, po)
	if err != nil {
		// Members decoded from JSON always encode; keep the append rule
		// rather than lose the write if that ever changes.
		return old + p
	}
	return string(merged)
}

// jsonObject decodes s, if it is exactly one JSON object, into its members,
// each as its own JSON text.
func jsonObject(s string) (map[string]json.RawMessage, bool) {
	t := strings.TrimLeft(s, " \t\r\n")
	if !strings.HasPrefix(t, "{") {
		return nil, false
	}
	dec := json.NewDecoder(strings.NewReader(t))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // something after the object
	}
	return m, true
}

// mergePatch applies the RFC 7396 merge of patch onto target and returns
// the result as JSON. A nil target is an empty object.
func mergePatch(target, patch map[string]json.RawMessage) ([]byte, error) {
	if target == nil {
		target = make(map[string]json.RawMessage, len(patch))
	}
	for k, pv := range patch {
		if string(pv) == "null" { // a member's text starts at its value: no space
			delete(target, k)
			continue
		}
		if pm, ok := jsonObject(string(pv)); ok {
			tm, _ := jsonObject(string(target[k])) // nil unless an object
			merged, err := mergePatch(tm, pm)
			if err != nil {
				return nil, err
			}
			target[k] = merged
			continue
		}
		target[k] = pv
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(target); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
