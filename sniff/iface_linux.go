package sniff

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Links lists the interfaces of the calling thread's network namespace
// as the capture sees them.
func Links() ([]Link, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("sniff: netlink: %w", err)
	}
	defer h.Close()
	ls, _, err := links(h)
	return ls, err
}

// links lists the interfaces through h, and the host's addresses (the
// destinations a knock may have).
func links(h *netlink.Handle) ([]Link, []netip.Addr, error) {
	nls, err := h.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("sniff: list interfaces: %w", err)
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("sniff: list addresses: %w", err)
	}
	out := make([]Link, len(nls))
	at := make(map[int]int, len(nls)) // ifindex → position in out
	for i, l := range nls {
		a := l.Attrs()
		out[i] = Link{Index: a.Index, Name: a.Name, Up: a.Flags&net.FlagUp != 0, Loopback: a.Flags&net.FlagLoopback != 0}
		at[a.Index] = i
	}
	local := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		local = append(local, ip)
		i, ok := at[a.LinkIndex]
		if !ok {
			continue
		}
		if a.IPNet != nil {
			ones, _ := a.IPNet.Mask.Size()
			out[i].Addrs = append(out[i].Addrs, netip.PrefixFrom(ip, ones))
		}
		if a.Scope == unix.RT_SCOPE_UNIVERSE || a.Scope == unix.RT_SCOPE_SITE {
			out[i].Routable = true
		}
	}
	return out, local, nil
}
