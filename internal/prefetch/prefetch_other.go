//go:build !amd64

package prefetch

import "unsafe"

// Line does nothing here: the processor's own prefetching is all
// there is.
func Line(p unsafe.Pointer) {}
