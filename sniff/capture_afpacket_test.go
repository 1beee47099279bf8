//go:build linux && !pcap

package sniff

// sourceName names the capture source in BenchmarkLatency's results.
const sourceName = "tpacket_v2"
