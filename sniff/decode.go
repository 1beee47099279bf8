package sniff

import (
	"encoding/binary"
	"net/netip"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// decoder is the user-space re-check of what the kernel filter accepted
// (see filter.go for the rules; the two must agree). It reads the IP and
// transport headers in place with plain loads, and allocates nothing and
// keeps nothing per packet. It accepts exactly what the gopacket-based
// decoder it replaced accepted and writes the same fields (the
// differential tests hold it to decode_ref_test.go). One decoder serves
// one goroutine.
type decoder struct {
	spec filterSpec
}

func newDecoder(span encoding.Span) *decoder { return newDecoderFor(filterSpec{span: span}) }

func newDecoderFor(f filterSpec) *decoder { return &decoder{spec: f} }

// decode checks data, a packet from its IP header on, and fills p's
// addresses, port, transport and kind. It reports whether the packet is a
// knock packet for the span or a connection attempt to a trigger port.
// Which of the two it is follows from the port alone (the configuration
// keeps trigger ports out of the span); the direction, where it matters,
// the kernel filter has checked.
func (d *decoder) decode(data []byte, p *Packet) bool { return d.decodeFrame(data, len(data), p) }

// decodeFrame is decode for a packet of wire bytes from its IP header on,
// of which data holds the first ones (the capture cuts packets to
// snapLen). Besides the filter's rules it refuses what the host's own IP
// stack would drop before any socket saw it: an IPv4 header checksum that
// does not verify, malformed IPv4 options, length fields that claim more
// than the packet holds, a UDP length below 8 or beyond the IP payload,
// and IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2: never on the wire),
// so that a knock cannot be split between a.b.c.d and ::ffff:a.b.c.d.
//
// On a refusal p may have been written in part: Transport once the
// transport header has been read (and for TCP its flags passed), Kind
// once the port has.
func (d *decoder) decodeFrame(data []byte, wire int, p *Packet) bool {
	if len(data) == 0 {
		return false
	}
	switch data[0] >> 4 {
	case 4:
		return d.decode4(data, wire, p)
	case 6:
		return d.decode6(data, wire, p)
	}
	return false
}

func (d *decoder) decode4(data []byte, wire int, p *Packet) bool {
	if len(data) < 20 {
		return false
	}
	total := int(binary.BigEndian.Uint16(data[2:4]))
	hl := int(data[0]&0x0f) * 4
	// The packet ends at its total length, or where the capture does if
	// that comes first. A zero total length (what TCP segmentation
	// offload leaves) is read as the captured length, so that such a
	// packet is refused by the length checks below, after the fields
	// before them have been written, as it always was.
	end := total
	if end == 0 {
		end = len(data)
	}
	if hl < 20 || hl > end {
		return false
	}
	if end > len(data) {
		if hl > len(data) {
			return false
		}
		end = len(data)
	}
	// Not a fragment: MF clear, offset 0 (DF and the reserved bit are
	// ignored).
	if !optionsOK(data[20:hl]) || binary.BigEndian.Uint16(data[6:8])&0x3fff != 0 {
		return false
	}
	port, need, ulen, ok := d.transport(data[9], data[hl:end], p)
	if !ok {
		return false
	}
	if total < hl+need || total > wire || ulen > total-hl || !checksumOK(data[:hl]) {
		return false
	}
	p.Src = netip.AddrFrom4([4]byte(data[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(data[16:20]))
	p.DstPort = port
	return true
}

func (d *decoder) decode6(data []byte, wire int, p *Packet) bool {
	// Next header must be TCP or UDP directly: packets with extension
	// headers are not knock packets.
	if len(data) < ipv6HeaderLen || (data[6] != ipProtoTCP && data[6] != ipProtoUDP) {
		return false
	}
	// A zero payload length (a jumbogram, which needs a hop-by-hop
	// header) leaves no room for the transport header.
	payload := int(binary.BigEndian.Uint16(data[4:6]))
	seg := data[ipv6HeaderLen:]
	if len(seg) > payload {
		seg = seg[:payload]
	}
	port, need, ulen, ok := d.transport(data[6], seg, p)
	if !ok {
		return false
	}
	if payload < need || ipv6HeaderLen+payload > wire || ulen > payload ||
		isV4Mapped(data[8:24]) || isV4Mapped(data[24:40]) {
		return false
	}
	p.Src = netip.AddrFrom16([16]byte(data[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(data[24:40]))
	p.DstPort = port
	return true
}

// transport reads the transport header at the start of seg, the IP
// payload as far as it was captured and the IP length allows: a TCP
// segment with SYN set and ACK clear, or a UDP datagram with a length of
// at least 8, to a port of the span or a trigger port. It sets p's
// Transport and Kind and returns the destination port, the transport
// header's length and the UDP length (0 for TCP). Only the fixed TCP
// header is read: ports and flags are all a knock needs.
func (d *decoder) transport(proto byte, seg []byte, p *Packet) (port uint16, need, ulen int, ok bool) {
	switch proto {
	case ipProtoTCP:
		if len(seg) < tcpHeaderLen || seg[13]&(tcpFlagSYN|tcpFlagACK) != tcpFlagSYN {
			return 0, 0, 0, false
		}
		port, need, p.Transport = binary.BigEndian.Uint16(seg[2:4]), tcpHeaderLen, ports.TCP
	case ipProtoUDP:
		if len(seg) < udpHeaderLen {
			return 0, 0, 0, false
		}
		port, need, p.Transport = binary.BigEndian.Uint16(seg[2:4]), udpHeaderLen, ports.UDP
		ulen = int(binary.BigEndian.Uint16(seg[4:6]))
		if ulen < udpHeaderLen {
			return 0, 0, 0, false
		}
	default:
		return 0, 0, 0, false
	}
	switch {
	case d.spec.span.Contains(port):
		p.Kind = Knock
	case d.spec.isTrigger(port):
		p.Kind = Trigger
	default:
		return 0, 0, 0, false
	}
	return port, need, ulen, true
}

// optionsOK reports whether IPv4 options are well formed (RFC 791 §3.1):
// each is End of Option List, which ends them, No Operation, or a type
// and a length of at least 2 that counts both and stays within the
// header. The host's IP stack drops a packet with malformed ones.
func optionsOK(o []byte) bool {
	for len(o) > 0 {
		switch o[0] {
		case 0:
			return true
		case 1:
			o = o[1:]
		default:
			if len(o) < 2 || o[1] < 2 || int(o[1]) > len(o) {
				return false
			}
			o = o[o[1]:]
		}
	}
	return true
}

// checksumOK verifies an IPv4 header checksum (RFC 791, RFC 1071): the
// ones' complement sum of the header's 16-bit words is all ones. The
// words are added four bytes at a time and the carries folded back at
// the end, which gives the same sum (2^16 ≡ 1 modulo 2^16-1). A trailing
// odd byte, never present in a real header, is ignored.
func checksumOK(h []byte) bool {
	var sum uint64
	for ; len(h) >= 4; h = h[4:] {
		sum += uint64(binary.BigEndian.Uint32(h))
	}
	if len(h) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(h))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum == 0xffff
}

// isV4Mapped reports whether a 16-byte address is ::ffff:a.b.c.d.
func isV4Mapped(a []byte) bool {
	return binary.BigEndian.Uint64(a[0:8]) == 0 && binary.BigEndian.Uint32(a[8:12]) == 0xffff
}
