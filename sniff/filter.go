package sniff

import (
	"fmt"

	"golang.org/x/net/bpf"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// Kernel filter (classic BPF) for the knock packets of SPEC.md §10.2. The
// socket is SOCK_DGRAM, so for every link type (Ethernet, loopback,
// WireGuard, tun, PPP) the filter and the reader see the packet from its
// network header on: offsets below are relative to the IP header.
//
// The program has two parts. The prologue uses ancillary loads, which only
// the kernel implements. It accepts only packets addressed to this host's
// link-layer address (PACKET_HOST: not broadcast, multicast, another
// host's, which the host's own stack ignores for a knock too, nor outgoing)
// and, for triggers, outgoing ones; it drops packets that carried a VLAN
// tag (the host delivers those only through the VLAN's own interface,
// where they arrive again untagged); packets that are not IPv4 or IPv6 by
// skb->protocol; and packets from interfaces outside the capture set. The
// body checks the headers with plain loads and the packet length, so it
// runs in bpf.NewVM too, and accepts what the user-space re-check in
// decode.go accepts:
//
//   - IPv4: version 4, IHL >= 5 (options allowed), not a fragment (MF clear,
//     offset 0), total length covering the IP header and the transport
//     header and not beyond the packet, and for a 20-byte header a header
//     checksum that verifies;
//   - IPv6: version 6, next header TCP or UDP directly (packets with
//     extension headers, fragments included, are dropped: a knock client
//     never sends them), payload length covering the transport header and
//     not beyond the packet, neither address IPv4-mapped;
//   - TCP: the 20-byte fixed header present, SYN set and ACK clear;
//   - UDP: the 8-byte header present, its length at least 8 and not beyond
//     the IP payload;
//   - destination port in the span.
//
// The differences, each safe because user space refuses what the filter
// lets through: the re-check also refuses malformed IPv4 options, which the
// filter does not parse (and the kernel's IP stack drops), checks the
// header checksum of IPv4 headers with options, and refuses knock packets
// whose destination is not one of the host's addresses (the filter would
// need reloading on every address change). Transport checksums are checked
// by neither: anyone can compute them, so they keep out no forged packet.
// Accepted packets are cut to snapLen bytes, enough for the largest IPv4
// header (60 bytes) and a TCP fixed header, so the ring holds many.
const (
	snapLen = 96

	ipProtoTCP = 6
	ipProtoUDP = 17

	tcpHeaderLen  = 20 // fixed TCP header, options not parsed
	udpHeaderLen  = 8
	ipv6HeaderLen = 40

	tcpFlagSYN = 0x02
	tcpFlagACK = 0x10

	packetHost     = 0 // PACKET_HOST, linux/if_packet.h
	packetOutgoing = 4 // PACKET_OUTGOING
	ethPIPv4       = 0x0800
	ethPIPv6       = 0x86dd

	// Interfaces are compared one by one in the prologue; beyond this
	// many the kernel accepts every interface and the user-space check
	// alone selects them (jump offsets are 8 bits).
	maxFilterInterfaces = 200
)

// filterSpec is what the kernel filter selects besides interfaces: the
// knock span and, for port triggering, the outbound trigger ports.
type filterSpec struct {
	span encoding.Span
	// triggers are the trigger ports, merged and sorted; the protocol
	// is not checked here (the trigger engine does).
	triggers []ports.Range
	// outgoing: trigger packets are the host's own outgoing packets; a
	// received packet is then never a trigger, an outgoing one never a
	// knock. Otherwise both are received packets.
	outgoing bool
}

// Scratch slots: the direction (1: outgoing) for the body, and a length
// or sum being checked.
const (
	dirSlot = 0
	lenSlot = 1
)

// program assembles the filter for span alone: the kernel prologue,
// then the body. With ifindexes nil the prologue does not check
// interfaces; with an empty non-nil slice it drops everything.
func program(span encoding.Span, ifindexes []int) ([]bpf.RawInstruction, error) {
	return programFor(filterSpec{span: span}, ifindexes)
}

// programFor assembles the filter for f.
func programFor(f filterSpec, ifindexes []int) ([]bpf.RawInstruction, error) {
	var a asm
	if f.outgoing {
		// The body learns the direction from the scratch slot. The
		// kernel's checker wants it stored on every path before it is
		// loaded, and it follows a return into the next instruction, so
		// it is stored first, before any jump.
		a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: dirSlot})
		a.emit(bpf.LoadExtension{Num: bpf.ExtType})
		a.jif(bpf.JumpEqual, packetOutgoing, "", "in")
		a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 1})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: dirSlot})
		a.jump("type")
		a.label("in")
		a.jif(bpf.JumpEqual, packetHost, "", "pdrop")
	} else {
		a.emit(bpf.LoadExtension{Num: bpf.ExtType})
		a.jif(bpf.JumpEqual, packetHost, "", "pdrop")
	}
	a.label("type")
	// The tagged copy of a frame that arrived with a VLAN tag: the host
	// delivers it only through the VLAN's own interface, untagged.
	a.emit(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent})
	a.jif(bpf.JumpEqual, 0, "", "pdrop")
	a.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	a.jif(bpf.JumpEqual, ethPIPv4, "proto", "")
	a.jif(bpf.JumpEqual, ethPIPv6, "proto", "pdrop")
	a.label("proto")
	if ifindexes != nil && len(ifindexes) <= maxFilterInterfaces {
		a.emit(bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
		for _, i := range ifindexes {
			a.jif(bpf.JumpEqual, uint32(i), "body", "")
		}
		a.jump("pdrop")
	}
	// The prologue's own drop, so that its jumps stay short however long
	// the body is.
	a.jump("body")
	a.label("pdrop")
	a.emit(bpf.RetConstant{Val: 0})
	a.label("body")
	a.bodyFor(f)
	ins, err := a.resolve()
	if err != nil {
		return nil, err
	}
	return bpf.Assemble(ins)
}

// bodyProgram returns the header checks alone, for bpf.NewVM.
func bodyProgram(span encoding.Span) ([]bpf.Instruction, error) {
	return bodyProgramFor(filterSpec{span: span}, false)
}

// bodyProgramFor returns the header checks for f alone, for bpf.NewVM,
// as they run on a packet going out (outgoing) or coming in.
func bodyProgramFor(f filterSpec, outgoing bool) ([]bpf.Instruction, error) {
	var a asm
	if f.outgoing {
		var dir uint32
		if outgoing {
			dir = 1
		}
		a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: dir})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: dirSlot})
	}
	a.bodyFor(f)
	return a.resolve()
}

func (a *asm) body(span encoding.Span) { a.bodyFor(filterSpec{span: span}) }

func (a *asm) bodyFor(f filterSpec) {
	base, last := uint32(f.span.Base), uint32(f.span.Last())

	a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	a.jif(bpf.JumpEqual, 4, "ip4", "")
	a.jif(bpf.JumpEqual, 6, "ip6", "drop")

	a.label("ip4")
	a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
	a.jif(bpf.JumpLessThan, 5, "drop", "")
	a.emit(bpf.LoadAbsolute{Off: 6, Size: 2}) // flags, fragment offset
	a.jif(bpf.JumpBitsSet, 0x3fff, "drop", "")
	a.emit(bpf.LoadExtension{Num: bpf.ExtLen}) // total length <= packet
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadAbsolute{Off: 2, Size: 2})
	a.jx(bpf.JumpGreaterThan, "drop", "")
	a.emit(bpf.LoadMemShift{Off: 0}) // X = IHL*4
	a.emit(bpf.LoadAbsolute{Off: 9, Size: 1})
	a.jif(bpf.JumpEqual, ipProtoTCP, "tcp4", "")
	a.jif(bpf.JumpEqual, ipProtoUDP, "udp4", "drop")

	// Total length >= IHL*4 + transport header. The first test keeps the
	// subtraction from wrapping (IHL*4 >= 20).
	a.label("tcp4")
	a.emit(bpf.LoadAbsolute{Off: 2, Size: 2})
	a.jif(bpf.JumpLessThan, 20+tcpHeaderLen, "drop", "")
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: tcpHeaderLen})
	a.jx(bpf.JumpLessThan, "drop", "")
	a.emit(bpf.LoadIndirect{Off: tcpHeaderLen - 1, Size: 1}) // header present
	a.emit(bpf.LoadIndirect{Off: 13, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: tcpFlagSYN | tcpFlagACK})
	a.jif(bpf.JumpEqual, tcpFlagSYN, "", "drop")
	a.emit(bpf.LoadIndirect{Off: 2, Size: 2})
	a.jump("port")

	a.label("udp4")
	a.emit(bpf.LoadAbsolute{Off: 2, Size: 2})
	a.jif(bpf.JumpLessThan, 20+udpHeaderLen, "drop", "")
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: udpHeaderLen})
	a.jx(bpf.JumpLessThan, "drop", "")
	a.emit(bpf.LoadIndirect{Off: udpHeaderLen - 1, Size: 1})
	// 8 <= UDP length <= total length - IHL*4.
	a.emit(bpf.LoadAbsolute{Off: 2, Size: 2})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpSub})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: lenSlot})
	a.emit(bpf.LoadIndirect{Off: 4, Size: 2})
	a.jif(bpf.JumpLessThan, udpHeaderLen, "drop", "")
	a.emit(bpf.LoadScratch{Dst: bpf.RegX, N: lenSlot})
	a.jx(bpf.JumpGreaterThan, "drop", "")
	a.emit(bpf.LoadMemShift{Off: 0})
	a.emit(bpf.LoadIndirect{Off: 2, Size: 2})
	a.jump("port")

	a.label("ip6")
	a.emit(bpf.LoadExtension{Num: bpf.ExtLen}) // 40 + payload <= packet
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadAbsolute{Off: 4, Size: 2})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: ipv6HeaderLen})
	a.jx(bpf.JumpGreaterThan, "drop", "")
	// No IPv4-mapped source or destination (::ffff:0:0/96).
	for i, off := range []uint32{8, 24} {
		next := fmt.Sprintf("mapped%d", i)
		a.emit(bpf.LoadAbsolute{Off: off, Size: 4})
		a.jif(bpf.JumpEqual, 0, "", next)
		a.emit(bpf.LoadAbsolute{Off: off + 4, Size: 4})
		a.jif(bpf.JumpEqual, 0, "", next)
		a.emit(bpf.LoadAbsolute{Off: off + 8, Size: 4})
		a.jif(bpf.JumpEqual, 0xffff, "drop", "")
		a.label(next)
	}
	a.emit(bpf.LoadAbsolute{Off: 6, Size: 1})
	a.jif(bpf.JumpEqual, ipProtoTCP, "tcp6", "")
	a.jif(bpf.JumpEqual, ipProtoUDP, "udp6", "drop")

	a.label("tcp6")
	a.emit(bpf.LoadAbsolute{Off: 4, Size: 2})
	a.jif(bpf.JumpLessThan, tcpHeaderLen, "drop", "")
	a.emit(bpf.LoadAbsolute{Off: ipv6HeaderLen + tcpHeaderLen - 1, Size: 1})
	a.emit(bpf.LoadAbsolute{Off: ipv6HeaderLen + 13, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: tcpFlagSYN | tcpFlagACK})
	a.jif(bpf.JumpEqual, tcpFlagSYN, "", "drop")
	a.emit(bpf.LoadAbsolute{Off: ipv6HeaderLen + 2, Size: 2})
	a.jump("port")

	a.label("udp6")
	a.emit(bpf.LoadAbsolute{Off: 4, Size: 2})
	a.jif(bpf.JumpLessThan, udpHeaderLen, "drop", "")
	a.emit(bpf.TAX{}) // 8 <= UDP length <= payload length
	a.emit(bpf.LoadAbsolute{Off: ipv6HeaderLen + 4, Size: 2})
	a.jif(bpf.JumpLessThan, udpHeaderLen, "drop", "")
	a.jx(bpf.JumpGreaterThan, "drop", "")
	a.emit(bpf.LoadAbsolute{Off: ipv6HeaderLen + 2, Size: 2})

	// A holds the destination port.
	a.label("port")
	notKnock := "drop"
	if len(f.triggers) > 0 {
		if f.outgoing {
			a.emit(bpf.TAX{})
			a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: dirSlot})
			a.jif(bpf.JumpEqual, 1, "outport", "")
			a.emit(bpf.TXA{})
		} else {
			notKnock = "trigger"
		}
	}
	a.jif(bpf.JumpLessThan, base, notKnock, "")
	a.jif(bpf.JumpGreaterThan, last, notKnock, "")
	// The IPv4 header checksum, for the usual 20-byte header (with
	// options, user space alone checks it). It runs on knock packets
	// only, after the port has shed the noise.
	a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	a.jif(bpf.JumpEqual, 0x45, "", "accept")
	a.emit(bpf.LoadAbsolute{Off: 0, Size: 2})
	a.emit(bpf.TAX{})
	for off := uint32(2); off < 20; off += 2 {
		a.emit(bpf.LoadAbsolute{Off: off, Size: 2})
		a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
		a.emit(bpf.TAX{})
	}
	for range 2 { // fold the carries
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: lenSlot})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 16})
		a.emit(bpf.TAX{})
		a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: lenSlot})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xffff})
		a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	}
	a.jif(bpf.JumpEqual, 0xffff, "", "drop")
	a.label("accept")
	a.emit(bpf.RetConstant{Val: snapLen})
	a.label("drop")
	a.emit(bpf.RetConstant{Val: 0})
	if len(f.triggers) == 0 {
		return
	}
	// The trigger ports come after drop, so that the jumps to drop
	// above stay short however many ranges there are.
	if f.outgoing {
		a.label("outport")
		a.emit(bpf.TXA{})
	}
	a.label("trigger")
	for i, r := range f.triggers {
		next := fmt.Sprintf("trigger%d", i+1)
		a.jif(bpf.JumpLessThan, uint32(r.From), next, "")
		a.jif(bpf.JumpGreaterThan, uint32(r.To), next, "")
		a.emit(bpf.RetConstant{Val: snapLen})
		a.label(next)
	}
	a.emit(bpf.RetConstant{Val: 0})
}

// mergeRanges sorts and merges trigger port ranges whatever their
// protocol: the filter matches a port of either protocol.
func mergeRanges(rs []ports.Range) []ports.Range {
	bare := make([]ports.Range, len(rs))
	for i, r := range rs {
		bare[i] = ports.Range{From: r.From, To: r.To}
	}
	return ports.Merge(bare)
}

// isTrigger reports whether port is a trigger port.
func (f *filterSpec) isTrigger(port uint16) bool {
	for _, r := range f.triggers {
		if r.From <= port && port <= r.To {
			return true
		}
	}
	return false
}

// asm is a small assembler with forward labels; an empty label means the
// next instruction.
type asm struct {
	ins    []bpf.Instruction
	labels map[string]int
	fixes  []fixup
}

type fixup struct {
	at          int
	true, false string
}

func (a *asm) emit(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = make(map[string]int)
	}
	a.labels[name] = len(a.ins)
}

func (a *asm) jif(cond bpf.JumpTest, val uint32, t, f string) {
	a.fixes = append(a.fixes, fixup{len(a.ins), t, f})
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
}

func (a *asm) jx(cond bpf.JumpTest, t, f string) {
	a.fixes = append(a.fixes, fixup{len(a.ins), t, f})
	a.emit(bpf.JumpIfX{Cond: cond})
}

func (a *asm) jump(to string) {
	a.fixes = append(a.fixes, fixup{len(a.ins), to, ""})
	a.emit(bpf.Jump{})
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	skip := func(from int, to string) (int, error) {
		if to == "" {
			return 0, nil
		}
		at, ok := a.labels[to]
		if !ok {
			return 0, fmt.Errorf("bpf: undefined label %q", to)
		}
		return at - from - 1, nil
	}
	for _, f := range a.fixes {
		t, err := skip(f.at, f.true)
		if err != nil {
			return nil, err
		}
		e, err := skip(f.at, f.false)
		if err != nil {
			return nil, err
		}
		if t < 0 || e < 0 || t > 255 || e > 255 {
			return nil, fmt.Errorf("bpf: jump at %d out of range", f.at)
		}
		switch i := a.ins[f.at].(type) {
		case bpf.Jump:
			i.Skip = uint32(t)
			a.ins[f.at] = i
		case bpf.JumpIf:
			i.SkipTrue, i.SkipFalse = uint8(t), uint8(e)
			a.ins[f.at] = i
		case bpf.JumpIfX:
			i.SkipTrue, i.SkipFalse = uint8(t), uint8(e)
			a.ins[f.at] = i
		}
	}
	return a.ins, nil
}
