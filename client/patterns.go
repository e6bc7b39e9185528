package client

import "strings"

// KeyPattern returns the pattern that matches key alone, whatever
// characters it holds, for Subscribe. A key that would read as a regex
// (one that starts with ^, or starts and ends with /) becomes one; a
// regex reads a byte that is not valid UTF-8 as U+FFFD, so that such a
// key's pattern also matches the keys that differ from it only there.
func KeyPattern(key string) string {
	if strings.HasPrefix(key, "^") || len(key) >= 2 && key[0] == '/' && key[len(key)-1] == '/' {
		return "/^" + quoteRegex(key) + "$/"
	}
	return escapeGlob(key)
}

// PrefixPattern returns the pattern that matches the keys that start with
// prefix, for Subscribe. A prefix that starts with ^ becomes a regex, with
// KeyPattern's proviso on bytes that are not valid UTF-8.
func PrefixPattern(prefix string) string {
	if strings.HasPrefix(prefix, "^") {
		return "/^" + quoteRegex(prefix) + "/"
	}
	return escapeGlob(prefix) + "*"
}

// escapeGlob escapes the characters a glob gives a meaning. It goes byte
// by byte: a key is bytes, and one that is not valid UTF-8 keeps them.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := range len(s) {
		if c := s[i]; c == '*' || c == '?' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// quoteRegex escapes the characters a regex gives a meaning.
func quoteRegex(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$/#`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
