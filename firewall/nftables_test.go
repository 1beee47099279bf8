package firewall

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/ports"
)

func TestSetKey(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		proto ports.Proto
		port  uint16
		key   []byte
		v6    bool
	}{
		{"198.18.0.2", ports.TCP, 22, []byte{198, 18, 0, 2, 6, 0, 0, 0, 0, 22, 0, 0}, false},
		{"::ffff:198.18.0.2", ports.UDP, 0x1234, []byte{198, 18, 0, 2, 17, 0, 0, 0, 0x12, 0x34, 0, 0}, false},
		{"2001:db8::1", ports.TCP, 443, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 1, 0xbb, 0, 0}, true},
	} {
		a := netip.MustParseAddr(tc.addr)
		key, v6, err := setKey(a, tc.proto, tc.port)
		if err != nil || v6 != tc.v6 || !bytes.Equal(key, tc.key) {
			t.Errorf("setKey(%s) = %x %v %v, want %x %v", tc.addr, key, v6, err, tc.key, tc.v6)
			continue
		}
		ga, gp, gport, ok := parseSetKey(key)
		if !ok || ga != a.Unmap() || gp != tc.proto || gport != tc.port {
			t.Errorf("parseSetKey(%x) = %v %v %v %v", key, ga, gp, gport, ok)
		}
	}
	for _, bad := range []struct {
		a     netip.Addr
		proto ports.Proto
		port  uint16
	}{{netip.Addr{}, ports.TCP, 1}, {netip.MustParseAddr("10.0.0.1"), ports.TCP, 0}, {netip.MustParseAddr("10.0.0.1"), 7, 1}} {
		if _, _, err := setKey(bad.a, bad.proto, bad.port); err == nil {
			t.Errorf("setKey(%v %v %v) accepted", bad.a, bad.proto, bad.port)
		}
	}
	if _, _, _, ok := parseSetKey(make([]byte, 12)); ok {
		t.Error("parseSetKey accepted protocol 0 port 0")
	}
}
