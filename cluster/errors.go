package cluster

import (
	"errors"
	"fmt"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
)

// Errors returned by the cluster package. Each is a sentinel that
// errors.Is recognises; an operation may wrap one with detail. Operations
// forwarded to the leader return the engine's errors (engine.ErrNotFound,
// engine.ErrConflict, ...) just as a local engine.DB would.
//
// The errors a client may meet through the adapter (ErrClosed,
// ErrNotLeader, ErrNoLeader, ErrNotCommitted, ErrUncertain, ErrBehind) also
// name themselves with a code of package internal/wire, by an ErrorCode
// method that errors.As finds through any wrapping.
var (
	// ErrInvalidOptions is returned by Open for options that cannot work,
	// and by NewRemoteTLS for a TLS config that would verify no node.
	ErrInvalidOptions = errors.New("cluster: invalid options")

	// ErrJoinRefused is returned by Open and Join when the cluster refuses
	// this node: its ID is a voter though it has no raft state (its folder
	// was lost), its raft address is a live member's, or its folder holds
	// another cluster's state. errors.Is(err, ErrInvalidOptions) holds
	// for it too: the same request would be refused again.
	ErrJoinRefused error = joinRefused{}

	// ErrClosed is returned by every operation on a Node after Close.
	ErrClosed error = &codedError{"cluster: node closed", wire.CodeNodeClosed}

	// ErrNotLeader is returned for what only the leader can do, asked of
	// another node. The error is a *NotLeaderError naming the leader when
	// it is known.
	ErrNotLeader error = &codedError{"cluster: not the leader", wire.CodeNotLeader}

	// ErrNoLeader is returned when the cluster has no leader that this
	// node can reach, as during an election or in a minority partition.
	ErrNoLeader error = &codedError{"cluster: no leader", wire.CodeNoLeader}

	// ErrNotCommitted is returned by a write that definitely did not
	// commit: another leader's entry took its revision. Nothing of it is
	// visible anywhere, and retrying it is safe.
	ErrNotCommitted error = &codedError{"cluster: write not committed", wire.CodeNotCommitted}

	// ErrUncertain is returned by a write whose fate this node could not
	// learn in time (leadership was lost, or the leader became
	// unreachable, after it was proposed). It may yet commit or not.
	// RemoveServer, TransferLeadership and Leave return it too, for a
	// change raft had not answered when their context ended, or a
	// transfer whose target had not taken over in time: it may yet be
	// made. Its text says "write" for them as well.
	ErrUncertain error = &codedError{"cluster: write outcome unknown", wire.CodeUncertain}

	// ErrBehind is returned by a subscription or read that asks for a
	// revision this node has not applied within the wait allowed.
	ErrBehind error = &codedError{"cluster: node behind the requested revision", wire.CodeBehind}
)

// joinRefused is ErrJoinRefused: a kind of ErrInvalidOptions.
type joinRefused struct{}

func (joinRefused) Error() string        { return "cluster: join refused" }
func (joinRefused) Is(target error) bool { return target == ErrInvalidOptions }

// codedError is a sentinel error with a code a client can rely on. The
// adapter serves a node through an interface and does not import this
// package (an embedder of a single node would not want raft in its
// binary), so it cannot name these errors: it finds their code by
// errors.As on interface{ ErrorCode() string }, and maps the code, which
// internal/wire shares with the adapter and the client.
type codedError struct{ msg, code string }

func (e *codedError) Error() string { return e.msg }

// ErrorCode is the error's code, one of internal/wire's Code constants.
func (e *codedError) ErrorCode() string { return e.code }

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

// ErrorCode is ErrNotLeader's code.
func (e *NotLeaderError) ErrorCode() string { return wire.CodeNotLeader }

// wireErrors are the errors that keep their identity across the RPC, by
// the code sent with them; the first that matches names an error. A
// write's outcome comes first: an uncertain write that also wraps, say, a
// *NotLeaderError must not reach the sender as a refusal it may retry.
var wireErrors = []struct {
	code string
	err  error
}{
	{wire.CodeUncertain, ErrUncertain},
	{wire.CodeNotCommitted, ErrNotCommitted},
	{wire.CodeNotLeader, ErrNotLeader},
	{wire.CodeNoLeader, ErrNoLeader},
	{wire.CodeBehind, ErrBehind},
	{"closed", ErrClosed},            // not wire.CodeNodeClosed: earlier releases send "closed" between nodes
	{"join_refused", ErrJoinRefused}, // before invalid_opts, which it is too
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
