package crypto_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
)

var openErrors = []error{
	crypto.ErrUnknownVersion, crypto.ErrMalformed, crypto.ErrUnknownUser,
	crypto.ErrBadTag, crypto.ErrFieldRange, crypto.ErrStale, crypto.ErrFuture,
}

// FuzzOpen feeds arbitrary bytes to Opener.Open. It must never panic, must
// fail with one of the package's sentinels, and anything it accepts must
// seal back to the very same bytes: the receiver accepts nothing the sender
// could not have written.
func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	for i, k := range knocks() {
		b := mustSeal(f, fx.realm, uint16(1+i%2), fx.users[uint16(1+i%2)], k)
		f.Add(b)
		f.Add(flip(b, len(b)-1, 1))
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{0x10})
	f.Add(make([]byte, crypto.LenSource))
	f.Add(bytes.Repeat([]byte{0xff}, crypto.LenIPv6))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		res, err := fx.opener.Open(b, testNow)
		if !bytes.Equal(in, b) {
			t.Fatal("Open modified its input")
		}
		if err != nil {
			if !slices.Contains(openErrors, err) {
				t.Fatalf("Open returned %v, not a sentinel", err)
			}
			if res != (crypto.Opened{}) {
				t.Fatalf("Open returned %+v with error %v", res, err)
			}
			return
		}
		u := fx.users[res.User]
		if u == nil {
			t.Fatalf("Open accepted user %d, who does not exist", res.User)
		}
		again, err := crypto.Seal(nil, fx.realm, res.User, u, &res.Knock)
		if err != nil {
			t.Fatalf("opened knock %+v does not seal: %v", res.Knock, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("opened knock reseals to %x, want %x", again, b)
		}
		if binary.BigEndian.Uint16(res.ID[:]) != res.User || !bytes.Equal(res.ID[2:], b[len(b)-crypto.TagSize:]) {
			t.Fatalf("ID %x is not user || tag", res.ID)
		}
	})
}

// FuzzSealOpen seals structured fields. Seal must accept exactly what
// Validate accepts, agree with the reference construction, and Open must
// return the same fields.
func FuzzSealOpen(f *testing.F) {
	fx := newFixture(f)
	for _, k := range knocks() {
		f.Add(uint8(k.Mode), uint8(k.Action), uint8(k.Proto), k.Port, k.Duration, k.Time, binary.BigEndian.Uint32(k.Nonce[:]), k.Addr.AsSlice(), uint16(1), "home")
	}
	f.Add(uint8(1), uint8(1), uint8(0), uint16(443), uint16(1), uint32(0), uint32(0), []byte{0, 0, 0, 0}, uint16(2), "a")
	f.Add(uint8(2), uint8(2), uint8(1), uint16(65535), uint16(0), uint32(1<<32-1), uint32(1<<32-1), netip.MustParseAddr("::ffff:1.2.3.4").AsSlice(), uint16(1), strings.Repeat("x", 64))
	f.Add(uint8(3), uint8(3), uint8(2), uint16(0), uint16(0), uint32(0), uint32(0), []byte(nil), uint16(0), "")
	f.Fuzz(func(t *testing.T, mode, action, proto uint8, port, duration uint16, ts, nonce uint32, addr []byte, index uint16, realmName string) {
		realm, err := crypto.NewRealm(realmName, &fx.rk)
		if err != nil {
			if crypto.CheckRealm(realmName) == nil {
				t.Fatalf("NewRealm(%q): %v, but CheckRealm accepts it", realmName, err)
			}
			return
		}
		index = 1 + index%2
		k := crypto.Knock{
			Mode: crypto.Mode(mode), Action: crypto.Action(action), Proto: ports.Proto(proto),
			Port: port, Duration: duration, Time: ts,
		}
		binary.BigEndian.PutUint32(k.Nonce[:], nonce)
		if a, ok := netip.AddrFromSlice(addr); ok {
			k.Addr = a
		}
		verr := k.Validate()
		b, err := crypto.Seal(nil, realm, index, fx.users[index], &k)
		if err != verr {
			t.Fatalf("Seal error %v, Validate %v", err, verr)
		}
		if err != nil {
			if len(b) != 0 {
				t.Fatalf("Seal wrote %x on error", b)
			}
			return
		}
		if len(b) != k.Mode.Len() {
			t.Fatalf("knock of mode %v has %d bytes", k.Mode, len(b))
		}
		want := refSeal(realmName, &fx.rk, fx.keys[index], index, crypto.Header(k.Mode), crypto.AppendPlaintext(nil, &k))
		if !bytes.Equal(b, want) {
			t.Fatalf("Seal = %x, spec %x", b, want)
		}
		o := crypto.NewOpener(realm, fx.users, 0)
		res, err := o.Open(b, int64(ts))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if res.Knock != k || res.User != index {
			t.Fatalf("Open = %+v user %d, want %+v user %d", res.Knock, res.User, k, index)
		}
		if _, err := o.Open(b, int64(ts)+crypto.DefaultWindow+1); err != crypto.ErrStale {
			t.Fatalf("Open one second after the window = %v, want %v", err, crypto.ErrStale)
		}
	})
}

var keyErrors = []error{crypto.ErrKeyPrefix, crypto.ErrKeyLength, crypto.ErrKeyEncoding, crypto.ErrKeyChecksum}

func fuzzKeyText(f *testing.F, prefix string, samples []string, parse func(string) (string, error)) {
	for _, s := range samples {
		f.Add(s)
		f.Add(strings.ToUpper(s))
		f.Add(" " + s + "\n")
		f.Add(s[:len(s)-1])
		f.Add(s + "a")
		f.Add(s[:len(s)-1] + "z")
		f.Add(s[:20] + "\n" + s[21:])
	}
	f.Add("")
	f.Add(prefix)
	f.Add(prefix + strings.Repeat("a", 58))
	f.Add(prefix + strings.Repeat("=", 58))
	f.Add("c\u212a-key-" + strings.Repeat("a", 58))
	f.Fuzz(func(t *testing.T, s string) {
		enc, err := parse(s)
		if err != nil {
			if !slices.Contains(keyErrors, err) {
				t.Fatalf("error %v is not a key sentinel", err)
			}
			return
		}
		// Only the canonical text, up to ASCII case and surrounding
		// space, parses.
		if want := strings.ToLower(strings.TrimSpace(s)); enc != want {
			t.Fatalf("%q parsed, but encodes as %q", s, enc)
		}
		if again, err := parse(enc); err != nil || again != enc {
			t.Fatalf("re-parsing the encoding: %v", err)
		}
	})
}

// FuzzParseKey: parsing never panics, fails only with the key sentinels,
// and any text that parses is the key's encoding.
func FuzzParseKey(f *testing.F) {
	var samples []string
	for seed := range uint64(3) {
		k := testKey(seed)
		samples = append(samples, k.Encode())
	}
	rk := testRealmKey(0)
	f.Add(rk.Encode())
	fuzzKeyText(f, crypto.KeyPrefix, samples, func(s string) (string, error) {
		k, err := crypto.ParseKey(s)
		if err != nil {
			if k != (crypto.Key{}) {
				return "", errors.New("ParseKey returned a key with its error")
			}
			return "", err
		}
		return k.Encode(), nil
	})
}

// FuzzParseRealmKey is FuzzParseKey for realm keys.
func FuzzParseRealmKey(f *testing.F) {
	var samples []string
	for seed := range uint64(3) {
		k := testRealmKey(seed)
		samples = append(samples, k.Encode())
	}
	k := testKey(0)
	f.Add(k.Encode())
	fuzzKeyText(f, crypto.RealmKeyPrefix, samples, func(s string) (string, error) {
		k, err := crypto.ParseRealmKey(s)
		if err != nil {
			if k != (crypto.RealmKey{}) {
				return "", errors.New("ParseRealmKey returned a key with its error")
			}
			return "", err
		}
		return k.Encode(), nil
	})
}

// FuzzOpenFrom opens arbitrary bytes as seen from an arbitrary source. A
// bound knock opens only from the address its tag covers: whatever opens
// reseals, with the observed source as the bound address, to the same
// bytes.
func FuzzOpenFrom(f *testing.F) {
	fx := newFixture(f)
	for _, a := range []string{"192.0.2.7", "2001:db8::1"} {
		k := boundKnock(a)
		b := mustSeal(f, fx.realm, 1, fx.users[1], k)
		f.Add(b, netip.MustParseAddr(a).AsSlice())
		f.Add(b, netip.MustParseAddr("192.0.2.8").AsSlice())
		f.Add(flip(b, 5, 1), netip.MustParseAddr(a).AsSlice())
	}
	f.Fuzz(func(t *testing.T, b, srcBytes []byte) {
		src, _ := netip.AddrFromSlice(srcBytes)
		res, err := fx.opener.OpenFrom(b, testNow, src)
		if err != nil {
			if !slices.Contains(openErrors, err) || res != (crypto.Opened{}) {
				t.Fatalf("OpenFrom returned %+v, %v", res, err)
			}
			return
		}
		if res.Knock.Mode == crypto.ModeBound && res.Knock.Addr != src.Unmap() {
			t.Fatalf("bound knock opened with address %v, observed %v", res.Knock.Addr, src)
		}
		again, err := crypto.Seal(nil, fx.realm, res.User, fx.users[res.User], &res.Knock)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("opened knock %+v reseals to %x (%v), want %x", res.Knock, again, err, b)
		}
	})
}
