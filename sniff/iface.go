package sniff

import (
	"net/netip"
	"slices"
)

// Link is a network interface as the capture's interface rule sees it.
type Link struct {
	Index    int
	Name     string
	Up       bool
	Loopback bool
	// Addrs are the interface's addresses. Routable says whether one of
	// them has global or site scope: a link-local address does not
	// count, since every IPv6 interface has one, and container veths
	// and bridge ports have nothing else.
	Addrs    []netip.Prefix
	Routable bool
}

// Knocks reports whether a capture for c reads knock packets arriving on
// l. This is the one rule every capture follows (and doctor reports): an
// interface named in Interfaces is captured; a loopback interface is
// captured with Loopback; with no interface named, every interface with
// a routable address is. Whether the interface is up does not matter: a
// down interface is captured as soon as it comes up.
func (c *Config) Knocks(l Link) bool {
	switch {
	case slices.Contains(c.Interfaces, l.Name):
		return true
	case l.Loopback:
		return c.Loopback
	default:
		return len(c.Interfaces) == 0 && l.Routable
	}
}

// TriggersOn reports whether a capture for c reads trigger packets on l:
// an interface named in Inside, or, with none named, every interface
// with a routable address but loopback. Without Triggers it is false.
func (c *Config) TriggersOn(l Link) bool {
	if len(c.Triggers) == 0 {
		return false
	}
	return slices.Contains(c.Inside, l.Name) || len(c.Inside) == 0 && l.Routable && !l.Loopback
}
