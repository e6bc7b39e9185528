package engine

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// patch returns old changed by p: an RFC 7396 merge when both are JSON
// objects, else old with p appended.
func patch(old, p string) string {
	po, ok := jsonObject(p)
	if !ok {
		return old + p
	}
	oo, ok := jsonObject(old)
	if !ok {
		return old + p
	}
	merged := mergePatch(oo, po)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(merged); err != nil {
		// Values decoded from JSON always encode; keep the append rule
		// rather than lose the write if that ever changes.
		return old + p
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// jsonObject decodes s if it is exactly one JSON object.
func jsonObject(s string) (map[string]any, bool) {
	t := strings.TrimLeft(s, " \t\r\n")
	if !strings.HasPrefix(t, "{") {
		return nil, false
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // something after the object
	}
	return m, true
}

// mergePatch applies the RFC 7396 merge of patch onto target.
func mergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = make(map[string]any, len(patch))
	}
	for k, pv := range patch {
		if pv == nil {
			delete(target, k)
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			tm, _ := target[k].(map[string]any)
			target[k] = mergePatch(tm, pm)
			continue
		}
		target[k] = pv
	}
	return target
}
