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
	rep, md := runReport(t, quickConfig, "", out)
	if len(rep.Workloads) != len(workloads) {
		t.Fatalf("%d workloads in the report, want %d", len(rep.Workloads), len(workloads))
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

// TestChoosePeers: -peers names the peers beside livekv, which always
// runs first; the engines keep the suite's order, and a name that is no
// peer is refused with the list of those that are.
func TestChoosePeers(t *testing.T) {
	names := func(ps []peer) string {
		var n []string
		for _, p := range ps {
			n = append(n, p.name)
		}
		return strings.Join(n, ",")
	}
	for list, want := range map[string]string{
		"pebble,buntdb":              "livekv,buntdb,pebble",
		" badger ":                   "livekv,badger",
		"livekv":                     "livekv",
		"bbolt,bbolt,livekv":         "livekv,bbolt",
		"buntdb,bbolt,pebble,badger": "livekv,buntdb,bbolt,pebble,badger",
	} {
		got, err := choosePeers(list)
		if err != nil {
			t.Fatalf("%q: %v", list, err)
		}
		if names(got) != want {
			t.Errorf("%q: %s, want %s", list, names(got), want)
		}
	}
	if got, err := choosePeers(""); err != nil || got != nil {
		t.Errorf("no list: %v, %v; want every engine (nil)", got, err)
	}
	if _, err := choosePeers("buntdb,redis"); err == nil || !strings.Contains(err.Error(), `"redis"`) || !strings.Contains(err.Error(), "pebble") {
		t.Errorf("an unknown peer: %v", err)
	}
}

// TestRun_PeersAndRuns: a run with -peers and -runs measures just those
// engines, each figure from that many runs, and its table says how only
// those were configured.
func TestRun_PeersAndRuns(t *testing.T) {
	cfg := quickConfig
	cfg.keys, cfg.runs = 2000, 2
	var err error
	if cfg.peers, err = choosePeers("buntdb"); err != nil {
		t.Fatal(err)
	}
	rep, md := runReport(t, cfg, "memory,recovery", t.TempDir())
	if len(rep.Workloads) != 2 {
		t.Fatalf("%d workloads, want 2", len(rep.Workloads))
	}
	for _, w := range rep.Workloads {
		var engines []string
		for _, r := range w.Results {
			engines = append(engines, r.Engine)
			if len(r.Runs) != 2 {
				t.Errorf("%s %s: %d runs, want 2", w.Name, r.Engine, len(r.Runs))
			}
		}
		if got := strings.Join(engines, ","); got != "livekv,buntdb" {
			t.Errorf("%s: engines %s, want livekv,buntdb", w.Name, got)
		}
	}
	if !strings.Contains(string(md), "| buntdb |") || strings.Contains(string(md), "| pebble |") {
		t.Errorf("results.md should say how livekv and buntdb were configured, and no other peer:\n%s", md)
	}
	if !strings.Contains(string(md), "median of 2 runs") {
		t.Error("results.md does not say each figure is the median of 2 runs")
	}
}

// runReport runs the suite's workloads only (all if empty) with cfg,
// writing to out, and returns the report read back from results.json and
// the text of results.md.
func runReport(t *testing.T, cfg config, only, out string) (Report, []byte) {
	t.Helper()
	if err := run(cfg, only, out); err != nil {
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
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	return rep, md
}
