// Package sniff captures knock packets below the firewall: UDP datagrams
// and TCP SYNs whose destination port lies in the knock span (SPEC.md §9),
// over IPv4 and IPv6, and hands each one to the assembler as a Packet
// (SPEC.md §10.2: source address, destination port, transport).
//
// Three ways to see them: a packet socket (Sniffer, below: the default);
// an NFLOG group that the daemon's own firewall objects log the span to
// (NFLogCapture, nflog_linux.go); and the kernel's packet-log lines, from
// /dev/kmsg, a followed file or standard input (LogCapture and LogLine,
// logcapture.go and logline.go). The last two need no raw socket and see
// a packet only after the host's own earlier rules; all three apply the
// same rules to what they accept and allocate nothing per packet. All
// three are a Capture, the one interface the daemon runs, and choose
// their interfaces by one rule, Config.Knocks (iface.go), which
// cipherknockd doctor reports by too.
//
// # Capture
//
// One AF_PACKET socket (SOCK_DGRAM, so every link type looks the same
// from the IP header on) listens on all interfaces, with a TPACKET_V2
// receive ring mapped into memory and read without a system call while
// frames are waiting (capture_afpacket.go). The
// interfaces to capture on are chosen with an allow-set of interface
// indexes that follows netlink link and address updates, so interfaces
// that go down and come back, get a new address or appear after start are
// captured without reopening anything. By default the set is every
// interface that has an address other than a link-local one, loopback
// excepted (Config.Knocks says it exactly).
//
// A classic BPF program in the kernel (filter.go) drops outgoing packets,
// packets from interfaces outside the set and everything that is not a
// knock packet, and cuts the rest to their headers. Interface selection is
// in the kernel filter, so a flood on an interface that is not captured
// costs nothing in user space; the filter is swapped whenever the set
// changes. Every packet read is checked again in user space (interface,
// headers, span, and the direction the ring reports), without allocating.
// The re-check reads the IP and transport headers in place with plain
// loads (decode.go), no packet-decoding library on the per-packet path;
// differential tests and a fuzz target hold it to the gopacket-based
// decoder it replaced, kept as a test-only reference (decode_ref_test.go).
// The socket receives nothing until it has a filter that drops all and its
// ring, so every packet read has passed a capture filter.
//
// A knock packet is as SPEC.md §10.2 defines it: UDP, or TCP with SYN set
// and ACK clear, to a port of the span, not a fragment (an IPv4 first
// fragment counts as one), not sent by this host. IPv6 packets with
// extension headers are ignored, as §10.2 allows; IPv4 options are
// accepted.
//
// # Port triggering
//
// With Config.Triggers the same socket and filter also capture connection
// attempts to the trigger ports (TCP SYN without ACK, or a UDP datagram,
// under the same header rules), delivered as Kind Trigger with both
// addresses, for package trigger. A gateway captures those it receives on
// its inside interfaces (Config.Inside), forwarded ones included; a host
// that triggers for itself (Config.Outgoing) captures those it sends, and
// no received ones. The kernel filter checks the direction: its prologue
// stores it in a scratch slot, and the body then passes a sent packet
// only for a trigger port and a received one only for a knock (host) or
// for either (gateway). Trigger ports lie outside the span, so user space
// tells the kinds apart by the port alone and checks each kind's
// interfaces. Trigger capture needs the AF_PACKET source.
//
// Built with the pcap tag (and cgo, and libpcap 1.10 or later), packets
// come from libpcap's "any" device instead, in immediate mode, with the
// same allow-set, re-check and API; see capture_pcap.go.
//
// # Latency
//
// The ring is TPACKET_V2: each frame is handed to the reader as soon as
// the kernel writes it. TPACKET_V3 hands over whole blocks, when they fill
// or when their retire timer expires; gopacket's default of 64 ms per
// block is where other port knocking daemons lose 50-100 ms.
// BenchmarkLatency measures the three sources across a veth pair, from the
// sender's write to the callback; BenchmarkDecode and BenchmarkPacketPath
// show that the per-packet path allocates nothing. README's Performance
// section gives the figures, dated and with the machine.
//
// # Floods
//
// The kernel filter sheds every packet that is not a knock packet, before
// it reaches the ring. Knock-shaped packets go through a ring of 32,736
// frames (6 MiB); if the reader still falls behind, the kernel drops
// packets at random (Stats.Dropped) and keeps delivering the next ones,
// so the capture never goes deaf. A reader that has caught up with a
// sustained flood naps before its next read instead of waking for every
// frame, napMin up to napMax, so that each wakeup finds a batch waiting
// (README gives what that saved in the side-by-side harness); a short
// burst such as a knock is read without naps. RunBatch hands packets on
// in batches of up to batchSize, ended when the ring is empty and before a
// nap, and the reader's path has no atomic read-modify-write per packet
// (counters are published per batch, frames given back with a release
// store): under a flood of spoofed sources each packet's store to the
// receiver's table misses the cache, and a full barrier after it waits for
// that store.
// TestFlood sends 200000 UDP packets with spoofed sources, three quarters
// of them to the span, with 100 legitimate ones among them: all must be
// delivered, and with a callback slowed to 20 µs a packet the kernel drops
// some and legitimate packets still come through in proportion.
package sniff
