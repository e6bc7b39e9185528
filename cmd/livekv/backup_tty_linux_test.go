package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// openPTY opens a pseudo-terminal and returns its terminal end, the one
// a program is given as its stdout.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err, "a pseudo-terminal")
	t.Cleanup(func() { ptmx.Close() })
	var unlock int32
	var n uint32
	for _, c := range []struct {
		req uintptr
		arg unsafe.Pointer
	}{{syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)}, {syscall.TIOCGPTN, unsafe.Pointer(&n)}} {
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), c.req, uintptr(c.arg))
		require.Zero(t, errno, "ioctl %#x on /dev/ptmx", c.req)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { tty.Close() })
	return tty
}

// TestBackup_Terminal: backup refuses to write its binary stream to a
// terminal, but writes it to /dev/null, which is a character device too,
// and to a pipe.
func TestBackup_Terminal(t *testing.T) {
	bin := build(t)
	s := serveOps(t, bin, "--data", filepath.Join(t.TempDir(), "data"), "--addr", "127.0.0.1:0", "--api-key", "k1")
	backup := func(stdout *os.File) (string, error) {
		cmd := exec.Command(bin, "backup", "--addr", s.base, "--api-key", "k1")
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = stdout, &stderr
		err := cmd.Run()
		return stderr.String(), err
	}

	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	st, err := null.Stat()
	require.NoError(t, err)
	require.NotZero(t, st.Mode()&os.ModeCharDevice, "/dev/null is a character device")
	stderr, err := backup(null)
	require.NoError(t, err, "backup > /dev/null: %s", stderr)
	require.Contains(t, stderr, "livekv backup: revision ")

	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	done := make(chan int, 1)
	go func() {
		n := 0
		buf := make([]byte, 4096)
		for {
			k, err := r.Read(buf)
			n += k
			if err != nil {
				done <- n
				return
			}
		}
	}()
	stderr, err = backup(w)
	w.Close()
	require.NoError(t, err, "backup | ...: %s", stderr)
	require.Positive(t, <-done, "the backup went down the pipe")

	stderr, err = backup(openPTY(t))
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "backup to a terminal: %s", stderr)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, stderr, "the backup is binary")
	s.stop(t)
}
