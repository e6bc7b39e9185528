package enginetest

import (
	"sync"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
)

// Ending is a DB whose subscriptions a test ends with an error (End), as
// a cluster node ends its own when it loses its leader, falls behind or
// closes, and which refuses new ones while a refusal is set. Tests of
// what serves a cluster node (the adapter, the client through it) pass
// it where a node would go.
type Ending struct {
	*engine.DB

	mu      sync.Mutex
	refuse  error
	refused int
	subs    []*engine.Subscription
}

func (s *Ending) SubscribePatterns(pats []*pattern.Pattern, o *engine.SubscribeOptions) (*engine.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != nil {
		s.refused++
		return nil, s.refuse
	}
	sub, err := s.DB.SubscribePatterns(pats, o)
	if err == nil {
		s.subs = append(s.subs, sub)
	}
	return sub, err
}

// End ends every subscription taken since the last End with err (nil
// closes them as Close does), and from now on refuses new ones with
// refuse; nil takes them again.
func (s *Ending) End(err, refuse error) {
	s.mu.Lock()
	subs := s.subs
	s.subs, s.refuse = nil, refuse
	s.mu.Unlock()
	for _, sub := range subs {
		sub.CloseWith(err)
	}
}

// Refuse refuses new subscriptions with err from now on, ending none;
// nil takes them again.
func (s *Ending) Refuse(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = err
}

// Refused is how many subscriptions were refused so far.
func (s *Ending) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Open is how many subscriptions were taken since the last End.
func (s *Ending) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}
