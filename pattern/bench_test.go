package pattern_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/livekv/livekv/pattern"
)

// subscriptions returns n pattern sources of a kind; "mix" is mostly
// prefixes, some exact keys, suffixes and globs, and a few regexes.
func subscriptions(kind string, n int, r *rand.Rand) []string {
	out := make([]string, n)
	for i := range out {
		k := kind
		if kind == "mix" {
			switch x := r.IntN(100); {
			case x < 60:
				k = "prefix"
			case x < 80:
				k = "exact"
			case x < 90:
				k = "suffix"
			case x < 98:
				k = "glob"
			default:
				k = "regex"
			}
		}
		u := r.IntN(users(kind, n))
		switch k {
		case "exact":
			out[i] = fmt.Sprintf("user:%d:profile", u)
		case "prefix":
			out[i] = fmt.Sprintf("user:%d:*", u)
		case "suffix":
			out[i] = fmt.Sprintf("*:session:%d", u)
		case "glob":
			out[i] = fmt.Sprintf("user:%d:*:item?", u)
		case "regex":
			out[i] = fmt.Sprintf(`/^user:%d:\d+$/`, u)
		}
	}
	return out
}

// users is how many users the patterns of a workload are spread over: in
// the mix, about 16 patterns name each user, so that a key matches about 10.
func users(kind string, n int) int {
	if kind == "mix" {
		return n / 16
	}
	return n
}

// BenchmarkMatch matches keys against n subscriptions, with the index and
// with a linear scan over the same patterns (the simple way).
func BenchmarkMatch(b *testing.B) {
	for _, kind := range []string{"exact", "prefix", "suffix", "glob", "regex", "mix"} {
		for _, n := range []int{1_000, 10_000, 100_000} {
			r := rand.New(rand.NewPCG(1, uint64(n)))
			srcs := subscriptions(kind, n, r)
			x := pattern.NewIndex[int]()
			pats := make([]*pattern.Pattern, n)
			for i, s := range srcs {
				pats[i] = pattern.MustParse(s)
				x.Add(pats[i], i)
			}
			keys := make([]string, 1024)
			for i := range keys {
				u := r.IntN(users(kind, n))
				keys[i] = []string{fmt.Sprintf("user:%d:profile", u), fmt.Sprintf("user:%d:a:item1", u), fmt.Sprintf("x:session:%d", u), fmt.Sprintf("user:%d:17", u)}[i%4]
			}
			matched := 0
			b.Run(fmt.Sprintf("kind=%s/subs=%d/index", kind, n), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					x.Match(keys[i%len(keys)], func(int) bool { matched++; return true })
					i++
				}
				b.ReportMetric(float64(matched)/float64(i), "matches/key")
			})
			if n == 100_000 && kind != "mix" && kind != "regex" {
				continue // the linear scans are the slow part of the run: keep the ones that count
			}
			b.Run(fmt.Sprintf("kind=%s/subs=%d/linear", kind, n), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					k := keys[i%len(keys)]
					for _, p := range pats {
						if p.Match(k) {
							matched++
						}
					}
					i++
				}
			})
		}
	}
}
