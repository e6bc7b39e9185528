package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTickLabels: axis labels have thousands separators and the decimals
// their step needs, no more.
func TestTickLabels(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   []string
	}{
		{0, 8_140_000, []string{"0", "4,000,000", "8,000,000"}},
		{0, 1_358_000, []string{"0", "400,000", "800,000", "1,200,000"}},
		{0, 0.79, []string{"0.00", "0.25", "0.50", "0.75"}},
		{0, 3.3, []string{"0", "1", "2", "3"}},
	} {
		var got []string
		for _, tk := range (labelTicks{}).Ticks(c.lo, c.hi) {
			if tk.Label != "" {
				got = append(got, tk.Label)
			}
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("ticks of [%v, %v]: %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
	if got := tickLabel(-1234.5, 1); got != "-1,234.5" {
		t.Errorf("tickLabel(-1234.5) = %q", got)
	}
}

// TestPlot_NoteAndHeadroom: a plot leaves room above its tallest bar, and
// one whose peer did not run says so.
func TestPlot_NoteAndHeadroom(t *testing.T) {
	if h := headroom(1000); h < 1100 {
		t.Errorf("headroom(1000) = %v: the tallest bar touches the frame", h)
	}
	w := WorkloadReport{Name: "notify", Results: []Result{
		newResult("notify", "100 subscribers", "livekv", "notifications/s", true, []float64{1234567}),
		{Workload: "notify", Case: "100 subscribers", Engine: "redis", Unit: "notifications/s", Note: "not run: redis-server is not installed"},
	}}
	dir := t.TempDir()
	for _, ext := range []string{".svg", ".png"} {
		if err := plotWorkload(w, filepath.Join(dir, "notify"+ext)); err != nil {
			t.Fatal(err)
		}
	}
	svg, err := os.ReadFile(filepath.Join(dir, "notify.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"redis: not run: redis-server is not installed", "1,200,000", "livekv"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the plot does not show %q", want)
		}
	}
	png, err := os.ReadFile(filepath.Join(dir, "notify.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("no PNG plot: %v", err)
	}
}

// TestProgress: on a terminal progress rewrites one line; elsewhere it
// writes plain lines with no control characters.
func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := progressTo(&b, false)
	p.update("[1/2] get: starting")
	p.update("[1/2] get: run 1 of 3")
	p.done("[1/2] get: done in 1s")
	if want := "[1/2] get: starting\n[1/2] get: run 1 of 3\n[1/2] get: done in 1s\n"; b.String() != want {
		t.Errorf("plain progress %q, want %q", b.String(), want)
	}
	b.Reset()
	p = progressTo(&b, true)
	p.update("a")
	p.update("b")
	p.done("c")
	if want := "\r\033[Ka\r\033[Kb\r\033[Kc\n"; b.String() != want {
		t.Errorf("terminal progress %q, want %q", b.String(), want)
	}
}
