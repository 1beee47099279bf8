package vectors

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// The reference computation below follows the text of SPEC.md §4 and §6 with
// the standard library alone, so that the vectors check the crypto package
// against the specification and not only against itself.

func refDerive(secret []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, secret, []byte("cipherknock/v1"), info, 32)
	if err != nil {
		panic(err) // 32 bytes of HKDF-SHA-256 cannot fail
	}
	return k
}

// refSubkeys returns the MAC and encryption keys of a user key (SPEC.md §4.1).
func refSubkeys(key []byte) (mac, enc []byte) {
	return refDerive(key, "cipherknock/v1 mac"), refDerive(key, "cipherknock/v1 enc")
}

// refOuterKey returns the outer key of a realm key; nil is the empty secret
// of a realm without one (SPEC.md §4.2).
func refOuterKey(realmKey []byte) []byte { return refDerive(realmKey, "cipherknock/v1 outer") }

// refSeal builds a knock: header || E || C || T (SPEC.md §6); bound is
// the 16-byte address a mode-bound tag covers, nil for other modes.
func refSeal(macKey, encKey, outerKey []byte, realm string, header byte, index uint16, plaintext, bound []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write([]byte{byte(len(realm))})
	m.Write([]byte(realm))
	m.Write([]byte{header, byte(index >> 8), byte(index)})
	m.Write(plaintext)
	m.Write(bound)
	tag := m.Sum(nil)[:8]

	// Counter blocks tag || uint64(i) are those of standard CTR mode with
	// the IV tag || 0^64, as long as the low 64 bits do not wrap.
	iv := make([]byte, 16)
	copy(iv, tag)
	enc, err := aes.NewCipher(encKey)
	if err != nil {
		panic(err)
	}
	c := make([]byte, len(plaintext))
	cipher.NewCTR(enc, iv).XORKeyStream(c, plaintext)

	outer, err := aes.NewCipher(outerKey)
	if err != nil {
		panic(err)
	}
	pad := make([]byte, 16)
	outer.Encrypt(pad, iv)

	knock := []byte{header, byte(index>>8) ^ pad[0], byte(index) ^ pad[1]}
	knock = append(knock, c...)
	return append(knock, tag...)
}

// refReceiver is the receiver of SPEC.md §10.1 and §8, written from the
// pseudo-code there.
type refReceiver struct {
	base     int
	realm    string
	outerKey []byte
	index    uint16 // the one configured user
	macKey   []byte
	encKey   []byte
	now      int64
	window   int64
	src      netip.Addr // the packets' source address; may be invalid
}

// receive returns "success" or the failure class for the observed ports.
func (r *refReceiver) receive(ports []uint16) string {
	// §10.1. A port outside the span is reported before any conflict,
	// whatever the arrival order: the class depends on the ports alone.
	for _, p := range ports {
		if int(p) < r.base || int(p) > r.base+10239 {
			return "port outside span"
		}
	}
	var val [40]byte
	var have [40]bool
	for _, p := range ports {
		i, b := (int(p)-r.base)/256, byte((int(p)-r.base)%256)
		if have[i] && val[i] != b {
			return "conflicting duplicate"
		}
		have[i], val[i] = true, b
	}
	if !have[0] {
		return "truncated"
	}
	if val[0]>>4 != 1 {
		return "unknown version"
	}
	lengths := map[byte]int{0: 24, 1: 28, 2: 40, 3: 24}
	n, ok := lengths[val[0]&0x0f]
	if !ok {
		return "malformed knock"
	}
	for i := n; i < 40; i++ {
		if have[i] {
			return "extra packets"
		}
	}
	for i := 0; i < n; i++ {
		if !have[i] {
			return "truncated"
		}
	}
	k := val[:n]

	// §8
	t := k[n-8:]
	iv := make([]byte, 16)
	copy(iv, t)
	outer, _ := aes.NewCipher(r.outerKey)
	pad := make([]byte, 16)
	outer.Encrypt(pad, iv)
	index := uint16(k[1]^pad[0])<<8 | uint16(k[2]^pad[1])
	if index != r.index {
		return "unknown user"
	}
	enc, _ := aes.NewCipher(r.encKey)
	p := make([]byte, n-11)
	cipher.NewCTR(enc, iv).XORKeyStream(p, k[3:n-8])
	m := hmac.New(sha256.New, r.macKey)
	m.Write([]byte{byte(len(r.realm))})
	m.Write([]byte(r.realm))
	m.Write([]byte{k[0], byte(index >> 8), byte(index)})
	m.Write(p)
	if k[0] == 0x13 {
		// Mode bound: the observed source, as 16 bytes (IPv4 mapped).
		if !r.src.IsValid() {
			return "bad tag"
		}
		a := r.src.Unmap().As16()
		m.Write(a[:])
	}
	if !hmac.Equal(m.Sum(nil)[:8], t) {
		return "bad tag"
	}
	if !refInRange(val[0]&0x0f, p) {
		return "field out of range"
	}
	if k[0] == 0x13 {
		a := r.src.Unmap()
		if a.IsUnspecified() || a.IsMulticast() || a == netip.MustParseAddr("255.255.255.255") {
			return "field out of range"
		}
	}
	// time < now - W and time > now + W, rearranged so that no int64
	// overflows (SPEC.md §7.1).
	time := int64(binary.BigEndian.Uint32(p[5:9]))
	switch {
	case r.now > time+r.window:
		return "stale"
	case r.now < time-r.window:
		return "future"
	}
	return "success"
}

// refInRange is SPEC.md §5.3.
func refInRange(mode byte, p []byte) bool {
	flags := p[0]
	action := flags >> 4
	port := binary.BigEndian.Uint16(p[1:3])
	duration := binary.BigEndian.Uint16(p[3:5])
	switch {
	case flags&0x0e != 0:
		return false
	case action != 1 && action != 2:
		return false
	case port == 0:
		return false
	case action == 1 && duration == 0, action == 2 && duration != 0:
		return false
	}
	switch mode {
	case 1:
		a := netip.AddrFrom4([4]byte(p[13:17]))
		return a != netip.MustParseAddr("0.0.0.0") &&
			!netip.MustParsePrefix("224.0.0.0/4").Contains(a) &&
			a != netip.MustParseAddr("255.255.255.255")
	case 2:
		a := netip.AddrFrom16([16]byte(p[13:29]))
		return a != netip.MustParseAddr("::") &&
			!netip.MustParsePrefix("ff00::/8").Contains(a) &&
			!netip.MustParsePrefix("::ffff:0:0/96").Contains(a)
	}
	return true
}
