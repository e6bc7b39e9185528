package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/cluster"
)

func TestQuantile(t *testing.T) {
	var s []int
	for i := 1; i <= 100; i++ {
		s = append(s, i)
	}
	for _, c := range []struct {
		q    float64
		want int
	}{{0, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {0.999, 100}, {1, 100}} {
		// The nearest rank: the q quantile is the smallest value that at
		// least a share q of the values are at or below. The p99 of 100
		// values is the 99th, not the largest.
		if got := quantile(s, c.q); got != c.want {
			t.Errorf("quantile(1..100, %v) = %d, want %d", c.q, got, c.want)
		}
	}
	for n := 1; n <= 1000; n++ {
		for _, q := range []float64{0.5, 0.9, 0.99} {
			sorted := make([]int, n)
			for i := range sorted {
				sorted[i] = i + 1
			}
			got := quantile(sorted, q)
			// got is the smallest value with at least q·n values at or
			// below it: got values are, got-1 are not.
			if float64(got) < q*float64(n)-1e-9 || float64(got-1) >= q*float64(n)-1e-9 {
				t.Fatalf("quantile(1..%d, %v) = %d", n, q, got)
			}
		}
	}
	if got := quantile([]int{7}, 0.99); got != 7 {
		t.Errorf("quantile of one = %d", got)
	}
	// The median newResult takes, which is the p50 of the failover
	// rows (50 rounds): of an even number, the mean of the middle two,
	// not either of them.
	runs := []float64{5, 1, 4, 2}
	if r := newResult("w", "", "e", "ms", false, runs); r.Median != 3 || r.Min != 1 || r.Max != 5 || !slices.Equal(r.Runs, []float64{5, 1, 4, 2}) {
		t.Errorf("newResult of %v: %+v", runs, r)
	}
	if r := newResult("w", "", "e", "ms", false, []float64{3, 9, 1}); r.Median != 3 {
		t.Errorf("median of 3, 9, 1: %v", r.Median)
	}
}

func TestDrive(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	made := map[int]int{}
	d, err := drive(4, 50*time.Millisecond, true, func(g int) func(int) error {
		mu.Lock()
		made[g]++
		mu.Unlock()
		return func(int) error {
			calls.Add(1)
			time.Sleep(time.Millisecond)
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != 4 || made[0] != 1 || made[3] != 1 {
		t.Errorf("operations made for goroutines %v, want one each for 0 to 3", made)
	}
	n := calls.Load()
	if int64(len(d.lat)) != n || n == 0 {
		t.Fatalf("%d latencies for %d operations", len(d.lat), n)
	}
	if !slices.IsSorted(d.lat) || d.lat[0] < time.Millisecond {
		t.Errorf("latencies not sorted or shorter than the operation: first %v", d.lat[0])
	}
	// It ran at least the 50 ms it was given, and not absurdly longer.
	if hi, lo := float64(n)/0.05, float64(n)/5; d.perSec > hi || d.perSec < lo {
		t.Errorf("%.0f ops/s for %d operations, want within [%.0f, %.0f]", d.perSec, n, lo, hi)
	}

	// Untimed, no latencies are kept.
	if d, err := drive(2, 10*time.Millisecond, false, func(int) func(int) error {
		return func(int) error { return nil }
	}); err != nil || d.lat != nil || d.perSec <= 0 {
		t.Errorf("untimed: %v, %d latencies, %v ops/s", err, len(d.lat), d.perSec)
	}

	// The first error stops every goroutine long before the time is up.
	boom := errors.New("boom")
	start := time.Now()
	_, err = drive(8, time.Minute, false, func(g int) func(int) error {
		return func(i int) error {
			if g == 5 && i == 3 {
				return boom
			}
			time.Sleep(100 * time.Microsecond)
			return nil
		}
	})
	if !errors.Is(err, boom) {
		t.Errorf("drive returned %v, want the operation's error", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("drive ran %v after an error", el)
	}
}

func TestSeries(t *testing.T) {
	s := newSeries("w", "ops/s", true)
	s.add("a", "writers=64", 3)
	s.add("b", "writers=8", 2)
	s.add("a", "writers=8", 1)
	s.add("a", "writers=8", 5, 4)
	got := s.results()
	var order []string
	for _, r := range got {
		order = append(order, r.Case+" "+r.Engine)
	}
	if want := []string{"writers=8 b", "writers=8 a", "writers=64 a"}; !slices.Equal(order, want) {
		t.Errorf("rows %q, want %q", order, want)
	}
	if r := got[1]; !slices.Equal(r.Runs, []float64{1, 5, 4}) || r.Median != 4 || r.Min != 1 || r.Max != 5 || r.Workload != "w" || !r.Higher {
		t.Errorf("row %+v", r)
	}
	s = newSeries("w", "ms", false)
	s.asSeen = true
	s.add("e", "lan", 1)
	s.add("e", "default", 2)
	if got := s.results(); got[0].Case != "lan" || got[1].Case != "default" {
		t.Errorf("asSeen rows %v, %v", got[0].Case, got[1].Case)
	}
}

func TestRetryCase(t *testing.T) {
	for _, c := range []struct {
		name   string
		errs   []error // what each attempt returns, in turn
		runs   int
		agains int
		want   error
	}{
		{"at once", []error{nil}, 1, 0, nil},
		{"after elections", []error{cluster.ErrNoLeader, &cluster.NotLeaderError{}, nil}, 3, 2, nil},
		{"not committed, uncertain", []error{cluster.ErrNotCommitted, fmt.Errorf("x: %w", cluster.ErrUncertain), nil}, 3, 2, nil},
		{"gives up", []error{cluster.ErrNoLeader, cluster.ErrNoLeader, cluster.ErrNoLeader, nil}, caseAttempts, caseAttempts - 1, cluster.ErrNoLeader},
		{"other errors end it", []error{cluster.ErrNoLeader, cluster.ErrClosed, nil}, 2, 1, cluster.ErrClosed},
	} {
		runs, agains := 0, 0
		res, err := retryCase(func() (driven, error) {
			e := c.errs[runs]
			runs++
			if e != nil {
				return driven{}, e
			}
			return driven{perSec: 42}, nil
		}, func(error) { agains++ })
		if runs != c.runs || agains != c.agains || !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Errorf("%s: %d runs, %d retries, %v; want %d, %d, %v", c.name, runs, agains, err, c.runs, c.agains, c.want)
		}
		if err == nil && res.perSec != 42 {
			t.Errorf("%s: result %+v is not the last run's", c.name, res)
		}
	}
}

// TestStartCluster_FailureLeavesNothing: a cluster that cannot start
// leaves no folder, no port and (TestMain checks) no goroutine behind.
func TestStartCluster_FailureLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	bad := clusterStore{name: "bad", set: func(o *cluster.Options) { o.Profile = "nonsense" }}
	c, err := startCluster(bad, cluster.ProfileLAN)
	if !errors.Is(err, cluster.ErrInvalidOptions) {
		t.Fatalf("startCluster = %v, %v; want ErrInvalidOptions", c, err)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("left behind in TMPDIR: %v", left)
	}
}

// checkClusterRows checks that a quick run's report has every row the
// cluster workloads promise, for every store: what TestQuick's general
// checks cannot know.
func checkClusterRows(t *testing.T, rep Report) {
	t.Helper()
	rows := map[string]map[string]Result{} // workload → "case|engine"
	for _, w := range rep.Workloads {
		rows[w.Name] = map[string]Result{}
		for _, r := range w.Results {
			rows[w.Name][r.Case+"|"+r.Engine] = r
		}
	}
	has := func(w, cas, eng string) (Result, bool) {
		r, ok := rows[w][cas+"|"+eng]
		if !ok {
			t.Errorf("%s: no row for %q, %q", w, cas, eng)
		}
		return r, ok
	}
	for _, st := range clusterStores {
		for _, w := range writerCounts {
			for _, eng := range []string{"livekv", "cluster, " + st.name, "cluster, " + st.name + ", via a follower"} {
				has("replicated", fmt.Sprintf("writers=%d", w), eng)
				p50, ok1 := has("replicated-latency", fmt.Sprintf("p50, writers=%d", w), eng)
				p99, ok2 := has("replicated-latency", fmt.Sprintf("p99, writers=%d", w), eng)
				if ok1 && ok2 && p99.Median < p50.Median {
					t.Errorf("%s, writers=%d: p99 %v below p50 %v", eng, w, p99.Median, p50.Median)
				}
			}
		}
		for _, w := range []string{"failover", "transfer"} {
			for _, prof := range []string{"lan", "default"} {
				cas := st.name + ", " + prof
				p50, ok1 := has(w, cas+", p50", "livekv")
				slowest, ok2 := has(w, cas+", slowest", "livekv")
				if ok1 && len(p50.Runs) != quickConfig.rounds {
					t.Errorf("%s %s: %d rounds, want %d", w, cas, len(p50.Runs), quickConfig.rounds)
				}
				if ok1 && ok2 && (len(slowest.Runs) != 1 || slowest.Median != p50.Max) {
					t.Errorf("%s %s: slowest %v, not the slowest of the p50 row %+v", w, cas, slowest.Runs, p50)
				}
			}
		}
	}
	for _, g := range []int{1, 8, 64} {
		for _, eng := range []string{"livekv", "stale, leader", "linearizable, leader", "stale, follower", "linearizable, follower",
			"linearizable (lease), leader", "linearizable (lease), follower"} {
			has("replicated-reads", fmt.Sprintf("goroutines=%d", g), eng)
			has("replicated-reads-ws", fmt.Sprintf("goroutines=%d", g), eng)
		}
	}
}
