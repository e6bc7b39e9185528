package cluster

import "errors"

// Errors returned by the cluster package. Each is a sentinel that
// errors.Is recognises; an operation may wrap one with detail.
var (
	// ErrInvalidOptions is returned by Open for options that cannot work.
	ErrInvalidOptions = errors.New("cluster: invalid options")

	// ErrClosed is returned by every operation on a Node after Close.
	ErrClosed = errors.New("cluster: node closed")
)
