// Package prefetch asks the processor to start fetching a cache line
// without waiting for it: the receiver uses it for the source table's
// lines of a batch of packets and for the capture ring's frames ahead of
// the reader, whose misses would otherwise come one after the other. It
// implements no part of SPEC.md.
//
// On amd64 it is one PREFETCHT0 instruction (an assembly function, so a
// call); elsewhere it does nothing.
package prefetch
