//go:build linux && pcap

package sniff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"

	"github.com/cipherknock/cipherknock/encoding"
)

// With the pcap build tag, packets come from libpcap (cgo) on its "any"
// device instead of gopacket's afpacket: libpcap opens the same kind of
// SOCK_DGRAM packet socket, in immediate mode so that no buffering adds
// latency. Its LINUX_SLL2 header carries the interface index and the
// packet type, so here user space re-checks the direction as well. The
// kernel filter is a libpcap expression close to program's (pcapExpr).

// sll2Len is the size of the LINUX_SLL2 header before the IP header:
// protocol 2, reserved 2, interface index 4, ARPHRD type 2, packet type 1,
// address length 1, address 8.
const sll2Len = 20

const pcapBuffer = 4 << 20 // as the AF_PACKET ring

// pcapSource reads from libpcap.
type pcapSource struct {
	h *pcap.Handle
	// libpcap's totals include what passed before the first filter;
	// they are counted from the first filter on.
	base     pcap.Stats
	haveBase bool
	matched  uint64
	dropped  uint64
}

func openSource() (source, error) {
	ih, err := pcap.NewInactiveHandle("any")
	if err != nil {
		return nil, fmt.Errorf("sniff: libpcap: %w", err)
	}
	defer ih.CleanUp()
	for _, err := range []error{
		ih.SetSnapLen(sll2Len + snapLen),
		ih.SetPromisc(false),
		ih.SetImmediateMode(true),
		ih.SetTimeout(pollTimeout),
		ih.SetBufferSize(pcapBuffer),
	} {
		if err != nil {
			return nil, fmt.Errorf("sniff: libpcap: %w", err)
		}
	}
	h, err := ih.Activate()
	if err != nil {
		return nil, fmt.Errorf("sniff: libpcap: %w (needs CAP_NET_RAW)", err)
	}
	if err := h.SetLinkType(layers.LinkTypeLinuxSLL2); err != nil {
		h.Close()
		return nil, fmt.Errorf("sniff: libpcap: LINUX_SLL2 link type: %w", err)
	}
	// Drop everything until the first real filter; libpcap filters what
	// is already buffered in user space when a filter changes.
	if err := h.SetBPFFilter("less 0"); err != nil {
		h.Close()
		return nil, fmt.Errorf("sniff: libpcap filter: %w", err)
	}
	return &pcapSource{h: h}, nil
}

func (s *pcapSource) next() ([]byte, frame, error) {
	data, ci, err := s.h.ZeroCopyReadPacketData()
	if errors.Is(err, pcap.NextErrorTimeoutExpired) {
		return nil, frame{}, errIdle
	}
	if err != nil {
		return nil, frame{}, err
	}
	if len(data) < sll2Len {
		return nil, frame{ifindex: -1, at: ci.Timestamp}, nil
	}
	ifindex := int(binary.BigEndian.Uint32(data[4:8]))
	if data[10] != packetHost { // broadcast, multicast, another host's, outgoing
		ifindex = -1
	}
	// libpcap puts a VLAN tag back in front of the packet, so a tagged
	// frame does not start with an IP header and fails the decoder.
	return data[sll2Len:], frame{ifindex: ifindex, at: ci.Timestamp, wire: ci.Length - sll2Len}, nil
}

// ready reports false: libpcap does not tell whether a packet waits, so
// each packet is handed on as soon as it is read.
func (s *pcapSource) ready() bool { return false }

// sourceTriggers: pcapExpr has no trigger ports; New refuses them.
const sourceTriggers = false

func (s *pcapSource) setFilter(f filterSpec, ifindexes []int) error {
	if err := s.h.SetBPFFilter(pcapExpr(f.span, ifindexes)); err != nil {
		return fmt.Errorf("sniff: libpcap filter: %w", err)
	}
	if !s.haveBase {
		if st, err := s.h.Stats(); err == nil {
			s.base, s.haveBase = *st, true
		}
	}
	return nil
}

// pcapExpr is the kernel filter of filter.go as a libpcap expression,
// minus the length checks: here the filter only sheds noise, and user
// space decides. libpcap's "inbound" drops outgoing packets, "ifindex"
// selects interfaces; other hosts' packets are dropped in user space.
func pcapExpr(span encoding.Span, ifindexes []int) string {
	if len(ifindexes) == 0 {
		return "less 0" // nothing
	}
	ifs := make([]string, len(ifindexes))
	for i, x := range ifindexes {
		ifs[i] = fmt.Sprintf("ifindex %d", x)
	}
	return fmt.Sprintf("inbound and link[10] == 0 and (%s) and ("+
		"(ip and ip[0] & 0xf >= 5 and ip[6:2] & 0x3fff == 0 and ("+
		"(udp and udp dst portrange %[2]d-%[3]d) or "+
		"(tcp and tcp dst portrange %[2]d-%[3]d and tcp[13] & 0x12 == 2))) or "+
		"(ip6 and ip6[42:2] >= %[2]d and ip6[42:2] <= %[3]d and ("+
		"ip6[6] == 17 or (ip6[6] == 6 and ip6[53] & 0x12 == 2))))",
		strings.Join(ifs, " or "), span.Base, span.Last())
}

func (s *pcapSource) counters() (matched, dropped uint64) {
	if st, err := s.h.Stats(); err == nil && s.haveBase {
		s.matched = uint64(uint32(st.PacketsReceived) - uint32(s.base.PacketsReceived))
		s.dropped = uint64(uint32(st.PacketsDropped) - uint32(s.base.PacketsDropped))
	}
	return s.matched, s.dropped
}

func (s *pcapSource) close() { s.h.Close() }
