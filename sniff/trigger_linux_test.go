package sniff

import (
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// TestCaptureTriggersGateway: a gateway captures the connection attempts
// it receives on an inside interface to trigger ports, with both
// addresses, and still captures knocks; its own outgoing packets to a
// trigger port are not triggers.
func TestCaptureTriggersGateway(t *testing.T) {
	a, b := nstest.New(t, "trga"), nstest.New(t, "trgb")
	la, lb := nstest.Connect(a, b, 42)
	c := startCapture(t, b, Config{Triggers: []ports.Range{{From: 25, To: 25}, {From: 6000, To: 6010}}, Inside: []string{lb.Name}}, nil)
	ifindex := ifindexIn(t, b, lb.Name)

	sendSYN(t, b, netip.AddrPortFrom(la.Addr4, 25)) // outgoing: not a trigger here
	sendSYN(t, a, netip.AddrPortFrom(lb.Addr4, 25))
	p := c.next(t)
	want := Packet{Kind: Trigger, Src: la.Addr4, Dst: lb.Addr4, DstPort: 25, Transport: ports.TCP, Ifindex: ifindex, Time: p.Time}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	sendUDP(t, a, netip.AddrPortFrom(lb.Addr6, 6003))
	p = c.next(t)
	want = Packet{Kind: Trigger, Src: la.Addr6, Dst: lb.Addr6, DstPort: 6003, Transport: ports.UDP, Ifindex: ifindex, Time: p.Time}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	sendUDP(t, a, netip.AddrPortFrom(lb.Addr4, 6011)) // not a trigger port
	sendUDP(t, a, netip.AddrPortFrom(lb.Addr4, testSpan.Base))
	if p := c.next(t); p.Kind != Knock || p.DstPort != testSpan.Base || p.Src != la.Addr4 {
		t.Errorf("got %+v, want the knock packet", p)
	}
}

// TestCaptureTriggersInside: trigger packets on an interface that is not
// inside are not captured, while knocks on it are.
func TestCaptureTriggersInside(t *testing.T) {
	a, b := nstest.New(t, "trgc"), nstest.New(t, "trgd")
	la, lb := nstest.Connect(a, b, 43)
	c := startCapture(t, b, Config{Triggers: []ports.Range{{From: 25, To: 25}}, Inside: []string{"cknotthere0"}}, nil)
	sendSYN(t, a, netip.AddrPortFrom(lb.Addr4, 25))
	sendUDP(t, a, netip.AddrPortFrom(lb.Addr4, testSpan.Base+7))
	if p := c.next(t); p.Kind != Knock || p.DstPort != testSpan.Base+7 || p.Src != la.Addr4 {
		t.Errorf("got %+v, want the knock packet", p)
	}
}

// TestCaptureTriggersOutgoing: a host that triggers for itself captures
// the connection attempts it sends to trigger ports, on the interface
// they leave by, and not those it receives.
func TestCaptureTriggersOutgoing(t *testing.T) {
	a, b := nstest.New(t, "trge"), nstest.New(t, "trgf")
	la, lb := nstest.Connect(a, b, 44)
	c := startCapture(t, a, Config{Triggers: []ports.Range{{From: 25, To: 25}}, Outgoing: true}, nil)
	ifindex := ifindexIn(t, a, la.Name)

	sendSYN(t, b, netip.AddrPortFrom(la.Addr4, 25)) // received: not a trigger on a host
	sendSYN(t, a, netip.AddrPortFrom(lb.Addr4, 25))
	p := c.next(t)
	want := Packet{Kind: Trigger, Src: la.Addr4, Dst: lb.Addr4, DstPort: 25, Transport: ports.TCP, Ifindex: ifindex, Time: p.Time}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	sendUDP(t, a, netip.AddrPortFrom(lb.Addr4, testSpan.Base)) // sent knock: not ours
	sendUDP(t, b, netip.AddrPortFrom(la.Addr4, testSpan.Base+1))
	if p := c.next(t); p.Kind != Knock || p.DstPort != testSpan.Base+1 || p.Src != lb.Addr4 {
		t.Errorf("got %+v, want the received knock packet", p)
	}
}
