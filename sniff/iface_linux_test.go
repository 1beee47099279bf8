package sniff

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/cipherknock/cipherknock/internal/nstest"
)

// TestLinks: the interface rule sees an address of global or site scope
// as routable, and a link-local one (IPv6 fe80::/10, or IPv4 with scope
// link) or loopback's host-scope one as not; ip(8) is the oracle for the
// flags and addresses.
func TestLinks(t *testing.T) {
	ns := nstest.New(t, "links")
	for _, n := range []string{"g0", "ll0", "ll4"} {
		ns.Run("ip", "link", "add", n, "type", "veth", "peer", "name", n+"p")
	}
	ns.Run("ip", "addr", "add", "198.18.8.1/24", "dev", "g0")
	ns.Run("ip", "link", "set", "g0", "up")
	ns.Run("ip", "addr", "add", "fe80::8/64", "dev", "ll0", "nodad")
	ns.Run("ip", "addr", "add", "169.254.8.1/16", "dev", "ll4", "scope", "link")
	var ls []Link
	if err := ns.Do(func() (err error) { ls, err = Links(); return err }); err != nil {
		t.Fatal(err)
	}
	by := map[string]Link{}
	for _, l := range ls {
		if l.Index <= 0 {
			t.Errorf("%s: index %d", l.Name, l.Index)
		}
		by[l.Name] = l
	}
	if l := by["lo"]; !l.Loopback || !l.Up || l.Routable || !slices.Contains(l.Addrs, netip.MustParsePrefix("127.0.0.1/8")) {
		t.Errorf("lo: %+v", l)
	}
	if l := by["g0"]; l.Loopback || !l.Up || !l.Routable || !slices.Contains(l.Addrs, netip.MustParsePrefix("198.18.8.1/24")) {
		t.Errorf("g0: %+v", l)
	}
	if l := by["ll0"]; l.Up || l.Routable || !slices.Contains(l.Addrs, netip.MustParsePrefix("fe80::8/64")) {
		t.Errorf("ll0: %+v", l)
	}
	if l := by["ll4"]; l.Routable || len(l.Addrs) != 1 {
		t.Errorf("ll4: %+v", l)
	}
	if l := by["g0p"]; l.Routable || len(l.Addrs) != 0 {
		t.Errorf("g0p: %+v", l)
	}
}
