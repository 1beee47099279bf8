package sniff

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// The decoder as it was before decode.go parsed headers by hand: gopacket's
// DecodingLayerParser over preallocated layers. It is kept, with its own
// checksum and address helpers, only as the reference that the
// differential tests (decode_agree_test.go) hold the hand-written decoder
// to, byte for byte: same verdict, same fields written to the Packet.

// refDecoder is the user-space re-check of what the kernel filter accepted
// (see filter.go for the rules; the two must agree). It decodes with
// gopacket's DecodingLayerParser over preallocated layers and allocates
// nothing per packet. One decoder serves one goroutine.
type refDecoder struct {
	spec    filterSpec
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     refTCPHeader
	udp     refUDPHeader
	p4, p6  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newRefDecoder(span encoding.Span) *refDecoder { return newRefDecoderFor(filterSpec{span: span}) }

func newRefDecoderFor(f filterSpec) *refDecoder {
	d := &refDecoder{spec: f, decoded: make([]gopacket.LayerType, 0, 4)}
	d.p4 = refParser(layers.LayerTypeIPv4, &d.ip4, &d.tcp, &d.udp)
	d.p6 = refParser(layers.LayerTypeIPv6, &d.ip6, &d.tcp, &d.udp)
	return d
}

// refParser returns a parser over a slice indexed by layer type, which
// finds the next decoder faster than the default map.
func refParser(first gopacket.LayerType, ls ...gopacket.DecodingLayer) *gopacket.DecodingLayerParser {
	p := gopacket.NewDecodingLayerParser(first)
	var c gopacket.DecodingLayerContainer = gopacket.DecodingLayerSparse(nil)
	for _, l := range ls {
		c = c.Put(l)
	}
	p.SetDecodingLayerContainer(c)
	p.IgnoreUnsupported = true
	return p
}

// decode checks data, a packet from its IP header on, and fills p's
// addresses, port, transport and kind. It reports whether the packet is a
// knock packet for the span or a connection attempt to a trigger port.
// Which of the two it is follows from the port alone (the configuration
// keeps trigger ports out of the span); the direction, where it matters,
// the kernel filter has checked.
func (d *refDecoder) decode(data []byte, p *Packet) bool { return d.decodeFrame(data, len(data), p) }

// decodeFrame is decode for a packet of wire bytes from its IP header on,
// of which data holds the first ones (the capture cuts packets to
// snapLen). Besides the filter's rules it refuses what the host's own IP
// stack would drop before any socket saw it: an IPv4 header checksum that
// does not verify, length fields that claim more than the packet holds, a
// UDP length below 8 or beyond the IP payload, and IPv4-mapped IPv6
// addresses (RFC 4291 §2.5.5.2: never on the wire), so that a knock cannot
// be split between a.b.c.d and ::ffff:a.b.c.d.
func (d *refDecoder) decodeFrame(data []byte, wire int, p *Packet) bool {
	if len(data) == 0 {
		return false
	}
	parser := d.p4
	switch data[0] >> 4 {
	case 4:
	case 6:
		// Next header must be TCP or UDP directly; checking it first
		// also keeps gopacket from parsing hop-by-hop options.
		if len(data) < ipv6HeaderLen || (data[6] != ipProtoTCP && data[6] != ipProtoUDP) {
			return false
		}
		parser = d.p6
	default:
		return false
	}
	if parser.DecodeLayers(data, &d.decoded) != nil || len(d.decoded) != 2 {
		return false
	}
	var port uint16
	var need, ulen int
	switch d.decoded[1] {
	case layers.LayerTypeTCP:
		if d.tcp.flags&(tcpFlagSYN|tcpFlagACK) != tcpFlagSYN {
			return false
		}
		port, need, p.Transport = d.tcp.dst, tcpHeaderLen, ports.TCP
	case layers.LayerTypeUDP:
		port, need, p.Transport = d.udp.dst, udpHeaderLen, ports.UDP
		ulen = int(d.udp.length)
		if ulen < udpHeaderLen {
			return false
		}
	default:
		return false
	}
	switch {
	case d.spec.span.Contains(port):
		p.Kind = Knock
	case d.spec.isTrigger(port):
		p.Kind = Trigger
	default:
		return false
	}
	switch d.decoded[0] {
	case layers.LayerTypeIPv4:
		// The length field as sent: gopacket replaces a zero one.
		total := int(binary.BigEndian.Uint16(d.ip4.Contents[2:4]))
		hl := int(d.ip4.IHL) * 4
		if total < hl+need || total > wire || ulen > total-hl || !refChecksumOK(d.ip4.Contents[:hl]) {
			return false
		}
		p.Src = netip.AddrFrom4([4]byte(d.ip4.SrcIP))
		p.Dst = netip.AddrFrom4([4]byte(d.ip4.DstIP))
	case layers.LayerTypeIPv6:
		payload := int(binary.BigEndian.Uint16(data[4:6]))
		if payload < need || ipv6HeaderLen+payload > wire || ulen > payload ||
			refIsV4Mapped(data[8:24]) || refIsV4Mapped(data[24:40]) {
			return false
		}
		p.Src = netip.AddrFrom16([16]byte(d.ip6.SrcIP))
		p.Dst = netip.AddrFrom16([16]byte(d.ip6.DstIP))
	default:
		return false
	}
	p.DstPort = port
	return true
}

// refChecksumOK verifies an IPv4 header checksum (RFC 791, RFC 1071).
func refChecksumOK(h []byte) bool {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum == 0xffff
}

// refIsV4Mapped reports whether a 16-byte address is ::ffff:a.b.c.d.
func refIsV4Mapped(a []byte) bool {
	return binary.BigEndian.Uint64(a[0:8]) == 0 && binary.BigEndian.Uint32(a[8:12]) == 0xffff
}

// refErrShort is returned by the transport layers below; a sentinel, so that
// rejecting a packet allocates nothing.
var refErrShort = errors.New("transport header truncated")

// refTCPHeader decodes the fixed TCP header only: the ports and flags are all
// a knock needs, and skipping the options keeps decoding allocation-free
// whatever the sender put there.
type refTCPHeader struct {
	src, dst uint16
	flags    uint8
}

func (t *refTCPHeader) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < tcpHeaderLen {
		df.SetTruncated()
		return refErrShort
	}
	t.src = binary.BigEndian.Uint16(data[0:2])
	t.dst = binary.BigEndian.Uint16(data[2:4])
	t.flags = data[13]
	return nil
}

func (t *refTCPHeader) CanDecode() gopacket.LayerClass    { return layers.LayerTypeTCP }
func (t *refTCPHeader) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }
func (t *refTCPHeader) LayerPayload() []byte              { return nil }

// refUDPHeader decodes the UDP header's ports and length.
type refUDPHeader struct {
	src, dst, length uint16
}

func (u *refUDPHeader) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < udpHeaderLen {
		df.SetTruncated()
		return refErrShort
	}
	u.src = binary.BigEndian.Uint16(data[0:2])
	u.dst = binary.BigEndian.Uint16(data[2:4])
	u.length = binary.BigEndian.Uint16(data[4:6])
	return nil
}

func (u *refUDPHeader) CanDecode() gopacket.LayerClass    { return layers.LayerTypeUDP }
func (u *refUDPHeader) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }
func (u *refUDPHeader) LayerPayload() []byte              { return nil }
