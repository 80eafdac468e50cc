// Package generic is a sizecheck fixture: receivers of every shape, 2 files
// of 22 and 5 lines; List has 3 methods, Pair 2, Plain 2.
package generic

type List[E any] struct{ items []E }

func (l *List[E]) Len() int { return len(l.items) }

func (l List[E]) First() E { return l.items[0] }

type Pair[K comparable, V any] struct{}

func (p Pair[K, V]) A() {}

func (p *Pair[K, V]) B() {}

type Plain int

func (Plain) X() {}

// Plain's methods are split over two files.
var _ = Plain.X
