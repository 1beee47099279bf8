package sniff

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/gopacket/gopacket/layers"
)

// The differential tests: the hand-written decoder and the gopacket-based
// reference (decode_ref_test.go) must give the same verdict on every
// input and leave the Packet the same, on a refusal too (both write
// Transport and Kind before their last checks).

// agreeSpecs are the filter specs the decoders are compared under: the
// default span alone and with trigger ports, and spans at both ends of
// the allowed bases with trigger ports at the ends of the port space and
// right next to the span.
var agreeSpecs = []filterSpec{
	{span: testSpan},
	{span: testSpan, triggers: testTriggers},
	{span: encoding.Span{Base: encoding.MinBase}, triggers: mergeRanges([]ports.Range{{From: 0, To: 0}, {From: encoding.MinBase - 1, To: encoding.MinBase - 1}, {From: 65535, To: 65535}})},
	{span: encoding.Span{Base: encoding.MaxBase}, triggers: mergeRanges([]ports.Range{{From: 1, To: 1023}, {From: encoding.MaxBase - 1, To: encoding.MaxBase - 1}})},
	{span: testSpan, triggers: testTriggers, outgoing: true},
}

// decoderPair is one spec's two decoders.
type decoderPair struct {
	spec filterSpec
	d    *decoder
	r    *refDecoder
}

func newPairs() []decoderPair {
	ps := make([]decoderPair, len(agreeSpecs))
	for i, s := range agreeSpecs {
		ps[i] = decoderPair{s, newDecoderFor(s), newRefDecoderFor(s)}
	}
	return ps
}

// startPackets are what p holds before a decode: nothing, and a packet
// whose every field differs from what a decode writes, so that a field
// one decoder writes and the other does not shows.
var startPackets = []Packet{
	{},
	{Kind: 9, Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("2001:db8::99"), DstPort: 7, Transport: 99, Ifindex: 5},
}

// agree decodes data, of wire bytes, with both decoders and reports a
// difference. It returns the reference's verdict.
func (dp decoderPair) agree(t testing.TB, data []byte, wire int) bool {
	t.Helper()
	var verdict bool
	for _, start := range startPackets {
		p, q := start, start
		got := dp.d.decodeFrame(data, wire, &p)
		want := dp.r.decodeFrame(data, wire, &q)
		if got != want || p != q {
			t.Fatalf("spec %+v, wire %d, data %x:\nnew %v %+v\nref %v %+v", dp.spec, wire, data, got, p, want, q)
		}
		verdict = want
	}
	return verdict
}

// agreeAll compares data under every spec, as a whole packet, as one of
// which the capture holds only the first bytes, as one cut to snapLen
// and as one whose wire length the capture reports one byte short or
// long. It returns how many specs accepted the whole packet.
func agreeAll(t testing.TB, pairs []decoderPair, data []byte) int {
	t.Helper()
	n := 0
	for _, dp := range pairs {
		if dp.agree(t, data, len(data)) {
			n++
		}
		var p, q Packet
		if dp.d.decode(data, &p) != dp.r.decode(data, &q) || p != q {
			t.Fatalf("decode differs on %x", data)
		}
		dp.agree(t, data, len(data)-1)
		dp.agree(t, data, len(data)+1)
		dp.agree(t, data[:min(len(data), snapLen)], len(data))
		for cut := 0; cut < len(data); cut += 7 {
			dp.agree(t, data[:cut], len(data))
		}
	}
	return n
}

// raw4 builds an IPv4 packet by hand: a header of ihl words (options
// after the fixed 20 bytes as given, zero-padded), proto, then body; the
// total length and checksum are right.
func raw4(ihl int, opts []byte, proto byte, body []byte) []byte {
	hl := ihl * 4
	b := make([]byte, hl, hl+len(body))
	b[0] = 0x40 | byte(ihl&0xf)
	b[8] = 64
	b[9] = proto
	copy(b[12:], []byte{192, 0, 2, 1, 192, 0, 2, 2})
	copy(b[20:], opts)
	b = append(b, body...)
	put16(b[2:], len(b))
	resum(b)
	return b
}

// raw6 builds an IPv6 packet with the given next header and body; the
// payload length is right.
func raw6(next byte, body []byte) []byte {
	b := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(body))
	b[0] = 0x60
	b[6] = next
	b[7] = 64
	copy(b[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(b[24:], netip.MustParseAddr("2001:db8::2").AsSlice())
	b = append(b, body...)
	put16(b[4:], len(b)-ipv6HeaderLen)
	return b
}

// udpBody and tcpBody build transport headers to port dst; udpBody's
// length field covers the header and payload.
func udpBody(dst uint16, payload ...byte) []byte {
	b := make([]byte, udpHeaderLen, udpHeaderLen+len(payload))
	put16(b[0:], 40000)
	put16(b[2:], int(dst))
	b = append(b, payload...)
	put16(b[4:], len(b))
	return b
}

func tcpBody(dst uint16, flags byte) []byte {
	b := make([]byte, tcpHeaderLen)
	put16(b[0:], 40000)
	put16(b[2:], int(dst))
	b[12] = 5 << 4
	b[13] = flags
	return b
}

// edited returns a copy of b changed by f.
func edited(b []byte, f func(b []byte)) []byte {
	c := append([]byte{}, b...)
	f(c)
	return c
}

// agreeCases are the seeds: the packets of the existing decode, filter
// and trigger tests and hand-built edge cases of every check.
func agreeCases(t testing.TB) map[string][]byte {
	cs := map[string][]byte{}
	add := func(name string, b []byte) {
		if _, dup := cs[name]; dup {
			t.Fatalf("case %s twice", name)
		}
		cs[name] = b
	}
	for _, c := range filterCases {
		add("filter_"+c.name, c.p.bytes(t))
	}
	for i, p := range []pkt{
		{udp: true, dst: 20481}, {dst: 30000, syn: true},
		{v6: true, udp: true, dst: 20482}, {v6: true, dst: 30001, syn: true},
		{dst: 25, syn: true}, {v6: true, dst: 28, syn: true}, {udp: true, dst: 6010},
		{v6: true, udp: true, dst: 443}, {dst: 24, syn: true}, {udp: true, dst: 6011},
		{dst: 25, syn: true, ack: true}, {udp: true, dst: 25, frag: 0x2000},
		{v6: true, udp: true, dst: 25, ext: true},
	} {
		add(fmt.Sprintf("pkt%d_port%d", i, p.dst), p.bytes(t))
	}

	udp4 := raw4(5, nil, ipProtoUDP, udpBody(20480))
	syn4 := raw4(5, nil, ipProtoTCP, tcpBody(20480, tcpFlagSYN))
	udp6 := raw6(ipProtoUDP, udpBody(20480))
	syn6 := raw6(ipProtoTCP, tcpBody(20480, tcpFlagSYN))
	for name, b := range map[string][]byte{"udp4": udp4, "syn4": syn4, "udp6": udp6, "syn6": syn6} {
		add(name, b)
		for n := range len(b) {
			add(fmt.Sprintf("%s_cut%d", name, n), b[:n])
		}
		add(name+"_padded", append(append([]byte{}, b...), make([]byte, 20)...))
		for v := range 16 {
			add(fmt.Sprintf("%s_version%d", name, v), edited(b, func(b []byte) { b[0] = b[0]&0xf | byte(v)<<4 }))
		}
	}
	add("one_byte", []byte{0x45})

	// IPv4 header length and total length.
	for ihl := range 16 {
		long := append(append([]byte{}, udp4...), make([]byte, 40)...) // room for the header
		add(fmt.Sprintf("udp4_ihl%d", ihl), edited(long, func(b []byte) { b[0] = 0x40 | byte(ihl); resum(b) }))
		add(fmt.Sprintf("udp4_ihl%d_nosum", ihl), edited(udp4, func(b []byte) { b[0] = 0x40 | byte(ihl) }))
	}
	for _, total := range []int{0, 1, 19, 20, 21, 27, 28, 29, 39, 40, 41, 0xffff} {
		for name, b := range map[string][]byte{"udp4": udp4, "syn4": syn4} {
			add(fmt.Sprintf("%s_total%d", name, total), edited(b, func(b []byte) { put16(b[2:], total); resum(b) }))
		}
	}
	// A zero total length with a checksum made for it, padded or cut.
	for _, extra := range []int{-1, 0, 1, 40} {
		b := append(append([]byte{}, udp4...), make([]byte, max(extra, 0))...)
		b = b[:len(b)+min(extra, 0)]
		add(fmt.Sprintf("udp4_total0_extra%d", extra), edited(b, func(b []byte) { put16(b[2:], 0); resum(b) }))
	}
	add("udp4_bad_checksum", edited(udp4, func(b []byte) { b[10] ^= 0x80 }))
	add("udp4_checksum_zero", edited(udp4, func(b []byte) { b[10], b[11] = 0, 0 }))
	add("udp4_checksum_ffff", edited(udp4, func(b []byte) { b[10], b[11] = 0xff, 0xff }))
	add("ip4_all_zero_but_version", edited(udp4, func(b []byte) { clear(b[1:20]); b[0] = 0x45 }))

	// Fragments and flags.
	for _, ff := range []int{0x2000, 0x0001, 0x1fff, 0x2001, 0x4000, 0x8000, 0xc000, 0x6000, 0xa000, 0xffff} {
		add(fmt.Sprintf("udp4_flags%04x", ff), edited(udp4, func(b []byte) { put16(b[6:], ff); resum(b) }))
	}

	// IPv4 options.
	for name, opts := range map[string][]byte{
		"nop4":            {1, 1, 1, 1},
		"eol":             {0, 0, 0, 0},
		"eol_garbage":     {0, 0xff, 0x00, 0x07},
		"nop_eol":         {1, 0, 9, 9},
		"len0":            {7, 0, 0, 0},
		"len1":            {7, 1, 0, 0},
		"len2":            {7, 2, 1, 1},
		"len4":            {7, 4, 0, 0},
		"len5":            {7, 5, 0, 0},
		"type_at_end":     {1, 1, 1, 7},
		"type_len_at_end": {1, 1, 7, 2},
		"long_in_8":       {7, 8, 0, 0, 0, 0, 0, 0},
		"long_over_8":     {7, 9, 0, 0, 0, 0, 0, 0},
		"two":             {0x94, 4, 0, 0, 7, 3, 4, 0},
		"two_bad":         {0x94, 4, 0, 0, 7, 5, 4, 0},
		"full40":          append([]byte{7, 39, 4}, make([]byte, 37)...),
		"full40_over":     append([]byte{7, 41, 4}, make([]byte, 37)...),
		"nops40":          []byte("\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"),
	} {
		ihl := 5 + (len(opts)+3)/4
		add("udp4_opts_"+name, raw4(ihl, opts, ipProtoUDP, udpBody(20480)))
		add("syn4_opts_"+name, raw4(ihl, opts, ipProtoTCP, tcpBody(30719, tcpFlagSYN)))
	}
	// Options header and a total length that cuts the transport.
	add("syn4_opts_total_in_header", edited(raw4(15, []byte{1}, ipProtoTCP, tcpBody(20480, tcpFlagSYN)), func(b []byte) { put16(b[2:], 60); resum(b) }))
	add("syn4_ihl15_cut", raw4(15, nil, ipProtoTCP, tcpBody(20480, tcpFlagSYN))[:59])

	// IPv4 protocols other than TCP and UDP, including the IPv6
	// extension header numbers.
	for _, proto := range []byte{0, 1, 4, 41, 43, 44, 50, 51, 58, 59, 60, 132, 135, 136, 255} {
		add(fmt.Sprintf("ip4_proto%d", proto), raw4(5, nil, proto, udpBody(20480)))
	}

	// IPv6 next headers: every extension header, with a well-formed
	// 8-byte header in front of the transport, and other protocols.
	for _, next := range []byte{0, 43, 44, 50, 51, 59, 60, 135, 139, 140, 253, 254, 58, 1, 4, 41, 132, 136} {
		for tname, tr := range map[string]struct {
			proto byte
			body  []byte
		}{"udp": {ipProtoUDP, udpBody(20480)}, "tcp": {ipProtoTCP, tcpBody(20480, tcpFlagSYN)}} {
			ext := append([]byte{tr.proto, 0, 1, 4, 0, 0, 0, 0}, tr.body...)
			add(fmt.Sprintf("ip6_ext%d_%s", next, tname), raw6(next, ext))
			add(fmt.Sprintf("ip6_next%d_%s_bare", next, tname), raw6(next, tr.body))
		}
	}
	for _, payload := range []int{0, 1, 7, 8, 9, 19, 20, 21, 0xffff} {
		for name, b := range map[string][]byte{"udp6": udp6, "syn6": syn6} {
			add(fmt.Sprintf("%s_payload%d", name, payload), edited(b, func(b []byte) { put16(b[4:], payload) }))
		}
	}
	add("ip6_header_only", raw6(ipProtoUDP, nil))
	add("ip6_header_only_payload8", edited(raw6(ipProtoUDP, nil), func(b []byte) { put16(b[4:], 8) }))

	// IPv4-mapped addresses and their neighbours.
	for _, a := range []string{"::ffff:192.0.2.1", "::ffff:0:0", "::ffff:255.255.255.255", "::fffe:c000:201", "::1:ffff:c000:201", "1::ffff:c000:201", "::c000:201", "::", "::1"} {
		addr := netip.MustParseAddr(a).As16()
		add("udp6_src_"+a, edited(udp6, func(b []byte) { copy(b[8:], addr[:]) }))
		add("syn6_dst_"+a, edited(syn6, func(b []byte) { copy(b[24:], addr[:]) }))
	}

	// UDP lengths.
	for _, ul := range []int{0, 1, 7, 8, 9, 10, 11, 0xffff} {
		add(fmt.Sprintf("udp4_ulen%d", ul), edited(raw4(5, nil, ipProtoUDP, udpBody(20480, 'x', 'y')), func(b []byte) { put16(b[24:], ul) }))
		add(fmt.Sprintf("udp6_ulen%d", ul), edited(raw6(ipProtoUDP, udpBody(20480, 'x', 'y')), func(b []byte) { put16(b[44:], ul) }))
	}

	// Every TCP flag combination, and odd data offsets (not checked).
	for flags := range 256 {
		add(fmt.Sprintf("tcp4_flags%02x", flags), raw4(5, nil, ipProtoTCP, tcpBody(20480, byte(flags))))
		add(fmt.Sprintf("tcp6_flags%02x", flags), raw6(ipProtoTCP, tcpBody(20480, byte(flags))))
	}
	for _, off := range []byte{0, 1, 4, 6, 15} {
		add(fmt.Sprintf("syn4_offset%d", off), edited(syn4, func(b []byte) { b[32] = off << 4 }))
	}

	// Ports at the edges of every spec's span and trigger ranges.
	edges := map[uint16]bool{0: true, 65535: true}
	for _, s := range agreeSpecs {
		for _, p := range []uint16{s.span.Base, s.span.Last()} {
			edges[p-1], edges[p], edges[p+1] = true, true, true
		}
		for _, r := range s.triggers {
			edges[r.From-1], edges[r.From], edges[r.From+1] = true, true, true
			edges[r.To-1], edges[r.To], edges[r.To+1] = true, true, true
		}
	}
	for port := range edges {
		add(fmt.Sprintf("udp4_port%d", port), raw4(5, nil, ipProtoUDP, udpBody(port)))
		add(fmt.Sprintf("syn4_port%d", port), raw4(6, []byte{1, 1, 1, 0}, ipProtoTCP, tcpBody(port, tcpFlagSYN)))
		add(fmt.Sprintf("udp6_port%d", port), raw6(ipProtoUDP, udpBody(port)))
		add(fmt.Sprintf("syn6_port%d", port), raw6(ipProtoTCP, tcpBody(port, tcpFlagSYN)))
	}
	return cs
}

func TestDecodeAgreesSeeds(t *testing.T) {
	pairs := newPairs()
	accepted := 0
	cases := agreeCases(t)
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if agreeAll(t, pairs, data) > 0 {
				accepted++
			}
		})
	}
	// The table must exercise acceptance too, not only refusals.
	if accepted < 100 {
		t.Errorf("only %d of %d cases accepted under some spec", accepted, len(cases))
	}
}

// TestDecodeAgreesMutations takes valid packets and, at every byte, flips
// each bit and sets the byte to 0 and to 0xff, then compares the decoders
// on the result, and on it with the IPv4 header checksum recomputed so
// that the change is judged by the other checks. It also cuts each packet
// at every length.
func TestDecodeAgreesMutations(t *testing.T) {
	pairs := newPairs()
	var valid [][]byte
	for _, p := range []pkt{
		{udp: true, dst: 20480}, {dst: 25000, syn: true}, {v6: true, udp: true, dst: 30719}, {v6: true, dst: 25000, syn: true},
		{udp: true, dst: 20500, payload: []byte("xyz")}, {v6: true, udp: true, dst: 20500, payload: []byte("xyz")},
		{dst: 25000, syn: true, options: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}},
		{udp: true, dst: 25000, options: []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}},
		{dst: 25, syn: true}, {v6: true, udp: true, dst: 443},
	} {
		valid = append(valid, p.bytes(t))
	}
	valid = append(valid, raw4(15, []byte{7, 39, 4}, ipProtoTCP, tcpBody(20480, tcpFlagSYN)))
	n, accepted := 0, 0
	for _, b := range valid {
		if agreeAll(t, pairs, b) == 0 {
			t.Fatalf("valid packet refused: %x", b)
		}
		for i := range b {
			vals := []byte{0, 0xff}
			for bit := range 8 {
				vals = append(vals, b[i]^1<<bit)
			}
			for _, v := range vals {
				m := edited(b, func(m []byte) { m[i] = v })
				accepted += agreeAll(t, pairs, m)
				n++
				if m[0]>>4 == 4 && int(m[0]&0xf) >= 5 && int(m[0]&0xf)*4 <= len(m) && i != 10 && i != 11 {
					accepted += agreeAll(t, pairs, edited(m, resum))
					n++
				}
			}
		}
		for cut := range len(b) {
			agreeAll(t, pairs, b[:cut])
		}
	}
	t.Logf("%d mutations, %d acceptances", n, accepted)
}

// FuzzDecodeAgrees: the decoders agree on any bytes, wire length and
// spec. fix selects repairs applied first, so that mutated packets get
// past the checks random bytes rarely pass: bit 0 sets the IPv4 total
// length or IPv6 payload length to fit the data, bit 1 the UDP length to
// fit the IP payload, bit 2 recomputes the IPv4 header checksum.
func FuzzDecodeAgrees(f *testing.F) {
	for _, b := range agreeCases(f) {
		for _, fix := range []uint8{0, 7} {
			f.Add(b, int16(0), uint8(len(b)), fix)
		}
	}
	pairs := newPairs()
	f.Fuzz(func(t *testing.T, data []byte, wireDelta int16, spec, fix uint8) {
		data = repair(data, fix)
		dp := pairs[int(spec)%len(pairs)]
		dp.agree(t, data, len(data))
		dp.agree(t, data, len(data)+int(wireDelta))
		dp.agree(t, data[:min(len(data), snapLen)], len(data)+int(wireDelta))
		var p, q Packet
		if dp.d.decode(data, &p) != dp.r.decode(data, &q) || p != q {
			t.Fatalf("decode differs on %x", data)
		}
	})
}

// repair applies the fixes of FuzzDecodeAgrees to a copy of data.
func repair(data []byte, fix uint8) []byte {
	if fix == 0 || len(data) == 0 {
		return data
	}
	b := append([]byte{}, data...)
	switch b[0] >> 4 {
	case 4:
		hl := int(b[0]&0xf) * 4
		if len(b) < 20 || hl < 20 || hl > len(b) || len(b) > 0xffff {
			return b
		}
		if fix&1 != 0 {
			put16(b[2:], len(b))
		}
		if fix&2 != 0 && b[9] == ipProtoUDP && len(b) >= hl+udpHeaderLen {
			put16(b[hl+4:], int(binary.BigEndian.Uint16(b[2:4]))-hl)
		}
		if fix&4 != 0 {
			resum(b)
		}
	case 6:
		if len(b) < ipv6HeaderLen || len(b) > 0xffff+ipv6HeaderLen {
			return b
		}
		if fix&1 != 0 {
			put16(b[4:], len(b)-ipv6HeaderLen)
		}
		if fix&2 != 0 && b[6] == ipProtoUDP && len(b) >= ipv6HeaderLen+udpHeaderLen {
			put16(b[ipv6HeaderLen+4:], int(binary.BigEndian.Uint16(b[4:6])))
		}
	}
	return b
}
