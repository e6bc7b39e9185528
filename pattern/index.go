package pattern

import (
	"slices"
	"sync"
)

// Index holds patterns, each with a value, and finds the values whose
// patterns match a key in time that does not grow with the number of
// patterns: exact keys are looked up in a map; prefixes and suffixes, and
// globs and regexes by their literal prefix or suffix, in maps keyed by
// length; only patterns with no literal anchor are tried one by one.
//
// An Index is safe for concurrent use; Match runs concurrently with other
// Matches and waits only for Add and Remove.
type Index[T comparable] struct {
	mu sync.RWMutex // guards everything below

	exact     map[string][]sub[T]
	prefixes  anchors[T] // keyed by prefix: prefix patterns, and globs and regexes that start with a literal
	suffixes  anchors[T] // keyed by suffix: suffix patterns, and globs with a literal end but no literal start
	unbounded []sub[T]   // patterns with no literal anchor
	n         int
}

type sub[T comparable] struct {
	p      *Pattern
	v      T
	verify bool // the anchor is necessary, not sufficient: run p.Match
}

// anchors maps literal anchors to patterns, one map per anchor length, so
// that a key is looked up once per length in use.
type anchors[T comparable] struct {
	byLen map[int]map[string][]sub[T]
	lens  []int // the lengths in byLen, ascending
}

func (a *anchors[T]) add(lit string, s sub[T]) {
	if a.byLen == nil {
		a.byLen = make(map[int]map[string][]sub[T])
	}
	m := a.byLen[len(lit)]
	if m == nil {
		m = make(map[string][]sub[T])
		a.byLen[len(lit)] = m
		i, _ := slices.BinarySearch(a.lens, len(lit))
		a.lens = slices.Insert(a.lens, i, len(lit))
	}
	m[lit] = append(m[lit], s)
}

func (a *anchors[T]) remove(lit string, p *Pattern, v T) bool {
	m := a.byLen[len(lit)]
	subs, ok := removeSub(m[lit], p, v)
	if !ok {
		return false
	}
	if len(subs) == 0 {
		delete(m, lit)
		if len(m) == 0 {
			delete(a.byLen, len(lit))
			i, _ := slices.BinarySearch(a.lens, len(lit))
			a.lens = slices.Delete(a.lens, i, i+1)
		}
	} else {
		m[lit] = subs
	}
	return true
}

func removeSub[T comparable](subs []sub[T], p *Pattern, v T) ([]sub[T], bool) {
	for i, s := range subs {
		if s.v == v && s.p.src == p.src {
			return slices.Delete(subs, i, i+1), true
		}
	}
	return subs, false
}

// NewIndex returns an empty index.
func NewIndex[T comparable]() *Index[T] {
	return &Index[T]{exact: make(map[string][]sub[T])}
}

// Add adds p with its value v. The same pattern may be added with several
// values, and the same value with several patterns.
func (x *Index[T]) Add(p *Pattern, v T) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.n++
	switch {
	case p.kind == Exact:
		x.exact[p.lit] = append(x.exact[p.lit], sub[T]{p: p, v: v})
	case p.kind == Prefix:
		x.prefixes.add(p.lit, sub[T]{p: p, v: v})
	case p.kind == Suffix:
		x.suffixes.add(p.lit, sub[T]{p: p, v: v})
	case p.pre != "":
		x.prefixes.add(p.pre, sub[T]{p: p, v: v, verify: true})
	case p.suf != "":
		x.suffixes.add(p.suf, sub[T]{p: p, v: v, verify: true})
	default:
		x.unbounded = append(x.unbounded, sub[T]{p: p, v: v, verify: true})
	}
}

// Remove removes one pair of a pattern (compared by its text) and value that
// Add added, and reports whether there was one.
func (x *Index[T]) Remove(p *Pattern, v T) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	var ok bool
	switch {
	case p.kind == Exact:
		var subs []sub[T]
		if subs, ok = removeSub(x.exact[p.lit], p, v); ok {
			if len(subs) == 0 {
				delete(x.exact, p.lit)
			} else {
				x.exact[p.lit] = subs
			}
		}
	case p.kind == Prefix:
		ok = x.prefixes.remove(p.lit, p, v)
	case p.kind == Suffix:
		ok = x.suffixes.remove(p.lit, p, v)
	case p.pre != "":
		ok = x.prefixes.remove(p.pre, p, v)
	case p.suf != "":
		ok = x.suffixes.remove(p.suf, p, v)
	default:
		x.unbounded, ok = removeSub(x.unbounded, p, v)
	}
	if ok {
		x.n--
	}
	return ok
}

// Len returns the number of pattern-value pairs in the index.
func (x *Index[T]) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.n
}

// Match calls fn with the value of every pattern that matches key, once per
// pattern-value pair, in no particular order, until fn returns false. fn
// must not call Add or Remove on the index. Match allocates nothing itself
// (a regex match may allocate inside regexp2, and a glob with a literal
// that is not valid UTF-8 allocates a table of the ways it tried).
func (x *Index[T]) Match(key string, fn func(T) bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	x.walk(key, fn, true)
}

// Candidates calls fn with the value of every pattern whose literal
// anchor admits key (the key of an exact pattern, the prefix or suffix of
// the others; every pattern without one), once per pattern-value pair, in
// no particular order, until fn returns false. Unlike Match it runs no
// glob or regex: the values are a superset of Match's, for a caller that
// matches them itself, with TryMatch, to tell a regex that could not
// decide from one that did not match. fn must not call Add or Remove on
// the index.
func (x *Index[T]) Candidates(key string, fn func(T) bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	x.walk(key, fn, false)
}

// walk calls fn with the values of the patterns whose anchors admit key,
// running those whose anchor does not suffice when verify is set.
func (x *Index[T]) walk(key string, fn func(T) bool, verify bool) {
	if !each(x.exact[key], key, fn, verify) {
		return
	}
	for _, n := range x.prefixes.lens {
		if n > len(key) {
			break
		}
		if !each(x.prefixes.byLen[n][key[:n]], key, fn, verify) {
			return
		}
	}
	for _, n := range x.suffixes.lens {
		if n > len(key) {
			break
		}
		if !each(x.suffixes.byLen[n][key[len(key)-n:]], key, fn, verify) {
			return
		}
	}
	each(x.unbounded, key, fn, verify)
}

func each[T comparable](subs []sub[T], key string, fn func(T) bool, verify bool) bool {
	for i := range subs {
		s := &subs[i]
		if verify && s.verify && !s.p.Match(key) {
			continue
		}
		if !fn(s.v) {
			return false
		}
	}
	return true
}
