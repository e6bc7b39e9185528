package client

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
)

// initialScan reads a subscription's Initial items: the key ranges its
// patterns can match, page by page, keeping the keys that match.
type initialScan struct {
	pats   []*pattern.Pattern
	spans  [][2]string // [start, end) to scan, sorted, not overlapping; end "" is no bound
	bounds []string    // the end of each page read, in order ("" the last, unbounded)
	revs   []int64     // the revision of each page
}

func newInitialScan(patterns []string) (*initialScan, error) {
	s := &initialScan{}
	for _, p := range patterns {
		pat, err := pattern.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", engine.ErrInvalidOptions, err)
		}
		s.pats = append(s.pats, pat)
		start, end := pat.Bounds()
		s.spans = append(s.spans, [2]string{start, end})
	}
	sort.Slice(s.spans, func(i, j int) bool { return s.spans[i][0] < s.spans[j][0] })
	merged := s.spans[:1]
	for _, sp := range s.spans[1:] {
		last := &merged[len(merged)-1]
		if last[1] == "" || sp[0] <= last[1] {
			if last[1] != "" && (sp[1] == "" || sp[1] > last[1]) {
				last[1] = sp[1]
			}
			continue
		}
		merged = append(merged, sp)
	}
	s.spans = merged
	return s, nil
}

// matches reports whether one of the patterns matches key; a regex that
// cannot decide in time is an error, as in the engine.
func (s *initialScan) matches(key string, rev int64) (bool, error) {
	var undecided error
	for _, p := range s.pats {
		ok, err := p.TryMatch(key)
		if ok {
			return true, nil
		}
		if err != nil && undecided == nil {
			undecided = &engine.PatternTimeoutError{Pattern: p.String(), Key: key, Revision: rev}
		}
	}
	return false, undecided
}

// load reads the items into sub.Initial, after sub has subscribed, and
// sets sub's filter that leaves out the changes the pages hold.
func (s *initialScan) load(ctx context.Context, c *Client, sub *Subscription) error {
	var items []Item
	var last int64
	for _, sp := range s.spans {
		start := sp[0]
		for {
			p, err := c.rangePage(ctx, start, sp[1], 1000)
			if err != nil {
				return err
			}
			for _, it := range p.items {
				ok, err := s.matches(it.Key, p.revision)
				if err != nil {
					return err
				}
				if ok {
					items = append(items, it)
				}
			}
			end := sp[1]
			if p.truncated {
				end = p.next
			}
			s.bounds = append(s.bounds, end)
			s.revs = append(s.revs, p.revision)
			last = p.revision
			if !p.truncated || sp[1] != "" && p.next >= sp[1] {
				break
			}
			start = p.next
		}
	}
	slices.SortFunc(items, func(a, b Item) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	sub.Initial, sub.InitialRevision = items, last
	skip := s.holds
	sub.mu.Lock()
	sub.skip = skip
	kept := sub.queue[:0]
	for _, ev := range sub.queue {
		if !skip(ev.Key, ev.Revision) {
			kept = append(kept, ev)
		}
	}
	clear(sub.queue[len(kept):])
	sub.queue = kept
	sub.mu.Unlock()
	return nil
}

// holds reports whether the page that covers key was read at rev or
// later, and so holds that change already.
func (s *initialScan) holds(key string, rev int64) bool {
	// Pages are read in key order: the first whose end is past key covers
	// it (a key outside every span matches no pattern).
	i := sort.Search(len(s.bounds), func(i int) bool { return s.bounds[i] == "" || key < s.bounds[i] })
	if i == len(s.bounds) {
		return false
	}
	return rev <= s.revs[i]
}
