package engine

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// surrogateEscape finds a \u escape of a surrogate, which a decoder
// replaces.
var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

// FuzzPatch checks patch against RFC 7396 done on decoded values: when
// old and p are both JSON objects the result is one too, equal to the
// merge of the decoded objects wherever decoding loses nothing (text that
// is UTF-8 and has no surrogate escape); else it is old with p appended.
func FuzzPatch(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":1,"b":2}`, `{"b":3,"c":4}`},
		{`{"a":{"x":1,"y":2}}`, `{"a":{"y":null,"z":3}}`},
		{`{"a":1}`, `{"a":{"b":null,"c":1}}`},
		{`{"a":1,"b":{"c":1,"d":2}}`, " { \"a\" :\tnull , \"b\": {\"c\":  null\n} } "},
		{`{"caf\u00e9":{"a":1}}`, `{"café":{"b":[1, 2]}}`},
		{`{"\ud800":1,"\udfff":2}`, `{"\ufffd":null}`},
		{"{\"a\xff\":\"\xfe\"}", `{"b":"\"}\\"}`},
		{`{"a":1,"a":{"x":1}}`, `{"a":{"y":2},"a":{"z":3}}`},
		{`{"a":1.50e3}`, `{"b":-0.0}`},
		{`{}`, `{"a":{}}`},
		{`abc`, `{"a":1}`},
		{`{"a":1}`, `{"b":2} x`},
		{`{"a":[{"b":1}]}`, `{"a":[]}`},
	} {
		f.Add(s[0], s[1])
	}
	object := func(s string) bool {
		t := strings.TrimLeft(s, " \t\r\n")
		return strings.HasPrefix(t, "{") && json.Valid([]byte(t))
	}
	f.Fuzz(func(t *testing.T, old, p string) {
		got := patch(old, p)
		if !object(old) || !object(p) {
			require.Equal(t, old+p, got)
			return
		}
		require.True(t, json.Valid([]byte(got)), "not JSON: %q", got)
		require.True(t, strings.HasPrefix(got, "{"), "not an object: %q", got)
		require.Equal(t, got, compactString(t, got), "spaces left")
		for _, s := range []string{old, p} {
			if !utf8.ValidString(s) || surrogateEscape.MatchString(s) {
				return
			}
		}
		require.Equal(t, mergeDecoded(decode(t, old), decode(t, p)), decode(t, got))
	})
}

func compactString(t *testing.T, s string) string {
	var b bytes.Buffer
	require.NoError(t, json.Compact(&b, []byte(s)))
	return b.String()
}

func decode(t *testing.T, s string) any {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	require.NoError(t, d.Decode(&v))
	return v
}

// mergeDecoded is RFC 7396's MergePatch on decoded values.
func mergeDecoded(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
		} else {
			tm[k] = mergeDecoded(tm[k], v)
		}
	}
	return tm
}

// deepJSON is an object nested 9,999 deep (as deep as JSON may be)
// around a string of 300 KiB.
func deepJSON() string {
	const depth = 9999
	return strings.Repeat(`{"a":`, depth) + `"` + strings.Repeat("x", 300<<10) + `"` + strings.Repeat("}", depth)
}

// TestPatch_Deep merges an object nested as deep as JSON may be.
func TestPatch_Deep(t *testing.T) {
	deep := deepJSON()
	require.Equal(t, deep, patch(deep, deep))
	require.Equal(t, deep[:len(deep)-1]+`,"c":2}`, patch(deep, `{"c":2}`))
}

// BenchmarkPatch_Deep is a patch of deepJSON onto itself. It holds the
// writer lock; each level of the merge read the text of every level
// below it again, in time the size times the depth, until each text's
// nesting was found in one pass (jsonText).
func BenchmarkPatch_Deep(b *testing.B) {
	deep := deepJSON()
	b.ReportAllocs()
	b.SetBytes(int64(len(deep)))
	for b.Loop() {
		patch(deep, deep)
	}
}
