package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// maxKeys is the most keys -keys accepts: keyOf writes them "key:%08d", so
// up to it every key is 12 bytes, as the figures assume.
const maxKeys = 99_999_999

// liveBytesPerKey is what one loaded key holds in this process, at most:
// 425 bytes per key of resident memory after a collection, the most any
// engine of the memory workload has measured (livekv, once; it now
// measures 234 at 1M keys and 222 at 20M, and badger up to 327:
// docs/benchmarks.md), and the suite keeps each key's string and its
// slot in the key list, 32 bytes.
const liveBytesPerKey = 425 + 32

// memoryPlan says whether a run that loads n keys fits in available bytes
// of memory. Between collections the Go heap grows to twice its live size
// (GOGC=100): when twice the live estimate fits, nothing is needed (limit
// 0). When only the live estimate does, with a fifth to spare, the heap is
// to be capped at nine tenths of available (debug.SetMemoryLimit): the
// collector then runs earlier instead of the machine running out. When not
// even that fits, the run is refused.
func memoryPlan(n int, available int64) (limit int64, err error) {
	live := int64(n) * liveBytesPerKey
	switch {
	case 2*live <= available:
		return 0, nil
	case live+live/5 <= available*9/10:
		return available * 9 / 10, nil
	default:
		return 0, fmt.Errorf("%d keys need about %.1f GiB (%d bytes a key, livekv's measured figure with the key list), "+
			"and %.1f GiB of memory is available: use fewer keys", n, gib(live+live/5), liveBytesPerKey, gib(available))
	}
}

// guardMemory applies memoryPlan for n keys to this machine, and returns
// a line for the log when it caps the heap. A limit set by the user
// (GOMEMLIMIT) is left alone.
func guardMemory(n int) (string, error) {
	available, err := memAvailable()
	if err != nil {
		return "", fmt.Errorf("cannot tell the memory available for %d keys: %w", n, err)
	}
	limit, err := memoryPlan(n, available)
	if err != nil || limit == 0 {
		return "", err
	}
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return fmt.Sprintf("%d keys: %.1f GiB available, the heap limit GOMEMLIMIT sets is kept", n, gib(available)), nil
	}
	debug.SetMemoryLimit(limit)
	return fmt.Sprintf("%d keys: %.1f GiB available, the Go heap is capped at %.1f GiB (collections run more often)",
		n, gib(available), gib(limit)), nil
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: MemAvailable: %w", err)
			}
			return kb << 10, nil
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/meminfo has no MemAvailable")
}

func gib(b int64) float64 { return float64(b) / (1 << 30) }
