package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"
)

// KeySize is the size of a user key and of a realm key (SPEC.md §3).
const KeySize = 32

// Text prefixes of encoded keys (SPEC.md §3.1).
const (
	KeyPrefix      = "ck-key-"   // user keys
	RealmKeyPrefix = "ck-realm-" // realm keys
)

const checksumSize = 4 // SPEC.md §3.1: SHA-256(prefix || key)[:4]

// Argon2id parameters for passphrase keys (SPEC.md §3.2, RFC 9106 §4 second
// recommended option).
const (
	Argon2Time    = 3
	Argon2Memory  = 64 * 1024 // KiB
	Argon2Threads = 4
	argon2SaltLen = 16
	passSaltLabel = "cipherknock/v1 passphrase"
)

// Key errors. Messages never contain key material.
var (
	ErrKeyPrefix   = errors.New("not a cipherknock key: wrong or missing prefix")
	ErrKeyLength   = errors.New("key has the wrong length")
	ErrKeyChecksum = errors.New("key checksum mismatch (a typo?)")
	ErrKeyEncoding = errors.New("key contains characters outside base32")
)

// Key is a user's 32-byte secret key. Its String method never reveals it; use
// Encode to obtain the text form.
type Key [KeySize]byte

// RealmKey is an optional 32-byte realm secret that hides the user index from
// anyone outside the realm (SPEC.md §4.2).
type RealmKey [KeySize]byte

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// GenerateKey returns a new random user key.
func GenerateKey() (Key, error) {
	var k Key
	_, err := rand.Read(k[:])
	return k, err
}

// GenerateRealmKey returns a new random realm key.
func GenerateRealmKey() (RealmKey, error) {
	var k RealmKey
	_, err := rand.Read(k[:])
	return k, err
}

// Encode returns the key's text form: "ck-key-" followed by the unpadded
// lowercase base32 of the key and a 4-byte checksum.
func (k *Key) Encode() string { return encodeKey(KeyPrefix, k[:]) }

// String returns a redacted form so that a key printed by accident reveals
// nothing.
func (k Key) String() string { return KeyPrefix + "<redacted>" }

// GoString is redacted like String.
func (k Key) GoString() string { return k.String() }

// Format redacts the key under every verb: without it, fmt prints a byte
// array's bytes for %d, %o, %b or %c.
func (k Key) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// Encode returns the realm key's text form, prefixed "ck-realm-".
func (k *RealmKey) Encode() string { return encodeKey(RealmKeyPrefix, k[:]) }

// String returns a redacted form.
func (k RealmKey) String() string { return RealmKeyPrefix + "<redacted>" }

// GoString is redacted like String.
func (k RealmKey) GoString() string { return k.String() }

// Format redacts the realm key under every verb.
func (k RealmKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// ParseKey decodes a user key from its text form. Surrounding white space and
// letter case are ignored.
func ParseKey(s string) (Key, error) {
	var k Key
	err := decodeKey(KeyPrefix, s, k[:])
	return k, err
}

// ParseRealmKey decodes a realm key from its text form.
func ParseRealmKey(s string) (RealmKey, error) {
	var k RealmKey
	err := decodeKey(RealmKeyPrefix, s, k[:])
	return k, err
}

func checksum(prefix string, key []byte) [checksumSize]byte {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write(key)
	var sum [checksumSize]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func encodeKey(prefix string, key []byte) string {
	sum := checksum(prefix, key)
	buf := make([]byte, 0, KeySize+checksumSize)
	buf = append(append(buf, key...), sum[:]...)
	return prefix + strings.ToLower(b32.EncodeToString(buf))
}

// encodedLen is the length of an encoded key after its prefix: the key and
// its checksum in unpadded base32.
var encodedLen = b32.EncodedLen(KeySize + checksumSize) // 58

func decodeKey(prefix, s string, out []byte) error {
	// Only ASCII letters fold: strings.ToLower would also fold the Kelvin
	// sign into 'k', and base32 decoding would skip embedded newlines, so
	// texts that are not a key's would parse as one.
	s = strings.TrimSpace(s)
	if len(s) < len(prefix) || asciiLower(s[:len(prefix)]) != prefix {
		return ErrKeyPrefix
	}
	body := s[len(prefix):]
	if len(body) != encodedLen {
		return ErrKeyLength
	}
	// upper, raw and canon hold key material: cleared on return.
	upper := make([]byte, encodedLen)
	raw := make([]byte, KeySize+checksumSize)
	canon := make([]byte, encodedLen)
	defer func() { clear(upper); clear(raw); clear(canon) }()
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case 'A' <= c && c <= 'Z', '2' <= c && c <= '7':
		default:
			return ErrKeyEncoding
		}
		upper[i] = c
	}
	if n, err := b32.Decode(raw, upper); err != nil || n != len(raw) {
		return ErrKeyEncoding
	}
	// The last character carries two bits beyond the 36 bytes, which the
	// decoder ignores. Encode writes them as zero; a text that sets them has
	// a typo in its last character that the checksum cannot see.
	b32.Encode(canon, raw)
	if subtle.ConstantTimeCompare(canon, upper) != 1 {
		return ErrKeyChecksum
	}
	sum := checksum(prefix, raw[:KeySize])
	if subtle.ConstantTimeCompare(sum[:], raw[KeySize:]) != 1 {
		return ErrKeyChecksum
	}
	copy(out, raw[:KeySize])
	return nil
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// PassphraseSalt returns the Argon2id salt for a passphrase key of user index
// in realm (SPEC.md §3.2): the first 16 bytes of
// SHA-256("cipherknock/v1 passphrase" || len(realm) || realm || index).
func PassphraseSalt(realm string, index uint16) []byte {
	h := sha256.New()
	h.Write([]byte(passSaltLabel))
	h.Write([]byte{byte(len(realm))})
	h.Write([]byte(realm))
	h.Write(binary.BigEndian.AppendUint16(nil, index))
	return h.Sum(nil)[:argon2SaltLen]
}

// PassphraseKey derives a user key from a passphrase with Argon2id
// (t=3, m=64 MiB, p=4), salted by realm and user index (SPEC.md §3.2).
// It takes a noticeable fraction of a second by design.
func PassphraseKey(passphrase []byte, realm string, index uint16) (Key, error) {
	if err := CheckRealm(realm); err != nil {
		return Key{}, err
	}
	if len(passphrase) == 0 {
		return Key{}, errors.New("empty passphrase")
	}
	var k Key
	out := argon2.IDKey(passphrase, PassphraseSalt(realm, index), Argon2Time, Argon2Memory, Argon2Threads, KeySize)
	copy(k[:], out)
	clear(out)
	return k, nil
}
