package sniff

import (
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/ports"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestDecodeFields(t *testing.T) {
	d := newDecoder(testSpan)
	for _, c := range []struct {
		p        pkt
		src, dst string
		proto    ports.Proto
	}{
		{pkt{udp: true, dst: 20481}, "192.0.2.1", "192.0.2.2", ports.UDP},
		{pkt{dst: 30000, syn: true}, "192.0.2.1", "192.0.2.2", ports.TCP},
		{pkt{v6: true, udp: true, dst: 20482}, "2001:db8::1", "2001:db8::2", ports.UDP},
		{pkt{v6: true, dst: 30001, syn: true}, "2001:db8::1", "2001:db8::2", ports.TCP},
	} {
		var p Packet
		if !d.decode(c.p.bytes(t), &p) {
			t.Fatalf("%+v refused", c.p)
		}
		want := Packet{Src: netip.MustParseAddr(c.src), Dst: netip.MustParseAddr(c.dst), DstPort: c.p.dst, Transport: c.proto}
		if p != want {
			t.Errorf("got %+v, want %+v", p, want)
		}
	}
}

// TestDecodeAllocs proves the per-packet path allocates nothing, for
// accepted packets and for the rejects that can reach user space.
func TestDecodeAllocs(t *testing.T) {
	d := newDecoder(testSpan)
	var p Packet
	for _, c := range filterCases {
		data := c.p.bytes(t)
		if n := testing.AllocsPerRun(100, func() { d.decode(data, &p) }); n != 0 {
			t.Errorf("%s: %v allocations per packet", c.name, n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		p    pkt
	}{
		{"udp4", pkt{udp: true, dst: 20480}},
		{"syn4", pkt{dst: 25000, syn: true}},
		{"udp6", pkt{v6: true, udp: true, dst: 20480}},
		{"syn6", pkt{v6: true, dst: 25000, syn: true}},
		{"reject_synack4", pkt{dst: 25000, syn: true, ack: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := newDecoder(testSpan)
			data := c.p.bytes(b)
			var p Packet
			b.ReportAllocs()
			for b.Loop() {
				d.decode(data, &p)
			}
		})
	}
}

// BenchmarkFilter runs the filter body in the user-space VM, for
// comparison only: the kernel runs it JIT-compiled.
func BenchmarkFilterVM(b *testing.B) {
	vm := newVM(b)
	data := pkt{udp: true, dst: 20480}.bytes(b)
	b.ReportAllocs()
	for b.Loop() {
		vm.Run(data)
	}
}

// FuzzFilterAgrees checks that the kernel filter and the user-space
// re-check accept the same packets, the latter also once the packet is
// cut to the snap length. The one allowed difference: the
// filter does not parse IPv4 options, the user-space decoder does, and
// refuses malformed ones (so does the kernel's IP stack), and the filter
// checks the header checksum of 20-byte IPv4 headers only. gopacket's
// IPv4 layer stands in for the options check here, independently of
// decode.go.
func FuzzFilterAgrees(f *testing.F) {
	for _, c := range filterCases {
		f.Add(c.p.bytes(f))
	}
	vm := newVM(f)
	d := newDecoder(testSpan)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		var p Packet
		user := d.decode(data, &p)
		switch {
		case user && n == 0:
			t.Fatalf("user space accepts what the filter drops: %x", data)
		case !user && n > 0:
			var ip4 layers.IPv4
			if data[0]>>4 == 4 && data[0]&0xf > 5 && (ip4.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil ||
				!checksumOK(data[:int(data[0]&0xf)*4])) {
				return
			}
			t.Fatalf("filter accepts what user space drops: %x", data)
		case user:
			if !testSpan.Contains(p.DstPort) || !p.Src.IsValid() {
				t.Fatalf("accepted %+v", p)
			}
			// User space gets the packet cut to the filter's snap
			// length, and must read it the same.
			var q Packet
			if !d.decodeFrame(data[:min(len(data), int(n))], len(data), &q) || q != p {
				t.Fatalf("cut to %d bytes: %+v, whole: %+v", n, q, p)
			}
		}
	})
}
