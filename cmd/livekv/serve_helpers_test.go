package main_test

import "os/exec"

// server is a running livekv serve.
type server struct {
	cmd  *exec.Cmd
	base string
}
