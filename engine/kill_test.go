package engine_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

var kill9Iterations = flag.Int("kill9.iterations", 50, "how many times TestKill9 kills its child")

// kill9Options make the child rotate segments and checkpoint often, so that
// kills land in the middle of those too, and keep a short history, so that
// resuming meets its end.
var kill9Options = engine.Options{SweepInterval: -1, SegmentSize: 16 << 10, CheckpointBytes: 64 << 10, HistoryEvents: 4000}

func kill9Value(key string) string { return "value of " + key + strings.Repeat(".", 40) }

// kill9Child is the process TestKill9 kills: 8 goroutines write until it
// dies and print "ack KEY" once each write has returned.
func kill9Child(dir, iteration string) {
	db, err := engine.Open(dir, &kill9Options)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	ack := func(key string, rev int64) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, "ack %s %d\n", key, rev)
		mu.Unlock()
	}
	os.Stdout.WriteString("ready\n")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key := fmt.Sprintf("it%s:g%d:%06d", iteration, g, i)
				var it engine.Item
				var err error
				if i%4 == 3 { // some multi-key transactions
					_, err = db.Update(func(tx *engine.Tx) error {
						if it, err = tx.Set(key, kill9Value(key), nil); err != nil {
							return err
						}
						_, err := tx.Increment(fmt.Sprintf("count:g%d", g), 1)
						return err
					})
				} else {
					it, err = db.Set(key, kill9Value(key), nil)
				}
				if err != nil {
					fmt.Println("write:", err)
					os.Exit(2)
				}
				ack(key, it.Revision)
			}
		}()
	}
	wg.Wait()
}

// TestKill9 runs a child process that writes with 8 goroutines and kills
// it with SIGKILL at a random moment, again and again on the same
// directory: after each kill, every write the child acknowledged, in this
// run or an earlier one, is there with its value, and a subscription that
// resumes from a revision acknowledged before the kill gets every write
// after it, in order, with no gap. -kill9.iterations sets how many times.
func TestKill9(t *testing.T) {
	dir := t.TempDir()
	var acked []string
	revs := map[string]int64{} // the revision each acknowledged write got
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for it := 0; it < *kill9Iterations; it++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LIVEKV_KILL9_DIR="+dir, fmt.Sprintf("LIVEKV_KILL9_ITERATION=%02d", it))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			r := bufio.NewReader(out)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return // a line cut by the kill is not an acknowledgement
				}
				lines <- strings.TrimSuffix(line, "\n")
			}
		}()
		first, ok := <-lines
		require.True(t, ok && first == "ready", "the child did not start: %q", first)
		time.AfterFunc(time.Duration(5+rng.IntN(120))*time.Millisecond, func() { cmd.Process.Kill() })
		n := 0
		var from int64 // a revision acknowledged in this run, to resume from
		for line := range lines {
			var key string
			var rev int64
			_, err := fmt.Sscanf(line, "ack %s %d", &key, &rev)
			require.NoError(t, err, "the child said %q", line)
			acked = append(acked, key)
			revs[key] = rev
			if n == 0 || rng.IntN(n+1) == 0 {
				from = rev
			}
			n++
		}
		err = cmd.Wait()
		require.Error(t, err, "the child was killed")
		require.Contains(t, err.Error(), "killed")

		db, err := engine.Open(dir, &kill9Options)
		require.NoError(t, err, "iteration %d", it)
		for _, key := range acked {
			got, err := db.Get(key)
			require.NoError(t, err, "iteration %d: acknowledged %s lost", it, key)
			require.Equal(t, kill9Value(key), got.Value)
		}
		if n > 0 {
			resumeAfterKill(t, db, from, revs)
		}
		require.NoError(t, db.Close())
		t.Logf("iteration %d: %d writes acknowledged before the kill", it, n)
	}
	require.NotEmpty(t, acked)
}

// resumeAfterKill subscribes from revision from, which the killed child
// acknowledged, and checks that every revision after it comes, in order,
// each once, through the newest, with each acknowledged write at its
// revision and with its value.
func resumeAfterKill(t *testing.T, db *engine.DB, from int64, revs map[string]int64) {
	t.Helper()
	oldest := db.Stats().Subscriptions.Oldest
	if oldest > 2 { // FromRevision 0 would ask for no resume at all
		// Before what the history holds: told so, with where it starts.
		_, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: oldest - 2})
		var ce *pubsub.CompactedError
		require.ErrorAs(t, err, &ce, "resume after %d, the history holds %d on", oldest-2, oldest)
		require.Equal(t, oldest, ce.Oldest)
	}
	if from < oldest-1 {
		from = oldest - 1 // a run longer than the history: resume where it starts
	}
	sub, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: from, Buffer: 1 << 16})
	require.NoError(t, err, "resume from %d, acknowledged before the kill", from)
	defer sub.Close()
	want := from + 1
	for want <= db.Revision() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ev, err := sub.Next(ctx)
		cancel()
		require.NoError(t, err, "resumed from %d, waiting for %d", from, want)
		if ev.Revision == want-1 {
			continue // another event of the same transaction
		}
		require.Equal(t, want, ev.Revision, "resumed from %d", from)
		if rev, ok := revs[ev.Key]; ok {
			require.Equal(t, rev, ev.Revision, "%s acknowledged at another revision", ev.Key)
			require.Equal(t, kill9Value(ev.Key), ev.Value)
		}
		want++
	}
}

// kill9Main runs the child if this process is one.
func kill9Main() {
	if dir := os.Getenv("LIVEKV_KILL9_DIR"); dir != "" {
		kill9Child(dir, os.Getenv("LIVEKV_KILL9_ITERATION"))
		os.Exit(0)
	}
}
