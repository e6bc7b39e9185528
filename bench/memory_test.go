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
