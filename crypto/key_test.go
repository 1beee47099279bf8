package crypto_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/cipherknock/cipherknock/crypto"
)

const b32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

func TestKeyRoundTrip(t *testing.T) {
	for seed := range uint64(50) {
		k := testKey(seed)
		s := k.Encode()
		if !strings.HasPrefix(s, crypto.KeyPrefix) || len(s) != len(crypto.KeyPrefix)+58 {
			t.Fatalf("Encode() = %d bytes with prefix %q, want %q + 58 bytes", len(s), s[:min(len(s), 7)], crypto.KeyPrefix)
		}
		if s != strings.ToLower(s) {
			t.Fatalf("Encode() is not lowercase")
		}
		got, err := crypto.ParseKey(s)
		if err != nil || got != k {
			t.Fatalf("ParseKey(Encode()) = %v, %v; want the key back", got == k, err)
		}

		rk := testRealmKey(seed)
		rs := rk.Encode()
		if !strings.HasPrefix(rs, crypto.RealmKeyPrefix) || len(rs) != len(crypto.RealmKeyPrefix)+58 {
			t.Fatalf("RealmKey.Encode() has the wrong prefix or length %d", len(rs))
		}
		rgot, err := crypto.ParseRealmKey(rs)
		if err != nil || rgot != rk {
			t.Fatalf("ParseRealmKey(Encode()) = %v, %v; want the key back", rgot == rk, err)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a == (crypto.Key{}) {
		t.Error("GenerateKey returned equal or zero keys")
	}
	ra, err := crypto.GenerateRealmKey()
	if err != nil {
		t.Fatal(err)
	}
	rb, err := crypto.GenerateRealmKey()
	if err != nil {
		t.Fatal(err)
	}
	if ra == rb || ra == (crypto.RealmKey{}) {
		t.Error("GenerateRealmKey returned equal or zero keys")
	}
}

func TestParseKeyCaseAndSpace(t *testing.T) {
	k := testKey(1)
	s := k.Encode()
	mixed := []byte(s)
	for i := range mixed {
		if i%2 == 0 {
			mixed[i] = strings.ToUpper(string(mixed[i]))[0]
		}
	}
	for name, in := range map[string]string{
		"upper":         strings.ToUpper(s),
		"mixed":         string(mixed),
		"upper prefix":  "CK-KEY-" + s[len(crypto.KeyPrefix):],
		"spaces":        "  " + s + "  ",
		"tabs":          "\t" + s + "\t",
		"newline":       s + "\n",
		"crlf":          s + "\r\n",
		"leading lines": "\n\n" + strings.ToUpper(s) + " \n",
	} {
		got, err := crypto.ParseKey(in)
		if err != nil || got != k {
			t.Errorf("%s: ParseKey = (same key %v, %v), want the key", name, got == k, err)
		}
	}
}

func TestParseKeyErrors(t *testing.T) {
	k := testKey(2)
	s := k.Encode()
	body := s[len(crypto.KeyPrefix):]
	rk := testRealmKey(2)
	rs := rk.Encode()
	rbody := rs[len(crypto.RealmKeyPrefix):]
	replace := func(i int, c string) string { return s[:len(crypto.KeyPrefix)+i] + c + s[len(crypto.KeyPrefix)+i+1:] }

	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", crypto.ErrKeyPrefix},
		{"spaces only", "   ", crypto.ErrKeyPrefix},
		{"no prefix", body, crypto.ErrKeyPrefix},
		{"short prefix", "ck-key", crypto.ErrKeyPrefix},
		{"prefix typo", "ck-kay-" + body, crypto.ErrKeyPrefix},
		{"prefix underscore", "ck_key-" + body, crypto.ErrKeyPrefix},
		{"kelvin sign", "c\u212a-key-" + body, crypto.ErrKeyPrefix},
		{"realm key as user key", rs, crypto.ErrKeyPrefix},
		{"realm prefix", "ck-realm-" + body, crypto.ErrKeyPrefix},
		{"space after prefix", crypto.KeyPrefix + " " + body, crypto.ErrKeyLength},
		{"prefix only", crypto.KeyPrefix, crypto.ErrKeyLength},
		{"one short", s[:len(s)-1], crypto.ErrKeyLength},
		{"one long", s + "a", crypto.ErrKeyLength},
		{"two long", s + "aa", crypto.ErrKeyLength},
		{"padded", s + "======", crypto.ErrKeyLength},
		{"eight short", s[:len(s)-8], crypto.ErrKeyLength},
		{"doubled", s + body, crypto.ErrKeyLength},
		{"inner space", s[:20] + " " + s[20:], crypto.ErrKeyLength},
		{"digit 0", replace(5, "0"), crypto.ErrKeyEncoding},
		{"digit 1", replace(0, "1"), crypto.ErrKeyEncoding},
		{"digit 8", replace(57, "8"), crypto.ErrKeyEncoding},
		{"digit 9", replace(30, "9"), crypto.ErrKeyEncoding},
		{"padding char", replace(57, "="), crypto.ErrKeyEncoding},
		{"inner newline", replace(20, "\n"), crypto.ErrKeyEncoding},
		{"inner space same length", replace(20, " "), crypto.ErrKeyEncoding},
		{"nul", replace(3, "\x00"), crypto.ErrKeyEncoding},
		{"high byte", replace(3, "\xff"), crypto.ErrKeyEncoding},
		{"garbage", crypto.KeyPrefix + strings.Repeat("!", 58), crypto.ErrKeyEncoding},
		{"hex", crypto.KeyPrefix + strings.Repeat("0f", 29), crypto.ErrKeyEncoding},
		{"all a", crypto.KeyPrefix + strings.Repeat("a", 58), crypto.ErrKeyChecksum},
		{"swapped halves", crypto.KeyPrefix + body[29:] + body[:29], crypto.ErrKeyChecksum},
		{"realm body", crypto.KeyPrefix + rbody, crypto.ErrKeyChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := crypto.ParseKey(tt.in)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParseKey = %v, want %v", err, tt.want)
			}
		})
	}

	// The same for realm keys, whose prefix differs.
	for _, tt := range []struct {
		name string
		in   string
		want error
	}{
		{"user key as realm key", s, crypto.ErrKeyPrefix},
		{"no prefix", rbody, crypto.ErrKeyPrefix},
		{"one short", rs[:len(rs)-1], crypto.ErrKeyLength},
		{"garbage", crypto.RealmKeyPrefix + strings.Repeat("8", 58), crypto.ErrKeyEncoding},
		{"user body", crypto.RealmKeyPrefix + body, crypto.ErrKeyChecksum},
	} {
		if _, err := crypto.ParseRealmKey(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("realm %s: ParseRealmKey = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestParseKeyTypos replaces every character of an encoded key by every
// other base32 character: each such typo must be caught, including those in
// the last character, whose two low bits lie beyond the key and checksum.
func TestParseKeyTypos(t *testing.T) {
	for seed := range uint64(4) {
		for _, enc := range []struct {
			prefix string
			text   string
			parse  func(string) error
		}{
			{crypto.KeyPrefix, func() string { k := testKey(seed); return k.Encode() }(),
				func(s string) error { _, err := crypto.ParseKey(s); return err }},
			{crypto.RealmKeyPrefix, func() string { k := testRealmKey(seed); return k.Encode() }(),
				func(s string) error { _, err := crypto.ParseRealmKey(s); return err }},
		} {
			body := enc.text[len(enc.prefix):]
			for i := range len(body) {
				for _, c := range b32Alphabet {
					if byte(c) == body[i] {
						continue
					}
					typo := enc.prefix + body[:i] + string(c) + body[i+1:]
					if err := enc.parse(typo); !errors.Is(err, crypto.ErrKeyChecksum) {
						t.Fatalf("%s: typo %q at body position %d: err = %v, want %v", enc.prefix, c, i, err, crypto.ErrKeyChecksum)
					}
				}
				if i+1 < len(body) && body[i] != body[i+1] {
					swapped := enc.prefix + body[:i] + body[i+1:i+2] + body[i:i+1] + body[i+2:]
					if err := enc.parse(swapped); !errors.Is(err, crypto.ErrKeyChecksum) {
						t.Fatalf("%s: transposition at %d: err = %v, want %v", enc.prefix, i, err, crypto.ErrKeyChecksum)
					}
				}
			}
		}
	}
}

// TestKeyRedacted checks that no way of printing a key reveals it: neither
// its text form nor its bytes in any base.
func TestKeyRedacted(t *testing.T) {
	k := testKey(3)
	rk := testRealmKey(3)
	type config struct {
		Name  string
		Key   crypto.Key
		Realm crypto.RealmKey
		Ptr   *crypto.Key
	}
	values := []any{k, &k, rk, &rk, config{"x", k, rk, &k}, []crypto.Key{k}, map[string]crypto.RealmKey{"r": rk}}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%c", "%U", "%08v", "%-40s"}

	var secrets []string
	for _, raw := range [][]byte{k[:], rk[:]} {
		secrets = append(secrets,
			hex.EncodeToString(raw),
			fmt.Sprint(raw), // [12 34 ...]
			fmt.Sprintf("%d %d %d %d", raw[0], raw[1], raw[2], raw[3]),
			fmt.Sprintf("%o %o %o", raw[0], raw[1], raw[2]),
		)
	}
	for _, enc := range []string{k.Encode(), rk.Encode()} {
		i := strings.LastIndexByte(enc, '-')
		secrets = append(secrets, enc[i+1:i+21]) // any 20 characters of the body
	}

	check := func(what, out string) {
		t.Helper()
		if !strings.Contains(out, "redacted") {
			t.Errorf("%s = %q, want a redacted form", what, out)
		}
		lower := strings.ToLower(out)
		for _, s := range secrets {
			if strings.Contains(lower, s) {
				t.Errorf("%s reveals the key: %q", what, out)
			}
		}
	}
	check("Key.String", k.String())
	check("Key.GoString", k.GoString())
	check("RealmKey.String", rk.String())
	check("RealmKey.GoString", rk.GoString())
	for _, v := range values {
		for _, verb := range verbs {
			check(fmt.Sprintf("Sprintf(%q, %T)", verb, v), fmt.Sprintf(verb, v))
		}
	}
	if got := fmt.Sprint(k); !strings.HasPrefix(got, crypto.KeyPrefix) {
		t.Errorf("Sprint(Key) = %q, want the %q prefix to say what it is", got, crypto.KeyPrefix)
	}
	if got := fmt.Sprint(rk); !strings.HasPrefix(got, crypto.RealmKeyPrefix) {
		t.Errorf("Sprint(RealmKey) = %q, want the %q prefix", got, crypto.RealmKeyPrefix)
	}
}

func TestPassphraseSalt(t *testing.T) {
	// The salt as SPEC.md §3.2 writes it, built by hand.
	want := func(realm string, index uint16) []byte {
		m := []byte("cipherknock/v1 passphrase")
		m = append(m, byte(len(realm)))
		m = append(m, realm...)
		m = binary.BigEndian.AppendUint16(m, index)
		sum := sha256.Sum256(m)
		return sum[:16]
	}
	seen := map[string]string{}
	for _, realm := range []string{"home", "home.", "office", "a", strings.Repeat("z", 64)} {
		for _, index := range []uint16{0, 1, 2, 256, 65535} {
			got := crypto.PassphraseSalt(realm, index)
			if string(got) != string(want(realm, index)) {
				t.Errorf("PassphraseSalt(%q, %d) = %x, want %x", realm, index, got, want(realm, index))
			}
			id := fmt.Sprintf("%s/%d", realm, index)
			if prev, dup := seen[string(got)]; dup {
				t.Errorf("PassphraseSalt(%s) equals PassphraseSalt(%s)", id, prev)
			}
			seen[string(got)] = id
		}
	}
}

// TestPassphraseKey runs Argon2id (64 MiB) twice only: once through
// PassphraseKey, once directly with the parameters of SPEC.md §3.2, for the
// example of §3.2. Equal outputs, equal to the specification's, show the
// derivation is deterministic and uses exactly that salt; TestPassphraseSalt
// shows the salt depends on realm and index.
func TestPassphraseKey(t *testing.T) {
	if testing.Short() {
		t.Skip("Argon2id with 64 MiB is slow")
	}
	const want = "c4e38ad7cbff1472ea319284cb24954a4a0f37264d111c9ca814fdaa6f76a57f"
	pass := []byte("correct horse battery staple")
	got, err := crypto.PassphraseKey(pass, "example.org", 0)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != want {
		t.Fatal("PassphraseKey differs from the example of SPEC.md §3.2")
	}
	direct := argon2.IDKey(pass, crypto.PassphraseSalt("example.org", 0), 3, 64*1024, 4, 32)
	if hex.EncodeToString(direct) != want {
		t.Fatal("Argon2id(t=3, m=64MiB, p=4) with PassphraseSalt differs from the example of SPEC.md §3.2")
	}
}

func TestPassphraseKeyErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pass  string
		realm string
	}{
		{"empty passphrase", "", "home"},
		{"empty realm", "secret", ""},
		{"bad realm", "secret", "home/office"},
		{"long realm", "secret", strings.Repeat("r", 65)},
	} {
		k, err := crypto.PassphraseKey([]byte(tt.pass), tt.realm, 1)
		if err == nil || k != (crypto.Key{}) {
			t.Errorf("%s: PassphraseKey = (zero %v, %v), want an error and the zero key", tt.name, k == crypto.Key{}, err)
		}
		if err != nil && tt.pass != "" && strings.Contains(err.Error(), tt.pass) {
			t.Errorf("%s: error %q contains the passphrase", tt.name, err)
		}
	}
}
