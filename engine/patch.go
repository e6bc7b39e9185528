package engine

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// patch returns old changed by p: an RFC 7396 merge when both are JSON
// objects, else old with p appended. The result's members are in the
// order of their names, without spaces. What the merge does not change
// keeps its text (whitespace between tokens aside): member names and
// strings are not decoded and encoded again, so their escapes, and any
// text a decoder would have to replace (a lone surrogate, bytes that
// are not UTF-8), stay as they were, and two names that differ stay two
// members; numbers keep their text. A member the patch sets is written
// as the patch wrote it.
func patch(old, p string) string {
	pt, ok := jsonObject(p)
	if !ok {
		return old + p
	}
	ot, ok := jsonObject(old)
	if !ok {
		return old + p
	}
	var b bytes.Buffer
	b.Grow(len(old) + len(p))
	mergePatch(&b, ot, ot.members(0), pt, pt.members(0))
	return b.String()
}

// member is one member of a JSON object: its name as written, quotes and
// escapes included; the name decoded for comparing (nameKey); the text
// of its value, without the whitespace around it; and where that value
// starts in its jsonText.
type member struct {
	name, key, value string
	at               int
}

// jsonText is a JSON text and where each of its objects and arrays ends,
// found in one pass: a merge walks into nested objects, and finding the
// end of each value by reading it again at every level it is merged at
// would take time in the text's size times its depth, under the writer
// lock (BenchmarkPatch_Deep).
type jsonText struct {
	t    string
	open []int // where each '{' and '[' is, in order
	end  []int // just past the bracket that closes it
}

// jsonObject returns s as a jsonText if s is exactly one JSON object,
// whitespace around it aside (see members).
func jsonObject(s string) (*jsonText, bool) {
	t := strings.TrimLeft(s, " \t\r\n")
	if !strings.HasPrefix(t, "{") || !json.Valid([]byte(t)) {
		return nil, false
	}
	x := &jsonText{t: t}
	var stack []int
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '"':
			i = stringEnd(t, i) - 1
		case '{', '[':
			stack = append(stack, len(x.open))
			x.open = append(x.open, i)
			x.end = append(x.end, 0)
		case '}', ']':
			n := len(stack) - 1
			x.end[stack[n]] = i + 1
			stack = stack[:n]
		}
	}
	return x, true
}

// valueEnd returns the index just past the JSON value that starts at
// t[i].
func (x *jsonText) valueEnd(i int) int {
	if c := x.t[i]; c == '{' || c == '[' {
		k, _ := slices.BinarySearch(x.open, i)
		return x.end[k]
	}
	return valueEnd(x.t, i)
}

// members returns the members of the JSON object that starts at t[at],
// in the order of their keys, each name once: of members with one name,
// the last, as a JSON decoder keeps.
func (x *jsonText) members(at int) []member {
	t := x.t
	var ms []member
	i := skipSpace(t, at+1) // past '{'
	for t[i] != '}' {
		j := stringEnd(t, i)
		name := t[i:j]
		i = skipSpace(t, skipSpace(t, j)+1) // past ':'
		j = x.valueEnd(i)
		ms = append(ms, member{name: name, key: nameKey(name), value: t[i:j], at: i})
		i = skipSpace(t, j)
		if t[i] == ',' {
			i = skipSpace(t, i+1)
		}
	}
	slices.SortStableFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
	out := ms[:0]
	for k, m := range ms {
		if k+1 < len(ms) && ms[k+1].key == m.key {
			continue // a later member of this name follows
		}
		out = append(out, m)
	}
	return out
}

// mergePatch writes the RFC 7396 merge of patch, members of pt, onto
// target, members of tt, to b, both in the order of their keys (see
// members); a nil target is an empty object.
func mergePatch(b *bytes.Buffer, tt *jsonText, target []member, pt *jsonText, patch []member) {
	b.WriteByte('{')
	n := 0
	put := func(name string) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(name)
		b.WriteByte(':')
	}
	i, j := 0, 0
	for i < len(target) || j < len(patch) {
		var c int // which comes first: the target's member (<0), the patch's (>0), or one name (0)
		switch {
		case j == len(patch):
			c = -1
		case i == len(target):
			c = 1
		default:
			c = strings.Compare(target[i].key, patch[j].key)
		}
		if c < 0 {
			put(target[i].name)
			compact(b, target[i].value)
			i++
			continue
		}
		p := patch[j]
		old, oldAt := "", 0
		if c == 0 {
			old, oldAt = target[i].value, target[i].at
			i++
		}
		j++
		if p.value == "null" {
			continue
		}
		put(p.name)
		if p.value[0] != '{' {
			compact(b, p.value)
			continue
		}
		var tm []member // nil unless the target's member is an object
		if strings.HasPrefix(old, "{") {
			tm = tt.members(oldAt)
		}
		mergePatch(b, tt, tm, pt, pt.members(p.at))
	}
	b.WriteByte('}')
}

// compact writes v, valid JSON, to b without the whitespace between its
// tokens.
func compact(b *bytes.Buffer, v string) {
	if !strings.ContainsAny(v, " \t\r\n") {
		b.WriteString(v)
		return
	}
	_ = json.Compact(b, []byte(v)) // v is valid JSON
}

func skipSpace(t string, i int) int {
	for i < len(t) && (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string that starts at
// t[i], its opening quote.
func stringEnd(t string, i int) int {
	for i++; i < len(t); i++ {
		switch t[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// valueEnd returns the index just past the JSON value that starts at
// t[i].
func valueEnd(t string, i int) int {
	depth := 0
	for ; i < len(t); i++ {
		switch t[i] {
		case '"':
			i = stringEnd(t, i) - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// nameKey decodes the JSON string name, quotes included, into the key by
// which merging matches and orders names: the name's text, escapes
// decoded, where what is not a character stays distinct from every
// character and from each other: a lone surrogate escape becomes 0xFF 1
// and its two bytes, a byte that is not UTF-8 0xFF 2 and the byte (0xFF
// is never part of UTF-8). Names that are characters only get the key a
// JSON decoder gives them.
func nameKey(name string) string {
	s := name[1 : len(name)-1]
	if strings.IndexByte(s, '\\') < 0 && utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			e := s[i+1]
			i += 2
			switch e {
			case 'u':
				r := hex4(s[i:])
				i += 4
				if !utf16.IsSurrogate(r) {
					b = utf8.AppendRune(b, r)
					break
				}
				if r < 0xdc00 && strings.HasPrefix(s[i:], `\u`) {
					if r2 := hex4(s[i+2:]); r2 >= 0xdc00 && r2 < 0xe000 {
						b = utf8.AppendRune(b, utf16.DecodeRune(r, r2))
						i += 6
						break
					}
				}
				b = append(b, 0xff, 1, byte(r>>8), byte(r))
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			default: // '"', '\\', '/'
				b = append(b, e)
			}
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, 0xff, 2, c)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
		}
	}
	return string(b)
}

// hex4 decodes the four hex digits s starts with (valid JSON has them).
func hex4(s string) rune {
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case c >= 'a':
			c -= 'a' - 10
		case c >= 'A':
			c -= 'A' - 10
		default:
			c -= '0'
		}
		r = r<<4 | rune(c)
	}
	return r
}
