package adapter

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// errInvalidUTF8 marks text that is not valid Unicode. encoding/json
// would read an invalid byte, or the escape of an unpaired surrogate, as
// U+FFFD, so that two different keys sent by a client would become one.
var errInvalidUTF8 = errors.New("not valid UTF-8")

// checkJSONText reports an error unless b is valid UTF-8 whose \u escapes
// are not unpaired surrogates. b is a JSON text: it holds backslashes only
// inside strings, so no tokenizing is needed. What is not JSON is left to
// the decoder.
func checkJSONText(b []byte) error {
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("%w: byte 0x%02x at offset %d", errInvalidUTF8, b[i], i)
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r := escapedRune(b[i+1:])
		switch {
		case r >= 0xd800 && r < 0xdc00: // a high surrogate, which needs a low one
			if i+12 <= len(b) && b[i+6] == '\\' {
				if low := escapedRune(b[i+7:]); low >= 0xdc00 && low < 0xe000 {
					i += 11
					continue
				}
			}
		case r >= 0xdc00 && r < 0xe000:
		default:
			i++ // the escaped character: \\ is not the start of an escape
			continue
		}
		return fmt.Errorf("%w: unpaired surrogate \\u%04x at offset %d", errInvalidUTF8, r, i)
	}
	return nil
}

// escapedRune returns the code of a \u escape whose 'u' starts b, or -1.
func escapedRune(b []byte) rune {
	if len(b) < 5 || b[0] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[1:5] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}
