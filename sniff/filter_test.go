package sniff

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/cipherknock/cipherknock/encoding"
)

var testSpan = encoding.DefaultSpan

// pkt describes a packet to build with gopacket.SerializeLayers.
type pkt struct {
	v6       bool
	udp      bool
	dst      uint16
	syn, ack bool
	rst      bool
	frag     uint16 // IPv4 flags+offset field
	options  []layers.IPv4Option
	ext      bool // IPv6 hop-by-hop header before the transport
	payload  []byte
	src      netip.Addr     // default 192.0.2.1 or 2001:db8::1
	dstIP    netip.Addr     // default 192.0.2.2 or 2001:db8::2
	edit     func(b []byte) // applied to the serialized packet
}

// put16 stores v big-endian at b[0:2].
func put16(b []byte, v int) { b[0], b[1] = byte(v>>8), byte(v) }

// resum recomputes the IPv4 header checksum after an edit.
func resum(b []byte) {
	hl := int(b[0]&0xf) * 4
	b[10], b[11] = 0, 0
	var sum uint32
	for i := 0; i < hl; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	put16(b[10:], int(^uint16(sum)))
}

// udpLen sets the UDP length field of an IPv4 or IPv6 packet.
func udpLen(v func(ipPayload int) int) func(b []byte) {
	return func(b []byte) {
		if b[0]>>4 == 6 {
			put16(b[ipv6HeaderLen+4:], v(int(b[4])<<8|int(b[5])))
			return
		}
		hl := int(b[0]&0xf) * 4
		put16(b[hl+4:], v(int(b[2])<<8|int(b[3])-hl))
	}
}

var mapped4 = netip.MustParseAddr("::ffff:192.0.2.1")

func (p pkt) bytes(t testing.TB) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var net4 *layers.IPv4
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	proto := layers.IPProtocolTCP
	if p.udp {
		proto = layers.IPProtocolUDP
	}
	src, dst := p.src, p.dstIP
	if !src.IsValid() {
		src, dst = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		if p.v6 {
			src, dst = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
		}
	}
	if p.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		if p.ext {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			ip.HopByHop = &layers.IPv6HopByHop{}
			ip.HopByHop.NextHeader = proto
			ip.HopByHop.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}
		}
		ls, nl = append(ls, ip), ip
	} else {
		net4 = &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, Options: p.options,
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		net4.Flags = layers.IPv4Flag(p.frag >> 13)
		net4.FragOffset = p.frag & 0x1fff
		ls, nl = append(ls, net4), net4
	}
	if p.udp {
		u := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(p.dst)}
		u.SetNetworkLayerForChecksum(nl)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(p.dst), SYN: p.syn, ACK: p.ack, RST: p.rst, Window: 64240,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}}
		tc.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload(p.payload))
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if p.edit != nil {
		b = append([]byte{}, b...)
		p.edit(b)
	}
	return b
}

var filterCases = []struct {
	name string
	p    pkt
	want bool
}{
	{"udp4", pkt{udp: true, dst: 20480}, true},
	{"udp6", pkt{v6: true, udp: true, dst: 30719}, true},
	{"syn4", pkt{dst: 25000, syn: true}, true},
	{"syn6", pkt{v6: true, dst: 25000, syn: true}, true},
	{"syn4_ip_options", pkt{dst: 25000, syn: true, options: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}, true},
	{"udp4_payload", pkt{udp: true, dst: 20500, payload: []byte("x")}, true},
	{"syn_rst4", pkt{dst: 25000, syn: true, rst: true}, true},
	{"udp4_below_span", pkt{udp: true, dst: 20479}, false},
	{"udp4_above_span", pkt{udp: true, dst: 30720}, false},
	{"udp6_above_span", pkt{v6: true, udp: true, dst: 30720}, false},
	{"syn4_below_span", pkt{dst: 20479, syn: true}, false},
	{"synack4", pkt{dst: 25000, syn: true, ack: true}, false},
	{"synack6", pkt{v6: true, dst: 25000, syn: true, ack: true}, false},
	{"ack4", pkt{dst: 25000, ack: true}, false},
	{"rst6", pkt{v6: true, dst: 25000, rst: true}, false},
	{"udp4_first_fragment", pkt{udp: true, dst: 25000, frag: 0x2000}, false},
	{"udp4_later_fragment", pkt{udp: true, dst: 25000, frag: 0x0010}, false},
	{"udp4_dont_fragment", pkt{udp: true, dst: 25000, frag: 0x4000}, true},
	{"udp6_hop_by_hop", pkt{v6: true, udp: true, dst: 25000, ext: true}, false},
	{"syn6_hop_by_hop", pkt{v6: true, dst: 25000, syn: true, ext: true}, false},

	// What the host's IP stack would drop (SPEC.md §10.2).
	{"udp4_total_beyond_packet", pkt{udp: true, dst: 25000, edit: func(b []byte) { put16(b[2:], len(b)+4); resum(b) }}, false},
	{"syn4_total_beyond_packet", pkt{dst: 25000, syn: true, edit: func(b []byte) { put16(b[2:], len(b)+1); resum(b) }}, false},
	{"udp4_bad_checksum", pkt{udp: true, dst: 25000, edit: func(b []byte) { b[10] ^= 0x40 }}, false},
	{"syn4_bad_checksum", pkt{dst: 25000, syn: true, edit: func(b []byte) { b[11] ^= 1 }}, false},
	{"udp4_length_zero", pkt{udp: true, dst: 25000, edit: udpLen(func(int) int { return 0 })}, false},
	{"udp4_length_7", pkt{udp: true, dst: 25000, edit: udpLen(func(int) int { return 7 })}, false},
	{"udp4_length_beyond", pkt{udp: true, dst: 25000, edit: udpLen(func(n int) int { return n + 1 })}, false},
	{"udp4_length_below_payload", pkt{udp: true, dst: 25000, payload: []byte("xy"), edit: udpLen(func(n int) int { return n - 2 })}, true},
	{"udp6_length_zero", pkt{v6: true, udp: true, dst: 25000, edit: udpLen(func(int) int { return 0 })}, false},
	{"udp6_length_beyond", pkt{v6: true, udp: true, dst: 25000, edit: udpLen(func(n int) int { return n + 1 })}, false},
	{"udp6_payload_beyond_packet", pkt{v6: true, udp: true, dst: 25000, edit: func(b []byte) { put16(b[4:], len(b)-ipv6HeaderLen+2) }}, false},
	{"syn6_payload_beyond_packet", pkt{v6: true, dst: 25000, syn: true, edit: func(b []byte) { put16(b[4:], len(b)-ipv6HeaderLen+1) }}, false},
	{"udp6_src_v4mapped", pkt{v6: true, udp: true, dst: 25000, src: mapped4, dstIP: netip.MustParseAddr("2001:db8::2")}, false},
	{"syn6_dst_v4mapped", pkt{v6: true, dst: 25000, syn: true, src: netip.MustParseAddr("2001:db8::1"), dstIP: netip.MustParseAddr("::ffff:192.0.2.2")}, false},
	{"udp6_src_v4compatible", pkt{v6: true, udp: true, dst: 25000, src: netip.MustParseAddr("::c000:201"), dstIP: netip.MustParseAddr("2001:db8::2")}, true},
}

// TestFilterOptionsChecksum: the kernel filter checks the IPv4 header
// checksum of 20-byte headers only; with options, user space alone refuses
// a bad one. The one documented difference between the two.
func TestFilterOptionsChecksum(t *testing.T) {
	vm := newVM(t)
	d := newDecoder(testSpan)
	opts := []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	data := pkt{dst: 25000, syn: true, options: opts, edit: func(b []byte) { b[10] ^= 1 }}.bytes(t)
	var p Packet
	if n, _ := vm.Run(data); n == 0 || d.decode(data, &p) {
		t.Fatalf("filter %d, user space %v: want the filter to pass it and user space to refuse it", n, d.decode(data, &p))
	}
}

func TestFilterCases(t *testing.T) {
	vm := newVM(t)
	d := newDecoder(testSpan)
	for _, c := range filterCases {
		t.Run(c.name, func(t *testing.T) {
			data := c.p.bytes(t)
			n, err := vm.Run(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != c.want {
				t.Errorf("kernel filter accepts = %v, want %v", got, c.want)
			}
			if n > 0 && n != snapLen {
				t.Errorf("snap length %d, want %d", n, snapLen)
			}
			var p Packet
			if got := d.decode(data, &p); got != c.want {
				t.Errorf("user-space check accepts = %v, want %v", got, c.want)
			}
			if c.want && p.DstPort != c.p.dst {
				t.Errorf("port %d, want %d", p.DstPort, c.p.dst)
			}
		})
	}
}

// TestFilterMalformed hand-edits valid packets into the corner cases of
// the length checks.
func TestFilterMalformed(t *testing.T) {
	vm := newVM(t)
	d := newDecoder(testSpan)
	udp4 := pkt{udp: true, dst: 20480}.bytes(t)
	syn4 := pkt{dst: 20480, syn: true}.bytes(t)
	udp6 := pkt{v6: true, udp: true, dst: 20480}.bytes(t)
	syn6 := pkt{v6: true, dst: 20480, syn: true}.bytes(t)
	edit := func(b []byte, f func(b []byte)) []byte {
		c := append([]byte{}, b...)
		f(c)
		return c
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"version5", edit(udp4, func(b []byte) { b[0] = 0x55 })},
		{"ihl4", edit(udp4, func(b []byte) { b[0] = 0x44 })},
		{"ihl_past_end", edit(udp4, func(b []byte) { b[0] = 0x4f })},
		{"ip4_total_zero", edit(udp4, func(b []byte) { b[2], b[3] = 0, 0 })},
		{"ip4_total_short_udp", edit(udp4, func(b []byte) { b[2], b[3] = 0, 27 })},
		{"ip4_total_short_tcp", edit(syn4, func(b []byte) { b[2], b[3] = 0, 39 })},
		{"udp4_cut", udp4[:27]},
		{"tcp4_cut", syn4[:39]},
		{"ip6_payload_zero", edit(udp6, func(b []byte) { b[4], b[5] = 0, 0 })},
		{"ip6_payload_short_udp", edit(udp6, func(b []byte) { b[4], b[5] = 0, 7 })},
		{"ip6_payload_short_tcp", edit(syn6, func(b []byte) { b[4], b[5] = 0, 19 })},
		{"udp6_cut", udp6[:47]},
		{"tcp6_cut", syn6[:59]},
		{"ip6_header_cut", udp6[:39]},
		{"ip6_proto_icmp", edit(udp6, func(b []byte) { b[6] = 58 })},
		{"ip4_proto_icmp", edit(udp4, func(b []byte) { b[9] = 1 })},
	}
	for _, c := range cases {
		n, err := vm.Run(c.data)
		if err != nil {
			t.Fatal(err)
		}
		var p Packet
		if n != 0 || d.decode(c.data, &p) {
			t.Errorf("%s: accepted (filter %d)", c.name, n)
		}
	}
	// Longer than the length fields say (link-layer padding) is fine.
	for _, b := range [][]byte{udp4, syn4, udp6, syn6} {
		padded := append(append([]byte{}, b...), make([]byte, 20)...)
		var p Packet
		if n, _ := vm.Run(padded); n == 0 || !d.decode(padded, &p) {
			t.Errorf("padded packet refused")
		}
	}
}

func TestProgramAssembles(t *testing.T) {
	for _, set := range [][]int{nil, {}, {1}, {1, 2, 3}, make([]int, maxFilterInterfaces), make([]int, maxFilterInterfaces+1)} {
		if _, err := program(testSpan, set); err != nil {
			t.Errorf("%d interfaces: %v", len(set), err)
		}
	}
	for _, base := range []uint16{encoding.MinBase, encoding.MaxBase} {
		if _, err := program(encoding.Span{Base: base}, nil); err != nil {
			t.Errorf("base %d: %v", base, err)
		}
	}
}

func newVM(t testing.TB) *bpf.VM {
	t.Helper()
	prog, err := bodyProgram(testSpan)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}
