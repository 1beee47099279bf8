package firewall

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/cipherknock/cipherknock/ports"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The grants of the iptables backend live in two ipset sets of type
// hash:ip,port, one per address family. An entry is source address,
// protocol and port ("198.51.100.7,tcp:22"), so a single rule
// "-m set --match-set NAME src,dst" matches a packet's source address,
// protocol and destination port at once. Each entry carries its own kernel
// timeout: the kernel removes it when the grant ends, whether or not the
// daemon still runs.
const (
	ipsetSet4 = IPTablesSet4
	ipsetSet6 = IPTablesSet6
	ipsetType = "hash:ip,port"

	// ipsetDefaultTimeout is the set's default entry timeout in seconds.
	// Every grant brings its own; the default only makes the set one
	// with timeouts, and bounds an entry an operator adds by hand.
	ipsetDefaultTimeout = 300
	// ipsetMaxTimeout is the largest timeout the kernel keeps in
	// milliseconds without overflow (UINT_MAX/1000 seconds, ~49 days).
	ipsetMaxTimeout = math.MaxUint32 / 1000
)

// ipsetFamily is what the backend needs to know about one family's set.
type ipsetFamily struct {
	set    string
	family uint8 // unix.AF_INET or unix.AF_INET6
}

var (
	ipsetV4 = ipsetFamily{ipsetSet4, unix.AF_INET}
	ipsetV6 = ipsetFamily{ipsetSet6, unix.AF_INET6}
)

// ipsetCheck tells whether the kernel speaks the ipset netlink protocol,
// which it does once the ip_set module is loaded.
func ipsetCheck(h *netlink.Handle) error {
	_, _, err := h.IpsetProtocol()
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("ipset needs CAP_NET_ADMIN (run as root): %w", err)
	case err != nil:
		return fmt.Errorf("ip_set kernel module not available: %w", err)
	}
	return nil
}

// ipsetState reports whether f's set exists and whether it is the set the
// backend would create: hash:ip,port of the right family, with timeouts.
func ipsetState(h *netlink.Handle, f ipsetFamily) (exists, ok bool, err error) {
	var res *netlink.IPSetResult
	err = ipsetCall(func() (err error) {
		res, err = h.IpsetList(f.set)
		return err
	})
	if errors.Is(err, unix.ENOENT) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("ipset list %s: %w", f.set, err)
	}
	ok = res.TypeName == ipsetType && res.Family == f.family && res.Timeout != nil
	return true, ok, nil
}

// ipsetCreate creates f's set. It fails if a set of that name exists.
func ipsetCreate(h *netlink.Handle, f ipsetFamily) error {
	timeout := uint32(ipsetDefaultTimeout)
	opts := netlink.IpsetCreateOptions{
		Family:  f.family,
		Timeout: &timeout,
		// Revision 1 has every feature a grant needs; the kernel reports
		// the header attributes of later revisions (bucket size, hash
		// seed), which the netlink package logs as unknown on each list.
		Revision: 1,
	}
	err := ipsetCall(func() error { return h.IpsetCreate(f.set, ipsetType, opts) })
	if err != nil {
		return fmt.Errorf("ipset create %s %s: %w", f.set, ipsetType, err)
	}
	return nil
}

// ipsetDestroy destroys f's set if it exists. The kernel refuses while a
// rule still references it.
func ipsetDestroy(h *netlink.Handle, f ipsetFamily) error {
	err := ipsetCall(func() error { return h.IpsetDestroy(f.set) })
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("ipset destroy %s: %w", f.set, err)
}

// ipsetProto maps a grant's protocol to its IP protocol number.
func ipsetProto(p ports.Proto) (uint8, error) {
	switch p {
	case ports.TCP:
		return unix.IPPROTO_TCP, nil
	case ports.UDP:
		return unix.IPPROTO_UDP, nil
	}
	return 0, fmt.Errorf("unknown protocol %d", p)
}

// ipsetEntry builds the entry for g and picks its family. The timeout is
// rounded up to whole seconds: a zero timeout would make the entry
// permanent, which a grant must never be.
func ipsetEntry(g Grant, withTimeout bool) (ipsetFamily, *netlink.IPSetEntry, error) {
	addr := g.Addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return ipsetFamily{}, nil, errors.New("grant without an address")
	}
	if g.Port == 0 {
		return ipsetFamily{}, nil, errors.New("grant for port 0")
	}
	proto, err := ipsetProto(g.Proto)
	if err != nil {
		return ipsetFamily{}, nil, err
	}
	f := ipsetV4
	if addr.Is6() {
		f = ipsetV6
	}
	port := g.Port
	e := &netlink.IPSetEntry{
		IP:       net.IP(addr.AsSlice()),
		Protocol: &proto,
		Port:     &port,
		// Without NLM_F_EXCL the kernel treats an entry that is already
		// there as success and overwrites its extensions, the timeout
		// among them: a repeated grant refreshes and never duplicates,
		// and a revoke of an absent entry is not an error.
		Replace: true,
	}
	if withTimeout {
		if g.Timeout <= 0 {
			return ipsetFamily{}, nil, fmt.Errorf("grant with timeout %v", g.Timeout)
		}
		secs := (g.Timeout + time.Second - 1) / time.Second
		t := uint32(min(secs, ipsetMaxTimeout))
		e.Timeout = &t
	}
	return f, e, nil
}

// ipsetGrants lists f's entries as grants with the time the kernel says
// they have left.
func ipsetGrants(h *netlink.Handle, f ipsetFamily, dst []Grant) ([]Grant, error) {
	var res *netlink.IPSetResult
	err := ipsetCall(func() (err error) {
		res, err = h.IpsetList(f.set)
		return err
	})
	if err != nil {
		return dst, fmt.Errorf("ipset list %s: %w", f.set, err)
	}
	for _, e := range res.Entries {
		addr, ok := netip.AddrFromSlice(e.IP)
		if !ok || e.Port == nil || e.Protocol == nil {
			continue
		}
		var proto ports.Proto
		switch *e.Protocol {
		case unix.IPPROTO_TCP:
			proto = ports.TCP
		case unix.IPPROTO_UDP:
			proto = ports.UDP
		default:
			continue // not a grant: someone else's entry
		}
		g := Grant{Addr: addr.Unmap(), Proto: proto, Port: *e.Port}
		if e.Timeout != nil {
			g.Timeout = time.Duration(*e.Timeout) * time.Second
		}
		dst = append(dst, g)
	}
	return dst, nil
}

// ipsetCall runs fn and turns a panic into an error. The netlink package
// asserts that every failure of an ipset request is an errno, and panics
// on the few that are not (a malformed or foreign reply): a daemon must
// report that, not die of it.
func ipsetCall(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("netlink: %v", r)
		}
	}()
	return fn()
}
