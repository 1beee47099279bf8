package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/cipherknock/cipherknock/internal/namespace"
)

// netNS is one named network namespace made for a run.
type netNS struct{ namespace.Named }

var nsSeq atomic.Int64

func newNS(role string) (*netNS, error) {
	n, err := namespace.Add(fmt.Sprintf("ck-bench-%s-%d-%d", role, os.Getpid(), nsSeq.Add(1)))
	if err != nil {
		return nil, err
	}
	return &netNS{*n}, nil
}

func (n *netNS) del()                             { n.Delete() }
func (n *netNS) command(argv ...string) *exec.Cmd { return n.Command(argv...) }
func (n *netNS) run(argv ...string) (string, error) {
	return n.Run(argv...)
}
func (n *netNS) do(fn func() error) error { return n.Do(fn) }

// The fixed topology: a server namespace holding a bridge br0 with the
// server's address, and two namespaces plugged into that bridge by veth
// pairs, the client (with many addresses, one per knock) and the noise
// source. Everything is in 198.18.0.0/23 (RFC 2544's benchmarking range);
// spoofed noise comes from 10.0.0.0/8, for which the server has no route,
// so nothing it might answer leaves it.
var (
	srvAddr   = netip.MustParseAddr("198.18.0.1")
	noiseAddr = netip.MustParseAddr("198.18.0.3")
	lanPrefix = netip.MustParsePrefix("198.18.0.0/23")
)

const (
	servicePort = 8080 // the protected TCP service
	srvIf       = "br0"
	nClientAddr = 250
)

type topology struct {
	srv, cli, noise *netNS
	srvMAC          net.HardwareAddr
	noiseMAC        net.HardwareAddr
	noisePort       string // the server-side veth of the noise link
	cliAddrs        []netip.Addr
	cliLinkIndex    int
	cliNL           *netlink.Handle
	srvNL           *netlink.Handle
}

var linkSeq atomic.Int64

func newTopology() (t *topology, err error) {
	t = &topology{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.srv, err = newNS("srv"); err != nil {
		return nil, err
	}
	if t.cli, err = newNS("cli"); err != nil {
		return nil, err
	}
	if t.noise, err = newNS("noise"); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, linkSeq.Add(1))
	vc, vn := "ckbc"+id, "ckbn"+id
	t.noisePort = vn
	steps := [][]string{
		{"ip", "link", "add", vc, "netns", t.srv.Name, "type", "veth", "peer", "name", "eth0", "netns", t.cli.Name},
		{"ip", "link", "add", vn, "netns", t.srv.Name, "type", "veth", "peer", "name", "eth0", "netns", t.noise.Name},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	batch := func(n *netNS, lines ...string) error {
		cmd := exec.Command("ip", "-n", n.Name, "-batch", "-")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ip -n %s -batch: %v: %s", n.Name, err, out)
		}
		return nil
	}
	for _, n := range []*netNS{t.srv, t.cli, t.noise} {
		// No IPv6: its router and neighbour solicitations would be
		// stray packets in the measurements.
		if _, err := n.run("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return nil, err
		}
	}
	if err := batch(t.srv,
		"link add br0 type bridge",
		"link set "+vc+" master br0",
		"link set "+vn+" master br0",
		"addr add "+srvAddr.String()+"/23 dev br0",
		"link set "+vc+" up",
		"link set "+vn+" up",
		"link set br0 up",
	); err != nil {
		return nil, err
	}
	lines := []string{}
	a := netip.MustParseAddr("198.18.1.1")
	for i := 0; i < nClientAddr; i++ {
		t.cliAddrs = append(t.cliAddrs, a)
		lines = append(lines, "addr add "+a.String()+"/23 dev eth0")
		a = a.Next()
	}
	lines = append(lines, "link set eth0 up")
	if err := batch(t.cli, lines...); err != nil {
		return nil, err
	}
	if err := batch(t.noise, "addr add "+noiseAddr.String()+"/23 dev eth0", "link set eth0 up"); err != nil {
		return nil, err
	}
	if t.srvNL, err = nlHandle(t.srv); err != nil {
		return nil, err
	}
	if t.cliNL, err = nlHandle(t.cli); err != nil {
		return nil, err
	}
	br, err := t.srvNL.LinkByName("br0")
	if err != nil {
		return nil, err
	}
	t.srvMAC = br.Attrs().HardwareAddr
	ce, err := t.cliNL.LinkByName("eth0")
	if err != nil {
		return nil, err
	}
	t.cliLinkIndex = ce.Attrs().Index
	nh, err := nlHandle(t.noise)
	if err != nil {
		return nil, err
	}
	ne, err := nh.LinkByName("eth0")
	nh.Close()
	if err != nil {
		return nil, err
	}
	t.noiseMAC = ne.Attrs().HardwareAddr
	// Resolve the server's address from the client once, so the first
	// knock does not pay for ARP.
	if _, err := t.cli.run("ping", "-c1", "-W1", srvAddr.String()); err != nil {
		// ping may be missing; the first knock then pays for ARP.
		_ = err
	}
	return t, nil
}

func nlHandle(n *netNS) (*netlink.Handle, error) {
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return netlink.NewHandleAt(h)
}

// useSource makes a the client's source address for new connections and
// datagrams to the server, for clients that cannot be told which to use.
func (t *topology) useSource(a netip.Addr) error {
	r := &netlink.Route{
		LinkIndex: t.cliLinkIndex,
		Dst:       &net.IPNet{IP: lanPrefix.Addr().AsSlice(), Mask: net.CIDRMask(lanPrefix.Bits(), 32)},
		Src:       a.AsSlice(),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  netlink.RouteProtocol(2), // kernel: replaces the connected route
	}
	return t.cliNL.RouteReplace(r)
}

// noiseArrived returns how many frames the server's bridge port has
// received from the noise namespace.
func (t *topology) noiseArrived() uint64 {
	l, err := t.srvNL.LinkByName(t.noisePort)
	if err != nil || l.Attrs().Statistics == nil {
		return 0
	}
	return l.Attrs().Statistics.RxPackets
}

func (t *topology) close() {
	if t.cliNL != nil {
		t.cliNL.Close()
	}
	if t.srvNL != nil {
		t.srvNL.Close()
	}
	for _, n := range []*netNS{t.noise, t.cli, t.srv} {
		if n != nil {
			n.del()
		}
	}
}
