//go:build linux && !pcap && (amd64 || 386)

package sniff

// release hands a frame back to the kernel. On these processors stores
// are not reordered with earlier loads, and the compiler keeps a store
// after the loads that precede it, so a plain store suffices: an atomic
// one would be a full barrier, which waits for every store before it to
// reach the cache (under a flood, the source table's), on every packet.
func release(status *uint32) {
	*status = tpStatusKernel
}
