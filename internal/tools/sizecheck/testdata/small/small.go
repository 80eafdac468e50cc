// Package small is a sizecheck fixture: 12 lines, type T with 2 methods.
package small

type T struct{}

func (T) Value() {}

func (t *T) Pointer() {}

func NotAMethod() {}

type U int
