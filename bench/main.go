// Command bench runs livekv side by side with the engines its users would
// pick instead, on this machine, in one run, and writes a Markdown table,
// the raw numbers as JSON and SVG plots:
//
//	cd bench && go run .                      # every workload (about 15 minutes)
//	cd bench && go run . -quick               # a short smoke run
//	cd bench && go run . -workloads get,range -out /tmp/results
//	cd bench && go run . -workloads replicated,replicated-latency,replicated-reads,failover,transfer
//	cd bench && go run . -replot -out /tmp/results # redraw from results.json
//	cd bench && go run . -keys 20000000 -workloads memory,recovery
//	cd bench && go run . -workloads memory -peers pebble,bbolt -runs 5
//
// Each figure is the median of several runs, with the spread; each peer's
// row gives its ratio to livekv. See docs/benchmarks.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// config sizes the workloads.
type config struct {
	keys      int           // keys loaded
	ops       int           // operations timed per run
	runs      int           // runs per figure
	durableIn time.Duration // how long each durable case runs
	subs      int           // pattern subscriptions
	readsIn   time.Duration // how long each case of the cluster's reads runs
	rounds    int           // changes of leader timed per cluster profile
	quick     bool
	peers     []peer // the engines run, livekv first; nil: every one
}

// engines returns the engines the workloads run: livekv, then the peers
// chosen.
func (cfg config) engines() []peer {
	if cfg.peers != nil {
		return cfg.peers
	}
	return peers
}

// choosePeers returns livekv and the peers list names (comma-separated),
// in the suite's order, or every engine if list is empty. livekv always
// runs: every figure is compared with it.
func choosePeers(list string) ([]peer, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	want := map[string]bool{peers[0].name: true}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.ContainsFunc(peers, func(p peer) bool { return p.name == name }) {
			return nil, fmt.Errorf("no peer %q; there are %s", name, peerNames())
		}
		want[name] = true
	}
	var chosen []peer
	for _, p := range peers {
		if want[p.name] {
			chosen = append(chosen, p)
		}
	}
	return chosen, nil
}

func peerNames() string {
	var n []string
	for _, p := range peers[1:] {
		n = append(n, p.name)
	}
	return strings.Join(n, ", ")
}

var fullConfig = config{keys: 1_000_000, ops: 1_000_000, runs: 3, durableIn: 3 * time.Second, subs: 100_000,
	readsIn: 2 * time.Second, rounds: 50}
var quickConfig = config{keys: 20_000, ops: 20_000, runs: 1, durableIn: 300 * time.Millisecond, subs: 10_000,
	readsIn: 100 * time.Millisecond, rounds: 2, quick: true}

// Result is one figure: a workload, a case of it, an engine, and the runs.
type Result struct {
	Workload string    `json:"workload"`
	Case     string    `json:"case,omitempty"`
	Engine   string    `json:"engine"`
	Unit     string    `json:"unit"`
	Higher   bool      `json:"higherIsBetter"`
	Runs     []float64 `json:"runs"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	Note     string    `json:"note,omitempty"`
}

// newResult makes the figure of runs: its median is the middle run, or of
// an even number of runs the mean of the middle two.
func newResult(workload, cas, eng, unit string, higher bool, runs []float64) Result {
	s := slices.Sorted(slices.Values(runs))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + med) / 2
	}
	return Result{Workload: workload, Case: cas, Engine: eng, Unit: unit, Higher: higher, Runs: runs,
		Median: med, Min: s[0], Max: s[len(s)-1]}
}

// workload is one thing measured.
type workload struct {
	name  string
	about string
	// loads says whether the workload holds cfg.keys keys, in a store or
	// in its list of keys, which the memory guard must find room for
	// (replicated-reads loads at most readKeys).
	loads bool
	run   func(cfg config, progress func(string)) ([]Result, error)
}

var workloads = []workload{
	{"insert", "random insert of the keys into an empty store (100-byte values of random hexadecimal digits)", true, runInsert},
	{"get", "random get of loaded keys, 1 and 8 goroutines", true, runGet},
	{"range", "1000-key ordered range from a random key", true, runRange},
	{"increment", "atomic increment of random keys", true, runIncrement},
	{"durable", "durable writes (fsync on every commit) with 1, 8 and 64 writers, beside the disk's raw fsync rate", false, runDurable},
	{"recovery", "time to open a store of the keys after a restart", true, runRecovery},
	{"memory", "resident memory per key, 100-byte values (transparent huge pages off)", true, runMemory},
	{"patterns", "matching one key against the pattern subscriptions: livekv's index against a linear scan", false, runPatterns},
	{"delivery", "time from a write to its event at 1, 100 and 1,000 in-process subscribers", false, runDelivery},
	{"notify", "over loopback: set a key and notify 100 pattern subscribers, livekv's adapter against Redis", false, runNotify},
	{"replicated", "durable writes with 1, 8 and 64 writers: one livekv node, and a 3-node cluster through its leader and through a follower, in turn", false, runReplicated},
	{"replicated-latency", "the latency of those writes, p50 and p99 of every write of a run", false, runReplicatedLatency},
	{"replicated-reads", "random gets of 100,000 keys (fewer in a quick run): one livekv node, and the cluster's leader and a follower at the Stale and Linearizable levels, then those of a cluster with lease reads (cluster.Options.LeaseReads) at the Linearizable level, in turn", false, runReplicatedReads},
	{"replicated-reads-ws", "replicated-reads over WebSocket on loopback: each node serves the adapter, each goroutine is a Go client with a connection of its own, at its connection's read level", false, runReplicatedReadsWS},
	{"failover", "a 3-node cluster's leader closed abruptly, to the first write acknowledged through a survivor, per store and timing profile: the p50 row's median is over every round (50; 2 in a quick run), its min and max the fastest and slowest; the slowest row is that slowest round", false, runFailover},
	{"transfer", "a 3-node cluster's leader hands leadership on (TransferLeadership), to the first write acknowledged through another node, as failover measures it", false, runTransfer},
}

func main() {
	quick := flag.Bool("quick", false, "a short smoke run: fewer keys, one run each")
	only := flag.String("workloads", "", "comma-separated workloads to run (default all): "+names())
	rounds := flag.Int("failover-rounds", 0, "changes of leader timed per store and profile in the failover and transfer workloads (default 50; 2 with -quick)")
	keys := flag.Int("keys", 0, fmt.Sprintf("keys loaded by the workloads that load a store (default %d; %d with -quick), at most %d; "+
		"for the memory and recovery workloads at scale, e.g. -keys 20000000 -workloads memory,recovery", fullConfig.keys, quickConfig.keys, maxKeys))
	peerList := flag.String("peers", "", "comma-separated peers run beside livekv (default all): "+peerNames())
	runs := flag.Int("runs", 0, fmt.Sprintf("runs of each figure, of which it gives the median (default %d; %d with -quick)", fullConfig.runs, quickConfig.runs))
	out := flag.String("out", "results", "folder for results.md, results.json and the SVG plots")
	again := flag.Bool("replot", false, "run nothing: rewrite results.md and the plots in -out from its results.json")
	flag.Parse()
	if child, err := runChild(os.Stdout); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *again {
		if err := replot(*out); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := noHugePages(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: transparent huge pages stay as the kernel has them (memory figures may be off):", err)
	}
	cfg := fullConfig
	if *quick {
		cfg = quickConfig
	}
	if *rounds > 0 {
		cfg.rounds = *rounds
	}
	if *runs != 0 {
		if *runs < 1 {
			fmt.Fprintf(os.Stderr, "bench: -runs %d is below 1\n", *runs)
			os.Exit(2)
		}
		cfg.runs = *runs
	}
	chosen, err := choosePeers(*peerList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	cfg.peers = chosen
	if *keys != 0 {
		if *keys < 1 || *keys > maxKeys {
			fmt.Fprintf(os.Stderr, "bench: -keys %d is outside 1..%d\n", *keys, maxKeys)
			os.Exit(2)
		}
		cfg.keys = *keys
	}
	if err := run(cfg, *only, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func names() string {
	var n []string
	for _, w := range workloads {
		n = append(n, w.name)
	}
	return strings.Join(n, ",")
}

// needsGuard says whether the memory guard runs before the chosen
// workloads: only for more keys than a full run loads, and only if one of
// them loads the keys.
func needsGuard(cfg config, chosen []workload) bool {
	return cfg.keys > fullConfig.keys && slices.ContainsFunc(chosen, func(w workload) bool { return w.loads })
}

func run(cfg config, only, out string) error {
	chosen := workloads
	if only != "" {
		chosen = nil
		for _, name := range strings.Split(only, ",") {
			i := slices.IndexFunc(workloads, func(w workload) bool { return w.name == strings.TrimSpace(name) })
			if i < 0 {
				return fmt.Errorf("no workload %q; there are %s", name, names())
			}
			chosen = append(chosen, workloads[i])
		}
	}
	if needsGuard(cfg, chosen) {
		// Check before loading anything: a store too large for the
		// machine would push it into swap, or the kernel's OOM killer.
		note, err := guardMemory(cfg.keys)
		if err != nil {
			return err
		}
		if note != "" {
			fmt.Fprintln(os.Stderr, "bench:", note)
		}
	}
	rep := Report{Machine: machine(), Started: time.Now().UTC(), Quick: cfg.quick, Keys: cfg.keys, Runs: cfg.runs}
	rep.Disk = tempDisk(os.Stderr, os.TempDir(), diskOf)
	for _, p := range cfg.engines() {
		rep.Settings = append(rep.Settings, Setting{Engine: p.name, Memory: p.settings, Durable: p.durable})
	}
	rep.Settings = append(rep.Settings, clusterSettings()...)
	pr := progressTo(os.Stderr, isTerminal(os.Stdout) && isTerminal(os.Stderr))
	for i, w := range chosen {
		start := time.Now()
		progress := func(msg string) { pr.update(fmt.Sprintf("[%d/%d] %s: %s", i+1, len(chosen), w.name, msg)) }
		progress("starting")
		results, err := w.run(cfg, progress)
		if err != nil {
			pr.done("")
			return fmt.Errorf("%s: %w", w.name, err)
		}
		pr.done(fmt.Sprintf("[%d/%d] %s: done in %v", i+1, len(chosen), w.name, time.Since(start).Round(time.Millisecond)))
		rep.Workloads = append(rep.Workloads, WorkloadReport{Name: w.name, About: w.about, Results: results})
	}
	rep.Finished = time.Now().UTC()
	if err := rep.write(out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "results in %s\n", out)
	return nil
}

// tempDisk says what holds the folder the stores are made in, and warns
// on w if it is memory: every durable figure would then time fsyncs that
// write nothing.
func tempDisk(w io.Writer, dir string, diskOf func(string) (string, bool, error)) string {
	desc, inMemory, err := diskOf(dir)
	if err != nil {
		return fmt.Sprintf("%s (its file system unknown: %v)", dir, err)
	}
	if inMemory {
		desc += " (memory: the durable figures measured no disk)"
		fmt.Fprintf(w, "bench: the stores are made in %s; set TMPDIR to a folder on a disk\n", desc)
	}
	return desc
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s, %s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// progress shows what the suite is doing: on a terminal, one line that
// each update rewrites; elsewhere (a log, a pipe, CI), a plain line per
// update, with no control characters.
type progress struct {
	w       io.Writer
	tty     bool
	pending bool // a line is shown, unfinished (tty)
}

func progressTo(w io.Writer, tty bool) *progress { return &progress{w: w, tty: tty} }

func (p *progress) update(msg string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", msg)
		p.pending = true
		return
	}
	fmt.Fprintln(p.w, msg)
}

// done ends the current line with msg ("" leaves nothing on a terminal).
func (p *progress) done(msg string) {
	switch {
	case p.tty && msg == "":
		if p.pending {
			fmt.Fprint(p.w, "\r\033[K")
		}
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s\n", msg)
	case msg != "":
		fmt.Fprintln(p.w, msg)
	}
	p.pending = false
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
