package bench

import "sync/atomic"

type atomicSeed struct{ n atomic.Uint64 }

func (s *atomicSeed) next() uint64 { return s.n.Add(1) }
