//go:build linux && !pcap

package sniff

// sourceVariants are the capture settings BenchmarkLatency compares; use
// switches to one and returns a function that switches back. The ring has
// one setting.
var sourceVariants = []struct {
	name string
	use  func() (restore func())
}{
	{"tpacket_v2", func() func() { return func() {} }},
}
