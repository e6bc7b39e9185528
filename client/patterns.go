package client

import "strings"

// KeyPattern returns the pattern that matches key alone, whatever
// characters it holds, for Subscribe.
func KeyPattern(key string) string {
	if strings.HasPrefix(key, "^") || strings.HasPrefix(key, "/") {
		return "/^" + quoteRegex(key) + "$/"
	}
	return escapeGlob(key)
}

// PrefixPattern returns the pattern that matches the keys that start with
// prefix, for Subscribe.
func PrefixPattern(prefix string) string {
	if strings.HasPrefix(prefix, "^") || strings.HasPrefix(prefix, "/") {
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
