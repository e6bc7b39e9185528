package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// serveWith runs livekv serve on a loopback port with extra flags.
func serveWith(t *testing.T, bin string, flags ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data", filepath.Join(t.TempDir(), "data"), "--addr", "127.0.0.1:0", "--api-key", "k1"}, flags...)
	return runServe(t, bin, args...)
}

// slowBody opens a connection and sends a POST /kv/record whose body of
// 1,000 bytes trickles at one byte every interval. It returns the
// connection and a channel closed when the server has ended it (a read
// returns). It stops writing by itself once the server closes the
// connection or after the whole body; the test's cleanup closes it.
func slowBody(t *testing.T, host string, interval time.Duration) (net.Conn, <-chan struct{}) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /kv/record HTTP/1.1\r\nHost: %s\r\nx-api-key: k1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", host)
	require.NoError(t, err)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		io.Copy(io.Discard, conn)
	}()
	go func() {
		for i := 0; i < 1000; i++ {
			select {
			case <-ended:
				return
			case <-time.After(interval):
			}
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	return conn, ended
}

// TestServe_Timeouts: a body sent at one byte a second and an idle
// keep-alive connection end by themselves, while a WebSocket, which the
// server's timeouts do not reach once upgraded, stays open past them.
func TestServe_Timeouts(t *testing.T) {
	bin := build(t)
	s := serveWith(t, bin, "--read-timeout", "1s", "--write-timeout", "1s", "--idle-timeout", "1s")
	host := strings.TrimPrefix(s.base, "http://")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+host+"/kv/ws?apiKey=k1", nil)
	require.NoError(t, err)
	defer ws.CloseNow()

	start := time.Now()
	_, slowEnded := slowBody(t, host, time.Second)

	idle, err := net.DialTimeout("tcp", host, 5*time.Second)
	require.NoError(t, err)
	defer idle.Close()
	_, err = fmt.Fprintf(idle, "GET /kv/record/a HTTP/1.1\r\nHost: %s\r\nx-api-key: k1\r\n\r\n", host)
	require.NoError(t, err)
	idleEnded := make(chan struct{})
	go func() {
		defer close(idleEnded)
		idle.SetReadDeadline(time.Now().Add(time.Minute))
		resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body) // then the server ends the idle connection
		}
	}()

	for name, ended := range map[string]<-chan struct{}{"slow body": slowEnded, "idle keep-alive": idleEnded} {
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s connection was still open after 10s", name)
		}
	}
	t.Logf("both ended after %v", time.Since(start))

	time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"op":2,"key":"a","value":"v","messageId":1}`)))
	_, b, err := ws.Read(ctx)
	require.NoError(t, err, "the WebSocket outlives the server's timeouts")
	require.Contains(t, string(b), `"code":200`)
}

// TestServe_SIGTERMWithSlowBodies: SIGTERM ends serve with status 0 within
// its grace period even while request bodies trickle in.
func TestServe_SIGTERMWithSlowBodies(t *testing.T) {
	bin := build(t)
	s := serveWith(t, bin, "--grace", "2s", "--read-timeout", "1m")
	host := strings.TrimPrefix(s.base, "http://")
	var ended []<-chan struct{}
	for i := 0; i < 4; i++ {
		_, e := slowBody(t, host, 200*time.Millisecond)
		ended = append(ended, e)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "exit status 0")
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	require.Less(t, time.Since(start), 2500*time.Millisecond, "within the grace period")
	for _, e := range ended {
		<-e
	}
}

// TestServe_ClientLimits: one client address gets --token-rate tokens a
// minute from POST /apps/token and holds at most --max-conns-per-client
// WebSockets; closing one makes room.
func TestServe_ClientLimits(t *testing.T) {
	bin := build(t)
	s := serveWith(t, bin, "--token-rate", "3", "--max-conns-per-client", "2")
	host := strings.TrimPrefix(s.base, "http://")
	mint := func() int {
		resp, err := http.Post(s.base+"/apps/token", "application/json", strings.NewReader(`{"app":"todo"}`))
		require.NoError(t, err)
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusOK, mint())
	}
	require.Equal(t, http.StatusTooManyRequests, mint())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func() (*websocket.Conn, int) {
		ws, resp, err := websocket.Dial(ctx, "ws://"+host+"/kv/ws?apiKey=k1", nil)
		if err != nil {
			return nil, resp.StatusCode
		}
		return ws, resp.StatusCode
	}
	first, code := dial()
	require.Equal(t, http.StatusSwitchingProtocols, code)
	second, code := dial()
	require.Equal(t, http.StatusSwitchingProtocols, code)
	defer second.CloseNow()
	_, code = dial()
	require.Equal(t, http.StatusTooManyRequests, code)
	_, resp, err := websocket.Dial(ctx, "ws://"+host+"/kv/dbx/ws?api_key=k1", nil) // DBX's WebSocket counts too
	require.Error(t, err)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	first.Close(websocket.StatusNormalClosure, "")
	require.Eventually(t, func() bool {
		ws, code := dial()
		if ws != nil {
			ws.CloseNow()
		}
		return code == http.StatusSwitchingProtocols
	}, 5*time.Second, 20*time.Millisecond)

	// serve mounts the DBX dialect under /kv/
	var dbx *websocket.Conn
	require.Eventually(t, func() bool {
		dbx, _, err = websocket.Dial(ctx, "ws://"+host+"/kv/dbx/ws?api_key=k1&client_id=test", nil)
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	defer dbx.CloseNow()
	require.NoError(t, dbx.Write(ctx, websocket.MessageText, []byte(`{"id":"p","method":"ping"}`)))
	_, b, err := dbx.Read(ctx)
	require.NoError(t, err)
	require.Contains(t, string(b), `"result":{"pong":true}`)
}
