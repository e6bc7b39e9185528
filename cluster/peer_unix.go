//go:build unix

package cluster

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether the peer of the idle connection c has closed
// it, or sent what it should not have: one read that does not wait, of
// the socket under c, finds the end of the stream, an error, or a byte,
// where an open idle connection has nothing to read. A connection whose
// socket it cannot reach counts as open.
func peerClosed(c net.Conn) bool {
	c = rawConn(c) // TLS (Options.TLS) sends nothing unasked once a call has been answered
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, err := syscall.Read(int(fd), b[:])
		// No error is a byte or the end of the stream; nothing to read
		// yet (or a signal) is an open connection.
		closed = err == nil || !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)
		return true // one read, never a wait
	})
	return closed || err != nil
}
