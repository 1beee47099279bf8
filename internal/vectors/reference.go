package vectors

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
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

// refSeal builds a knock: header || E || C || T (SPEC.md §6).
func refSeal(macKey, encKey, outerKey []byte, realm string, header byte, index uint16, plaintext []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write([]byte{byte(len(realm))})
	m.Write([]byte(realm))
	m.Write([]byte{header, byte(index >> 8), byte(index)})
	m.Write(plaintext)
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
