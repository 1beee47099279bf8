package firewall

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink/nl"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// TestIPTablesRules checks the deterministic rule list without a kernel:
// protected ranges are validated, sorted and merged, and each rule is
// spelled as iptables -S prints it.
func TestIPTablesRules(t *testing.T) {
	got, err := iptProtectRanges([]ports.Range{
		{Proto: ports.UDP, From: 51820, To: 51820},
		{Proto: ports.TCP, From: 8050, To: 8200},
		{Proto: ports.TCP, From: 22, To: 22},
		{Proto: ports.TCP, From: 8000, To: 8100},
		{Proto: ports.TCP, From: 8201, To: 8201}, // adjacent: merged
		{Proto: ports.TCP, From: 23, To: 23},     // adjacent to 22: merged
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []ports.Range{{Proto: ports.TCP, From: 22, To: 23}, {Proto: ports.TCP, From: 8000, To: 8201}, {Proto: ports.UDP, From: 51820, To: 51820}}
	if !slices.Equal(got, want) {
		t.Fatalf("iptProtectRanges = %v, want %v", got, want)
	}
	var lines []string
	for _, r := range iptRules("cipherknock4", got, Log{}) {
		lines = append(lines, strings.Join(r, " "))
	}
	wantLines := []string{
		"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-i lo -j RETURN",
		"-m set --match-set cipherknock4 src,dst -j ACCEPT",
		"-p tcp -m tcp --dport 22:23 -j DROP",
		"-p tcp -m tcp --dport 8000:8201 -j DROP",
		"-p udp -m udp --dport 51820 -j DROP",
	}
	if !slices.Equal(lines, wantLines) {
		t.Fatalf("iptRules:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}
	for _, bad := range [][]ports.Range{
		{{Proto: ports.TCP, From: 0, To: 10}},
		{{Proto: ports.TCP, From: 20, To: 10}},
		{{Proto: ports.Proto(7), From: 22, To: 22}},
	} {
		if _, err := NewIPTables(Options{Protect: bad}); err == nil {
			t.Errorf("NewIPTables(%v): no error", bad)
		}
	}
}

// TestIPTablesGrantEntry checks how grants map to set entries.
func TestIPTablesGrantEntry(t *testing.T) {
	f, e, err := ipsetEntry(Grant{Addr: netip.MustParseAddr("::ffff:192.0.2.1"), Proto: ports.UDP, Port: 53, Timeout: 1500 * time.Millisecond}, true)
	if err != nil {
		t.Fatal(err)
	}
	if f != ipsetV4 || !e.IP.Equal(net.ParseIP("192.0.2.1")) || *e.Protocol != syscall.IPPROTO_UDP || *e.Port != 53 || *e.Timeout != 2 || !e.Replace {
		t.Fatalf("entry %+v in %v", e, f)
	}
	for _, g := range []Grant{
		{Addr: netip.MustParseAddr("192.0.2.1"), Port: 22, Timeout: 0},
		{Addr: netip.MustParseAddr("192.0.2.1"), Port: 22, Timeout: -time.Second},
		{Addr: netip.MustParseAddr("192.0.2.1"), Port: 0, Timeout: time.Second},
		{Port: 22, Timeout: time.Second},
		{Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.Proto(3), Port: 22, Timeout: time.Second},
	} {
		if _, _, err := ipsetEntry(g, true); err == nil {
			t.Errorf("ipsetEntry(%+v): no error", g)
		}
	}
}

const iptTestPort = 2222

var iptTestProtect = []ports.Range{{Proto: ports.TCP, From: iptTestPort, To: iptTestPort}, {Proto: ports.UDP, From: 5000, To: 5010}}

// iptBackend returns a backend working in ns, closed at cleanup.
func iptBackend(t testing.TB, ns *nstest.NS, protect []ports.Range) *iptablesBackend {
	t.Helper()
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	b, err := NewIPTables(Options{Protect: protect, NetNS: int(h)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.(io.Closer).Close() })
	return b.(*iptablesBackend)
}

// iptHostRules gives ns a ruleset of its own, as a host has, so tests can
// see the backend leaves it alone; it also makes the filter tables exist
// before the pristine snapshot.
func iptHostRules(ns *nstest.NS) {
	ns.Run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT")
	ns.Run("ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT")
	ns.Run("ipset", "create", "hostset", "hash:ip")
}

var (
	iptCounters = regexp.MustCompile(`\[[0-9]+:[0-9]+\]`)
	iptInitval  = regexp.MustCompile(` initval 0x[0-9a-f]+`)
)

// iptSnapshot returns the namespace's iptables and ip6tables rules and its
// ipset headers, without what changes by itself (counters, timestamps,
// set sizes). With keepInitval false it also drops the sets' hash seeds,
// which differ each time a set is created.
func iptSnapshot(t testing.TB, ns *nstest.NS, keepInitval bool) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ipset", "list", "-t"}} {
		fmt.Fprintf(&b, "== %s\n", strings.Join(argv, " "))
		for _, l := range strings.Split(ns.Run(argv...), "\n") {
			if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "Size in memory:") || strings.HasPrefix(l, "Number of entries:") {
				continue
			}
			l = iptCounters.ReplaceAllString(l, "")
			if !keepInitval {
				l = iptInitval.ReplaceAllString(l, "")
			}
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func iptMustGrant(t testing.TB, b Backend, g Grant) {
	t.Helper()
	if err := b.Grant(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

func iptMustList(t testing.TB, b Backend) []Grant {
	t.Helper()
	gs, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

// iptFind returns the listed grants for g's address, protocol and port.
func iptFind(gs []Grant, g Grant) []Grant {
	var out []Grant
	for _, x := range gs {
		if x.Addr == g.Addr && x.Proto == g.Proto && x.Port == g.Port {
			out = append(out, x)
		}
	}
	return out
}

func iptSetup(t testing.TB, b Backend) {
	t.Helper()
	if err := b.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestIPTablesSetupIdempotent(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset", "iptables-save", "ip6tables-save")
	t.Parallel()
	ns := nstest.New(t, "iptsetup")
	iptHostRules(ns)
	b := iptBackend(t, ns, iptTestProtect)
	iptSetup(t, b)
	first := iptSnapshot(t, ns, true)
	for _, want := range []string{
		"-A INPUT -j CIPHERKNOCK\n-A INPUT -p tcp -m tcp --dport 9999 -j ACCEPT\n",
		"-A CIPHERKNOCK -m set --match-set cipherknock4 src,dst -j ACCEPT\n",
		"-A CIPHERKNOCK -m set --match-set cipherknock6 src,dst -j ACCEPT\n",
		"-A CIPHERKNOCK -p udp -m udp --dport 5000:5010 -j DROP\n",
		"Name: cipherknock4\nType: hash:ip,port\n",
		"Name: cipherknock6\nType: hash:ip,port\n",
		"Name: hostset\n",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("after Setup, no %q in\n%s", want, first)
		}
	}
	// The rules are written as iptables -S prints them, so a second
	// Setup finds them equal and rewrites nothing.
	for _, f := range b.fams {
		var have []string
		if err := b.inNS(func() (err error) {
			have, _, err = iptChainRules(f)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, r := range iptRules(f.set.set, b.protect, b.log) {
			want = append(want, strings.Join(r, " "))
		}
		if !slices.Equal(have, want) {
			t.Errorf("%s -S %s:\n%s\nrules as written:\n%s", f.name, f.chain, strings.Join(have, "\n"), strings.Join(want, "\n"))
		}
	}
	g := Grant{Addr: netip.MustParseAddr("2001:db8::7"), Proto: ports.TCP, Port: iptTestPort, Timeout: time.Hour}
	iptMustGrant(t, b, g)
	iptSetup(t, b)
	if second := iptSnapshot(t, ns, true); second != first {
		t.Errorf("second Setup changed the state:\n%s\nwas:\n%s", second, first)
	}
	if got := iptFind(iptMustList(t, b), g); len(got) != 1 {
		t.Errorf("grant after second Setup: %v", got)
	}
	// A second backend, as after a daemon restart, finds the same state.
	iptSetup(t, iptBackend(t, ns, iptTestProtect))
	if third := iptSnapshot(t, ns, true); third != first {
		t.Errorf("Setup from a new backend changed the state:\n%s\nwas:\n%s", third, first)
	}
	// New protected ports (a changed configuration) rewrite the chain and
	// keep the grants.
	iptSetup(t, iptBackend(t, ns, []ports.Range{{Proto: ports.TCP, From: 22, To: 22}}))
	rules := ns.Run("ip6tables", "-S", "CIPHERKNOCK")
	if !strings.Contains(rules, "--dport 22 -j DROP") || strings.Contains(rules, "5000:5010") {
		t.Errorf("chain after the protected ports changed:\n%s", rules)
	}
	if got := iptFind(iptMustList(t, b), g); len(got) != 1 {
		t.Errorf("grant after the protected ports changed: %v", got)
	}
}

// TestIPTablesNoIPv6 (not parallel: it replaces iptKernelHasIPv6) plays a kernel without IPv6 (booted with
// ipv6.disable=1): the backend works for IPv4 alone, leaves ip6tables and
// the IPv6 set alone, and refuses IPv6 grants with a clear error.
func TestIPTablesNoIPv6(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset", "ip6tables-save")
	ns := nstest.New(t, "iptnov6")
	iptHostRules(ns)
	defer func(f func() bool) { iptKernelHasIPv6 = f }(iptKernelHasIPv6)
	iptKernelHasIPv6 = func() bool { return false }
	b := iptBackend(t, ns, iptTestProtect)
	iptSetup(t, b)
	if rules := ns.Run("iptables", "-S", "INPUT"); !strings.Contains(rules, "-A INPUT -j CIPHERKNOCK") {
		t.Errorf("no IPv4 jump:\n%s", rules)
	}
	if after := ns.Run("ip6tables-save"); strings.Contains(after, "CIPHERKNOCK") {
		t.Errorf("ip6tables changed:\n%s", after)
	}
	if out := ns.Run("ipset", "list", "-n"); strings.Contains(out, ipsetSet6) {
		t.Errorf("IPv6 set created: %s", out)
	}
	iptMustGrant(t, b, Grant{Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Port: 22, Timeout: time.Minute})
	err := b.Grant(context.Background(), Grant{Addr: netip.MustParseAddr("2001:db8::1"), Proto: ports.TCP, Port: 22, Timeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "IPv6 is disabled") {
		t.Errorf("IPv6 grant: %v", err)
	}
	if err := b.Revoke(context.Background(), Grant{Addr: netip.MustParseAddr("2001:db8::1"), Proto: ports.TCP, Port: 22}); err != nil {
		t.Errorf("IPv6 revoke: %v", err)
	}
	if got := iptMustList(t, b); len(got) != 1 {
		t.Errorf("List: %v", got)
	}
	if err := b.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestIPTablesMissingCommand checks the construction-time check names
// what is missing.
func TestIPTablesMissingCommand(t *testing.T) {
	ns := nstest.New(t, "iptmissing")
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	t.Setenv("PATH", t.TempDir())
	_, err = NewIPTables(Options{NetNS: int(h)})
	if err == nil || !strings.Contains(err.Error(), "iptables command") {
		t.Fatalf("NewIPTables without iptables: %v", err)
	}
	t.Log(err)
}

func TestIPTablesRepair(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset", "iptables-save", "ip6tables-save")
	t.Parallel()
	ns := nstest.New(t, "iptrepair")
	iptHostRules(ns)
	b := iptBackend(t, ns, iptTestProtect)
	iptSetup(t, b)
	want := iptSnapshot(t, ns, false)
	g := Grant{Addr: netip.MustParseAddr("192.0.2.9"), Proto: ports.UDP, Port: 5001, Timeout: time.Hour}
	iptMustGrant(t, b, g)

	for _, tc := range []struct {
		name     string
		damage   [][]string
		keepsSet bool
	}{
		{"rule deleted", [][]string{{"iptables", "-D", "CIPHERKNOCK", "2"}}, true},
		{"rule added", [][]string{{"ip6tables", "-I", "CIPHERKNOCK", "2", "-j", "ACCEPT"}}, true},
		{"duplicate jump", [][]string{
			{"iptables", "-A", "INPUT", "-j", "CIPHERKNOCK"},
			{"ip6tables", "-I", "INPUT", "1", "-j", "CIPHERKNOCK"},
		}, true},
		{"jump moved", [][]string{
			{"iptables", "-D", "INPUT", "-j", "CIPHERKNOCK"},
			{"iptables", "-A", "INPUT", "-j", "CIPHERKNOCK"},
		}, true},
		{"repair interrupted", [][]string{
			{"iptables", "-I", "INPUT", "1", "-m", "comment", "--comment", "cipherknock repair", "-j", "CIPHERKNOCK"},
		}, true},
		{"jump deleted", [][]string{{"ip6tables", "-D", "INPUT", "-j", "CIPHERKNOCK"}}, true},
		{"chain deleted", [][]string{
			{"ip6tables", "-D", "INPUT", "-j", "CIPHERKNOCK"},
			{"ip6tables", "-F", "CIPHERKNOCK"},
			{"ip6tables", "-X", "CIPHERKNOCK"},
		}, true},
		{"set of the wrong type", [][]string{
			{"iptables", "-F", "CIPHERKNOCK"},
			{"ipset", "destroy", "cipherknock4"},
			{"ipset", "create", "cipherknock4", "hash:ip"},
			{"iptables", "-A", "CIPHERKNOCK", "-m", "set", "--match-set", "cipherknock4", "src", "-j", "ACCEPT"},
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, argv := range tc.damage {
				ns.Run(argv...)
			}
			if iptSnapshot(t, ns, false) == want {
				t.Fatal("damage did not change the state")
			}
			iptSetup(t, b)
			if got := iptSnapshot(t, ns, false); got != want {
				t.Fatalf("after repair:\n%s\nwant:\n%s", got, want)
			}
			if tc.keepsSet {
				if got := iptFind(iptMustList(t, b), g); len(got) != 1 {
					t.Errorf("grant after repair: %v", got)
				}
			}
		})
	}
}

// iptListen starts a TCP echo server on [::]:port in ns (both families).
func iptListen(t *testing.T, ns *nstest.NS, port int) {
	t.Helper()
	ns.Serve(fmt.Sprintf(":%d", port), func(c net.Conn) { io.Copy(c, c) })
}

// iptDial connects from ns to addr:port within timeout.
func iptDial(ns *nstest.NS, addr netip.Addr, port int, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), timeout)
		return err
	})
	return c, err
}

// iptEcho checks that c still carries data both ways.
func iptEcho(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, sent %q", buf, msg)
	}
	return nil
}

// iptUDPEcho starts a UDP echo server on [::]:port in ns.
func iptUDPEcho(t *testing.T, ns *nstest.NS, port int) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// iptUDPRoundTrip sends a datagram from ns to addr:port and waits up to
// timeout for the echo.
func iptUDPRoundTrip(ns *nstest.NS, addr netip.Addr, port int, timeout time.Duration) error {
	return ns.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(addr, uint16(port)).String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "ping" {
			return fmt.Errorf("echo %q", buf[:n])
		}
		return nil
	})
}

// iptBlocked is how long a dial waits before the port counts as closed:
// a dropped SYN gets no answer at all.
const iptBlocked = time.Second

// iptTopology is a server namespace with the backend and a listener on
// iptTestPort, a client namespace and a third one, each on its own link.
type iptTopology struct {
	server, client, other *nstest.NS
	srv, cli, oth         nstest.Link // srv faces the client
	srvOther              nstest.Link // the server's side towards other
	b                     *iptablesBackend
}

func iptNewTopology(t *testing.T, role string) *iptTopology {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset")
	var tp iptTopology
	tp.server = nstest.New(t, role+"s")
	tp.client = nstest.New(t, role+"c")
	tp.other = nstest.New(t, role+"o")
	tp.srv, tp.cli = nstest.Connect(tp.server, tp.client, 1)
	tp.srvOther, tp.oth = nstest.Connect(tp.server, tp.other, 2)
	tp.b = iptBackend(t, tp.server, iptTestProtect)
	iptSetup(t, tp.b)
	iptListen(t, tp.server, iptTestPort)
	return &tp
}

func TestIPTablesGrantOpensPort(t *testing.T) {
	t.Parallel()
	tp := iptNewTopology(t, "iptgrant")
	fams := []struct {
		name          string
		srv, cli, oth netip.Addr
		srvOther      netip.Addr
	}{
		{"ipv4", tp.srv.Addr4, tp.cli.Addr4, tp.oth.Addr4, tp.srvOther.Addr4},
		{"ipv6", tp.srv.Addr6, tp.cli.Addr6, tp.oth.Addr6, tp.srvOther.Addr6},
	}
	for _, f := range fams {
		if c, err := iptDial(tp.client, f.srv, iptTestPort, iptBlocked); err == nil {
			c.Close()
			t.Fatalf("%s: protected port reachable before any grant", f.name)
		}
	}
	// Local clients on the loopback interface need no grant.
	for _, lo := range []netip.Addr{netip.IPv6Loopback(), netip.MustParseAddr("127.0.0.1")} {
		c, err := iptDial(tp.server, lo, iptTestPort, 5*time.Second)
		if err != nil {
			t.Fatalf("local client on %s: %v", lo, err)
		}
		c.Close()
	}
	for _, f := range fams {
		iptMustGrant(t, tp.b, Grant{Addr: f.cli, Proto: ports.TCP, Port: iptTestPort, Timeout: time.Minute})
		// A grant for another protocol or port opens nothing here.
		iptMustGrant(t, tp.b, Grant{Addr: f.oth, Proto: ports.UDP, Port: iptTestPort, Timeout: time.Minute})
		iptMustGrant(t, tp.b, Grant{Addr: f.oth, Proto: ports.TCP, Port: iptTestPort + 1, Timeout: time.Minute})
	}
	for _, f := range fams {
		c, err := iptDial(tp.client, f.srv, iptTestPort, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: granted %s cannot connect: %v", f.name, f.cli, err)
		}
		if err := iptEcho(c, "hello "+f.name); err != nil {
			t.Errorf("%s: %v", f.name, err)
		}
		c.Close()
		if c, err := iptDial(tp.other, f.srvOther, iptTestPort, iptBlocked); err == nil {
			c.Close()
			t.Errorf("%s: %s without a tcp/%d grant connected", f.name, f.oth, iptTestPort)
		}
	}

	// UDP: the set matches the packet's protocol and destination port.
	const udpPort = 5005
	iptUDPEcho(t, tp.server, udpPort)
	for _, f := range fams {
		if err := iptUDPRoundTrip(tp.client, f.srv, udpPort, iptBlocked); err == nil {
			t.Fatalf("%s: protected udp/%d answered before a grant", f.name, udpPort)
		}
		iptMustGrant(t, tp.b, Grant{Addr: f.cli, Proto: ports.UDP, Port: udpPort, Timeout: time.Minute})
		if err := iptUDPRoundTrip(tp.client, f.srv, udpPort, 5*time.Second); err != nil {
			t.Errorf("%s: granted udp/%d: %v", f.name, udpPort, err)
		}
	}
}

func TestIPTablesRegrant(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset")
	t.Parallel()
	ns := nstest.New(t, "iptregrant")
	b := iptBackend(t, ns, iptTestProtect)
	iptSetup(t, b)
	for _, addr := range []string{"192.0.2.1", "2001:db8::1"} {
		g := Grant{Addr: netip.MustParseAddr(addr), Proto: ports.TCP, Port: 22}
		for _, step := range []struct {
			timeout  time.Duration
			min, max time.Duration
		}{
			{100 * time.Second, 90 * time.Second, 100 * time.Second},
			{1000 * time.Second, 990 * time.Second, 1000 * time.Second}, // extended
			{50 * time.Second, 40 * time.Second, 50 * time.Second},      // replaced, not kept at the longer
		} {
			g.Timeout = step.timeout
			iptMustGrant(t, b, g)
			got := iptFind(iptMustList(t, b), g)
			if len(got) != 1 {
				t.Fatalf("%s after grant for %v: %d entries %v", addr, step.timeout, len(got), got)
			}
			if got[0].Timeout < step.min || got[0].Timeout > step.max {
				t.Errorf("%s after grant for %v: kernel reports %v", addr, step.timeout, got[0].Timeout)
			}
		}
		out := ns.Run("ipset", "list")
		if n := strings.Count(out, addr+",tcp:22 "); n != 1 {
			t.Errorf("ipset list shows %s,tcp:22 %d times:\n%s", addr, n, out)
		}
	}
}

// TestIPTablesConcurrentGrants checks that grants from many goroutines at
// once all land, once each, and that List sees them while they arrive.
func TestIPTablesConcurrentGrants(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset")
	t.Parallel()
	ns := nstest.New(t, "iptconc")
	b := iptBackend(t, ns, iptTestProtect)
	iptSetup(t, b)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errc := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				addr := netip.AddrFrom4([4]byte{10, 1, byte(w), byte(i)})
				if w%2 == 1 {
					addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(w), 15: byte(i)})
				}
				for range 2 { // the second is a refresh
					if err := b.Grant(context.Background(), Grant{Addr: addr, Proto: ports.UDP, Port: 5000, Timeout: time.Hour}); err != nil {
						errc <- err
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if _, err := b.List(context.Background()); err != nil {
				errc <- err
				return
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if got := iptMustList(t, b); len(got) != workers*each {
		t.Errorf("listed %d grants, want %d", len(got), workers*each)
	}
}

// TestIPSetReAdd pins down the kernel behaviour Grant and Revoke rely on.
// With NLM_F_EXCL (IPSetEntry.Replace false, the ipset command without
// -exist) adding an entry that is there fails with IPSET_ERR_EXIST and
// keeps the old timeout; without it the add succeeds and overwrites the
// entry's timeout, longer or shorter, and never makes a second entry.
// Deleting an absent entry likewise fails only with NLM_F_EXCL.
func TestIPSetReAdd(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset")
	t.Parallel()
	ns := nstest.New(t, "ipsetreadd")
	b := iptBackend(t, ns, nil)
	iptSetup(t, b)
	g := Grant{Addr: netip.MustParseAddr("192.0.2.5"), Proto: ports.TCP, Port: 22, Timeout: 100 * time.Second}
	timeout := func() time.Duration {
		t.Helper()
		got := iptFind(iptMustList(t, b), g)
		if len(got) != 1 {
			t.Fatalf("%d entries: %v", len(got), got)
		}
		return got[0].Timeout
	}
	add := func(secs uint32, replace bool) error {
		_, e, err := ipsetEntry(g, true)
		if err != nil {
			t.Fatal(err)
		}
		e.Timeout, e.Replace = &secs, replace
		return b.h.IpsetAdd(ipsetSet4, e)
	}
	if err := add(100, false); err != nil {
		t.Fatal(err)
	}
	if err := add(1000, false); !errors.Is(err, nl.IPSetError(nl.IPSET_ERR_EXIST)) {
		t.Errorf("re-add with NLM_F_EXCL: %v, want IPSET_ERR_EXIST", err)
	}
	if d := timeout(); d > 100*time.Second {
		t.Errorf("re-add with NLM_F_EXCL changed the timeout to %v", d)
	}
	if err := add(1000, true); err != nil {
		t.Errorf("re-add without NLM_F_EXCL: %v", err)
	}
	if d := timeout(); d < 990*time.Second {
		t.Errorf("re-add without NLM_F_EXCL left the timeout at %v", d)
	}
	if err := add(10, true); err != nil {
		t.Errorf("shorter re-add without NLM_F_EXCL: %v", err)
	}
	if d := timeout(); d > 10*time.Second {
		t.Errorf("shorter re-add without NLM_F_EXCL left the timeout at %v", d)
	}
	_, e, _ := ipsetEntry(g, false)
	if err := b.h.IpsetDel(ipsetSet4, e); err != nil {
		t.Fatal(err)
	}
	if err := b.h.IpsetDel(ipsetSet4, e); err != nil {
		t.Errorf("delete of an absent entry without NLM_F_EXCL: %v", err)
	}
	e.Replace = false
	if err := b.h.IpsetDel(ipsetSet4, e); !errors.Is(err, nl.IPSetError(nl.IPSET_ERR_EXIST)) {
		t.Errorf("delete of an absent entry with NLM_F_EXCL: %v, want IPSET_ERR_EXIST", err)
	}
}

// iptWaitGone polls until g is no longer listed; the kernel removes
// expired entries on its own schedule, so the deadline is generous.
func iptWaitGone(t *testing.T, b Backend, gs ...Grant) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := 0
		list := iptMustList(t, b)
		for _, g := range gs {
			left += len(iptFind(list, g))
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grants still listed after 30 s: %v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestIPTablesExpiry(t *testing.T) {
	t.Parallel()
	tp := iptNewTopology(t, "iptexpiry")
	var grants []Grant
	var conns []net.Conn
	for _, f := range []struct{ srv, cli netip.Addr }{{tp.srv.Addr4, tp.cli.Addr4}, {tp.srv.Addr6, tp.cli.Addr6}} {
		// Connect under an hour's grant, then re-grant for a second (the
		// new timeout replaces the old): however slow the machine, the
		// connection is up before the grant can expire.
		g := Grant{Addr: f.cli, Proto: ports.TCP, Port: iptTestPort, Timeout: time.Hour}
		iptMustGrant(t, tp.b, g)
		c, err := iptDial(tp.client, f.srv, iptTestPort, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		g.Timeout = time.Second
		iptMustGrant(t, tp.b, g)
		grants = append(grants, g)
		conns = append(conns, c)
	}
	iptWaitGone(t, tp.b, grants...)
	for i, g := range grants {
		srv := tp.srv.Addr4
		if g.Addr.Is6() {
			srv = tp.srv.Addr6
		}
		if c, err := iptDial(tp.client, srv, iptTestPort, iptBlocked); err == nil {
			c.Close()
			t.Errorf("%s: new connection after the grant expired", g.Addr)
		}
		if err := iptEcho(conns[i], "still here"); err != nil {
			t.Errorf("%s: established connection broken by expiry: %v", g.Addr, err)
		}
	}
}

func TestIPTablesRevokeTeardown(t *testing.T) {
	t.Parallel()
	tp := iptNewTopology(t, "iptteardown")
	// The pristine state is a namespace with the host's rules only; the
	// server's own is gone (iptNewTopology ran Setup), so a twin that
	// gets the same host rules stands in for it.
	pristineNS := nstest.New(t, "iptpristine")
	iptHostRules(pristineNS)
	pristine := iptSnapshot(t, pristineNS, false)
	iptHostRules(tp.server)
	ctx := context.Background()

	g := Grant{Addr: tp.cli.Addr4, Proto: ports.TCP, Port: iptTestPort, Timeout: time.Hour}
	iptMustGrant(t, tp.b, g)
	c, err := iptDial(tp.client, tp.srv.Addr4, iptTestPort, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := tp.b.Revoke(ctx, g); err != nil {
		t.Fatal(err)
	}
	if got := iptMustList(t, tp.b); len(got) != 0 {
		t.Errorf("after Revoke: %v", got)
	}
	if c, err := iptDial(tp.client, tp.srv.Addr4, iptTestPort, iptBlocked); err == nil {
		c.Close()
		t.Errorf("connected after Revoke")
	}
	if err := tp.b.Revoke(ctx, g); err != nil {
		t.Errorf("second Revoke: %v", err)
	}

	iptMustGrant(t, tp.b, g) // Teardown must cope with live grants
	// and with a bridge jump left by a repair that was interrupted.
	tp.server.Run("ip6tables", "-I", "INPUT", "2", "-m", "comment", "--comment", "cipherknock repair", "-j", "CIPHERKNOCK")
	if err := tp.b.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := iptSnapshot(t, tp.server, false); got != pristine {
		t.Errorf("after Teardown:\n%s\npristine:\n%s", got, pristine)
	}
	if err := tp.b.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	// Without the backend the host's own rules decide: no drop any more.
	c, err = iptDial(tp.client, tp.srv.Addr4, iptTestPort, 5*time.Second)
	if err != nil {
		t.Fatalf("after Teardown: %v", err)
	}
	c.Close()
}

// TestIPTablesTeardownBareHost runs Setup and Teardown on a namespace
// that never had any rules or sets: afterwards no rule and no set is
// left, only the built-in chains of the filter table, empty.
func TestIPTablesTeardownBareHost(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset", "iptables-save", "ip6tables-save")
	t.Parallel()
	ns := nstest.New(t, "iptbare")
	b := iptBackend(t, ns, iptTestProtect)
	iptSetup(t, b)
	iptMustGrant(t, b, Grant{Addr: netip.MustParseAddr("2001:db8::5"), Proto: ports.TCP, Port: 22, Timeout: time.Hour})
	if err := b.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		for _, l := range strings.Split(ns.Run(save), "\n") {
			switch {
			case l == "", strings.HasPrefix(l, "#"), l == "*filter", l == "COMMIT",
				strings.HasPrefix(l, ":INPUT ACCEPT"), strings.HasPrefix(l, ":FORWARD ACCEPT"), strings.HasPrefix(l, ":OUTPUT ACCEPT"):
			default:
				t.Errorf("%s after Teardown: %q", save, l)
			}
		}
	}
	if out := ns.Run("ipset", "list"); out != "" {
		t.Errorf("ipset list after Teardown:\n%s", out)
	}
}

// TestIPTablesGrantOutlivesProcess shows that a grant's expiry is the
// kernel's business: a process sets up and grants, then dies by SIGKILL
// without any cleanup, and the grant still expires on time while the rules
// stay in place.
func TestIPTablesGrantOutlivesProcess(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset")
	t.Parallel()
	ns := nstest.New(t, "iptkill")
	cmd := ns.Command(os.Args[0], "-test.run=^TestIPTablesChildProcess$")
	cmd.Env = append(os.Environ(), "CK_IPT_CHILD=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "granted\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	// "ip netns exec" executes the test binary in its own process.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	b := iptBackend(t, ns, iptTestProtect)
	gs := iptChildGrants()
	list := iptMustList(t, b)
	for _, g := range gs {
		if len(iptFind(list, g)) != 1 {
			t.Fatalf("grant %v not in the kernel after the child died: %v", g, list)
		}
	}
	iptWaitGone(t, b, gs...)
	if rules := ns.Run("iptables", "-S", "INPUT"); !strings.Contains(rules, "-A INPUT -j CIPHERKNOCK") {
		t.Errorf("rules gone with the process:\n%s", rules)
	}
}

func iptChildGrants() []Grant {
	return []Grant{
		{Addr: netip.MustParseAddr("192.0.2.77"), Proto: ports.TCP, Port: iptTestPort, Timeout: 2 * time.Second},
		{Addr: netip.MustParseAddr("2001:db8::77"), Proto: ports.UDP, Port: 5005, Timeout: 2 * time.Second},
	}
}

// TestIPTablesChildProcess is the process TestIPTablesGrantOutlivesProcess
// starts and kills; it runs in the namespace it was started in.
func TestIPTablesChildProcess(t *testing.T) {
	if os.Getenv("CK_IPT_CHILD") != "1" {
		return // run on its own, it has nothing to do
	}
	b, err := NewIPTables(Options{Protect: iptTestProtect})
	if err != nil {
		t.Fatal(err)
	}
	iptSetup(t, b)
	for _, g := range iptChildGrants() {
		iptMustGrant(t, b, g)
	}
	fmt.Println("granted")
	time.Sleep(time.Minute) // until killed
	t.Fatal("not killed")
}

// iptBenchAddr returns the i-th of 50,000 distinct IPv4 addresses in
// 10.0.0.0/8, below the set's default limit of 65,536 entries.
func iptBenchAddr(i int) netip.Addr {
	i %= 50000
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// BenchmarkIPTablesGrant measures one grant: one netlink message to the
// kernel and its acknowledgement.
func BenchmarkIPTablesGrant(b *testing.B) {
	nstest.RequireTool(b, "iptables", "ip6tables", "ipset")
	ns := nstest.New(b, "iptbench")
	be := iptBackend(b, ns, iptTestProtect)
	iptSetup(b, be)
	ctx := context.Background()
	g := Grant{Proto: ports.TCP, Port: iptTestPort, Timeout: time.Hour}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Addr = iptBenchAddr(i)
		i++
		if err := be.Grant(ctx, g); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIPTablesGrant10k fills a set with 10,000 grants per iteration
// and reports the median and 99th percentile of a single grant, to show
// that a grant's cost does not grow with the number already open.
func BenchmarkIPTablesGrant10k(b *testing.B) {
	nstest.RequireTool(b, "iptables", "ip6tables", "ipset")
	const n = 10000
	ns := nstest.New(b, "iptbench10k")
	be := iptBackend(b, ns, iptTestProtect)
	iptSetup(b, be)
	ctx := context.Background()
	g := Grant{Proto: ports.TCP, Port: iptTestPort, Timeout: time.Hour}
	var per []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		for i := range n {
			g.Addr = iptBenchAddr(i)
			t0 := time.Now()
			if err := be.Grant(ctx, g); err != nil {
				b.Fatal(err)
			}
			per = append(per, time.Since(t0))
		}
		b.StopTimer()
		if err := be.h.IpsetFlush(ipsetSet4); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(per)
	b.ReportMetric(float64(per[len(per)/2].Nanoseconds()), "ns/grant-median")
	b.ReportMetric(float64(per[len(per)*99/100].Nanoseconds()), "ns/grant-p99")
	b.ReportMetric(0, "ns/op") // the per-grant figures above are the result
}

// BenchmarkIPTablesList measures reading 10,000 open grants back.
func BenchmarkIPTablesList(b *testing.B) {
	nstest.RequireTool(b, "iptables", "ip6tables", "ipset")
	ns := nstest.New(b, "iptbenchlist")
	be := iptBackend(b, ns, iptTestProtect)
	iptSetup(b, be)
	ctx := context.Background()
	for i := range 10000 {
		iptMustGrant(b, be, Grant{Addr: iptBenchAddr(i), Proto: ports.TCP, Port: iptTestPort, Timeout: time.Hour})
	}
	b.ReportAllocs()
	for b.Loop() {
		gs, err := be.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(gs) != 10000 {
			b.Fatalf("listed %d grants, want 10000", len(gs))
		}
	}
}

// BenchmarkIPTablesSetup measures Setup on a namespace where everything is
// in place already, as at a daemon restart: it only reads the state back.
func BenchmarkIPTablesSetup(b *testing.B) {
	nstest.RequireTool(b, "iptables", "ip6tables", "ipset")
	ns := nstest.New(b, "iptbenchsetup")
	be := iptBackend(b, ns, iptTestProtect)
	iptSetup(b, be)
	b.ReportAllocs()
	for b.Loop() {
		iptSetup(b, be)
	}
}
