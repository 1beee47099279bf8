// Package sniff captures knock packets below the firewall: UDP datagrams
// and TCP SYNs whose destination port lies in the knock span (SPEC.md §9),
// over IPv4 and IPv6, and hands each one to the assembler as a Packet
// (SPEC.md §10.2: source address, destination port, transport).
//
// # Capture
//
// One AF_PACKET socket (SOCK_DGRAM, so every link type looks the same
// from the IP header on) listens on all interfaces, through
// github.com/gopacket/gopacket/afpacket and its memory-mapped ring. The
// interfaces to capture on are chosen with an allow-set of interface
// indexes that follows netlink link and address updates, so interfaces
// that go down and come back, get a new address or appear after start are
// captured without reopening anything. By default the set is every
// interface that has an address, loopback excepted.
//
// A classic BPF program in the kernel (filter.go) drops outgoing packets,
// packets from interfaces outside the set and everything that is not a
// knock packet, and cuts the rest to their headers. Interface selection is
// in the kernel filter, so a flood on an interface that is not captured
// costs nothing in user space; the filter is swapped whenever the set
// changes. Every packet read is checked again in user space (interface,
// headers, span) with gopacket's DecodingLayerParser, without allocating.
// The kernel alone checks the packet direction: afpacket does not report
// it, so the socket drops all packets until the filter is attached and the
// ring is emptied before reading starts.
//
// # Latency and floods
//
// The ring is TPACKET_V2: each frame is handed to the reader as soon as
// the kernel writes it. TPACKET_V3 hands over whole blocks, when they
// fill or when their retire timer (1 ms at best, a jiffy in practice)
// expires, and gopacket's default of 64 ms per block is where other port
// knocking daemons lose 50-100 ms.
//
// Under a flood the kernel filter sheds every packet that is not aimed at
// the span. Packets aimed at the span go through a ring of 16384 frames
// and a per-packet path of about a hundred nanoseconds; if the reader
// still falls behind, the kernel drops packets (counted in Stats.Dropped)
// and keeps delivering the next ones, so the capture never goes deaf.
package sniff
