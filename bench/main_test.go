package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuick runs the whole suite in -quick mode, as make test does, and
// checks that what it writes is well-formed: every workload has results,
// every figure is a positive number, the table and the plots are there.
// It checks the shape of the results, not the speed.
func TestQuick(t *testing.T) {
	out := t.TempDir()
	if err := run(quickConfig, "", out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Workloads) != len(workloads) {
		t.Fatalf("%d workloads in the report, want %d", len(rep.Workloads), len(workloads))
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rep.Workloads {
		if len(w.Results) == 0 {
			t.Errorf("%s: no results", w.Name)
		}
		livekv := false
		for _, r := range w.Results {
			livekv = livekv || r.Engine == "livekv"
			if len(r.Runs) == 0 {
				if r.Note == "" {
					t.Errorf("%s %s: neither runs nor a note", w.Name, r.Engine)
				}
				continue
			}
			if !(r.Median > 0 && r.Min <= r.Median && r.Median <= r.Max) || r.Unit == "" {
				t.Errorf("%s %s %s: bad figure %+v", w.Name, r.Case, r.Engine, r)
			}
		}
		if !livekv {
			t.Errorf("%s: no livekv result", w.Name)
		}
		svg, err := os.ReadFile(filepath.Join(out, w.Name+".svg"))
		if err != nil || !strings.Contains(string(svg), "<svg") {
			t.Errorf("%s: no SVG plot: %v", w.Name, err)
		}
		if png, err := os.ReadFile(filepath.Join(out, w.Name+".png")); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
			t.Errorf("%s: no PNG plot: %v", w.Name, err)
		}
		if !strings.Contains(string(md), "## "+w.Name+"\n") {
			t.Errorf("%s: not in results.md", w.Name)
		}
	}
	for _, p := range peers {
		if !strings.Contains(string(md), "| "+p.name+" |") {
			t.Errorf("results.md does not say how %s was configured", p.name)
		}
	}
	for _, s := range clusterSettings() {
		if !strings.Contains(string(md), "| "+s.Engine+" |") {
			t.Errorf("results.md does not say how %s was configured", s.Engine)
		}
	}
	checkClusterRows(t, rep)
	if err := run(quickConfig, "nonsense", out); err == nil {
		t.Error("an unknown workload is not an error")
	}
}
