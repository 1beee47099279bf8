package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Key-derivation labels (SPEC.md §4). HKDF-SHA-256 with this salt and these
// info strings; every derived key is 32 bytes.
const (
	HKDFSalt  = "cipherknock/v1"
	InfoMAC   = "cipherknock/v1 mac"
	InfoEnc   = "cipherknock/v1 enc"
	InfoOuter = "cipherknock/v1 outer"
)

// DefaultWindow is the default freshness window in seconds; MinWindow and
// MaxWindow bound what a receiver may configure (SPEC.md §7.1).
const (
	DefaultWindow = 60
	MinWindow     = 5
	MaxWindow     = 600
)

func derive(secret []byte, info string) [32]byte {
	out, err := hkdf.Key(sha256.New, secret, []byte(HKDFSalt), info, 32)
	if err != nil {
		panic("cipherknock/crypto: HKDF: " + err.Error()) // cannot happen for 32 bytes
	}
	var k [32]byte
	copy(k[:], out)
	clear(out)
	return k
}

// Subkeys returns the user's MAC and encryption keys (SPEC.md §4.1).
func (k *Key) Subkeys() (mac, enc [32]byte) {
	return derive(k[:], InfoMAC), derive(k[:], InfoEnc)
}

// OuterKey returns the realm's outer key (SPEC.md §4.2). A nil realm key
// stands for the empty secret: the outer key is then public.
func OuterKey(rk *RealmKey) [32]byte {
	if rk == nil {
		return derive(nil, InfoOuter)
	}
	return derive(rk[:], InfoOuter)
}

// Realm is a server's realm: its name, authenticated by every tag, and the
// outer cipher that hides user indexes.
type Realm struct {
	name  string
	outer cipher.Block
}

// NewRealm returns the realm called name. rk may be nil for a realm without a
// realm key (SPEC.md §4.2 says what that gives away).
func NewRealm(name string, rk *RealmKey) (*Realm, error) {
	if err := CheckRealm(name); err != nil {
		return nil, err
	}
	ok := OuterKey(rk)
	b, err := aes.NewCipher(ok[:])
	clear(ok[:])
	if err != nil {
		return nil, err
	}
	return &Realm{name: name, outer: b}, nil
}

// Name returns the realm's name.
func (r *Realm) Name() string { return r.name }

// User holds one user's derived keys, ready for sealing and opening.
type User struct {
	ipad, opad [sha256.BlockSize]byte // HMAC key XOR 0x36 / 0x5c
	enc        cipher.Block
}

// NewUser derives a user's subkeys from its key.
func NewUser(k *Key) *User {
	mac, enc := k.Subkeys()
	u := &User{}
	for i := range u.ipad {
		u.ipad[i], u.opad[i] = 0x36, 0x5c
	}
	for i, b := range mac {
		u.ipad[i] ^= b
		u.opad[i] ^= b
	}
	blk, err := aes.NewCipher(enc[:])
	if err != nil {
		panic("cipherknock/crypto: " + err.Error()) // 32-byte key cannot fail
	}
	u.enc = blk
	clear(mac[:])
	clear(enc[:])
	return u
}

// scratch is the working memory of one seal or open, kept in a struct so
// that the interface calls into cipher.Block do not force heap allocations.
type scratch struct {
	in    [sha256.BlockSize + maxMAC + BoundAddrSize]byte
	out   [sha256.BlockSize + sha256.Size]byte
	blk   [aes.BlockSize]byte
	ks    [2 * aes.BlockSize]byte
	plain [maxPlain]byte
}

// tag computes HMAC-SHA-256(mac, len(realm) || realm || header || index || p
// [|| bound address]) truncated to TagSize bytes (SPEC.md §6.2); the bound
// address is there only when header is ModeBound's.
func (s *scratch) tag(u *User, realm string, header byte, index uint16, p []byte, bound *[BoundAddrSize]byte) [TagSize]byte {
	m := append(s.in[:0], u.ipad[:]...)
	m = append(m, byte(len(realm)))
	m = append(m, realm...)
	m = append(m, header, byte(index>>8), byte(index))
	m = append(m, p...)
	if bound != nil {
		m = append(m, bound[:]...)
	}
	inner := sha256.Sum256(m)
	o := append(s.out[:0], u.opad[:]...)
	o = append(o, inner[:]...)
	full := sha256.Sum256(o)
	return [TagSize]byte(full[:TagSize])
}

// xorKeyStream XORs dst with the AES-256-CTR keystream whose counter blocks
// are tag || uint64(i), i = 0, 1, ... (SPEC.md §6.3).
func (s *scratch) xorKeyStream(b cipher.Block, tag []byte, dst []byte) {
	copy(s.blk[:TagSize], tag)
	for i := 0; i*aes.BlockSize < len(dst); i++ {
		binary.BigEndian.PutUint64(s.blk[TagSize:], uint64(i))
		b.Encrypt(s.ks[i*aes.BlockSize:], s.blk[:])
	}
	subtle.XORBytes(dst, dst, s.ks[:len(dst)])
}

// userPad returns the two bytes that hide the user index:
// AES-256(outer key, tag || 0^64)[0:2] (SPEC.md §6.4).
func (s *scratch) userPad(r *Realm, tag []byte) (byte, byte) {
	copy(s.blk[:TagSize], tag)
	clear(s.blk[TagSize:])
	r.outer.Encrypt(s.ks[:aes.BlockSize], s.blk[:])
	return s.ks[0], s.ks[1]
}

// RandomNonce fills k.Nonce from the system's secure random source.
func (k *Knock) RandomNonce() error {
	_, err := rand.Read(k.Nonce[:])
	return err
}

// Seal validates k and appends its sealed knock bytes to dst.
func Seal(dst []byte, r *Realm, index uint16, u *User, k *Knock) ([]byte, error) {
	if err := k.Validate(); err != nil {
		return dst, err
	}
	var p [maxPlain]byte
	if k.Mode == ModeBound {
		return SealPlaintextBound(dst, r, index, u, AppendPlaintext(p[:0], k), k.Addr), nil
	}
	return SealPlaintext(dst, r, index, u, Header(k.Mode), AppendPlaintext(p[:0], k)), nil
}

// SealPlaintextBound is SealPlaintext for mode bound: the tag covers the
// address bound as well as the plaintext, and the address is not sent
// (SPEC.md §6.2). A bound address that is not valid is a programming error
// and panics.
func SealPlaintextBound(dst []byte, r *Realm, index uint16, u *User, plaintext []byte, bound netip.Addr) []byte {
	if !bound.IsValid() {
		panic("cipherknock/crypto: SealPlaintextBound: no address to bind")
	}
	a := boundAddr(bound)
	return sealPlaintext(dst, r, index, u, Header(ModeBound), plaintext, &a)
}

// SealPlaintext seals an already encoded plaintext under header, without
// checking any field. It exists so that test vectors can carry knocks whose
// fields are out of range; everything else should call Seal. A plaintext
// longer than the longest mode's (29 bytes) is a programming error and
// panics.
func SealPlaintext(dst []byte, r *Realm, index uint16, u *User, header byte, plaintext []byte) []byte {
	if header == Header(ModeBound) {
		panic("cipherknock/crypto: SealPlaintext: mode bound needs SealPlaintextBound")
	}
	return sealPlaintext(dst, r, index, u, header, plaintext, nil)
}

func sealPlaintext(dst []byte, r *Realm, index uint16, u *User, header byte, plaintext []byte, bound *[BoundAddrSize]byte) []byte {
	if len(plaintext) > maxPlain {
		panic("cipherknock/crypto: SealPlaintext: plaintext longer than any knock's")
	}
	var s scratch
	t := s.tag(u, r.name, header, index, plaintext, bound)
	p0, p1 := s.userPad(r, t[:])
	dst = append(dst, header, byte(index>>8)^p0, byte(index)^p1)
	start := len(dst)
	dst = append(dst, plaintext...)
	s.xorKeyStream(u.enc, t[:], dst[start:])
	return append(dst, t[:]...)
}

// ReplayID identifies a knock for the receiver's replay cache: the user index
// followed by the tag (SPEC.md §7.2).
type ReplayID [UserFieldSize + TagSize]byte

// Opened is the result of opening a knock.
type Opened struct {
	Knock Knock
	User  uint16
	ID    ReplayID
}

// Opener opens knocks for one realm and its users. It is not safe for
// concurrent use; give each goroutine its own Opener over the same users.
type Opener struct {
	realm  *Realm
	users  map[uint16]*User
	window int64
	s      scratch
}

// NewOpener returns an opener for realm with the given freshness window in
// seconds; 0 selects DefaultWindow, and any other value outside
// MinWindow..MaxWindow (SPEC.md §7.1) is a programming error and panics:
// configuration code checks the range where it can report it. users maps
// user index to keys and is not copied: the caller must not change it while
// the opener is in use.
func NewOpener(realm *Realm, users map[uint16]*User, window int) *Opener {
	if window == 0 {
		window = DefaultWindow
	}
	if window < MinWindow || window > MaxWindow {
		panic(fmt.Sprintf("cipherknock/crypto: window %d s outside %d..%d", window, MinWindow, MaxWindow))
	}
	return &Opener{realm: realm, users: users, window: int64(window)}
}

// Open authenticates and decrypts knock b and checks its time against now
// (Unix seconds), in the order of SPEC.md §8. It allocates nothing and
// returns one of the package's sentinel errors unwrapped. Replay checking is
// the caller's: use Opened.ID. Open knows no source address, so a
// bound-mode knock fails as ErrBadTag; receivers use OpenFrom.
func (o *Opener) Open(b []byte, now int64) (Opened, error) {
	return o.OpenFrom(b, now, netip.Addr{})
}

// OpenFrom is Open for a knock whose packets came from src: a bound-mode
// knock's tag is checked against src, and the opened knock's Addr is src
// (SPEC.md §8). Other modes ignore src.
func (o *Opener) OpenFrom(b []byte, now int64, src netip.Addr) (Opened, error) {
	var res Opened
	if len(b) == 0 {
		return res, ErrMalformed
	}
	mode, err := ParseHeader(b[0])
	if err != nil {
		return res, err
	}
	n := mode.Len()
	if len(b) != n {
		return res, ErrMalformed
	}
	t := b[n-TagSize:]
	p0, p1 := o.s.userPad(o.realm, t)
	index := uint16(b[1]^p0)<<8 | uint16(b[2]^p1)
	u := o.users[index]
	if u == nil {
		return res, ErrUnknownUser
	}
	p := o.s.plain[:n-TagSize-HeaderSize-UserFieldSize]
	copy(p, b[HeaderSize+UserFieldSize:])
	o.s.xorKeyStream(u.enc, t, p)
	var bound *[BoundAddrSize]byte
	if mode == ModeBound {
		if !src.IsValid() {
			// No observed address can match the tag.
			clear(p)
			return res, ErrBadTag
		}
		a := boundAddr(src)
		bound = &a
	}
	want := o.s.tag(u, o.realm.name, b[0], index, p, bound)
	if subtle.ConstantTimeCompare(want[:], t) != 1 {
		clear(p)
		return res, ErrBadTag
	}
	err = parsePlaintext(&res.Knock, mode, p, src)
	clear(p)
	if err != nil {
		return Opened{}, err
	}
	// Written so that nothing overflows, whatever now is (SPEC.md §7.1):
	// ts is 0..2^32-1 and the window at most 600, so ts+window and
	// ts-window are far from int64's limits.
	switch ts := int64(res.Knock.Time); {
	case now > ts+o.window:
		return Opened{}, ErrStale
	case now < ts-o.window:
		return Opened{}, ErrFuture
	}
	res.User = index
	res.ID[0], res.ID[1] = byte(index>>8), byte(index)
	copy(res.ID[UserFieldSize:], t)
	return res, nil
}
