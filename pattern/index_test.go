package pattern_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/pattern"
	"github.com/stretchr/testify/require"
)

// oracle matches by trying every pattern: the simple way.
type oracle struct {
	pats []*pattern.Pattern
	vals []int
}

func (o *oracle) match(key string) []int {
	out := []int{}
	for i, p := range o.pats {
		if p.Match(key) {
			out = append(out, o.vals[i])
		}
	}
	slices.Sort(out)
	return out
}

func indexMatch(x *pattern.Index[int], key string) []int {
	out := []int{}
	x.Match(key, func(v int) bool { out = append(out, v); return true })
	slices.Sort(out)
	return out
}

func TestIndex_Match_Kinds(t *testing.T) {
	x := pattern.NewIndex[int]()
	srcs := []string{"user:42", "user:*", "*:session", "user:*:profile", "log-202?", `/^user:\d+$/`, "*a*", "*", "user:42"}
	for i, s := range srcs {
		x.Add(pattern.MustParse(s), i)
	}
	require.Equal(t, len(srcs), x.Len())
	require.Equal(t, []int{0, 1, 5, 7, 8}, indexMatch(x, "user:42"))
	require.Equal(t, []int{1, 2, 6, 7}, indexMatch(x, "user:a:session"))
	require.Equal(t, []int{1, 3, 7}, indexMatch(x, "user:1:profile"))
	require.Equal(t, []int{4, 7}, indexMatch(x, "log-2024"))
	require.Equal(t, []int{7}, indexMatch(x, ""))

	// fn returning false stops the match.
	n := 0
	x.Match("user:42", func(int) bool { n++; return false })
	require.Equal(t, 1, n)

	require.True(t, x.Remove(pattern.MustParse("user:42"), 8))
	require.False(t, x.Remove(pattern.MustParse("user:42"), 8), "removed already")
	require.False(t, x.Remove(pattern.MustParse("user:*"), 99), "never added with that value")
	require.True(t, x.Remove(pattern.MustParse("*"), 7))
	require.True(t, x.Remove(pattern.MustParse("user:*:profile"), 3))
	require.True(t, x.Remove(pattern.MustParse(`/^user:\d+$/`), 5))
	require.True(t, x.Remove(pattern.MustParse("*a*"), 6))
	require.True(t, x.Remove(pattern.MustParse("*:session"), 2))
	require.Equal(t, []int{0, 1}, indexMatch(x, "user:42"))
	require.Equal(t, 3, x.Len())
}

var fuzzAlphabet = []string{"a", "b", ":", "é", "\xff", "*", "?", `\*`, `\?`, `\\`, "user", "x"}

func randPattern(r *rand.Rand) string {
	if r.IntN(10) == 0 {
		return []string{`/^a+b/`, `/b:/`, `^user:\d`, `/^(a|b)x/`, `/é$/`, `^a\.b?`}[r.IntN(6)]
	}
	var b strings.Builder
	for n := 1 + r.IntN(5); n > 0; n-- {
		b.WriteString(fuzzAlphabet[r.IntN(len(fuzzAlphabet))])
	}
	return b.String()
}

func randKey(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(7); n > 0; n-- {
		b.WriteString([]string{"a", "b", ":", "é", "\xff", "*", "?", "user", "x", ".", "1"}[r.IntN(11)])
	}
	return b.String()
}

// TestIndex_MatchesOracle adds and removes random patterns and compares
// every match with the oracle.
func TestIndex_MatchesOracle(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for run := 0; run < 50; run++ {
		x := pattern.NewIndex[int]()
		o := &oracle{}
		for step := 0; step < 300; step++ {
			if r.IntN(4) == 0 && len(o.pats) > 0 {
				i := r.IntN(len(o.pats))
				require.True(t, x.Remove(o.pats[i], o.vals[i]))
				o.pats = slices.Delete(o.pats, i, i+1)
				o.vals = slices.Delete(o.vals, i, i+1)
				continue
			}
			// A loaded machine can stall a regex past the default
			// MatchTimeout; the oracle and the index would then disagree
			// about a timeout, not a match, which is not what this tests.
			p, err := pattern.ParseWith(randPattern(r), &pattern.Options{MatchTimeout: time.Minute})
			require.NoError(t, err)
			x.Add(p, step)
			o.pats, o.vals = append(o.pats, p), append(o.vals, step)
			for i := 0; i < 5; i++ {
				k := randKey(r)
				require.Equal(t, o.match(k), indexMatch(x, k), "seed %d key %q", seed, k)
			}
		}
		require.Equal(t, len(o.pats), x.Len())
	}
}

func TestIndex_Concurrent(t *testing.T) {
	x := pattern.NewIndex[int]()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				p := pattern.MustParse(fmt.Sprintf("k:%d:*", i%50))
				x.Add(p, g)
				x.Match(fmt.Sprintf("k:%d:z", i%50), func(int) bool { return true })
				if !x.Remove(p, g) {
					t.Errorf("goroutine %d: Remove of %s found nothing", g, p)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 0, x.Len())
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"user:42", "user:*", "*:session", "user:*:profile", "log-202?", `/^user:\d+$/`, `^a\.b`, `a\*`, `a\`, `\x`, "", "**", "?*?", "/(/", "\xff*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := pattern.Parse(s)
		if err != nil {
			require.ErrorIs(t, err, pattern.ErrSyntax)
			return
		}
		require.Equal(t, s, p.String())
		// Every key the pattern matches lies within its bounds.
		from, to := p.Bounds()
		for _, k := range []string{p.Literal(), from, s, strings.ReplaceAll(s, "*", ""), strings.ReplaceAll(s, "?", "a")} {
			if p.Match(k) {
				require.True(t, k >= from && (to == "" || k < to), "%q matches %q outside [%q, %q)", s, k, from, to)
			}
		}
	})
}

// FuzzIndex decodes the input into patterns and keys and checks the index
// against the oracle.
func FuzzIndex(f *testing.F) {
	f.Add("user:*\x00*:s\x00a*b?\x00/^u\\d/\x00exact", "user:1:s")
	f.Add("*\x00?\x00\\*", "*")
	f.Fuzz(func(t *testing.T, pats, key string) {
		x := pattern.NewIndex[int]()
		o := &oracle{}
		for i, s := range strings.Split(pats, "\x00") {
			p, err := pattern.Parse(s)
			if err != nil {
				continue
			}
			x.Add(p, i)
			o.pats, o.vals = append(o.pats, p), append(o.vals, i)
		}
		require.Equal(t, o.match(key), indexMatch(x, key))
	})
}

// TestIndex_Candidates: the values whose patterns' literal anchors admit
// the key, matching or not, without running a glob or a regex; a superset
// of Match's.
func TestIndex_Candidates(t *testing.T) {
	x := pattern.NewIndex[int]()
	srcs := []string{"user:42", "user:*", "*:session", "user:*:profile", `/^user:(a+)+$/`, `/^(a+)+$/`, "*a*"}
	for i, s := range srcs {
		x.Add(pattern.MustParse(s), i)
	}
	candidates := func(key string) []int {
		out := []int{}
		x.Candidates(key, func(v int) bool { out = append(out, v); return true })
		slices.Sort(out)
		return out
	}
	require.Equal(t, []int{0, 1, 3, 4, 5, 6}, candidates("user:42"), "anchors admit, whether or not they match")
	require.Equal(t, []int{0, 1}, indexMatch(x, "user:42"))
	require.Equal(t, []int{5, 6}, candidates("x:1"), "only those without an anchor")
	require.Equal(t, []int{2, 5, 6}, candidates("x:session"))
	for _, key := range []string{"", "user:aaa", "aaaa", "user:1:profile", "a:session"} {
		got, want := candidates(key), indexMatch(x, key)
		for _, v := range want {
			require.Contains(t, got, v, "key %q", key)
		}
	}
}
