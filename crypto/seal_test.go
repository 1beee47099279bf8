package crypto_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
)

// fixture is a realm "home" with a realm key and users 1 and 2.
type fixture struct {
	rk     crypto.RealmKey
	realm  *crypto.Realm
	keys   map[uint16]crypto.Key
	users  map[uint16]*crypto.User
	opener *crypto.Opener
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{rk: testRealmKey(1), keys: map[uint16]crypto.Key{}, users: map[uint16]*crypto.User{}}
	f.realm = mustRealm(tb, "home", &f.rk)
	for _, i := range []uint16{1, 2} {
		k := testKey(uint64(i))
		f.keys[i] = k
		f.users[i] = crypto.NewUser(&k)
	}
	f.opener = crypto.NewOpener(f.realm, f.users, 0)
	return f
}

func TestSealOpenRoundTrip(t *testing.T) {
	f := newFixture(t)
	plain := mustRealm(t, "home", nil)
	for _, realm := range []struct {
		name string
		r    *crypto.Realm
		rk   *crypto.RealmKey
	}{{"realm key", f.realm, &f.rk}, {"no realm key", plain, nil}} {
		o := crypto.NewOpener(realm.r, f.users, 0)
		for _, k := range knocks() {
			for _, index := range []uint16{1, 2} {
				name := fmt.Sprintf("%s/%v/%v/%v/user%d", realm.name, k.Mode, k.Action, k.Proto, index)
				t.Run(name, func(t *testing.T) {
					prefix := []byte("prefix")
					b, err := crypto.Seal(bytes.Clone(prefix), realm.r, index, f.users[index], &k)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.HasPrefix(b, prefix) {
						t.Fatalf("Seal did not append to dst")
					}
					b = b[len(prefix):]
					if len(b) != k.Mode.Len() || b[0] != crypto.Header(k.Mode) {
						t.Fatalf("knock is %d bytes with header %#x, want %d with %#x", len(b), b[0], k.Mode.Len(), crypto.Header(k.Mode))
					}
					want := refSeal(realm.r.Name(), realm.rk, f.keys[index], index, crypto.Header(k.Mode), crypto.AppendPlaintext(nil, &k))
					if !bytes.Equal(b, want) {
						t.Fatalf("Seal = %x\nspec  %x", b, want)
					}
					if got := decodeUser(realm.rk, b); got != index {
						t.Fatalf("user field decodes to %d, want %d", got, index)
					}
					res, err := o.Open(b, testNow)
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					if res.Knock != k || res.User != index {
						t.Fatalf("Open = %+v user %d, want %+v user %d", res.Knock, res.User, k, index)
					}
					wantID := append([]byte{byte(index >> 8), byte(index)}, b[len(b)-crypto.TagSize:]...)
					if !bytes.Equal(res.ID[:], wantID) {
						t.Fatalf("ID = %x, want %x", res.ID, wantID)
					}
					// Sealing is deterministic: the opened knock seals to
					// the same bytes.
					again := mustSeal(t, realm.r, res.User, f.users[res.User], res.Knock)
					if !bytes.Equal(again, b) {
						t.Fatalf("resealing the opened knock gave %x, want %x", again, b)
					}
				})
			}
		}
	}
}

func TestSealInvalid(t *testing.T) {
	f := newFixture(t)
	for _, k := range []crypto.Knock{
		{Action: crypto.ActionOpen, Mode: crypto.ModeSource, Port: 0, Duration: 1},
		{Action: crypto.ActionOpen, Mode: 3, Port: 1, Duration: 1},
		{Action: crypto.ActionClose, Mode: crypto.ModeIPv4, Addr: netip.MustParseAddr("224.0.0.1"), Port: 1},
	} {
		dst := []byte{1, 2, 3}
		got, err := crypto.Seal(dst, f.realm, 1, f.users[1], &k)
		if err == nil || err != k.Validate() {
			t.Errorf("Seal(%+v) error = %v, want Validate's %v", k, err, k.Validate())
		}
		if !bytes.Equal(got, dst) {
			t.Errorf("Seal(%+v) = %x on error, want dst unchanged", k, got)
		}
	}
}

func TestSealPlaintext(t *testing.T) {
	f := newFixture(t)
	for _, k := range knocks() {
		p := crypto.AppendPlaintext(nil, &k)
		got := crypto.SealPlaintext(nil, f.realm, 2, f.users[2], crypto.Header(k.Mode), p)
		if want := mustSeal(t, f.realm, 2, f.users[2], k); !bytes.Equal(got, want) {
			t.Errorf("SealPlaintext = %x, Seal = %x", got, want)
		}
	}
}

// sealRaw seals fields that need not be valid, as a forger with the key
// could.
func (f *fixture) sealRaw(index uint16, mode crypto.Mode, p []byte) []byte {
	return crypto.SealPlaintext(nil, f.realm, index, f.users[index], crypto.Header(mode), p)
}

func flip(b []byte, i int, mask byte) []byte {
	c := bytes.Clone(b)
	c[i] ^= mask
	return c
}

// TestOpenFailures checks the failure class of every kind of bad knock,
// and that a knock with several faults reports the first in the order of
// SPEC.md §8: header, user, tag, fields, time.
func TestOpenFailures(t *testing.T) {
	f := newFixture(t)
	base := crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeSource, Proto: ports.TCP, Port: 22, Duration: 60, Time: testNow}
	at := func(ts uint32) crypto.Knock { k := base; k.Time = ts; return k }
	good := mustSeal(t, f.realm, 1, f.users[1], base)
	stale := mustSeal(t, f.realm, 1, f.users[1], at(testNow-61))
	future := mustSeal(t, f.realm, 1, f.users[1], at(testNow+61))
	k4 := base
	k4.Mode, k4.Addr = crypto.ModeIPv4, netip.MustParseAddr("192.0.2.1")
	good4 := mustSeal(t, f.realm, 1, f.users[1], k4)

	k3 := testKey(3)
	unknown := mustSeal(t, f.realm, 3, crypto.NewUser(&k3), base)
	unknownStale := mustSeal(t, f.realm, 3, crypto.NewUser(&k3), at(testNow-1000))

	// Plaintexts with a field out of range, sealed with the right key.
	plain := func(flags byte, port, dur uint16, ts uint32, addr ...byte) []byte {
		p := []byte{flags, byte(port >> 8), byte(port), byte(dur >> 8), byte(dur), byte(ts >> 24), byte(ts >> 16), byte(ts >> 8), byte(ts), 9, 9, 9, 9}
		return append(p, addr...)
	}
	v6 := func(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }
	fieldCases := []struct {
		name string
		mode crypto.Mode
		p    []byte
	}{
		{"action 0", crypto.ModeSource, plain(0x00, 22, 60, testNow)},
		{"action 3", crypto.ModeSource, plain(0x30, 22, 60, testNow)},
		{"action 15", crypto.ModeSource, plain(0xf0, 22, 60, testNow)},
		{"reserved bit 1", crypto.ModeSource, plain(0x12, 22, 60, testNow)},
		{"reserved bit 2", crypto.ModeSource, plain(0x14, 22, 60, testNow)},
		{"reserved bit 3", crypto.ModeSource, plain(0x18, 22, 60, testNow)},
		{"port 0", crypto.ModeSource, plain(0x10, 0, 60, testNow)},
		{"open duration 0", crypto.ModeSource, plain(0x10, 22, 0, testNow)},
		{"close duration 1", crypto.ModeSource, plain(0x20, 22, 1, testNow)},
		{"ipv4 unspecified", crypto.ModeIPv4, plain(0x10, 22, 60, testNow, 0, 0, 0, 0)},
		{"ipv4 multicast", crypto.ModeIPv4, plain(0x10, 22, 60, testNow, 239, 1, 1, 1)},
		{"ipv4 broadcast", crypto.ModeIPv4, plain(0x10, 22, 60, testNow, 255, 255, 255, 255)},
		{"ipv6 unspecified", crypto.ModeIPv6, plain(0x10, 22, 60, testNow, v6("::")...)},
		{"ipv6 multicast", crypto.ModeIPv6, plain(0x10, 22, 60, testNow, v6("ff02::1")...)},
		{"ipv6 mapped ipv4", crypto.ModeIPv6, plain(0x10, 22, 60, testNow, v6("::ffff:192.0.2.1")...)},
		{"range and stale", crypto.ModeSource, plain(0x10, 0, 60, testNow-1000)},
		{"range and future", crypto.ModeSource, plain(0x30, 22, 60, testNow+1000)},
	}

	type tc struct {
		name string
		b    []byte
		want error
	}
	tests := []tc{
		{"empty", nil, crypto.ErrMalformed},
		{"header only", []byte{0x10}, crypto.ErrMalformed},
		{"version 0", flip(good, 0, 0x10), crypto.ErrUnknownVersion},
		{"version 2", flip(good, 0, 0x30), crypto.ErrUnknownVersion},
		{"version 15", flip(good, 0, 0xe0), crypto.ErrUnknownVersion},
		{"version 0 short", []byte{0x00}, crypto.ErrUnknownVersion},
		{"mode 3 (bound) without a source", flip(good, 0, 0x03), crypto.ErrBadTag},
		{"mode 4", flip(good, 0, 0x04), crypto.ErrMalformed},
		{"mode 15", flip(good, 0, 0x0f), crypto.ErrMalformed},
		{"source header on ipv4 length", flip(good4, 0, 0x01), crypto.ErrMalformed},
		{"ipv4 header on source length", flip(good, 0, 0x01), crypto.ErrMalformed},
		{"one short", good[:len(good)-1], crypto.ErrMalformed},
		{"one long", append(bytes.Clone(good), 0), crypto.ErrMalformed},
		{"41 zero bytes", make([]byte, 41), crypto.ErrUnknownVersion},
		{"ipv6 header, 41 bytes", append([]byte{0x12}, make([]byte, 40)...), crypto.ErrMalformed},
		{"ipv6 header, 24 bytes", flip(good, 0, 0x02), crypto.ErrMalformed},
		{"unknown user", unknown, crypto.ErrUnknownUser},
		{"unknown user, stale", unknownStale, crypto.ErrUnknownUser},
		{"other user's index", func() []byte {
			b := bytes.Clone(good)
			b[2] ^= 1 ^ 2 // index 1 becomes 2: the tag is user 1's
			return b
		}(), crypto.ErrBadTag},
		{"bad tag, stale", flip(stale, 5, 0x01), crypto.ErrBadTag},
		{"bad tag, future", flip(future, 12, 0x80), crypto.ErrBadTag},
		{"bad tag, field range", flip(f.sealRaw(1, crypto.ModeSource, plain(0x10, 0, 60, testNow)), 3, 0x40), crypto.ErrBadTag},
		{"stale", stale, crypto.ErrStale},
		{"future", future, crypto.ErrFuture},
	}
	// Any bit flipped in the ciphertext breaks the tag.
	for i := crypto.HeaderSize + crypto.UserFieldSize; i < len(good)-crypto.TagSize; i++ {
		for bit := range 8 {
			tests = append(tests, tc{fmt.Sprintf("ciphertext byte %d bit %d", i, bit), flip(good, i, 1<<bit), crypto.ErrBadTag})
		}
	}
	// A bit flipped in the user field or the tag changes the user index the
	// receiver decodes: unknown user, or a known user whose tag fails.
	for i := crypto.HeaderSize; i < len(good); i++ {
		if i == crypto.HeaderSize+crypto.UserFieldSize {
			i = len(good) - crypto.TagSize
		}
		for bit := range 8 {
			b := flip(good, i, 1<<bit)
			want := crypto.ErrUnknownUser
			if f.users[decodeUser(&f.rk, b)] != nil {
				want = crypto.ErrBadTag
			}
			tests = append(tests, tc{fmt.Sprintf("user field or tag byte %d bit %d", i, bit), b, want})
		}
	}
	for _, fc := range fieldCases {
		tests = append(tests, tc{"field " + fc.name, f.sealRaw(1, fc.mode, fc.p), crypto.ErrFieldRange})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := bytes.Clone(tt.b)
			res, err := f.opener.Open(tt.b, testNow)
			if err != tt.want {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
			if res != (crypto.Opened{}) {
				t.Errorf("Open returned %+v with its error, want the zero value", res)
			}
			if !bytes.Equal(in, tt.b) {
				t.Errorf("Open modified its input")
			}
		})
	}
	if _, err := f.opener.Open(good, testNow); err != nil {
		t.Fatalf("the unmodified knock fails: %v", err)
	}
}

func TestOpenWrongRealm(t *testing.T) {
	f := newFixture(t)
	k := knocks()[0]
	b := mustSeal(t, f.realm, 1, f.users[1], k)

	otherRK := testRealmKey(99)
	tests := []struct {
		name  string
		realm *crypto.Realm
		want  error
	}{
		{"same realm", mustRealm(t, "home", &f.rk), nil},
		// Same realm key: the user field decodes, but the realm name is
		// part of the tag.
		{"other name", mustRealm(t, "office", &f.rk), crypto.ErrBadTag},
		{"name differs in case", mustRealm(t, "Home", &f.rk), crypto.ErrBadTag},
		// Another realm key turns the user field into a random index.
		{"other realm key", mustRealm(t, "home", &otherRK), crypto.ErrUnknownUser},
		{"no realm key", mustRealm(t, "home", nil), crypto.ErrUnknownUser},
	}
	for _, tt := range tests {
		_, err := crypto.NewOpener(tt.realm, f.users, 0).Open(b, testNow)
		if err != tt.want {
			t.Errorf("%s: Open = %v, want %v", tt.name, err, tt.want)
		}
	}
	// With every index known, a wrong realm key cannot hide behind an
	// unknown user: the tag catches it.
	all := make(map[uint16]*crypto.User, 1<<16)
	for i := range 1 << 16 {
		all[uint16(i)] = f.users[1]
	}
	if _, err := crypto.NewOpener(mustRealm(t, "home", &otherRK), all, 0).Open(b, testNow); err != crypto.ErrBadTag {
		t.Errorf("other realm key, every index known: Open = %v, want %v", err, crypto.ErrBadTag)
	}
	// The right user index with another user's key.
	k9 := testKey(9)
	if _, err := crypto.NewOpener(f.realm, map[uint16]*crypto.User{1: crypto.NewUser(&k9)}, 0).Open(b, testNow); err != crypto.ErrBadTag {
		t.Errorf("wrong user key: Open = %v, want %v", err, crypto.ErrBadTag)
	}
}

// TestOpenTimeWindow checks the window's edges: a knock exactly window
// seconds old or ahead passes, one second more fails.
func TestOpenTimeWindow(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ window, effective int }{
		{0, crypto.DefaultWindow},
		{crypto.MinWindow, crypto.MinWindow},
		{crypto.DefaultWindow, crypto.DefaultWindow},
		{crypto.MaxWindow, crypto.MaxWindow},
	} {
		o := crypto.NewOpener(f.realm, f.users, tt.window)
		w := int64(tt.effective)
		for _, c := range []struct {
			offset int64
			want   error
		}{
			{0, nil},
			{-w, nil},
			{+w, nil},
			{-w - 1, crypto.ErrStale},
			{+w + 1, crypto.ErrFuture},
			{-w - 100000, crypto.ErrStale},
			{+w + 100000, crypto.ErrFuture},
		} {
			k := knocks()[0]
			k.Time = uint32(testNow + c.offset)
			b := mustSeal(t, f.realm, 1, f.users[1], k)
			if _, err := o.Open(b, testNow); err != c.want {
				t.Errorf("window %d: knock at now%+d: Open = %v, want %v", tt.window, c.offset, err, c.want)
			}
		}
	}
	// The clock near the epoch: now-window is negative.
	k := knocks()[0]
	k.Time = 0
	if _, err := f.opener.Open(mustSeal(t, f.realm, 1, f.users[1], k), 30); err != nil {
		t.Errorf("knock at 0, now 30: %v", err)
	}
	k.Time = 1<<32 - 1
	if _, err := f.opener.Open(mustSeal(t, f.realm, 1, f.users[1], k), 1<<32-1+crypto.DefaultWindow); err != nil {
		t.Errorf("knock at 2^32-1: %v", err)
	}
}

var (
	manyUsersOnce sync.Once
	manyUsers     map[uint16]*crypto.User
)

// users10k returns 10,000 users, indexes 0 to 9999, with keys testKey(index).
func users10k() map[uint16]*crypto.User {
	manyUsersOnce.Do(func() {
		manyUsers = make(map[uint16]*crypto.User, 10000)
		for i := range uint16(10000) {
			k := testKey(uint64(i))
			manyUsers[i] = crypto.NewUser(&k)
		}
	})
	return manyUsers
}

func TestOpen10kUsers(t *testing.T) {
	f := newFixture(t)
	users := users10k()
	o := crypto.NewOpener(f.realm, users, 0)
	for _, index := range []uint16{0, 1, 2, 255, 256, 4999, 9998, 9999} {
		for _, k := range knocks()[:4] {
			b := mustSeal(t, f.realm, index, users[index], k)
			res, err := o.Open(b, testNow)
			if err != nil || res.User != index || res.Knock != k {
				t.Fatalf("user %d: Open = user %d, %v", index, res.User, err)
			}
		}
		// Another user's key under this index.
		b := mustSeal(t, f.realm, index, users[(index+1)%10000], knocks()[0])
		if _, err := o.Open(b, testNow); err != crypto.ErrBadTag {
			t.Fatalf("user %d with user %d's key: Open = %v, want %v", index, (index+1)%10000, err, crypto.ErrBadTag)
		}
	}
	k := testKey(10000)
	if _, err := o.Open(mustSeal(t, f.realm, 10000, crypto.NewUser(&k), knocks()[0]), testNow); err != crypto.ErrUnknownUser {
		t.Fatalf("user 10000: Open = %v, want %v", err, crypto.ErrUnknownUser)
	}
}

// TestUserFieldUnlinkable checks that with a realm key the user field of
// two knocks by the same user differs, and that someone without the realm
// key decodes no stable index from it. Without a realm key the index is
// public, as SPEC.md §4.2 says.
func TestUserFieldUnlinkable(t *testing.T) {
	f := newFixture(t)
	open := mustRealm(t, "home", nil)
	fields := map[[2]byte]bool{}
	guesses := map[uint16]bool{}
	const n = 32
	for i := range n {
		k := knocks()[0]
		k.Nonce = [4]byte{byte(i), 1, 2, 3}
		b := mustSeal(t, f.realm, 1, f.users[1], k)
		fields[[2]byte(b[1:3])] = true
		guesses[decodeUser(nil, b)] = true

		pb := mustSeal(t, open, 1, f.users[1], k)
		if got := decodeUser(nil, pb); got != 1 {
			t.Fatalf("without realm key, the user field decodes to %d, want the public index 1", got)
		}
	}
	// 32 random 16-bit values: a repeat has probability 32*31/2/65536 < 1%,
	// and the inputs are fixed, so this does not flake.
	if len(fields) != n || len(guesses) != n {
		t.Errorf("%d knocks of one user gave %d distinct user fields and %d distinct guessed indexes, want %d", n, len(fields), len(guesses), n)
	}
	if guesses[1] {
		t.Errorf("without the realm key, the true index was decoded")
	}
}

// TestOpenersShareUsers opens knocks from several goroutines, each with its
// own Opener over one realm and one user map, as the package doc allows
// (run with -race to check the sharing).
func TestOpenersShareUsers(t *testing.T) {
	f := newFixture(t)
	var sealed [][]byte
	for i, k := range knocks() {
		sealed = append(sealed, mustSeal(t, f.realm, uint16(1+i%2), f.users[uint16(1+i%2)], k))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			o := crypto.NewOpener(f.realm, f.users, 0)
			for range 200 {
				for i, b := range sealed {
					res, err := o.Open(b, testNow)
					if err != nil || res.User != uint16(1+i%2) {
						errs <- fmt.Errorf("knock %d: user %d, %v", i, res.User, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestProgrammingErrorsPanic(t *testing.T) {
	f := newFixture(t)
	for _, w := range []int{-1, crypto.MinWindow - 1, crypto.MaxWindow + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewOpener(window %d) did not panic", w)
				}
			}()
			crypto.NewOpener(f.realm, f.users, w)
		}()
	}
	defer func() {
		if recover() == nil {
			t.Error("SealPlaintext with a 33-byte plaintext did not panic")
		}
	}()
	crypto.SealPlaintext(nil, f.realm, 1, f.users[1], crypto.Header(crypto.ModeIPv6), make([]byte, 33))
}
