package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// server is a running livekv serve.
type server struct {
	cmd  *exec.Cmd
	base string
}

// runServe runs the livekv binary bin with args (a serve command) and
// waits until it says where it serves.
func runServe(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if m := regexp.MustCompile(`HPKV API at http://(\S+)/kv`).FindStringSubmatch(lines.Text()); m != nil {
			go io.Copy(io.Discard, stdout)
			return &server{cmd: cmd, base: "http://" + m[1]}
		}
	}
	t.Fatal("serve did not start")
	return nil
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, s.cmd.Wait(), "a clean exit on SIGTERM")
}

// restClient makes the tests' REST requests (readAt, writeAt).
var restClient = &http.Client{Timeout: 15 * time.Second}

// restDo sends a request with the API key "k" through restClient.
func restDo(method, url string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("x-api-key", "k")
	return restClient.Do(req)
}

// readAt reads key through the REST API at base at a consistency level
// ("" for the server's default), and returns the status and, if 200, the
// value.
func readAt(base, key, level string) (int, string, error) {
	url := base + "/kv/record/" + key
	if level != "" {
		url += "?consistency=" + level
	}
	resp, err := restDo("GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, "", fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	var rec struct {
		Value string `json:"value"`
	}
	err = json.NewDecoder(resp.Body).Decode(&rec)
	return resp.StatusCode, rec.Value, err
}

// writeAt sets key to value through the REST API at base, and returns
// the status and, if not 200, the error code of the reply.
func writeAt(base, key, value string) (int, string, error) {
	body, err := json.Marshal(map[string]string{"key": key, "value": value})
	if err != nil {
		return 0, "", err
	}
	resp, err := restDo("POST", base+"/kv/record", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var rep struct {
		ErrorCode string `json:"errorCode"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = json.NewDecoder(resp.Body).Decode(&rep)
	}
	return resp.StatusCode, rep.ErrorCode, nil
}
