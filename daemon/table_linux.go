package daemon

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// tableMemory returns size bytes of zeroed memory for the source table,
// mapped apart from the Go heap and marked for transparent huge pages
// (MADV_HUGEPAGE; the usual setting, "madvise", honours it): every packet
// of a flood from a new source lands on a random part of the table, and
// with 4 KiB pages each one is also a TLB miss. The memory is unmapped
// once owner is unreachable. It returns nil when the mapping fails.
func tableMemory(size int, owner *Table) []byte {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // a hint; without it the table works as well
	runtime.AddCleanup(owner, func(b []byte) { unix.Munmap(b) }, b)
	return b
}
