package policy

import (
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
)

func TestCheck(t *testing.T) {
	u := &User{
		Ports:       []ports.Range{{Proto: ports.TCP, From: 22, To: 22}, {Proto: ports.UDP, From: 1000, To: 2000}},
		MaxDuration: 60,
		Sources:     []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")},
	}
	src := netip.MustParseAddr("192.0.2.9")
	other := netip.MustParseAddr("192.0.2.10")
	open := func(p ports.Proto, port, dur uint16) crypto.Knock {
		return crypto.Knock{Action: crypto.ActionOpen, Proto: p, Port: port, Duration: dur}
	}
	k := open(ports.TCP, 22, 60)
	if a, err := u.Check(&k, netip.AddrFrom16(src.As16())); err != nil || a != src {
		t.Errorf("source mode, v4-mapped source: %v %v", a, err)
	}
	for _, c := range []struct {
		k    crypto.Knock
		src  netip.Addr
		want error
	}{
		{open(ports.UDP, 22, 1), src, ErrPort},
		{open(ports.TCP, 23, 1), src, ErrPort},
		{open(ports.UDP, 1500, 61), src, ErrDuration},
		{open(ports.UDP, 1500, 60), netip.MustParseAddr("198.51.100.1"), ErrSource},
		{crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeIPv4, Addr: other, Proto: ports.TCP, Port: 22, Duration: 5}, src, ErrAddress},
		{crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeIPv4, Addr: src, Proto: ports.TCP, Port: 22, Duration: 5}, src, nil},
		{crypto.Knock{Action: crypto.ActionClose, Proto: ports.TCP, Port: 22}, src, nil},
	} {
		if _, err := u.Check(&c.k, c.src); err != c.want {
			t.Errorf("%+v from %v: got %v, want %v", c.k, c.src, err, c.want)
		}
	}
	u.AllowAddress = []netip.Prefix{netip.MustParsePrefix("2001:db8::/64"), netip.MustParsePrefix("203.0.113.0/24")}
	for _, c := range []struct {
		mode crypto.Mode
		addr string
		want error
	}{
		{crypto.ModeIPv6, "2001:db8::5", nil},
		{crypto.ModeIPv4, "203.0.113.77", nil},
		{crypto.ModeIPv6, "2001:db8:1::5", ErrAddress},
		{crypto.ModeIPv4, "203.0.114.1", ErrAddress},
	} {
		k = crypto.Knock{Action: crypto.ActionOpen, Mode: c.mode, Addr: netip.MustParseAddr(c.addr), Proto: ports.TCP, Port: 22, Duration: 5}
		if a, err := u.Check(&k, src); err != c.want || (err == nil && a != k.Addr) {
			t.Errorf("allow-address, knock for %s: %v %v, want %v", c.addr, a, err, c.want)
		}
	}
	// Mode bound opens the source whatever allow-address says.
	k = crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeBound, Addr: src, Proto: ports.TCP, Port: 22, Duration: 5}
	if a, err := u.Check(&k, src); err != nil || a != src {
		t.Errorf("bound: %v %v", a, err)
	}
	// Over-long durations are refused, not shortened to the cap.
	k = crypto.Knock{Action: crypto.ActionOpen, Proto: ports.TCP, Port: 22, Duration: uint16(u.MaxDuration + 1)}
	if _, err := u.Check(&k, src); err != ErrDuration {
		t.Errorf("duration over the cap: %v, want %v", err, ErrDuration)
	}
}
