package cluster

import (
	"errors"
	"fmt"

	"github.com/livekv/livekv/engine"
)

// Errors returned by the cluster package. Each is a sentinel that
// errors.Is recognises; an operation may wrap one with detail. Operations
// forwarded to the leader return the engine's errors (engine.ErrNotFound,
// engine.ErrConflict, ...) just as a local engine.DB would.
var (
	// ErrInvalidOptions is returned by Open for options that cannot work.
	ErrInvalidOptions = errors.New("cluster: invalid options")

	// ErrClosed is returned by every operation on a Node after Close.
	ErrClosed = errors.New("cluster: node closed")

	// ErrNotLeader is returned for what only the leader can do, asked of
	// another node. The error is a *NotLeaderError naming the leader when
	// it is known.
	ErrNotLeader = errors.New("cluster: not the leader")

	// ErrNoLeader is returned when the cluster has no leader that this
	// node can reach, as during an election or in a minority partition.
	ErrNoLeader = errors.New("cluster: no leader")

	// ErrNotCommitted is returned by a write that definitely did not
	// commit: another leader's entry took its revision. Nothing of it is
	// visible anywhere, and retrying it is safe.
	ErrNotCommitted = errors.New("cluster: write not committed")

	// ErrUncertain is returned by a write whose fate this node could not
	// learn in time (leadership was lost, or the leader became
	// unreachable, after it was proposed). It may yet commit or not.
	ErrUncertain = errors.New("cluster: write outcome unknown")

	// ErrBehind is returned by a subscription or read that asks for a
	// revision this node has not applied within the wait allowed.
	ErrBehind = errors.New("cluster: node behind the requested revision")
)

// NotLeaderError is ErrNotLeader with the leader's ID and address, empty
// when no leader is known.
type NotLeaderError struct {
	ID   string
	Addr string
}

func (e *NotLeaderError) Error() string {
	if e.Addr == "" {
		return "cluster: not the leader, and no leader known"
	}
	return fmt.Sprintf("cluster: not the leader; the leader is %s at %s", e.ID, e.Addr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// wireErrors are the errors that keep their identity across the RPC, by
// the code sent with them; the first that matches names an error.
var wireErrors = []struct {
	code string
	err  error
}{
	{"not_leader", ErrNotLeader},
	{"no_leader", ErrNoLeader},
	{"not_committed", ErrNotCommitted},
	{"uncertain", ErrUncertain},
	{"behind", ErrBehind},
	{"closed", ErrClosed},
	{"invalid_opts", ErrInvalidOptions},
	{"not_found", engine.ErrNotFound},
	{"conflict", engine.ErrConflict},
	{"not_integer", engine.ErrNotInteger},
	{"overflow", engine.ErrOverflow},
	{"invalid_key", engine.ErrInvalidKey},
	{"too_large", engine.ErrTooLarge},
	{"engine_options", engine.ErrInvalidOptions},
	{"engine_closed", engine.ErrClosed},
}

// errorResponse is the response carrying err.
func errorResponse(err error) *rpcResponse {
	r := &rpcResponse{Err: err.Error(), Code: "other"}
	var nl *NotLeaderError
	if errors.As(err, &nl) {
		r.LeaderID, r.LeaderAddr = nl.ID, nl.Addr
	}
	for _, w := range wireErrors {
		if errors.Is(err, w.err) {
			r.Code = w.code
			break
		}
	}
	return r
}

// err is the error a response carries, nil if none.
func (r *rpcResponse) err() error {
	if r.Err == "" && r.Code == "" {
		return nil
	}
	if r.Code == "not_leader" {
		return &NotLeaderError{ID: r.LeaderID, Addr: r.LeaderAddr}
	}
	e := &remoteError{msg: r.Err}
	for _, w := range wireErrors {
		if w.code == r.Code {
			e.sentinel = w.err
		}
	}
	return e
}

// remoteError is an error returned by another node.
type remoteError struct {
	msg      string
	sentinel error // nil when it has none we know
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }
