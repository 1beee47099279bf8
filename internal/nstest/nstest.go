// Package nstest creates throwaway network namespaces joined by veth pairs,
// for tests that need a real kernel: real packets, real nftables, iptables
// and ipset. Everything it creates is removed by t.Cleanup, and nothing it
// does touches the namespace the test runs in.
//
// Tests that use it need root; RequireRoot skips them otherwise. With
// CIPHERKNOCK_STRICT=1 in the environment (.ci/run sets it) every such
// skip for a missing privilege, tool or kernel feature fails the test
// instead, so a suite run where everything is installed cannot pass by
// skipping.
package nstest

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/cipherknock/cipherknock/internal/namespace"
)

// StrictEnv names the environment variable that turns Skip into a
// failure when set to 1.
const StrictEnv = "CIPHERKNOCK_STRICT"

// Strict reports whether skips for a missing privilege or tool fail.
func Strict() bool { return os.Getenv(StrictEnv) == "1" }

// Skip skips t because the machine lacks what it needs (root, a command, a
// kernel feature), or fails it in strict mode. It is for missing
// prerequisites only: a failure of the thing tested is a failure.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (%s=1: a missing prerequisite fails)", msg, StrictEnv)
	}
	t.Skip(msg)
}

// RequireRoot skips t unless the test runs as root, and also when the ip
// command is missing.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root: creates network namespaces (run the suite as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		Skip(t, "needs the ip command from iproute2")
	}
}

// RequireTool skips t when a command the test drives is not installed.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Skip(t, "needs %s (install it: apt-get install %s)", n, n)
		}
	}
}

var seq atomic.Int64

// NS is one network namespace.
type NS struct {
	namespace.Named
	t testing.TB
}

// New creates a namespace with its loopback up. The name is unique to this
// process, so concurrent test runs do not collide.
func New(t testing.TB, role string) *NS {
	t.Helper()
	RequireRoot(t)
	named, err := namespace.Add(fmt.Sprintf("ck-%s-%d-%d", role, os.Getpid(), seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(named.Delete)
	return &NS{Named: *named, t: t}
}

// Run runs argv inside the namespace and fails the test on error. It
// returns the combined output.
func (n *NS) Run(argv ...string) string {
	n.t.Helper()
	out, err := n.Named.Run(argv...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// Try runs argv inside the namespace and returns its output and error.
func (n *NS) Try(argv ...string) (string, error) {
	out, err := n.Command(argv...).CombinedOutput()
	return string(out), err
}

// Handle opens a handle on the namespace, for libraries that take one
// (netlink.NewHandleAt, nftables.WithNetNSFd). The caller closes it.
func (n *NS) Handle() (netns.NsHandle, error) { return netns.GetFromName(n.Name) }

// Link is one side of a veth pair.
type Link struct {
	NS    *NS
	Name  string
	Addr4 netip.Addr
	Addr6 netip.Addr
}

var linkSeq atomic.Int64

// Connect joins a and b with a veth pair. net (0..255) picks the subnets:
// 198.18.net.0/24 from the benchmarking range of RFC 2544 and
// 2001:db8:net::/64 from the documentation range; a gets host 1, b host 2.
// IPv6 addresses skip duplicate address detection, so they work at once.
func Connect(a, b *NS, net int) (la, lb Link) {
	a.t.Helper()
	id := linkSeq.Add(1)
	ifa := fmt.Sprintf("cka%d", id)
	ifb := fmt.Sprintf("ckb%d", id)
	pfx4 := fmt.Sprintf("198.18.%d", net&0xff)
	if out, err := exec.Command("ip", "link", "add", ifa, "netns", a.Name, "type", "veth", "peer", "name", ifb, "netns", b.Name).CombinedOutput(); err != nil {
		a.t.Fatalf("veth: %v: %s", err, out)
	}
	la = Link{NS: a, Name: ifa, Addr4: netip.MustParseAddr(pfx4 + ".1"), Addr6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", net&0xff))}
	lb = Link{NS: b, Name: ifb, Addr4: netip.MustParseAddr(pfx4 + ".2"), Addr6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::2", net&0xff))}
	for _, l := range []Link{la, lb} {
		l.NS.Run("ip", "addr", "add", l.Addr4.String()+"/24", "dev", l.Name)
		l.NS.Run("ip", "-6", "addr", "add", l.Addr6.String()+"/64", "dev", l.Name, "nodad")
		l.NS.Run("ip", "link", "set", l.Name, "up")
	}
	return la, lb
}

// Serve listens on TCP address addr ("host:port", or ":port" for every
// address) inside the namespace and runs handle for each connection in a
// goroutine of its own, closing the connection afterwards. The listener is
// closed at the end of the test; Serve returns it for tests that close it
// sooner or need its address.
func (n *NS) Serve(addr string, handle func(c net.Conn)) net.Listener {
	n.t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln
}

// Fetch connects from the namespace to TCP address addr, giving up after
// dialTimeout (a dropped SYN shows as a timeout), and returns everything
// the server sends before it closes the connection, reading for at most
// two seconds.
func (n *NS) Fetch(addr string, dialTimeout time.Duration) (string, error) {
	var got []byte
	err := n.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, dialTimeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		got, err = io.ReadAll(c)
		return err
	})
	return string(got), err
}
