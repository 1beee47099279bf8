package trigger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// gateway is the end-to-end topology: two inside hosts, each on its own
// link to a gateway that masquerades them, and two outside servers on two
// outside links. The outside servers have no route to the inside
// networks: they reach an inside host only through the gateway's address.
type gateway struct {
	gw, in1, in2, out1, out2 *nstest.NS
	gwIn1, gwIn2, gwOut1     nstest.Link // the gateway's side of each link
	gwOut2                   nstest.Link
	host1, host2             netip.Addr // inside hosts
	server1, server2         netip.Addr // outside servers
	nat                      *firewall.NAT
}

func newGateway(t *testing.T) *gateway {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	g := &gateway{
		gw: nstest.New(t, "trgw"), in1: nstest.New(t, "trin1"), in2: nstest.New(t, "trin2"),
		out1: nstest.New(t, "trout1"), out2: nstest.New(t, "trout2"),
	}
	var l nstest.Link
	g.gwIn1, l = nstest.Connect(g.gw, g.in1, 91)
	g.host1 = l.Addr4
	g.gwIn2, l = nstest.Connect(g.gw, g.in2, 92)
	g.host2 = l.Addr4
	g.gwOut1, l = nstest.Connect(g.gw, g.out1, 93)
	g.server1 = l.Addr4
	g.gwOut2, l = nstest.Connect(g.gw, g.out2, 94)
	g.server2 = l.Addr4
	g.in1.Run("ip", "route", "add", "default", "via", g.gwIn1.Addr4.String())
	g.in2.Run("ip", "route", "add", "default", "via", g.gwIn2.Addr4.String())
	g.gw.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	// The gateway's own NAT: inside hosts leave with its address.
	g.gw.Run("nft", fmt.Sprintf("add table ip masq; add chain ip masq post { type nat hook postrouting priority srcnat; }; "+
		"add rule ip masq post oifname { %s, %s } masquerade", g.gwOut1.Name, g.gwOut2.Name))
	h, err := g.gw.Handle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	g.nat, err = firewall.NewNAT(firewall.NATOptions{NetNS: int(h), Outside: []string{g.gwOut1.Name, g.gwOut2.Name}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.nat.Close() })
	if err := g.nat.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g
}

// index resolves interface names in the gateway's namespace.
func (g *gateway) index(name string) (int, bool) {
	var idx int
	err := g.gw.Do(func() error {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			idx = ifi.Index
		}
		return err
	})
	return idx, err == nil
}

// serve runs a TCP server at addr in ns that writes banner to each client.
func serve(t *testing.T, ns *nstest.NS, addr netip.AddrPort, banner string) {
	t.Helper()
	ns.Serve(addr.String(), func(c net.Conn) { c.Write([]byte(banner)) })
}

// reach connects from ns to addr and returns the server's banner, or an
// error if the connection fails (refused or unanswered within a second).
func reach(ns *nstest.NS, addr netip.AddrPort) (string, error) {
	return ns.Fetch(addr.String(), time.Second)
}

// capture reads IPv4 packets in ns through an AF_PACKET socket (of
// protocol ETH_P_ALL: the kernel shows outgoing packets to those only)
// and hands
// each TCP SYN and UDP datagram to fn as an outbound connection attempt,
// as the daemon's capture will: on a gateway the packets it receives
// (forwarded ones among them), on a host the packets it sends (outgoing).
// It stops when the test ends.
func capture(t *testing.T, ns *nstest.NS, outgoing bool, fn func(p *Packet)) {
	var fd int
	if err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	t.Cleanup(func() {
		stop.Store(true)
		<-done
		unix.Close(fd)
	})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		var p Packet
		for !stop.Load() {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			ll, ok := from.(*unix.SockaddrLinklayer)
			if !ok || (ll.Pkttype == unix.PACKET_OUTGOING) != outgoing {
				continue
			}
			if parseIPv4(buf[:n], &p) {
				p.Ifindex = ll.Ifindex
				fn(&p)
			}
		}
	}()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// parseIPv4 fills p from a TCP SYN (without ACK) or UDP datagram; other
// packets and non-first fragments are not connection attempts.
func parseIPv4(b []byte, p *Packet) bool {
	if len(b) < 20 || b[0]>>4 != 4 {
		return false
	}
	ihl := int(b[0]&15) * 4
	if ihl < 20 || len(b) < ihl+8 || binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
		return false
	}
	switch b[9] {
	case unix.IPPROTO_TCP:
		if len(b) < ihl+14 || b[ihl+13]&0x12 != 0x02 { // SYN set, ACK clear
			return false
		}
		p.Proto = ports.TCP
	case unix.IPPROTO_UDP:
		p.Proto = ports.UDP
	default:
		return false
	}
	p.Inside = netip.AddrFrom4([4]byte(b[12:16]))
	p.Remote = netip.AddrFrom4([4]byte(b[16:20]))
	p.DstPort = binary.BigEndian.Uint16(b[ihl+2:])
	return true
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// run wires capture, engine and NAT forwarder together in the gateway,
// the way the daemon will, and returns the log.
func (g *gateway) run(t *testing.T, rules ...*Rule) *logBuffer {
	e, err := NewEngine(rules, Options{NAT: true, Index: g.index})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	var ds []Decision
	capture(t, g.gw, false, func(p *Packet) {
		ds = e.Observe(p, time.Now(), ds[:0])
		for _, d := range ds {
			if err := ApplyNAT(context.Background(), g.nat, e, log, d); err != nil {
				t.Errorf("apply %+v: %v", d, err)
			}
		}
	})
	return logs
}

// eventually polls cond until it returns nil, or fails the test with its
// last error when the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gateway) forwards(t *testing.T) []firewall.Forward {
	t.Helper()
	fs, err := g.nat.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// trigger makes host connect out to a remote server's trigger port.
func trigger(t *testing.T, ns *nstest.NS, remote netip.AddrPort) {
	t.Helper()
	if banner, err := reach(ns, remote); err != nil || banner != "smtp" {
		t.Fatalf("outbound connection to %v: %q %v", remote, banner, err)
	}
}

func reachedBy(ns *nstest.NS, addr netip.AddrPort, want string) func() error {
	return func() error {
		banner, err := reach(ns, addr)
		if err != nil {
			return err
		}
		if banner != want {
			return fmt.Errorf("reached %q, want %q", banner, want)
		}
		return nil
	}
}

func unreachable(ns *nstest.NS, addr netip.AddrPort) func() error {
	return func() error {
		if banner, err := reach(ns, addr); err == nil {
			return fmt.Errorf("reached %q", banner)
		}
		return nil
	}
}

// TestNATGatewayRefuse is the example end to end: an inside host
// connects to an outside server's tcp/25 through the gateway; for the
// rule's duration that server, and no other, reaches tcp/113 of that host
// through the gateway's public address. A second inside host triggering
// the same port is refused and logged; after expiry nobody gets through.
func TestNATGatewayRefuse(t *testing.T) {
	g := newGateway(t)
	rule := &Rule{Name: "ident", Out: tcp(25, 25), In: tcp(113, 113), Duration: 3 * time.Second,
		Inside: []string{g.gwIn1.Name, g.gwIn2.Name}, OnConflict: Refuse, Line: 1}
	logs := g.run(t, rule)
	smtp := netip.AddrPortFrom(g.server1, 25)
	serve(t, g.out1, smtp, "smtp")
	serve(t, g.in1, netip.AddrPortFrom(g.host1, 113), "ident host1")
	serve(t, g.in2, netip.AddrPortFrom(g.host2, 113), "ident host2")
	public1 := netip.AddrPortFrom(g.gwOut1.Addr4, 113) // as server1 sees the gateway
	public2 := netip.AddrPortFrom(g.gwOut2.Addr4, 113) // as server2 sees it

	if err := unreachable(g.out1, public1)(); err != nil {
		t.Fatalf("before the trigger: %v", err)
	}
	trigger(t, g.in1, smtp)
	eventually(t, "server1 reaches host1's ident through the gateway", 5*time.Second, reachedBy(g.out1, public1, "ident host1"))
	if err := unreachable(g.out2, public2)(); err != nil {
		t.Fatalf("another outside server: %v", err)
	}
	fs := g.forwards(t)
	if len(fs) != 1 || fs[0].Remote != g.server1 || fs[0].To != netip.AddrPortFrom(g.host1, 113) || fs[0].Port != 113 {
		t.Fatalf("forwards %v", fs)
	}

	// host2 triggers the same port toward the same server: refused.
	trigger(t, g.in2, smtp)
	eventually(t, "refusal logged", 5*time.Second, func() error {
		if !strings.Contains(logs.String(), `msg="trigger: refused, mapping held by another inside host" trigger=ident remote=`+g.server1.String()+` inside=`+g.host2.String()) {
			return errors.New("no log line:\n" + logs.String())
		}
		return nil
	})
	if err := reachedBy(g.out1, public1, "ident host1")(); err != nil {
		t.Fatalf("after the refused trigger: %v", err)
	}

	// The kernel ends the forward on time; new connections then fail.
	eventually(t, "forward expires", 10*time.Second, func() error {
		if fs := g.forwards(t); len(fs) != 0 {
			return fmt.Errorf("still %v", fs)
		}
		return nil
	})
	if err := unreachable(g.out1, public1)(); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// TestNATGatewayLastWins: under last-wins, a second inside host that
// triggers the same port takes it over, and the takeover is logged.
func TestNATGatewayLastWins(t *testing.T) {
	g := newGateway(t)
	rule := &Rule{Name: "ident", Out: tcp(25, 25), In: tcp(113, 113), Duration: time.Minute,
		Inside: []string{g.gwIn1.Name, g.gwIn2.Name}, OnConflict: LastWins, Line: 1}
	logs := g.run(t, rule)
	smtp := netip.AddrPortFrom(g.server1, 25)
	serve(t, g.out1, smtp, "smtp")
	serve(t, g.in1, netip.AddrPortFrom(g.host1, 113), "ident host1")
	serve(t, g.in2, netip.AddrPortFrom(g.host2, 113), "ident host2")
	public1 := netip.AddrPortFrom(g.gwOut1.Addr4, 113)

	trigger(t, g.in1, smtp)
	eventually(t, "server1 reaches host1", 5*time.Second, reachedBy(g.out1, public1, "ident host1"))
	trigger(t, g.in2, smtp)
	eventually(t, "server1 reaches host2 after the takeover", 5*time.Second, reachedBy(g.out1, public1, "ident host2"))
	want := `msg="trigger: mapping taken over (last-wins)" trigger=ident remote=` + g.server1.String() +
		` inside=` + g.host2.String() + ` inbound=tcp/113 timeout=1m0s previous=` + g.host1.String()
	// The line is written after the forward is in place, so the new
	// host may answer before it is there: wait for it.
	eventually(t, "takeover logged", 5*time.Second, func() error {
		if !strings.Contains(logs.String(), want) {
			return fmt.Errorf("log lacks %q:\n%s", want, logs)
		}
		return nil
	})
	if fs := g.forwards(t); len(fs) != 1 || fs[0].To.Addr() != g.host2 {
		t.Fatalf("forwards %v", fs)
	}
	// The inside host that lost the port may take it back.
	trigger(t, g.in1, smtp)
	eventually(t, "host1 takes it back", 5*time.Second, reachedBy(g.out1, public1, "ident host1"))
}

// TestNATGatewayRange: a UDP trigger port range opening a TCP range,
// each inbound port leading to the same port of the inside host.
func TestNATGatewayRange(t *testing.T) {
	g := newGateway(t)
	rule := &Rule{Name: "game", Out: udp(27000, 27010), In: tcp(7000, 7002), Duration: time.Minute,
		Inside: []string{g.gwIn1.Name}, Line: 1}
	g.run(t, rule)
	for p := uint16(7000); p <= 7002; p++ {
		serve(t, g.in1, netip.AddrPortFrom(g.host1, p), fmt.Sprint("port ", p))
	}
	if err := g.in1.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(g.server1, 27005).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for p := uint16(7000); p <= 7002; p++ {
		eventually(t, fmt.Sprint("port ", p), 5*time.Second, reachedBy(g.out1, netip.AddrPortFrom(g.gwOut1.Addr4, p), fmt.Sprint("port ", p)))
	}
	if err := unreachable(g.out1, netip.AddrPortFrom(g.gwOut1.Addr4, 7003))(); err != nil {
		t.Fatalf("port outside the range: %v", err)
	}
}
