package sniff

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// Capture is a packet capture, as the daemon runs it: the AF_PACKET
// Sniffer (New), NFLogCapture (NewNFLog) or LogCapture (NewLogCapture).
// Packets are queued from the moment it is made, until Run reads them.
type Capture interface {
	// Run calls fn, from this goroutine, for each packet until ctx is
	// done, and returns nil when ctx ended it. fn must not keep p, which
	// is reused. Run can be called once; it releases the capture when it
	// returns.
	Run(ctx context.Context, fn func(p *Packet)) error
	// Stats returns the counters so far; it is safe to call at any time.
	Stats() Stats
	// Close releases a capture whose Run was never called; once Run has
	// started it does nothing.
	Close() error
}

// BatchCapture is a Capture that can hand packets on in batches, so that
// the receiver's per-batch work (a lock, a clock read) is not repeated for
// every packet of a flood.
type BatchCapture interface {
	Capture
	// RunBatch is Run with fn called for batches of packets in the order
	// they were read. fn must not keep ps, which is reused.
	RunBatch(ctx context.Context, fn func(ps []Packet)) error
}

var _ BatchCapture = (*Sniffer)(nil)

var (
	_ Capture = (*Sniffer)(nil)
	_ Capture = (*NFLogCapture)(nil)
	_ Capture = (*LogCapture)(nil)
)

// Packet is one knock packet as the assembler needs it (SPEC.md §10.2),
// or one connection attempt to a trigger port (Kind Trigger). Run reuses
// one Packet for every call of its callback, so the callback must copy
// what it keeps.
type Packet struct {
	Kind      Kind
	Src       netip.Addr  // source address as in the IP header
	Dst       netip.Addr  // destination address as in the IP header
	DstPort   uint16      // destination port: in the span, or a trigger port
	Transport ports.Proto // how the packet came: UDP datagram or TCP SYN
	Ifindex   int         // interface it arrived on (left by, if outgoing)
	Time      time.Time   // kernel receive time
}

// Kind says why a packet was captured.
type Kind uint8

const (
	// Knock: a packet to a port of the knock span, received.
	Knock Kind = iota
	// Trigger: a TCP SYN or UDP datagram to a trigger port (any
	// protocol: the trigger engine checks it), received on an inside
	// interface, or sent by the host itself with Config.Outgoing.
	Trigger
)

func (k Kind) String() string {
	if k == Trigger {
		return "trigger"
	}
	return "knock"
}

// Config says what to capture.
type Config struct {
	// Span is the knock span; only packets to its ports are captured.
	Span encoding.Span

	// Interfaces names the interfaces to capture on. Empty means every
	// interface that has an address other than a link-local one,
	// loopback excepted. Names are
	// resolved as interfaces come and go, so a name may refer to an
	// interface that does not exist yet.
	Interfaces []string

	// Loopback adds loopback interfaces to the capture. Naming a loopback
	// interface in Interfaces asks for it too.
	Loopback bool

	// Triggers lists the outbound ports of port triggering: connection
	// attempts to them are captured as Kind Trigger. They must lie
	// outside the span. A range's protocol is not matched: a packet of
	// either protocol is captured, and the trigger engine checks it.
	Triggers []ports.Range

	// Inside names the interfaces trigger packets are captured on, as
	// Interfaces does for knocks (empty: every interface with an
	// address other than a link-local one).
	Inside []string

	// Outgoing captures the trigger packets this host sends (port
	// triggering for the host itself) instead of those it receives (a
	// gateway, for the hosts behind it).
	Outgoing bool
}

// Stats counts packets. Once the capture is quiet, Matched = Read +
// Dropped and Read = Delivered + Rejected.
type Stats struct {
	// Matched counts the packets the kernel filter accepted (knock-shaped
	// packets on a captured interface), including dropped ones.
	Matched uint64
	// Dropped counts accepted packets the kernel lost because the ring
	// was full: the reader fell behind.
	Dropped uint64
	// Read counts packets taken from the ring.
	Read uint64
	// Delivered counts packets handed to the callback.
	Delivered uint64
	// Rejected counts packets the user-space re-check refused: packets
	// that raced a filter change, or malformed IPv4 options.
	Rejected uint64
	// Malformed counts what the log-based captures (capture = nflog and
	// log) dropped as unreadable: netlink messages without a packet,
	// lines that carry the prefix but not a knock packet. Zero for
	// AF_PACKET, whose refusals are in Rejected.
	Malformed uint64
	// Interfaces is the number of interfaces captured right now.
	Interfaces int
}

// ErrUnsupported is returned by New on systems without AF_PACKET.
var ErrUnsupported = errors.New("sniff: packet capture is only supported on Linux")
