package firewall

// NAT (nat_linux.go) forwards ports of a gateway that does NAT to inside
// hosts, one remote address at a time and for a limited time: it carries
// out the port-triggering decisions of package trigger, where an inbound
// connection from a remote server to the gateway's own address must reach
// the inside host that triggered it. Like a grant, each forward expires in
// the kernel (SPEC.md §11), whether or not the daemon still runs.
//
// It keeps everything in one table of its own, next to the grant
// backends' objects:
//
//	table inet cipherknock-nat {
//		map forward4 {
//			type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
//			flags timeout
//		}
//		map forward6 {
//			type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service
//			flags timeout
//		}
//		chain prerouting {
//			type nat hook prerouting priority dstnat - 10; policy accept;
//			[iifname "eth0"] meta nfproto ipv4 fib daddr type local
//				ct mark set ct mark | 0x20000000
//				dnat ip to ip saddr . meta l4proto . th dport map @forward4
//			(the same for ip6 and forward6; one pair per NATOptions.Outside interface)
//		}
//		chain forward {
//			type filter hook forward priority filter - 10; policy accept;
//			ct mark & 0x20000000 == 0x20000000 meta mark set meta mark | 0x20000000 accept
//		}
//	}
//
// (That is how nft prints the rule. In the kernel the map lookup comes
// first: a packet whose source address, protocol and destination port
// are not in the map ends the rule there and is left alone; a packet that
// is has its connection marked and its destination rewritten to the
// value the lookup returned.)
//
// A forward is one map element: the key is the remote address, protocol
// and the gateway's port, the value the inside address and port, and the
// element carries its own timeout. "fib daddr type local" restricts it to packets addressed to the
// gateway itself, so traffic routed through the gateway to other hosts is
// never redirected.
//
// Conntrack does the rest: only the first packet of a connection meets a
// nat chain, and the connection keeps its translation until it ends, so a
// connection opened while the forward was there outlives the forward, as
// a granted connection outlives its grant. The DNAT rule marks that
// connection (ct mark bit NATOptions.Mark); the forward chain accepts the
// marked connection's packets in both directions and sets the same bit in
// the packet mark. As with the nftables backend, an accept in our chain
// does not override a host chain with policy drop on the same hook; a host
// whose forward chain drops by default accepts our connections with
//
//	meta mark & 0x20000000 == 0x20000000 accept                      # nftables
//	iptables -A FORWARD -m mark --mark 0x20000000/0x20000000 -j ACCEPT
//
// The outbound direction (masquerading inside hosts behind the gateway's
// address) is the gateway's own NAT configuration, not ours.
//
// One caveat of conntrack: a UDP packet from the remote that arrived
// before the forward (and was not translated) leaves a conntrack entry
// for its address/port pair that later packets of the same pair follow for
// as long as it lives (30 s by default). TCP connections use a new source
// port each time and are not affected.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cipherknock/cipherknock/ports"
)

// Names of the objects the NAT forwarder owns.
const (
	NATTable        = "cipherknock-nat" // inet family
	NATPrerouting   = "prerouting"
	NATForwardChain = "forward"
	NATMap4         = "forward4"
	NATMap6         = "forward6"
	// NATPriority is the prerouting chain's priority: dstnat - 10, before
	// the host's own DNAT rules.
	NATPriority = -110
	// NATForwardPriority is the forward chain's: filter - 10.
	NATForwardPriority = -10
)

// DefaultNATMark is the conntrack and packet mark bit of forwarded
// connections when NATOptions.Mark is zero. It differs from the nftables
// backend's grant bit so that a host can tell the two apart.
const DefaultNATMark uint32 = 0x20000000

// maxNATTimeout bounds a forward's timeout; the kernel keeps element
// timeouts in jiffies and refuses what overflows them.
const maxNATTimeout = 49 * 24 * time.Hour

// Forward is one forward: Remote may connect to Port (protocol Proto) of
// the gateway's own address, and reaches To, until it expires.
type Forward struct {
	Remote  netip.Addr
	Proto   ports.Proto
	Port    uint16         // the gateway's port
	To      netip.AddrPort // the inside host and its port
	Timeout time.Duration  // time left; on List, what the kernel reports
}

func (f Forward) String() string {
	return fmt.Sprintf("%s -> %s/%d -> %s", f.Remote, f.Proto, f.Port, f.To)
}

// NATOptions configure a NAT forwarder.
type NATOptions struct {
	// Outside lists the interfaces forwarded connections may arrive on;
	// empty means any interface.
	Outside []string
	// Mark is the mark bit of forwarded connections (DefaultNATMark when
	// zero). It must be a single bit.
	Mark uint32
	// NetNS, when non-zero, is a file descriptor of the network namespace
	// to work in (tests); zero means the caller's namespace.
	NetNS int
}

// Map keys are remote address . protocol . port, each field padded to the
// kernel's 4-byte registers; values are inside address . port. Ports are
// in network byte order.
const (
	natKey4Len  = 4 + 4 + 4
	natKey6Len  = 16 + 4 + 4
	natData4Len = 4 + 4
	natData6Len = 16 + 4
)

func natProto(p ports.Proto) (byte, error) {
	switch p {
	case ports.TCP:
		return 6, nil
	case ports.UDP:
		return 17, nil
	}
	return 0, fmt.Errorf("unknown protocol %d", p)
}

// natKey returns the map key of a forward from remote to the gateway's
// proto/port, and whether it belongs in the IPv6 map. IPv4-mapped
// addresses count as IPv4.
func natKey(remote netip.Addr, proto ports.Proto, port uint16) (key []byte, v6 bool, err error) {
	remote = remote.Unmap()
	switch {
	case !remote.IsValid():
		return nil, false, errors.New("forward without a remote address")
	case remote.Zone() != "":
		return nil, false, errors.New("forward with a zoned address")
	case port == 0:
		return nil, false, errors.New("forward for port 0")
	}
	p, err := natProto(proto)
	if err != nil {
		return nil, false, err
	}
	ra := remote.AsSlice()
	n := len(ra)
	key = make([]byte, n+8)
	copy(key, ra)
	key[n] = p
	binary.BigEndian.PutUint16(key[n+4:], port)
	return key, remote.Is6(), nil
}

// natVal returns the map value that leads to the inside host to, which
// must be of the family v6 says.
func natVal(to netip.AddrPort, v6 bool) ([]byte, error) {
	a := to.Addr().Unmap()
	switch {
	case !a.IsValid():
		return nil, errors.New("forward without an inside address")
	case a.Zone() != "":
		return nil, errors.New("forward with a zoned address")
	case a.Is6() != v6:
		return nil, errors.New("forward between address families")
	case to.Port() == 0:
		return nil, errors.New("forward to port 0")
	}
	ta := a.AsSlice()
	val := make([]byte, len(ta)+4)
	copy(val, ta)
	binary.BigEndian.PutUint16(val[len(ta):], to.Port())
	return val, nil
}

// parseNATElement is the inverse of natKey and natVal.
func parseNATElement(key, val []byte) (Forward, bool) {
	var n int
	switch {
	case len(key) == natKey4Len && len(val) == natData4Len:
		n = 4
	case len(key) == natKey6Len && len(val) == natData6Len:
		n = 16
	default:
		return Forward{}, false
	}
	remote, _ := netip.AddrFromSlice(key[:n])
	to, _ := netip.AddrFromSlice(val[:n])
	f := Forward{
		Remote: remote,
		Port:   binary.BigEndian.Uint16(key[n+4:]),
		To:     netip.AddrPortFrom(to, binary.BigEndian.Uint16(val[n:])),
	}
	switch key[n] {
	case 6:
		f.Proto = ports.TCP
	case 17:
		f.Proto = ports.UDP
	default:
		return Forward{}, false
	}
	return f, f.Port != 0 && f.To.Port() != 0
}
