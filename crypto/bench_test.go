package crypto_test

import (
	"math/rand/v2"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
)

func BenchmarkSeal(b *testing.B) {
	f := newFixture(b)
	for _, k := range []crypto.Knock{knocks()[0], knocks()[4], knocks()[8]} {
		b.Run(k.Mode.String(), func(b *testing.B) {
			buf := make([]byte, 0, crypto.MaxLen)
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = crypto.Seal(buf[:0], f.realm, 1, f.users[1], &k)
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	for _, k := range []crypto.Knock{knocks()[0], knocks()[4], knocks()[8]} {
		knock := mustSeal(b, f.realm, 1, f.users[1], k)
		b.Run(k.Mode.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.opener.Open(knock, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// garbage returns n random source-mode knocks with a valid header. If
// toUser is set, each user field is made to decode to one of the 10,000
// users, so that Open goes as far as the HMAC.
func garbage(rk *crypto.RealmKey, n int, toUser bool) [][]byte {
	r := rand.New(rand.NewPCG(21, 22))
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, crypto.LenSource)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		b[0] = crypto.Header(crypto.ModeSource)
		if toUser {
			f := userFieldFor(rk, b[len(b)-crypto.TagSize:], uint16(r.IntN(10000)))
			b[1], b[2] = f[0], f[1]
		}
		out[i] = b
	}
	return out
}

func benchmarkGarbage(b *testing.B, toUser bool) {
	f := newFixture(b)
	o := crypto.NewOpener(f.realm, users10k(), 0)
	knocks := garbage(&f.rk, 1024, toUser)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, err := o.Open(knocks[i%len(knocks)], testNow)
		if toUser && err != crypto.ErrBadTag {
			b.Fatalf("Open = %v, want %v", err, crypto.ErrBadTag)
		}
		i++
	}
}

// BenchmarkOpenGarbage10kUsers is the cost of a random knock against a
// realm of 10,000 users: mostly an unknown user (about 85%), else a bad tag.
func BenchmarkOpenGarbage10kUsers(b *testing.B) { benchmarkGarbage(b, false) }

// BenchmarkOpenWrongUserField10kUsers is the worst case for garbage: the
// user field names an existing user, so the HMAC runs.
func BenchmarkOpenWrongUserField10kUsers(b *testing.B) { benchmarkGarbage(b, true) }

// BenchmarkNewUser is the per-user cost of loading keys.
func BenchmarkNewUser(b *testing.B) {
	k := testKey(1)
	b.ReportAllocs()
	for b.Loop() {
		crypto.NewUser(&k)
	}
}
