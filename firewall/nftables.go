package firewall

// The nftables backend (nftables_linux.go) carries out SPEC.md §11's
// grants with kernel timeouts and drops protected ports silently (drop,
// never reject). It keeps everything in one table of its own:
//
//	table inet cipherknock {
//		set grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
//		set grants6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
//		chain input {
//			type filter hook input priority filter - 10; policy accept;
//			meta mark set meta mark & 0xefffffff
//			ct state established,related accept
//			meta iiftype loopback accept
//			ip saddr . meta l4proto . th dport @grants4 meta mark set meta mark | 0x10000000 accept
//			ip6 saddr . meta l4proto . th dport @grants6 meta mark set meta mark | 0x10000000 accept
//			meta l4proto tcp th dport 22 drop        # one rule per Options.Protect range
//		}
//	}
//
// Each grant is one set element with its own timeout, so the kernel
// removes it on time even when the daemon is gone: an expired element
// stops matching at once (lookups check the time; garbage collection
// only frees memory later). The established,related rule keeps a
// connection made during a grant alive after it; an accept in this chain
// only ends this chain, so that rule does no more than keep our own drops
// off established flows.
//
// # Living next to a host ruleset
//
// Every base chain on the input hook sees every packet, whatever table it
// is in, and a packet survives only if no chain drops it: an accept in our
// chain ends our chain, not the hook. So a grant cannot reach through a
// host's own chain with policy drop by itself, and inserting rules into
// the host's table would be editing objects we do not own (nftables jumps
// and set lookups cannot cross tables either).
//
// What we do instead: our chain runs first (priority filter - 10, that is
// -10; the host's filter chains and iptables-nft's INPUT use 0), clears a
// packet mark bit (Options.Mark, DefaultMark when zero) on every packet,
// and sets it on each packet that matches a grant, keeping the mark's
// other bits. So the bit, when a host chain after ours sees it, means
// "granted" and nothing else: a packet that came with it set (a mangle
// rule, tc, a local program's SO_MARK does not reach input) has lost it. A host whose own
// input chain drops by default accepts granted packets with one rule:
//
//	meta mark & 0x10000000 == 0x10000000 accept                 # nftables
//	iptables -A INPUT -m mark --mark 0x10000000/0x10000000 -j ACCEPT
//
// next to the usual "ct state established,related accept". A host whose
// input policy is accept needs nothing: our chain drops the protected
// ports (Options.Protect) of everyone without a grant. Packets arriving on
// the loopback interface are never dropped by us, so local clients of a
// protected service keep working. The mark is set on the input path only,
// after routing, so it does not steer the packet; pick another bit if the
// host already uses this one for something else.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cipherknock/cipherknock/ports"
)

// Names of the nftables objects the backend owns.
const (
	NFTablesTable    = "cipherknock" // inet family
	NFTablesChain    = "input"
	NFTablesSet4     = "grants4"
	NFTablesSet6     = "grants6"
	NFTablesPriority = -10 // filter - 10: before the usual filter chains
)

// DefaultMark is the packet mark bit set on granted packets when
// Options.Mark is zero.
const DefaultMark uint32 = 0x10000000

// IP protocol numbers as the kernel's meta l4proto reports them.
const (
	ipprotoTCP = 6
	ipprotoUDP = 17
)

func ipproto(p ports.Proto) (byte, error) {
	switch p {
	case ports.TCP:
		return ipprotoTCP, nil
	case ports.UDP:
		return ipprotoUDP, nil
	}
	return 0, fmt.Errorf("unknown protocol %d", p)
}

func protoFromIP(b byte) (ports.Proto, bool) {
	switch b {
	case ipprotoTCP:
		return ports.TCP, true
	case ipprotoUDP:
		return ports.UDP, true
	}
	return 0, false
}

// Set keys are the concatenation address . inet_proto . inet_service, each
// field padded to the kernel's 4-byte registers: 12 bytes for IPv4, 24 for
// IPv6. The port is in network byte order.
const (
	key4Len = 4 + 4 + 4
	key6Len = 16 + 4 + 4
)

// setKey returns the set element key for addr/proto/port and whether it
// belongs in the IPv6 set. IPv4-mapped IPv6 addresses count as IPv4,
// since that is how their packets arrive.
func setKey(addr netip.Addr, proto ports.Proto, port uint16) (key []byte, v6 bool, err error) {
	p, err := ipproto(proto)
	if err != nil {
		return nil, false, err
	}
	if !addr.IsValid() {
		return nil, false, errors.New("invalid address")
	}
	if port == 0 {
		return nil, false, errors.New("port 0")
	}
	addr = addr.Unmap()
	var a []byte
	if addr.Is4() {
		b := addr.As4()
		a = b[:]
	} else {
		b := addr.As16()
		a = b[:]
		v6 = true
	}
	key = make([]byte, len(a)+8)
	copy(key, a)
	key[len(a)] = p
	binary.BigEndian.PutUint16(key[len(a)+4:], port)
	return key, v6, nil
}

// parseSetKey is the inverse of setKey.
func parseSetKey(key []byte) (addr netip.Addr, proto ports.Proto, port uint16, ok bool) {
	var n int
	switch len(key) {
	case key4Len:
		addr = netip.AddrFrom4([4]byte(key[:4]))
		n = 4
	case key6Len:
		addr = netip.AddrFrom16([16]byte(key[:16]))
		n = 16
	default:
		return netip.Addr{}, 0, 0, false
	}
	proto, ok = protoFromIP(key[n])
	port = binary.BigEndian.Uint16(key[n+4:])
	return addr, proto, port, ok && port != 0
}
