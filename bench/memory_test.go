package main

import (
	"strings"
	"testing"
)

func TestMemoryPlan(t *testing.T) {
	const gb = int64(1) << 30
	for _, c := range []struct {
		keys      int
		available int64
		limit     int64 // -1: refused
	}{
		{quickConfig.keys, 1 * gb, 0},
		{fullConfig.keys, 2 * gb, 0},
		{20_000_000, 24 * gb, 0},                // 8.5 GiB live, 17 GiB at the peak
		{20_000_000, 16 * gb, 16 * gb * 9 / 10}, // the peak does not fit, the live heap does
		{20_000_000, 10 * gb, -1},
	} {
		limit, err := memoryPlan(c.keys, c.available)
		if c.limit < 0 {
			if err == nil || !strings.Contains(err.Error(), "use fewer keys") {
				t.Errorf("%d keys in %d bytes: %v, want a refusal", c.keys, c.available, err)
			}
			continue
		}
		if err != nil || limit != c.limit {
			t.Errorf("%d keys in %d bytes: limit %d, %v; want %d", c.keys, c.available, limit, err, c.limit)
		}
	}
}

func TestMemAvailable(t *testing.T) {
	n, err := memAvailable()
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("MemAvailable %d", n)
	}
}

func TestNeedsGuard(t *testing.T) {
	big := fullConfig
	big.keys = 20_000_000
	pick := func(names ...string) []workload {
		var ws []workload
		for _, w := range workloads {
			for _, n := range names {
				if w.name == n {
					ws = append(ws, w)
				}
			}
		}
		if len(ws) != len(names) {
			t.Fatalf("workloads %v: found %d", names, len(ws))
		}
		return ws
	}
	for _, c := range []struct {
		cfg   config
		names []string
		want  bool
	}{
		{big, []string{"memory", "recovery"}, true},
		{big, []string{"replicated", "get"}, true},
		{big, []string{"insert"}, true},
		{big, []string{"replicated", "replicated-reads", "replicated-reads-ws", "failover", "transfer"}, false},
		{big, []string{"durable", "patterns", "delivery", "notify"}, false},
		{big, []string{"increment"}, true}, // its list of keys
		{fullConfig, []string{"memory", "recovery"}, false},
		{quickConfig, []string{"insert"}, false},
	} {
		if got := needsGuard(c.cfg, pick(c.names...)); got != c.want {
			t.Errorf("%d keys, %v: guard %v, want %v", c.cfg.keys, c.names, got, c.want)
		}
	}
	if !needsGuard(big, workloads) {
		t.Error("all workloads at 20M keys: no guard")
	}
}
