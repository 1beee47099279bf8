package crypto_test

import (
	"math"
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
)

func boundKnock(addr string) crypto.Knock {
	k := knocks()[0]
	k.Mode, k.Addr = crypto.ModeBound, netip.MustParseAddr(addr)
	return k
}

// TestBoundMode: a bound-mode knock is as long as a source-mode one, opens
// only for the source address its tag covers, and opens with that address.
func TestBoundMode(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ bound, from string }{
		{"192.0.2.7", "192.0.2.7"},
		{"192.0.2.7", "::ffff:192.0.2.7"}, // the capture may hand IPv4 mapped
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8::1", "2001:db8::1"},
	} {
		b := mustSeal(t, f.realm, 1, f.users[1], boundKnock(tt.bound))
		if len(b) != crypto.LenSource || b[0] != 0x13 {
			t.Fatalf("bound knock %x: want 24 bytes with header 0x13", b)
		}
		o, err := f.opener.OpenFrom(b, testNow, netip.MustParseAddr(tt.from))
		if err != nil {
			t.Fatalf("bound to %s, from %s: %v", tt.bound, tt.from, err)
		}
		if want := netip.MustParseAddr(tt.bound).Unmap(); o.Knock.Addr != want || o.Knock.Mode != crypto.ModeBound {
			t.Errorf("opened mode %v addr %v, want bound %v", o.Knock.Mode, o.Knock.Addr, want)
		}
	}
	// Any other observed source, a missing one, and the address sent in
	// the clear by another mode all fail as a bad tag: the knock gives a
	// racer nothing, not even a replay ID.
	b := mustSeal(t, f.realm, 1, f.users[1], boundKnock("192.0.2.7"))
	for _, from := range []string{"192.0.2.8", "198.51.100.7", "::ffff:192.0.2.8", "2001:db8::1", "::"} {
		if _, err := f.opener.OpenFrom(b, testNow, netip.MustParseAddr(from)); err != crypto.ErrBadTag {
			t.Errorf("bound to 192.0.2.7, from %s: %v, want bad tag", from, err)
		}
	}
	if _, err := f.opener.Open(b, testNow); err != crypto.ErrBadTag {
		t.Errorf("Open without a source: %v, want bad tag", err)
	}
	// The same fields in mode source give another tag: the address is
	// authenticated, and the header keeps the two modes apart.
	src := knocks()[0]
	if s := mustSeal(t, f.realm, 1, f.users[1], src); string(s[1:]) == string(b[1:]) {
		t.Error("bound and source knocks differ only in the header")
	}
	// A source-mode knock opens from anywhere, as before.
	if _, err := f.opener.OpenFrom(mustSeal(t, f.realm, 1, f.users[1], src), testNow, netip.MustParseAddr("192.0.2.8")); err != nil {
		t.Errorf("source mode from any address: %v", err)
	}
}

func TestBoundModeValidate(t *testing.T) {
	f := newFixture(t)
	for _, a := range []string{"", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255", "fe80::1%eth0"} {
		k := knocks()[0]
		k.Mode = crypto.ModeBound
		if a != "" {
			k.Addr = netip.MustParseAddr(a)
		}
		if _, err := crypto.Seal(nil, f.realm, 1, f.users[1], &k); err != crypto.ErrFieldRange {
			t.Errorf("bound to %q: Seal = %v, want field out of range", a, err)
		}
	}
}

// TestOpenWindowNoOverflow: the most negative and most positive receiver
// times that §12 allows give future and stale, not the opposite through an
// overflow of now-W or now+W.
func TestOpenWindowNoOverflow(t *testing.T) {
	f := newFixture(t)
	for _, ts := range []uint32{0, 1767225600, math.MaxUint32} {
		k := knocks()[0]
		k.Time = ts
		b := mustSeal(t, f.realm, 1, f.users[1], k)
		for _, c := range []struct {
			now  int64
			want error
		}{
			{math.MinInt64, crypto.ErrFuture},
			{math.MinInt64 + 1, crypto.ErrFuture},
			{math.MinInt64 + 600, crypto.ErrFuture},
			{-1, crypto.ErrFuture},
			{math.MaxInt64, crypto.ErrStale},
			{math.MaxInt64 - 600, crypto.ErrStale},
		} {
			if ts == 0 && c.now == -1 {
				c.want = nil // within the window of 0
			}
			if _, err := f.opener.Open(b, c.now); err != c.want {
				t.Errorf("time %d, now %d: %v, want %v", ts, c.now, err, c.want)
			}
		}
	}
}

func TestOpenFromAllocs(t *testing.T) {
	f := newFixture(t)
	b := mustSeal(t, f.realm, 1, f.users[1], boundKnock("2001:db8::1"))
	src := netip.MustParseAddr("2001:db8::1")
	if n := testing.AllocsPerRun(100, func() {
		if _, err := f.opener.OpenFrom(b, testNow, src); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("OpenFrom allocates %v times", n)
	}
}

// BenchmarkBound measures what binding the source address costs against
// mode source: the 16 more bytes under the HMAC.
func BenchmarkBound(b *testing.B) {
	f := newFixture(b)
	src4, src6 := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::1")
	for _, c := range []struct {
		name string
		k    crypto.Knock
		from netip.Addr
	}{
		{"source", knocks()[0], src4},
		{"bound4", boundKnock("192.0.2.7"), src4},
		{"bound6", boundKnock("2001:db8::1"), src6},
	} {
		b.Run("Seal/"+c.name, func(b *testing.B) {
			buf := make([]byte, 0, crypto.MaxLen)
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = crypto.Seal(buf[:0], f.realm, 1, f.users[1], &c.k)
			}
		})
		knock := mustSeal(b, f.realm, 1, f.users[1], c.k)
		b.Run("Open/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.opener.OpenFrom(knock, testNow, c.from); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
