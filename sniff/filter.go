package sniff

import (
	"fmt"

	"golang.org/x/net/bpf"

	"github.com/cipherknock/cipherknock/encoding"
)

// Kernel filter (classic BPF) for the knock packets of SPEC.md §10.2. The
// socket is SOCK_DGRAM, so for every link type (Ethernet, loopback,
// WireGuard, tun, PPP) the filter and the reader see the packet from its
// network header on: offsets below are relative to the IP header.
//
// The program has two parts. The prologue uses ancillary loads, which only
// the kernel implements. It drops outgoing packets; packets for another
// host's MAC address (seen in promiscuous mode or on a bridge, and ignored
// by the host's own stack too); packets that are not IPv4 or IPv6 by
// skb->protocol; and packets from interfaces outside the capture set. The
// body checks the headers with plain loads, so it runs in bpf.NewVM too,
// and accepts what the user-space re-check in decode.go accepts:
//
//   - IPv4: version 4, IHL >= 5 (options allowed), not a fragment (MF clear,
//     offset 0), total length covering the IP header and the transport
//     header;
//   - IPv6: version 6, next header TCP or UDP directly (packets with
//     extension headers, fragments included, are dropped: a knock client
//     never sends them), payload length covering the transport header;
//   - TCP: the 20-byte fixed header present, SYN set and ACK clear;
//   - UDP: the 8-byte header present;
//   - destination port in the span.
//
// The one difference: the re-check also refuses malformed IPv4 options,
// which the filter does not parse (and the kernel's IP stack drops).
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

	packetOtherHost = 3 // PACKET_OTHERHOST, linux/if_packet.h
	packetOutgoing  = 4 // PACKET_OUTGOING
	ethPIPv4        = 0x0800
	ethPIPv6        = 0x86dd

	// Interfaces are compared one by one in the prologue; beyond this
	// many the kernel accepts every interface and the user-space check
	// alone selects them (jump offsets are 8 bits).
	maxFilterInterfaces = 200
)

// program assembles the filter: the kernel prologue, then the body. With
// ifindexes nil the prologue does not check interfaces; with an empty
// non-nil slice it drops everything.
func program(span encoding.Span, ifindexes []int) ([]bpf.RawInstruction, error) {
	var a asm
	a.emit(bpf.LoadExtension{Num: bpf.ExtType})
	a.jif(bpf.JumpEqual, packetOutgoing, "drop", "")
	a.jif(bpf.JumpEqual, packetOtherHost, "drop", "")
	a.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	a.jif(bpf.JumpEqual, ethPIPv4, "proto", "")
	a.jif(bpf.JumpEqual, ethPIPv6, "proto", "drop")
	a.label("proto")
	if ifindexes != nil && len(ifindexes) <= maxFilterInterfaces {
		a.emit(bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
		for _, i := range ifindexes {
			a.jif(bpf.JumpEqual, uint32(i), "body", "")
		}
		a.jump("drop")
	}
	a.label("body")
	a.body(span)
	ins, err := a.resolve()
	if err != nil {
		return nil, err
	}
	return bpf.Assemble(ins)
}

// bodyProgram returns the header checks alone, for bpf.NewVM.
func bodyProgram(span encoding.Span) ([]bpf.Instruction, error) {
	var a asm
	a.body(span)
	return a.resolve()
}

func (a *asm) body(span encoding.Span) {
	base, last := uint32(span.Base), uint32(span.Last())

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
	a.emit(bpf.LoadIndirect{Off: 2, Size: 2})
	a.jump("port")

	a.label("ip6")
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
	a.emit(bpf.LoadAbsolute{Off: ipv6HeaderLen + udpHeaderLen - 1, Size: 1})
	a.emit(bpf.LoadAbsolute{Off: ipv6HeaderLen + 2, Size: 2})

	a.label("port")
	a.jif(bpf.JumpLessThan, base, "drop", "")
	a.jif(bpf.JumpGreaterThan, last, "drop", "")
	a.emit(bpf.RetConstant{Val: snapLen})
	a.label("drop")
	a.emit(bpf.RetConstant{Val: 0})
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
