//go:build !linux

package daemon

// tableMemory returns nil: the table lives on the Go heap.
func tableMemory(size int, owner *Table) []byte { return nil }
