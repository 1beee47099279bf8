package firewall

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/google/nftables"
)

// nftPort is the protected service port in these tests.
const nftPort = 22022

// nftEnv is a server namespace running the backend and a client namespace
// with two addresses per family: the first one gets grants, the second
// ("third" address on the link) never does.
type nftEnv struct {
	srv, cli       *nstest.NS
	ls, lc         nstest.Link
	other4, other6 netip.Addr
	fd             int
}

func newNFTEnv(t *testing.T, net int) *nftEnv {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	e := &nftEnv{srv: nstest.New(t, "nfts"), cli: nstest.New(t, "nftc")}
	e.ls, e.lc = nstest.Connect(e.srv, e.cli, net)
	e.other4 = netip.MustParseAddr(fmt.Sprintf("198.18.%d.3", net))
	e.other6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::3", net))
	e.cli.Run("ip", "addr", "add", e.other4.String()+"/24", "dev", e.lc.Name)
	e.cli.Run("ip", "-6", "addr", "add", e.other6.String()+"/64", "dev", e.lc.Name, "nodad")
	h, err := e.srv.Handle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	e.fd = int(h)
	return e
}

func (e *nftEnv) backend(t *testing.T, protect ...ports.Range) *NFTables {
	t.Helper()
	// Without the owner flag, so that the tests can damage the table
	// with nft and run several backends on it; TestNFTablesOwner tests
	// the flag.
	b, err := NewNFTables(Options{Protect: protect, NetNS: e.fd, NoOwner: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.(*NFTables).Close() })
	return b.(*NFTables)
}

// listen starts a TCP server on every address of the server namespace
// that writes "ok" to each client and then echoes.
func (e *nftEnv) listen(t *testing.T) {
	t.Helper()
	e.srv.Serve(fmt.Sprintf("[::]:%d", nftPort), func(c net.Conn) {
		c.Write([]byte("ok"))
		io.Copy(c, c)
	})
}

// dial connects from src to the server's address of the same family and
// reads the greeting. A dropped SYN shows as a timeout.
func (e *nftEnv) dial(src netip.Addr, timeout time.Duration) (net.Conn, error) {
	dst := e.ls.Addr4
	if src.Is6() {
		dst = e.ls.Addr6
	}
	var c net.Conn
	err := e.cli.Do(func() (err error) {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: timeout}
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst, nftPort).String())
		return err
	})
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (e *nftEnv) mustReach(t *testing.T, src netip.Addr) {
	t.Helper()
	c, err := e.dial(src, 2*time.Second)
	if err != nil {
		t.Fatalf("%s cannot reach the service: %v", src, err)
	}
	c.Close()
}

func (e *nftEnv) mustNotReach(t *testing.T, src netip.Addr) {
	t.Helper()
	c, err := e.dial(src, 300*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatalf("%s reached the service without a grant", src)
	}
}

var protectTest = []ports.Range{{Proto: ports.TCP, From: nftPort, To: nftPort}, {Proto: ports.UDP, From: 40000, To: 40100}}

func TestNFTablesGrantV4V6(t *testing.T) {
	e := newNFTEnv(t, 31)
	e.listen(t)
	ctx := context.Background()
	// Without the backend the port is open: the test's dial works.
	e.mustReach(t, e.lc.Addr4)
	b := e.backend(t, protectTest...)
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6, e.other4, e.other6} {
		e.mustNotReach(t, a)
	}
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6} {
		if err := b.Grant(ctx, Grant{Addr: a, Proto: ports.TCP, Port: nftPort, Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		e.mustReach(t, a)
	}
	e.mustNotReach(t, e.other4)
	e.mustNotReach(t, e.other6)
	// A grant for UDP does not open TCP.
	if err := b.Grant(ctx, Grant{Addr: e.other4, Proto: ports.UDP, Port: nftPort, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	e.mustNotReach(t, e.other4)

	gs, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 3 {
		t.Fatalf("List: %v, want 3 grants", gs)
	}
	for _, g := range gs {
		if g.Timeout <= 50*time.Second || g.Timeout > time.Minute {
			t.Errorf("%v: time left %v, want about a minute", g, g.Timeout)
		}
	}
	if err := b.Revoke(ctx, Grant{Addr: e.lc.Addr6, Proto: ports.TCP, Port: nftPort}); err != nil {
		t.Fatal(err)
	}
	e.mustNotReach(t, e.lc.Addr6)
	// Revoking what is not open is not an error.
	if err := b.Revoke(ctx, Grant{Addr: e.lc.Addr6, Proto: ports.TCP, Port: nftPort}); err != nil {
		t.Fatal(err)
	}
	// An IPv4-mapped address grants the IPv4 address.
	if err := b.Grant(ctx, Grant{Addr: netip.AddrFrom16(e.other4.As16()), Proto: ports.TCP, Port: nftPort, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	e.mustReach(t, e.other4)
	if err := b.Grant(ctx, Grant{Addr: e.other4, Proto: ports.TCP, Port: nftPort, Timeout: 0}); err == nil {
		t.Error("grant without a timeout accepted: it would never expire")
	}
}

func nftRuleset(t *testing.T, ns *nstest.NS) string {
	t.Helper()
	return ns.Run("nft", "list", "ruleset")
}

func TestNFTablesSetupIdempotentTeardown(t *testing.T) {
	e := newNFTEnv(t, 32)
	ctx := context.Background()
	before := nftRuleset(t, e.srv)
	b := e.backend(t, protectTest...)
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	once := nftRuleset(t, e.srv)
	for _, want := range []string{
		"table inet cipherknock",
		"type ipv4_addr . inet_proto . inet_service",
		"type ipv6_addr . inet_proto . inet_service",
		"type filter hook input priority filter - 10; policy accept;",
		"ct state established,related accept",
		"ip saddr . meta l4proto . th dport @grants4 meta mark set meta mark | 0x10000000 accept",
		"ip6 saddr . meta l4proto . th dport @grants6 meta mark set meta mark | 0x10000000 accept",
		"tcp dport 22022 drop",
		"udp dport 40000-40100 drop",
	} {
		if !strings.Contains(once, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, once)
		}
	}
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if twice := nftRuleset(t, e.srv); twice != once {
		t.Errorf("second Setup changed the ruleset:\n%s\nwas:\n%s", twice, once)
	}
	// Setup keeps grants, and repairs a flushed chain.
	g := Grant{Addr: e.lc.Addr4, Proto: ports.TCP, Port: nftPort, Timeout: time.Hour}
	if err := b.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	e.srv.Run("nft", "flush", "chain", "inet", "cipherknock", "input")
	b2 := e.backend(t, protectTest...)
	if err := b2.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if gs, err := b2.List(ctx); err != nil || len(gs) != 1 || gs[0].Addr != g.Addr {
		t.Fatalf("after a second Setup: %v %v, want the grant kept", gs, err)
	}
	if got := nftRuleset(t, e.srv); !strings.Contains(got, "tcp dport 22022 drop") {
		t.Errorf("Setup did not repair the chain:\n%s", got)
	}
	if err := b.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if after := nftRuleset(t, e.srv); after != before {
		t.Errorf("Teardown left:\n%s\nwant:\n%s", after, before)
	}
	if err := b.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

// A table of ours with sets of the wrong kind is rebuilt.
func TestNFTablesSetupRepairsStale(t *testing.T) {
	e := newNFTEnv(t, 33)
	e.srv.Run("nft", "add table inet cipherknock; add set inet cipherknock grants4 { type ipv4_addr; }; add chain inet cipherknock input { type filter hook input priority 0; }")
	b := e.backend(t, protectTest...)
	if err := b.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := nftRuleset(t, e.srv)
	if !strings.Contains(got, "type ipv4_addr . inet_proto . inet_service") || !strings.Contains(got, "priority filter - 10") {
		t.Errorf("stale objects kept:\n%s", got)
	}
}

// Re-adding an element: the new timeout replaces the old one, longer or
// shorter, and there is still one element.
func TestNFTablesRegrantRefreshes(t *testing.T) {
	e := newNFTEnv(t, 34)
	ctx := context.Background()
	b := e.backend(t)
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	g := Grant{Addr: e.lc.Addr6, Proto: ports.UDP, Port: 51820}
	for _, d := range []time.Duration{100 * time.Second, 5 * time.Second, 300 * time.Second} {
		g.Timeout = d
		if err := b.Grant(ctx, g); err != nil {
			t.Fatal(err)
		}
		gs, err := b.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) != 1 {
			t.Fatalf("after re-grant for %v: %v, want one element", d, gs)
		}
		if left := gs[0].Timeout; left > d || left < d-2*time.Second {
			t.Fatalf("after re-grant for %v: %v left", d, left)
		}
	}
}

// The kernel expires a grant; a connection made while it was open lives on.
func TestNFTablesExpiryKeepsEstablished(t *testing.T) {
	e := newNFTEnv(t, 35)
	e.listen(t)
	ctx := context.Background()
	b := e.backend(t, protectTest...)
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	// Connect under an hour's grant, then re-grant for a second (the new
	// timeout replaces the old): however slow the machine, the
	// connection is up before the grant can expire.
	var held []net.Conn
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6} {
		g := Grant{Addr: a, Proto: ports.TCP, Port: nftPort, Timeout: time.Hour}
		if err := b.Grant(ctx, g); err != nil {
			t.Fatal(err)
		}
		c, err := e.dial(a, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
		g.Timeout = time.Second
		if err := b.Grant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel expires the elements at their time: wait for it (10 s,
	// a generous bound for a loaded machine).
	waitFor(t, 10*time.Second, func() bool {
		gs, err := b.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(gs) == 0
	})
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6} {
		e.mustNotReach(t, a)
	}
	for _, c := range held {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
			t.Fatalf("established connection cut after expiry: %q %v", buf, err)
		}
	}
}

// A host ruleset with its own default-drop input chain in another table:
// the mark set by our chain is what its one accept rule matches.
func TestNFTablesCoexistsWithHostDropPolicy(t *testing.T) {
	e := newNFTEnv(t, 36)
	e.listen(t)
	ctx := context.Background()
	e.srv.Run("nft", `add table inet host
add chain inet host input { type filter hook input priority filter; policy drop; }
add rule inet host input ct state established,related accept
add rule inet host input iif lo accept
add rule inet host input meta l4proto ipv6-icmp accept`)
	b := e.backend(t) // no protected ports: the host's policy drops
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	g := Grant{Addr: e.lc.Addr4, Proto: ports.TCP, Port: nftPort, Timeout: time.Minute}
	if err := b.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	// Without the host's mark rule, our accept does not override its drop.
	e.mustNotReach(t, e.lc.Addr4)
	e.srv.Run("nft", "add rule inet host input meta mark & 0x10000000 == 0x10000000 accept")
	e.mustReach(t, e.lc.Addr4)
	e.mustNotReach(t, e.other4)
	e.mustNotReach(t, e.lc.Addr6)
	g.Addr = e.lc.Addr6
	if err := b.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	e.mustReach(t, e.lc.Addr6)
	e.mustNotReach(t, e.other6)
	// Teardown leaves the host's table alone.
	if err := b.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := nftRuleset(t, e.srv); !strings.Contains(got, "policy drop") || strings.Contains(got, "cipherknock") {
		t.Errorf("after Teardown:\n%s", got)
	}
}

// nftJSONCount counts the elements nft itself sees in a set.
func nftJSONCount(t *testing.T, ns *nstest.NS, set string) int {
	t.Helper()
	out := ns.Run("nft", "-j", "list", "set", "inet", NFTablesTable, set)
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	for _, o := range doc.Nftables {
		if o.Set != nil {
			return len(o.Set.Elem)
		}
	}
	t.Fatalf("nft -j list set: no set in %s", out)
	return 0
}

// 1,000 grants, then the backend goes away without Teardown (as when the
// daemon is killed): the kernel expires every grant within 1 s of its
// time, and none early.
func TestNFTablesCrashSafety1000(t *testing.T) {
	e := newNFTEnv(t, 37)
	ctx := context.Background()
	b := e.backend(t)
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	type want struct {
		g        Grant
		from, to time.Time // the kernel's expiry lies in [from, to]
	}
	ws := make([]want, n)
	for i := range ws {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		if i%2 == 1 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
		d := 2*time.Second + time.Duration(i)*time.Millisecond
		g := Grant{Addr: a, Proto: ports.Proto(i % 2), Port: uint16(1 + i), Timeout: d}
		start := time.Now()
		if err := b.Grant(ctx, g); err != nil {
			t.Fatal(err)
		}
		ws[i] = want{g, start.Add(d), time.Now().Add(d)}
	}
	b.Close() // gone without a word, like a killed daemon
	if c := nftJSONCount(t, e.srv, NFTablesSet4) + nftJSONCount(t, e.srv, NFTablesSet6); c != n {
		t.Fatalf("nft sees %d elements, want %d", c, n)
	}
	watch := e.backend(t) // a separate reader, as after a restart
	var late time.Duration
	gone := make([]bool, n)
	for left := n; left > 0; {
		qs := time.Now()
		gs, err := watch.List(ctx)
		qe := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		present := make(map[string]bool, len(gs))
		for _, g := range gs {
			present[fmt.Sprint(g.Addr, g.Proto, g.Port)] = true
		}
		for i, w := range ws {
			here := present[fmt.Sprint(w.g.Addr, w.g.Proto, w.g.Port)]
			switch {
			case !here && qe.Before(w.from):
				t.Fatalf("%v gone %v early", w.g, w.from.Sub(qe))
			case here && gone[i]:
				t.Fatalf("%v came back", w.g)
			case here && qs.After(w.to.Add(time.Second)):
				t.Fatalf("%v still open %v after its expiry", w.g, qs.Sub(w.to))
			case !here && !gone[i]:
				gone[i] = true
				left--
				if l := qe.Sub(w.to); l > late {
					late = l
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("1000 grants expired by the kernel, the latest seen %v after its time (poll period included)", late)
	if c := nftJSONCount(t, e.srv, NFTablesSet4) + nftJSONCount(t, e.srv, NFTablesSet6); c != 0 {
		t.Fatalf("nft still sees %d elements", c)
	}
}

// BenchmarkNFTablesGrant adds b.N distinct grants that stay open together
// (run with -benchtime=10000x for the 10,000-grant figure) and reports the
// median and 99th percentile time per grant and the Go memory per grant.
func BenchmarkNFTablesGrant(b *testing.B) {
	srv := nstest.New(b, "nftb")
	h, err := srv.Handle()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	be, err := NewNFTables(Options{NetNS: int(h), Protect: []ports.Range{{Proto: ports.TCP, From: 22, To: 22}}})
	if err != nil {
		b.Fatal(err)
	}
	defer be.(*NFTables).Close()
	ctx := context.Background()
	if err := be.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	benchGrants(b, be)
	gs, err := be.List(ctx)
	if err != nil || len(gs) != b.N {
		b.Fatalf("List: %d grants, %v; want %d", len(gs), err, b.N)
	}
}

// BenchmarkNFTablesExpiry: b.N grants falling due together; the kernel
// removes them.
func BenchmarkNFTablesExpiry(b *testing.B) {
	srv := nstest.New(b, "nftx")
	h, err := srv.Handle()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	be, err := NewNFTables(Options{NetNS: int(h)})
	if err != nil {
		b.Fatal(err)
	}
	defer be.(*NFTables).Close()
	if err := be.Setup(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchExpiry(b, be)
}

// What the kernel does with a plain re-add of an element that exists:
// older kernels keep the old timeout, those with commit 4201f3938914
// replace it. The test records which kind of kernel this is; Grant's add-delete-add batch
// replaces the timeout on both (TestNFTablesRegrantRefreshes).
func TestNFTablesKernelReAdd(t *testing.T) {
	e := newNFTEnv(t, 41)
	b := e.backend(t)
	if err := b.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	key, _, _ := setKey(e.lc.Addr4, ports.TCP, 22)
	add := func(d time.Duration) {
		b.conn.SetAddElements(b.set4, []nftables.SetElement{{Key: key, Timeout: d}})
		if err := b.conn.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	add(100 * time.Second)
	add(5 * time.Second)
	gs, err := b.List(context.Background())
	if err != nil || len(gs) != 1 {
		t.Fatalf("List = %v, %v", gs, err)
	}
	t.Logf("plain re-add of an existing element (100s, then 5s): %v left; the kernel %s", gs[0].Timeout,
		map[bool]string{true: "replaces the timeout", false: "keeps the old timeout"}[gs[0].Timeout < 10*time.Second])
}

// Setup with other protected ports replaces the drops.
func TestNFTablesSetupFollowsProtect(t *testing.T) {
	e := newNFTEnv(t, 42)
	ctx := context.Background()
	if err := e.backend(t, protectTest...).Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.backend(t, ports.Range{Proto: ports.TCP, From: 2222, To: 2223}).Setup(ctx); err != nil {
		t.Fatal(err)
	}
	got := nftRuleset(t, e.srv)
	if !strings.Contains(got, "tcp dport 2222-2223 drop") || strings.Contains(got, "22022") || strings.Contains(got, "40000") {
		t.Errorf("after Setup with new ports:\n%s", got)
	}
	if _, err := NewNFTables(Options{Protect: []ports.Range{{Proto: ports.TCP, From: 10, To: 9}}}); err == nil {
		t.Error("range 10-9 accepted")
	}
}

// A UDP grant lets datagrams through to the granted port only, and
// replies come back.
func TestNFTablesUDP(t *testing.T) {
	e := newNFTEnv(t, 44)
	ctx := context.Background()
	const port = 40050
	var pc net.PacketConn
	if err := e.srv.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", fmt.Sprintf("[::]:%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	echo := func(src netip.Addr) bool {
		dst := e.ls.Addr4
		if src.Is6() {
			dst = e.ls.Addr6
		}
		var c net.Conn
		if err := e.cli.Do(func() (err error) {
			c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		n, err := c.Read(buf)
		return err == nil && string(buf[:n]) == "ping"
	}
	b := e.backend(t, protectTest...)
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6} {
		if echo(a) {
			t.Fatalf("%s: UDP answered before a grant", a)
		}
		if err := b.Grant(ctx, Grant{Addr: a, Proto: ports.UDP, Port: port, Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if !echo(a) {
			t.Fatalf("%s: no UDP answer after a grant", a)
		}
	}
	if echo(e.other4) || echo(e.other6) {
		t.Fatal("UDP answered an ungranted address")
	}
}

// Grants from many goroutines at once all land, once each.
func TestNFTablesConcurrentGrants(t *testing.T) {
	e := newNFTEnv(t, 45)
	ctx := context.Background()
	b := e.backend(t)
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				a := netip.AddrFrom4([4]byte{10, 9, byte(w), byte(i)})
				for range 2 { // and each twice
					if err := b.Grant(ctx, Grant{Addr: a, Proto: ports.TCP, Port: 22, Timeout: time.Minute}); err != nil {
						t.Error(err)
					}
				}
				if _, err := b.List(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if gs, err := b.List(ctx); err != nil || len(gs) != 800 {
		t.Fatalf("List: %d grants, %v; want 800", len(gs), err)
	}
}
