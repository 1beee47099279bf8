package crypto_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
)

// testNow is the receiver's clock in most tests (Unix seconds).
const testNow = 1_800_000_000

// testKey returns a fixed user key, different for every seed, so that
// failures reproduce.
func testKey(seed uint64) crypto.Key {
	var k crypto.Key
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 'u'}).Read(k[:])
	return k
}

func testRealmKey(seed uint64) crypto.RealmKey {
	var k crypto.RealmKey
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'r'}).Read(k[:])
	return k
}

func mustRealm(tb testing.TB, name string, rk *crypto.RealmKey) *crypto.Realm {
	tb.Helper()
	r, err := crypto.NewRealm(name, rk)
	if err != nil {
		tb.Fatalf("NewRealm(%q): %v", name, err)
	}
	return r
}

// knocks returns one valid knock per combination of mode, action and
// protocol, all timed at testNow.
func knocks() []crypto.Knock {
	var ks []crypto.Knock
	addrs := map[crypto.Mode]netip.Addr{
		crypto.ModeSource: {},
		crypto.ModeIPv4:   netip.MustParseAddr("198.51.100.7"),
		crypto.ModeIPv6:   netip.MustParseAddr("2001:db8::7"),
	}
	for _, m := range []crypto.Mode{crypto.ModeSource, crypto.ModeIPv4, crypto.ModeIPv6} {
		for _, a := range []crypto.Action{crypto.ActionOpen, crypto.ActionClose} {
			for _, p := range []ports.Proto{ports.TCP, ports.UDP} {
				k := crypto.Knock{
					Action: a, Mode: m, Addr: addrs[m], Proto: p,
					Port: 22, Time: testNow,
					Nonce: [4]byte{byte(m), byte(a), byte(p), 0xa5},
				}
				if a == crypto.ActionOpen {
					k.Duration = 3600
				}
				ks = append(ks, k)
			}
		}
	}
	return ks
}

func mustSeal(tb testing.TB, r *crypto.Realm, index uint16, u *crypto.User, k crypto.Knock) []byte {
	tb.Helper()
	b, err := crypto.Seal(nil, r, index, u, &k)
	if err != nil {
		tb.Fatalf("Seal(%+v): %v", k, err)
	}
	return b
}

// refSeal seals a plaintext the way SPEC.md §4 and §6 describe it, with the
// standard library's HMAC and CTR rather than the package's own code, so
// that the two implementations check each other.
func refSeal(realm string, rk *crypto.RealmKey, key crypto.Key, index uint16, header byte, p []byte) []byte {
	derive := func(secret []byte, info string) []byte {
		k, err := hkdf.Key(sha256.New, secret, []byte("cipherknock/v1"), info, 32)
		if err != nil {
			panic(err)
		}
		return k
	}
	macKey := derive(key[:], "cipherknock/v1 mac")
	encKey := derive(key[:], "cipherknock/v1 enc")
	var outerSecret []byte
	if rk != nil {
		outerSecret = rk[:]
	}
	outerKey := derive(outerSecret, "cipherknock/v1 outer")

	mac := hmac.New(sha256.New, macKey)
	mac.Write([]byte{byte(len(realm))})
	mac.Write([]byte(realm))
	mac.Write([]byte{header})
	mac.Write(binary.BigEndian.AppendUint16(nil, index))
	mac.Write(p)
	tag := mac.Sum(nil)[:8]

	// Counter blocks tag || u64be(i): for the two blocks a knock needs,
	// this is standard CTR with the initial block tag || 0^64.
	encBlock, _ := aes.NewCipher(encKey)
	iv := append(append([]byte{}, tag...), make([]byte, 8)...)
	c := make([]byte, len(p))
	cipher.NewCTR(encBlock, iv).XORKeyStream(c, p)

	outer, _ := aes.NewCipher(outerKey)
	pad := make([]byte, 16)
	outer.Encrypt(pad, iv)

	out := []byte{header, byte(index>>8) ^ pad[0], byte(index) ^ pad[1]}
	out = append(out, c...)
	return append(out, tag...)
}

// userFieldFor returns the user field that makes a knock ending in tag
// decode to index under realm key rk.
func userFieldFor(rk *crypto.RealmKey, tag []byte, index uint16) [2]byte {
	ok := crypto.OuterKey(rk)
	b, _ := aes.NewCipher(ok[:])
	var blk, pad [16]byte
	copy(blk[:], tag)
	b.Encrypt(pad[:], blk[:])
	return [2]byte{byte(index>>8) ^ pad[0], byte(index) ^ pad[1]}
}

// decodeUser recovers the user index of knock b as anyone holding the
// outer key can.
func decodeUser(rk *crypto.RealmKey, b []byte) uint16 {
	f := userFieldFor(rk, b[len(b)-crypto.TagSize:], 0)
	return uint16(b[1]^f[0])<<8 | uint16(b[2]^f[1])
}
