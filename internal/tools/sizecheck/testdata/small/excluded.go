//go:build sizecheck_never

package small

// Excluded by its build constraint: not in GoFiles, so not counted.

func (T) Excluded() {}
