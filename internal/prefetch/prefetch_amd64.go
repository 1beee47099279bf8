package prefetch

import "unsafe"

// Line asks the processor to bring the cache line at p in, without
// waiting for it.
//
//go:noescape
func Line(p unsafe.Pointer)
