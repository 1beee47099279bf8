package crypto_test

import (
	"bytes"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
)

// TestOpenAllocs asserts that opening a knock allocates nothing, on success
// and on every failure path, so that network garbage costs no garbage
// collection.
func TestOpenAllocs(t *testing.T) {
	f := newFixture(t)
	ks := knocks()
	good := mustSeal(t, f.realm, 1, f.users[1], ks[0])
	stale := ks[0]
	stale.Time -= 1000
	future := ks[0]
	future.Time += 1000
	k3 := testKey(3)
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"ok source", good, nil},
		{"ok ipv4", mustSeal(t, f.realm, 2, f.users[2], ks[4]), nil},
		{"ok ipv6", mustSeal(t, f.realm, 1, f.users[1], ks[8]), nil},
		{"empty", nil, crypto.ErrMalformed},
		{"wrong length", good[:20], crypto.ErrMalformed},
		{"mode", flip(good, 0, 0x0f), crypto.ErrMalformed},
		{"version", flip(good, 0, 0xf0), crypto.ErrUnknownVersion},
		{"unknown user", mustSeal(t, f.realm, 3, crypto.NewUser(&k3), ks[0]), crypto.ErrUnknownUser},
		{"bad tag", flip(good, 10, 1), crypto.ErrBadTag},
		{"field range", f.sealRaw(1, crypto.ModeSource, bytes.Repeat([]byte{0}, crypto.FixedPlainLen)), crypto.ErrFieldRange},
		{"stale", mustSeal(t, f.realm, 1, f.users[1], stale), crypto.ErrStale},
		{"future", mustSeal(t, f.realm, 1, f.users[1], future), crypto.ErrFuture},
	}
	for _, c := range cases {
		var err error
		allocs := testing.AllocsPerRun(100, func() { _, err = f.opener.Open(c.b, testNow) })
		if err != c.want {
			t.Errorf("%s: Open = %v, want %v", c.name, err, c.want)
		}
		if allocs != 0 {
			t.Errorf("%s: Open allocates %v times, want 0", c.name, allocs)
		}
	}
}
