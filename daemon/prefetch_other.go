//go:build !amd64

package daemon

import "unsafe"

// prefetch does nothing here: the processor's own prefetching is all
// there is.
func prefetch(p unsafe.Pointer) {}
