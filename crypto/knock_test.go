package crypto_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
)

func TestValidate(t *testing.T) {
	a4 := netip.MustParseAddr("192.0.2.1")
	a6 := netip.MustParseAddr("2001:db8::1")
	open := func(mutate func(k *crypto.Knock)) crypto.Knock {
		k := crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeSource, Proto: ports.TCP, Port: 22, Duration: 60, Time: testNow}
		mutate(&k)
		return k
	}
	v4 := func(addr string) func(*crypto.Knock) {
		return func(k *crypto.Knock) { k.Mode, k.Addr = crypto.ModeIPv4, netip.MustParseAddr(addr) }
	}
	v6 := func(addr string) func(*crypto.Knock) {
		return func(k *crypto.Knock) { k.Mode, k.Addr = crypto.ModeIPv6, netip.MustParseAddr(addr) }
	}
	tests := []struct {
		name   string
		mutate func(k *crypto.Knock)
		want   error
	}{
		{"base", func(k *crypto.Knock) {}, nil},
		{"mode 4", func(k *crypto.Knock) { k.Mode = 4 }, crypto.ErrMalformed},
		{"bound without an address", func(k *crypto.Knock) { k.Mode = crypto.ModeBound }, crypto.ErrFieldRange},
		{"mode 15", func(k *crypto.Knock) { k.Mode = 15 }, crypto.ErrMalformed},
		{"action 0", func(k *crypto.Knock) { k.Action = 0 }, crypto.ErrFieldRange},
		{"action 3", func(k *crypto.Knock) { k.Action = 3 }, crypto.ErrFieldRange},
		{"action 15", func(k *crypto.Knock) { k.Action = 15 }, crypto.ErrFieldRange},
		{"udp", func(k *crypto.Knock) { k.Proto = ports.UDP }, nil},
		{"proto 2", func(k *crypto.Knock) { k.Proto = 2 }, crypto.ErrFieldRange},
		{"port 0", func(k *crypto.Knock) { k.Port = 0 }, crypto.ErrFieldRange},
		{"port 1", func(k *crypto.Knock) { k.Port = 1 }, nil},
		{"port 65535", func(k *crypto.Knock) { k.Port = 65535 }, nil},
		{"open duration 0", func(k *crypto.Knock) { k.Duration = 0 }, crypto.ErrFieldRange},
		{"open duration 1", func(k *crypto.Knock) { k.Duration = 1 }, nil},
		{"open duration max", func(k *crypto.Knock) { k.Duration = crypto.MaxDuration }, nil},
		{"close duration 0", func(k *crypto.Knock) { k.Action, k.Duration = crypto.ActionClose, 0 }, nil},
		{"close duration 1", func(k *crypto.Knock) { k.Action, k.Duration = crypto.ActionClose, 1 }, crypto.ErrFieldRange},
		{"close duration max", func(k *crypto.Knock) { k.Action, k.Duration = crypto.ActionClose, 65535 }, crypto.ErrFieldRange},
		{"time 0", func(k *crypto.Knock) { k.Time = 0 }, nil},
		{"time max", func(k *crypto.Knock) { k.Time = 1<<32 - 1 }, nil},
		{"source with address", func(k *crypto.Knock) { k.Addr = a4 }, crypto.ErrFieldRange},
		{"source with ipv6 address", func(k *crypto.Knock) { k.Addr = a6 }, crypto.ErrFieldRange},
		{"ipv4", v4("192.0.2.1"), nil},
		{"ipv4 loopback", v4("127.0.0.1"), nil},
		{"ipv4 private", v4("10.1.2.3"), nil},
		{"ipv4 last unicast", v4("223.255.255.255"), nil},
		{"ipv4 subnet broadcast", v4("192.0.2.255"), nil},
		{"ipv4 missing", func(k *crypto.Knock) { k.Mode = crypto.ModeIPv4 }, crypto.ErrFieldRange},
		{"ipv4 unspecified", v4("0.0.0.0"), crypto.ErrFieldRange},
		{"ipv4 multicast", v4("224.0.0.1"), crypto.ErrFieldRange},
		{"ipv4 last multicast", v4("239.255.255.255"), crypto.ErrFieldRange},
		{"ipv4 broadcast", v4("255.255.255.255"), crypto.ErrFieldRange},
		{"ipv4 mode ipv6 address", func(k *crypto.Knock) { k.Mode, k.Addr = crypto.ModeIPv4, a6 }, crypto.ErrFieldRange},
		{"ipv4 mode mapped address", v4("::ffff:192.0.2.1"), crypto.ErrFieldRange},
		{"ipv6", v6("2001:db8::1"), nil},
		{"ipv6 loopback", v6("::1"), nil},
		{"ipv6 link-local", v6("fe80::1"), nil},
		{"ipv6 missing", func(k *crypto.Knock) { k.Mode = crypto.ModeIPv6 }, crypto.ErrFieldRange},
		{"ipv6 mode ipv4 address", func(k *crypto.Knock) { k.Mode, k.Addr = crypto.ModeIPv6, a4 }, crypto.ErrFieldRange},
		{"ipv6 mapped ipv4", v6("::ffff:192.0.2.1"), crypto.ErrFieldRange},
		{"ipv6 unspecified", v6("::"), crypto.ErrFieldRange},
		{"ipv6 multicast", v6("ff02::1"), crypto.ErrFieldRange},
		{"ipv6 zone", v6("fe80::1%eth0"), crypto.ErrFieldRange},
		// Mode is checked before the fields: a knock of unknown mode is
		// malformed whatever else is wrong with it.
		{"mode and action", func(k *crypto.Knock) { k.Mode, k.Action = 7, 0 }, crypto.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := open(tt.mutate)
			if err := k.Validate(); err != tt.want {
				t.Errorf("Validate(%+v) = %v, want %v", k, err, tt.want)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	for _, tt := range []struct {
		mode   crypto.Mode
		header byte
		len    int
	}{
		{crypto.ModeSource, 0x10, 24},
		{crypto.ModeIPv4, 0x11, 28},
		{crypto.ModeIPv6, 0x12, 40},
		{crypto.ModeBound, 0x13, 24},
	} {
		if h := crypto.Header(tt.mode); h != tt.header {
			t.Errorf("Header(%v) = %#x, want %#x", tt.mode, h, tt.header)
		}
		if n := tt.mode.Len(); n != tt.len {
			t.Errorf("%v.Len() = %d, want %d", tt.mode, n, tt.len)
		}
		m, err := crypto.ParseHeader(tt.header)
		if err != nil || m != tt.mode {
			t.Errorf("ParseHeader(%#x) = %v, %v; want %v", tt.header, m, err, tt.mode)
		}
		if n := crypto.KnockLen(tt.header); n != tt.len {
			t.Errorf("KnockLen(%#x) = %d, want %d", tt.header, n, tt.len)
		}
	}
	for h := range 256 {
		_, err := crypto.ParseHeader(byte(h))
		var want error
		switch {
		case h>>4 != crypto.Version:
			want = crypto.ErrUnknownVersion
		case h&0x0f > 3:
			want = crypto.ErrMalformed
		}
		if err != want {
			t.Errorf("ParseHeader(%#x) = %v, want %v", h, err, want)
		}
		if (crypto.KnockLen(byte(h)) == 0) != (want != nil) {
			t.Errorf("KnockLen(%#x) = %d, inconsistent with ParseHeader", h, crypto.KnockLen(byte(h)))
		}
	}
	if crypto.Mode(4).Len() != 0 {
		t.Error("Mode(4).Len() != 0")
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{crypto.ModeSource.String(), "source"},
		{crypto.ModeIPv4.String(), "ipv4"},
		{crypto.ModeIPv6.String(), "ipv6"},
		{crypto.Mode(9).String(), "mode(9)"},
		{crypto.ActionOpen.String(), "open"},
		{crypto.ActionClose.String(), "close"},
		{crypto.Action(0).String(), "action(0)"},
		{ports.TCP.String(), "tcp"},
		{ports.UDP.String(), "udp"},
		{ports.Proto(7).String(), "proto(7)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestCheckRealm(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"home", true},
		{"a", true},
		{"A.b-c_9", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"home office", false},
		{"home/office", false},
		{"caf\u00e9", false},
		{"tab\t", false},
		{"nul\x00", false},
	} {
		err := crypto.CheckRealm(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("CheckRealm(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if _, nerr := crypto.NewRealm(tt.name, nil); (nerr == nil) != tt.ok {
			t.Errorf("NewRealm(%q) = %v, want ok=%v", tt.name, nerr, tt.ok)
		}
	}
}

func TestAppendPlaintext(t *testing.T) {
	k := crypto.Knock{
		Action: crypto.ActionOpen, Mode: crypto.ModeIPv4, Addr: netip.MustParseAddr("192.0.2.1"),
		Proto: ports.UDP, Port: 0x1234, Duration: 0x5678, Time: 0x9abcdef0, Nonce: [4]byte{1, 2, 3, 4},
	}
	want := []byte{0x11, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 192, 0, 2, 1}
	if got := crypto.AppendPlaintext([]byte{0xee}, &k); string(got) != string(append([]byte{0xee}, want...)) {
		t.Errorf("AppendPlaintext = %x, want ee%x", got, want)
	}
	k.Mode, k.Addr, k.Action, k.Proto = crypto.ModeSource, netip.Addr{}, crypto.ActionClose, ports.TCP
	if got := crypto.AppendPlaintext(nil, &k); len(got) != crypto.FixedPlainLen || got[0] != 0x20 {
		t.Errorf("AppendPlaintext(source close tcp) = %x", got)
	}
	k.Mode, k.Addr = crypto.ModeIPv6, netip.MustParseAddr("2001:db8::1")
	if got := crypto.AppendPlaintext(nil, &k); len(got) != crypto.FixedPlainLen+16 || got[13] != 0x20 || got[28] != 1 {
		t.Errorf("AppendPlaintext(ipv6) = %x", got)
	}
}
