package main_test

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServe_TwoAtOnceOnANewFolder: two serves started at once on a folder
// that does not exist yet. One takes its lock; the other fails, and must
// leave the folder alone: it removed the folder it thought it had made,
// with the running one's log and lock in it.
func TestServe_TwoAtOnceOnANewFolder(t *testing.T) {
	bin := build(t)
	for round := range 8 {
		data := filepath.Join(t.TempDir(), "new", "data")
		var cmds [2]*exec.Cmd
		exited := make(chan int, 2)
		for i := range cmds {
			cmds[i] = exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k")
			require.NoError(t, cmds[i].Start())
		}
		for i := range cmds {
			go func() {
				_ = cmds[i].Wait()
				exited <- i
			}()
		}
		var loser int
		select {
		case loser = <-exited:
		case <-time.After(30 * time.Second):
			for _, c := range cmds {
				_ = c.Process.Kill()
			}
			t.Fatalf("round %d: neither serve stopped", round)
		}
		winner := cmds[1-loser]
		require.DirExists(t, data, "round %d: the folder of the serve that runs is gone", round)
		require.FileExists(t, filepath.Join(data, "LOCK"), "round %d", round)
		require.NoError(t, winner.Process.Kill())
		<-exited
	}
}
