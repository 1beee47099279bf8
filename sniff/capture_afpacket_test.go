//go:build linux && !pcap

package sniff

import "github.com/gopacket/gopacket/afpacket"

// sourceVariants are the capture settings BenchmarkLatency compares; use
// switches to one and returns a function that switches back.
var sourceVariants = []struct {
	name string
	use  func() (restore func())
}{
	{"tpacket_v2", useVersion(afpacket.TPacketVersion2)},
	{"tpacket_v3", useVersion(afpacket.TPacketVersion3)},
}

func useVersion(v afpacket.OptTPacketVersion) func() func() {
	return func() func() {
		old := tpacketVersion
		tpacketVersion = v
		return func() { tpacketVersion = old }
	}
}
