package trigger

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// TestHostTrigger runs a trigger on a host that protects itself with the
// iptables backend (no NAT): when the host connects out to a server's
// tcp/25, that server, and no other, may connect to the host's closed
// tcp/113 until the grant expires in the kernel.
func TestHostTrigger(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "iptables", "ip6tables")
	host, srv1, srv2 := nstest.New(t, "trhost"), nstest.New(t, "trsrv1"), nstest.New(t, "trsrv2")
	h1, s1 := nstest.Connect(host, srv1, 97)
	h2, _ := nstest.Connect(host, srv2, 98)
	fd, err := host.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	b, err := firewall.NewIPTables(firewall.Options{
		Protect: []ports.Range{{Proto: ports.TCP, From: 113, To: 113}},
		NetNS:   int(fd),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Teardown(ctx) })

	rule := &Rule{Name: "ident", Out: tcp(25, 25), In: tcp(113, 113), Duration: 5 * time.Second, Line: 1}
	e, err := NewEngine([]*Rule{rule}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	var ds []Decision
	capture(t, host, true, func(p *Packet) {
		ds = e.Observe(p, time.Now(), ds[:0])
		for _, d := range ds {
			for _, g := range d.Grants() {
				if err := b.Grant(ctx, g); err != nil {
					t.Errorf("grant %+v: %v", g, err)
					e.Cancel(d)
				}
			}
			d.Log(log)
		}
	})
	smtp := netip.AddrPortFrom(s1.Addr4, 25)
	serve(t, srv1, smtp, "smtp")
	serve(t, host, netip.AddrPortFrom(netip.IPv4Unspecified(), 113), "ident host")
	ident1 := netip.AddrPortFrom(h1.Addr4, 113)
	ident2 := netip.AddrPortFrom(h2.Addr4, 113)

	if err := unreachable(srv1, ident1)(); err != nil {
		t.Fatalf("before the trigger: %v", err)
	}
	trigger(t, host, smtp)
	eventually(t, "server1 reaches the host's ident", 5*time.Second, reachedBy(srv1, ident1, "ident host"))
	if err := unreachable(srv2, ident2)(); err != nil {
		t.Fatalf("another server: %v", err)
	}
	gs, err := b.List(ctx)
	if err != nil || len(gs) != 1 || gs[0].Addr != s1.Addr4 || gs[0].Port != 113 {
		t.Fatalf("grants %v %v", gs, err)
	}
	eventually(t, "grant expires", 15*time.Second, func() error {
		gs, err := b.List(ctx)
		if err == nil && len(gs) != 0 {
			return fmt.Errorf("still %v", gs)
		}
		return err
	})
	if err := unreachable(srv1, ident1)(); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}
