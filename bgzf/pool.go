package bgzf

import "sync"

// pool is a typed sync.Pool.
type pool[T any] struct{ p sync.Pool }

func newPool[T any](newT func() T) *pool[T] {
	return &pool[T]{p: sync.Pool{New: func() any { return newT() }}}
}

func (p *pool[T]) get() T  { return p.p.Get().(T) }
func (p *pool[T]) put(x T) { p.p.Put(x) }
