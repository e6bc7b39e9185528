package enginetest

import (
	"errors"
	"sync"

	"github.com/livekv/livekv/engine"
)

// Refusing is a DB whose writes fail with an error while one is set
// (Refuse), as a cluster node's refuse theirs; otherwise they are the
// DB's. Tests of what serves a cluster node (the adapter, the client
// through it) pass it where a node would go.
type Refusing struct {
	*engine.DB

	mu  sync.Mutex
	err error
}

// Refuse makes every write fail with err from now on; nil ends that.
func (s *Refusing) Refuse(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Refusal is the error writes fail with now, nil if none.
func (s *Refusing) Refusal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Refusing) Set(key, value string, o *engine.SetOptions) (engine.Item, error) {
	if err := s.Refusal(); err != nil {
		return engine.Item{}, err
	}
	return s.DB.Set(key, value, o)
}

func (s *Refusing) CompareAndSwap(key string, rev int64, value string, o *engine.SetOptions) (engine.Item, error) {
	if err := s.Refusal(); err != nil {
		return engine.Item{}, err
	}
	return s.DB.CompareAndSwap(key, rev, value, o)
}

func (s *Refusing) PutIfAbsent(key, value string, o *engine.SetOptions) (engine.Item, error) {
	if err := s.Refusal(); err != nil {
		return engine.Item{}, err
	}
	return s.DB.PutIfAbsent(key, value, o)
}

func (s *Refusing) Patch(key, value string) (engine.Item, error) {
	if err := s.Refusal(); err != nil {
		return engine.Item{}, err
	}
	return s.DB.Patch(key, value)
}

func (s *Refusing) Increment(key string, delta int64) (int64, int64, error) {
	if err := s.Refusal(); err != nil {
		return 0, 0, err
	}
	return s.DB.Increment(key, delta)
}

func (s *Refusing) Delete(key string) (int64, error) {
	if err := s.Refusal(); err != nil {
		return 0, err
	}
	return s.DB.Delete(key)
}

// Update runs fn, then fails as a cluster node's commit would: what fn
// wrote is rolled back.
func (s *Refusing) Update(fn func(tx *engine.Tx) error) (int64, error) {
	err := s.Refusal()
	if err == nil {
		return s.DB.Update(fn)
	}
	errRefused := errors.New("refused")
	_, uerr := s.DB.Update(func(tx *engine.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRefused
	})
	if !errors.Is(uerr, errRefused) {
		return 0, uerr
	}
	return 0, err
}
