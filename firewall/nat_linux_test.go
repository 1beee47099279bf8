package firewall

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

func TestNATElement(t *testing.T) {
	for _, f := range []Forward{
		{Remote: netip.MustParseAddr("192.0.2.25"), Proto: ports.TCP, Port: 113, To: netip.MustParseAddrPort("10.0.0.2:113")},
		{Remote: netip.MustParseAddr("192.0.2.25"), Proto: ports.UDP, Port: 65535, To: netip.MustParseAddrPort("10.0.0.2:1")},
		{Remote: netip.MustParseAddr("2001:db8::25"), Proto: ports.TCP, Port: 6000, To: netip.MustParseAddrPort("[fd00::2]:7000")},
	} {
		key, v6, err := natKey(f.Remote, f.Proto, f.Port)
		if err != nil {
			t.Fatal(err)
		}
		val, err := natVal(f.To, v6)
		if err != nil {
			t.Fatal(err)
		}
		if v6 != f.Remote.Is6() || (len(key) != natKey4Len && len(key) != natKey6Len) {
			t.Fatalf("%v: key %x v6=%v", f, key, v6)
		}
		got, ok := parseNATElement(key, val)
		if !ok || got != f {
			t.Fatalf("round trip of %v: %v %v", f, got, ok)
		}
	}
	// The layout nft uses: address, protocol and port padded to 4 bytes.
	key, _, _ := natKey(netip.MustParseAddr("::ffff:192.0.2.25"), ports.TCP, 113)
	val, _ := natVal(netip.MustParseAddrPort("10.0.0.2:8113"), false)
	if string(key) != "\xc0\x00\x02\x19\x06\x00\x00\x00\x00\x71\x00\x00" || string(val) != "\x0a\x00\x00\x02\x1f\xb1\x00\x00" {
		t.Fatalf("key %x val %x", key, val)
	}
	for _, f := range []Forward{
		{Proto: ports.TCP, Port: 1, To: netip.MustParseAddrPort("10.0.0.2:1")},
		{Remote: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, To: netip.MustParseAddrPort("10.0.0.2:1")},
		{Remote: netip.MustParseAddr("192.0.2.1"), Proto: 7, Port: 1, To: netip.MustParseAddrPort("10.0.0.2:1")},
		{Remote: netip.MustParseAddr("fe80::1%eth0"), Proto: ports.TCP, Port: 1, To: netip.MustParseAddrPort("[fd00::1]:1")},
		{Remote: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Port: 1, To: netip.MustParseAddrPort("[fd00::1]:1")},
		{Remote: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Port: 1, To: netip.MustParseAddrPort("10.0.0.2:0")},
		{Remote: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Port: 1},
	} {
		key, v6, err := natKey(f.Remote, f.Proto, f.Port)
		if err == nil {
			_, err = natVal(f.To, v6)
		}
		if err == nil {
			t.Errorf("%v (key %x): accepted", f, key)
		}
	}
	if _, ok := parseNATElement(make([]byte, 12), make([]byte, 20)); ok {
		t.Error("parsed mixed families")
	}
}

func TestNewNATOptions(t *testing.T) {
	for _, o := range []NATOptions{{Mark: 3}, {Outside: []string{""}}, {Outside: []string{"averyveryverylongname"}}} {
		if n, err := NewNAT(o); err == nil {
			n.Close()
			t.Errorf("%+v accepted", o)
		}
	}
}

// natEnv is a gateway namespace with a NAT forwarder working in it.
type natEnv struct {
	gw  *nstest.NS
	fd  int // the gateway namespace
	nat *NAT
}

func newNATEnv(t testing.TB, opts NATOptions) *natEnv {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	e := &natEnv{gw: nstest.New(t, "natgw")}
	h, err := e.gw.Handle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	e.fd = int(h)
	opts.NetNS = e.fd
	e.nat, err = NewNAT(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.nat.Close() })
	return e
}

func (e *natEnv) ruleset(t *testing.T) string {
	t.Helper()
	return e.gw.Run("nft", "list", "ruleset")
}

func TestNATSetupIdempotentTeardown(t *testing.T) {
	e := newNATEnv(t, NATOptions{Outside: []string{"eth9", "wan0"}})
	ctx := context.Background()
	if err := e.nat.Teardown(ctx); err != nil {
		t.Fatalf("teardown of nothing: %v", err)
	}
	if err := e.nat.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	first := e.ruleset(t)
	// nft prints what the kernel holds; these are the rules nat.go
	// documents. It shows the map lookup only once, inside the dnat
	// statement that uses its value, although it comes before the ct mark
	// statement: a packet that misses the map ends the rule there.
	for _, want := range []string{
		"table inet cipherknock-nat {",
		"map forward4 {\n\t\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service\n\t\tflags timeout",
		"map forward6 {\n\t\ttype ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service\n\t\tflags timeout",
		"type nat hook prerouting priority dstnat - 10; policy accept;",
		`iifname "eth9" meta nfproto ipv4 fib daddr type local ct mark set ct mark | 0x20000000 dnat ip to ip saddr . meta l4proto . th dport map @forward4`,
		`iifname "wan0" meta nfproto ipv6 fib daddr type local ct mark set ct mark | 0x20000000 dnat ip6 to ip6 saddr . meta l4proto . th dport map @forward6`,
		"type filter hook forward priority filter - 10; policy accept;",
		"ct mark & 0x20000000 == 0x20000000 meta mark set meta mark | 0x20000000 accept",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, first)
		}
	}
	f := Forward{Remote: netip.MustParseAddr("192.0.2.25"), Proto: ports.TCP, Port: 113, To: netip.MustParseAddrPort("10.0.0.2:113"), Timeout: time.Hour}
	if err := e.nat.Forward(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := e.nat.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if fs, err := e.nat.List(ctx); err != nil || len(fs) != 1 {
		t.Fatalf("forwards after a second Setup: %v %v", fs, err)
	}
	if err := e.nat.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := e.ruleset(t); strings.Contains(rs, "cipherknock") {
		t.Fatalf("left after teardown:\n%s", rs)
	}
	if err := e.nat.Teardown(ctx); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
}

func TestNATSetupRepairsStale(t *testing.T) {
	e := newNATEnv(t, NATOptions{})
	e.gw.Run("nft", "add table inet cipherknock-nat; add map inet cipherknock-nat forward4 { type ipv4_addr : ipv4_addr; }; add chain inet cipherknock-nat forward { type filter hook input priority 0; }")
	if err := e.nat.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs := e.ruleset(t)
	if !strings.Contains(rs, "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service") || strings.Contains(rs, "hook input") {
		t.Fatalf("stale objects kept:\n%s", rs)
	}
}

func TestNATForwardListRevoke(t *testing.T) {
	e := newNATEnv(t, NATOptions{})
	ctx := context.Background()
	if err := e.nat.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	r1, r2 := netip.MustParseAddr("192.0.2.25"), netip.MustParseAddr("2001:db8::25")
	a, b := netip.MustParseAddrPort("10.0.0.2:113"), netip.MustParseAddrPort("10.0.0.3:113")
	a6 := netip.MustParseAddrPort("[fd00::2]:113")
	fw := func(remote netip.Addr, port uint16, to netip.AddrPort, d time.Duration) Forward {
		return Forward{Remote: remote, Proto: ports.TCP, Port: port, To: to, Timeout: d}
	}
	list := func() []Forward {
		t.Helper()
		fs, err := e.nat.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	check := func(want ...Forward) {
		t.Helper()
		got := list()
		if len(got) != len(want) {
			t.Fatalf("forwards %v, want %v", got, want)
		}
		for i := range got {
			// The kernel counts down from the timeout it was given.
			if g, w := got[i], want[i]; g.Remote != w.Remote || g.Proto != w.Proto || g.Port != w.Port || g.To != w.To ||
				g.Timeout > w.Timeout || g.Timeout < w.Timeout-time.Minute {
				t.Fatalf("forward %d: %v for %v, want %v for %v", i, g, g.Timeout, w, w.Timeout)
			}
		}
	}
	// A range goes in one batch; IPv4 lists before IPv6.
	if err := e.nat.Forward(ctx, fw(r2, 113, a6, time.Hour), fw(r1, 113, a, time.Hour), fw(r1, 114, a, time.Hour)); err != nil {
		t.Fatal(err)
	}
	check(fw(r1, 113, a, time.Hour), fw(r1, 114, a, time.Hour), fw(r2, 113, a6, time.Hour))
	// A repeated forward replaces the time left, longer or shorter.
	if err := e.nat.Forward(ctx, fw(r1, 113, a, 3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.nat.Forward(ctx, fw(r1, 114, a, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check(fw(r1, 113, a, 3*time.Hour), fw(r1, 114, a, 2*time.Minute), fw(r2, 113, a6, time.Hour))
	// Another inside host takes a port over, alone or in a batch with a
	// new forward.
	if err := e.nat.Forward(ctx, fw(r1, 113, b, time.Hour), fw(r1, 115, b, time.Hour)); err != nil {
		t.Fatal(err)
	}
	check(fw(r1, 113, b, time.Hour), fw(r1, 114, a, 2*time.Minute), fw(r1, 115, b, time.Hour), fw(r2, 113, a6, time.Hour))
	// Replace does the same, for a caller that knows it takes over, and
	// also adds what is new.
	if err := e.nat.Replace(ctx, fw(r1, 115, a, time.Hour), fw(r1, 116, a, time.Hour)); err != nil {
		t.Fatal(err)
	}
	check(fw(r1, 113, b, time.Hour), fw(r1, 114, a, 2*time.Minute), fw(r1, 115, a, time.Hour), fw(r1, 116, a, time.Hour), fw(r2, 113, a6, time.Hour))
	if err := e.nat.Replace(ctx, fw(r1, 115, b, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.nat.Revoke(ctx, fw(r1, 116, a, 0)); err != nil {
		t.Fatal(err)
	}
	check(fw(r1, 113, b, time.Hour), fw(r1, 114, a, 2*time.Minute), fw(r1, 115, b, time.Hour), fw(r2, 113, a6, time.Hour))
	// Revoke only what leads to the host named; absent is no error.
	if err := e.nat.Revoke(ctx, fw(r1, 113, a, 0), fw(r1, 999, a, 0)); err != nil {
		t.Fatal(err)
	}
	check(fw(r1, 113, b, time.Hour), fw(r1, 114, a, 2*time.Minute), fw(r1, 115, b, time.Hour), fw(r2, 113, a6, time.Hour))
	if err := e.nat.Revoke(ctx, fw(r1, 113, b, 0), Forward{Remote: r2, Proto: ports.TCP, Port: 113}); err != nil {
		t.Fatal(err)
	}
	check(fw(r1, 114, a, 2*time.Minute), fw(r1, 115, b, time.Hour))
	// Bad input changes nothing.
	if err := e.nat.Forward(ctx, fw(r1, 116, a, time.Hour), fw(r1, 117, a, 0)); err == nil {
		t.Fatal("forward without timeout accepted")
	}
	check(fw(r1, 114, a, 2*time.Minute), fw(r1, 115, b, time.Hour))
	// The kernel ends a forward on time by itself.
	if err := e.nat.Forward(ctx, fw(r1, 114, a, 300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(list()) == 1 })
	check(fw(r1, 115, b, time.Hour))
}

func TestNATClosed(t *testing.T) {
	e := newNATEnv(t, NATOptions{})
	e.nat.Close()
	if err := e.nat.Setup(context.Background()); err == nil {
		t.Fatal("setup on a closed forwarder")
	}
	if err := e.nat.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNATForwardsConnections runs real connections through a gateway, in
// both families: an outside host reaches an inside listener through the
// gateway's address only while a forward exists for it, a connection made
// during the forward outlives it, another outside address never gets
// through, and nothing arriving on an interface other than the outside
// ones is redirected.
func TestNATForwardsConnections(t *testing.T) {
	t.Run("host-accepts", func(t *testing.T) { testNATForwardsConnections(t, false) })
	t.Run("host-drops", func(t *testing.T) { testNATForwardsConnections(t, true) })
}

// testNATForwardsConnections runs the test on a gateway whose own forward
// chain accepts everything, or (hostDrop) drops everything but what
// carries the mark, with the rule nat.go documents.
func testNATForwardsConnections(t *testing.T, hostDrop bool) {
	e := newNATEnv(t, NATOptions{})
	ctx := context.Background()
	inside, outside := nstest.New(t, "natin"), nstest.New(t, "natout")
	gwIn, in := nstest.Connect(e.gw, inside, 71)
	gwOut, out := nstest.Connect(e.gw, outside, 72)
	other4, other6 := netip.MustParseAddr("198.18.72.3"), netip.MustParseAddr("2001:db8:48::3")
	outside.Run("ip", "addr", "add", other4.String()+"/24", "dev", out.Name)
	outside.Run("ip", "-6", "addr", "add", other6.String()+"/64", "dev", out.Name, "nodad")
	inside.Run("ip", "route", "add", "default", "via", gwIn.Addr4.String())
	inside.Run("ip", "-6", "route", "add", "default", "via", gwIn.Addr6.String())
	// The outside host can answer the inside one, so that a connection
	// wrongly redirected from the inside would succeed and be seen.
	outside.Run("ip", "route", "add", "198.18.71.0/24", "via", gwOut.Addr4.String())
	outside.Run("ip", "-6", "route", "add", "2001:db8:47::/64", "via", gwOut.Addr6.String())
	e.gw.Run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	nat, err := NewNAT(NATOptions{Outside: []string{gwOut.Name}, NetNS: e.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer nat.Close()
	if err := nat.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if hostDrop {
		e.gw.Run("nft", "add table inet host; add chain inet host forward { type filter hook forward priority filter; policy drop; }; "+
			"add rule inet host forward meta mark & 0x20000000 == 0x20000000 accept comment \"markrule\"")
	}
	for _, fam := range []struct {
		name                       string
		remote, other, to, pub, in netip.Addr
	}{
		{"ipv4", out.Addr4, other4, in.Addr4, gwOut.Addr4, gwIn.Addr4},
		{"ipv6", out.Addr6, other6, in.Addr6, gwOut.Addr6, gwIn.Addr6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			ln := natListen(t, inside, netip.AddrPortFrom(fam.to, 8113))
			defer ln.Close()
			pub := netip.AddrPortFrom(fam.pub, 113)
			dial := func(from netip.Addr) (net.Conn, error) { return natDial(outside, from, pub) }

			// Neighbour discovery first, so that a failed connection
			// below means the firewall and not a link still busy with
			// duplicate address detection.
			natWarm(t, inside, fam.to, netip.AddrPortFrom(fam.in, 1))
			natWarm(t, outside, fam.remote, netip.AddrPortFrom(fam.pub, 1))
			natWarm(t, outside, fam.other, netip.AddrPortFrom(fam.pub, 1))
			if c, err := dial(fam.remote); err == nil {
				c.Close()
				t.Fatal("reached the inside host before any forward")
			}
			f := Forward{Remote: fam.remote, Proto: ports.TCP, Port: 113, To: netip.AddrPortFrom(fam.to, 8113), Timeout: time.Hour}
			// The inside host as a remote, forwarded to a listener of
			// the outside host: its packets arrive on the inside
			// interface, which is not an outside one, so they must not
			// be redirected.
			lnOut := natListen(t, outside, netip.AddrPortFrom(fam.remote, 8113))
			defer lnOut.Close()
			self := Forward{Remote: fam.to, Proto: ports.TCP, Port: 113, To: netip.AddrPortFrom(fam.remote, 8113), Timeout: time.Hour}
			if err := nat.Forward(ctx, f, self); err != nil {
				t.Fatal(err)
			}
			c, err := dial(fam.remote)
			if err != nil {
				t.Fatalf("forwarded connection: %v", err)
			}
			defer c.Close()
			natEcho(t, c)
			if c, err := dial(fam.other); err == nil {
				c.Close()
				t.Fatal("another outside address got through")
			}
			if c, err := natDial(inside, fam.to, netip.AddrPortFrom(fam.in, 113)); err == nil {
				c.Close()
				t.Fatal("a connection from an inside interface was redirected")
			}
			if err := nat.Revoke(ctx, f, self); err != nil {
				t.Fatal(err)
			}
			if c, err := dial(fam.remote); err == nil {
				c.Close()
				t.Fatal("reached the inside host after the revoke")
			}
			natEcho(t, c) // the connection made before the revoke lives on
			if !hostDrop {
				return
			}
			// Without the host's mark rule its drop policy wins: our
			// accept does not override it.
			var handle string
			for _, l := range strings.Split(e.gw.Run("nft", "-a", "list", "chain", "inet", "host", "forward"), "\n") {
				if _, h, ok := strings.Cut(l, `comment "markrule" # handle `); ok {
					handle = strings.TrimSpace(h)
				}
			}
			e.gw.Run("nft", "delete", "rule", "inet", "host", "forward", "handle", handle)
			defer e.gw.Run("nft", "add rule inet host forward meta mark & 0x20000000 == 0x20000000 accept comment \"markrule\"")
			if err := nat.Forward(ctx, f); err != nil {
				t.Fatal(err)
			}
			if c, err := dial(fam.remote); err == nil {
				c.Close()
				t.Fatal("forwarded through a host drop policy without the mark rule")
			}
		})
	}
}

// natListen runs an echo server at at in ns.
func natListen(t *testing.T, ns *nstest.NS, at netip.AddrPort) net.Listener {
	t.Helper()
	return ns.Serve(at.String(), func(c net.Conn) { io.Copy(c, c) })
}

// natDial connects from the address from to to within ns. A refused or
// unanswered connection fails within a second.
func natDial(ns *nstest.NS, from netip.Addr, to netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		d := net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
		c, err = d.Dial("tcp", to.String())
		return err
	})
	return c, err
}

func natEcho(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q %v", buf, err)
	}
}

// natWarm connects from ns to a closed port until the host answers with
// a reset: then both ends have found each other's link address.
func natWarm(t *testing.T, ns *nstest.NS, from netip.Addr, to netip.AddrPort) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		c, err := natDial(ns, from, to)
		if err == nil {
			c.Close()
		}
		return err == nil || errors.Is(err, syscall.ECONNREFUSED)
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkNATForward measures one forward as the trigger engine asks for
// it: a renewal of a single port (add, delete, add in one batch), a
// takeover by another inside host through Replace (listing the map, then
// delete and add), and the same takeover through Forward, which first
// meets the kernel's refusal.
func BenchmarkNATForward(b *testing.B) {
	e := newNATEnv(b, NATOptions{})
	ctx := context.Background()
	if err := e.nat.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	remote := netip.MustParseAddr("192.0.2.25")
	to := [2]netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:113"), netip.MustParseAddrPort("10.0.0.3:113")}
	f := Forward{Remote: remote, Proto: ports.TCP, Port: 113, To: to[0], Timeout: time.Minute}
	b.Run("renew", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := e.nat.Forward(ctx, f); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, m := range []struct {
		name string
		fn   func(context.Context, ...Forward) error
	}{{"takeover-replace", e.nat.Replace}, {"takeover-forward", e.nat.Forward}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				g := f
				g.To = to[i%2]
				if err := m.fn(ctx, g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
