// Command gen writes the knock protocol's test vectors (SPEC.md §12) from
// fixed inputs: fixed keys, nonces and times, no randomness, so that running
// it again rebuilds the same files byte for byte. It checks every vector it
// writes with the vectors package and refuses to write a set that does not
// check.
//
// Usage (from the repository root, or through go generate):
//
//	go run ./internal/vectors/gen -out testdata/vectors
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/vectors"
	"github.com/cipherknock/cipherknock/ports"
)

func main() {
	out := flag.String("out", "testdata/vectors", "directory to write the vectors into")
	flag.Parse()
	n, err := generate(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen: error:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gen: wrote %d vectors to %s\n", n, *out)
}

// generate builds and checks every vector, writes them into dir and removes
// any other vector file found there.
func generate(dir string) (int, error) {
	files, err := buildAll()
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok && e.Type().IsRegular() && vectors.CheckName(e.Name()) == nil {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return 0, err
			}
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return 0, err
		}
	}
	return len(files), nil
}

// buildAll returns every vector file's contents by name.
func buildAll() (map[string][]byte, error) {
	files := make(map[string][]byte)
	fsys := make(fstest.MapFS)
	for _, s := range all() {
		if _, dup := files[s.name]; dup {
			return nil, fmt.Errorf("%s: two vectors have this name", s.name)
		}
		v, err := s.build()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", s.name, err)
		}
		data, err := vectors.Format(v)
		if err != nil {
			return nil, err
		}
		back, err := vectors.Parse(s.name, data)
		if err != nil {
			return nil, fmt.Errorf("%s: does not parse back: %v", s.name, err)
		}
		if again, _ := vectors.Format(back); !bytes.Equal(again, data) {
			return nil, fmt.Errorf("%s: formatting is not stable", s.name)
		}
		files[s.name] = data
		fsys[s.name] = &fstest.MapFile{Data: data}
	}
	// Check the files as written, with one checker: it derives each
	// passphrase key once.
	r, err := vectors.CheckFS(fsys)
	if err != nil {
		return nil, err
	}
	for _, res := range r.Results {
		if res.Err != nil {
			return nil, fmt.Errorf("does not check: %v", res.Err)
		}
	}
	return files, nil
}

// t0 is the time most vectors are sealed at: 2026-01-01T00:00:00Z.
const t0 = 1767225600

func fixedKey(label string) crypto.Key {
	return crypto.Key(sha256.Sum256([]byte("cipherknock/v1 test vector user key " + label)))
}

func fixedRealmKey(label string) *crypto.RealmKey {
	k := crypto.RealmKey(sha256.Sum256([]byte("cipherknock/v1 test vector realm key " + label)))
	return &k
}

var (
	keyA = fixedKey("A")
	keyB = fixedKey("B")
	rk1  = fixedRealmKey("1")
	rk2  = fixedRealmKey("2")
)

// Passphrases of the few passphrase vectors; Argon2id at 64 MiB is slow.
const (
	pass1 = "correct horse battery staple"
	pass2 = "correct horse battery stapler"
)

// spec describes one vector.
type spec struct {
	name    string
	comment string // "%s" is replaced by the outcome when computeExpect is set
	expect  string

	// computeExpect leaves the outcome to the receiver (wrong realm keys:
	// the user index decodes to whatever the wrong outer key gives).
	computeExpect bool

	key        crypto.Key
	passphrase string
	index      uint16
	realm      string
	realmKey   *crypto.RealmKey
	knock      crypto.Knock // Mode is used even with a hand-made plaintext
	fixedNonce bool         // keep knock.Nonce instead of one derived from the name
	// handmade, when set, edits the encoded plaintext into an out-of-range
	// one; the vector then carries the plaintext instead of its fields.
	handmade func(p []byte)
	spanBase int // 0: no span-base header (the default base)

	recvKey        *crypto.Key
	recvPassphrase string
	recvIndex      *uint16
	recvRealm      string
	recvRealmKey   string // "" for the sender's, vectors.NoRealmKey, or a key's text
	recvTime       int64  // absolute receiver time
	recvWindow     int    // 0: no receiver-window header (the default)
	recvSource     string // "": no receiver-source header
	// keyText, when set, rewrites the key's text form (letter case).
	keyText func(string) string

	// body turns the knock into the observed port sequence; nil sends the
	// ports in position order.
	body func(knock []byte, s encoding.Span) []uint16
}

// base returns an ordinary open of tcp/22 from the knock's source address,
// by user 7 of realm "office", sealed and received at t0.
func base(name, comment string) spec {
	return spec{
		name:    name,
		comment: comment,
		expect:  vectors.Success,
		key:     keyA,
		index:   7,
		realm:   "office",
		knock: crypto.Knock{
			Action:   crypto.ActionOpen,
			Mode:     crypto.ModeSource,
			Proto:    ports.TCP,
			Port:     22,
			Duration: 3600,
			Time:     t0,
		},
		spanBase: encoding.DefaultBase,
		recvTime: t0,
	}
}

func (s spec) build() (*vectors.Vector, error) {
	h := map[string]string{
		"comment":    s.comment,
		"expect":     s.expect,
		"user-index": strconv.Itoa(int(s.index)),
		"realm":      s.realm,
		"mode":       s.knock.Mode.String(),
	}
	key := s.key
	if s.passphrase != "" {
		var err error
		h["passphrase"] = s.passphrase
		if key, err = passphraseKey(s.passphrase, s.realm, s.index); err != nil {
			return nil, err
		}
	} else {
		h["key"] = key.Encode()
		if s.keyText != nil {
			h["key"] = s.keyText(h["key"])
		}
	}
	if s.realmKey != nil {
		h["realm-key"] = s.realmKey.Encode()
	}
	k := s.knock
	if !s.fixedNonce {
		sum := sha256.Sum256([]byte("cipherknock/v1 test vector nonce " + s.name))
		copy(k.Nonce[:], sum[:])
	}
	plain := crypto.AppendPlaintext(nil, &k)
	if s.handmade != nil {
		s.handmade(plain)
	} else {
		h["action"] = k.Action.String()
		h["protocol"] = k.Proto.String()
		h["port"] = strconv.Itoa(int(k.Port))
		h["duration"] = strconv.Itoa(int(k.Duration))
		h["timestamp"] = strconv.FormatUint(uint64(k.Time), 10)
		h["nonce"] = hex.EncodeToString(k.Nonce[:])
		if k.Mode != crypto.ModeSource {
			h["address"] = k.Addr.String()
		}
	}
	if k.Mode == crypto.ModeBound {
		h["address"] = k.Addr.String()
	}
	span := encoding.DefaultSpan
	if s.spanBase != 0 {
		var err error
		if span, err = encoding.NewSpan(s.spanBase); err != nil {
			return nil, err
		}
		h["span-base"] = strconv.Itoa(s.spanBase)
	}

	if s.recvKey != nil {
		h["receiver-key"] = s.recvKey.Encode()
	}
	if s.recvPassphrase != "" {
		h["receiver-passphrase"] = s.recvPassphrase
	}
	if s.recvIndex != nil {
		h["receiver-user-index"] = strconv.Itoa(int(*s.recvIndex))
	}
	if s.recvRealm != "" {
		h["receiver-realm"] = s.recvRealm
	}
	if s.recvRealmKey != "" {
		h["receiver-realm-key"] = s.recvRealmKey
	}
	h["receiver-time"] = strconv.FormatInt(s.recvTime, 10)
	if s.recvWindow != 0 {
		h["receiver-window"] = strconv.Itoa(s.recvWindow)
	}
	if s.recvSource != "" {
		h["receiver-source"] = s.recvSource
	}

	mac, enc := key.Subkeys()
	outer := crypto.OuterKey(s.realmKey)
	h["mac-key"] = hex.EncodeToString(mac[:])
	h["enc-key"] = hex.EncodeToString(enc[:])
	h["outer-key"] = hex.EncodeToString(outer[:])
	h["plaintext"] = hex.EncodeToString(plain)
	realm, err := crypto.NewRealm(s.realm, s.realmKey)
	if err != nil {
		return nil, err
	}
	var knock []byte
	if k.Mode == crypto.ModeBound {
		knock = crypto.SealPlaintextBound(nil, realm, s.index, crypto.NewUser(&key), plain, k.Addr)
	} else {
		knock = crypto.SealPlaintext(nil, realm, s.index, crypto.NewUser(&key), crypto.Header(k.Mode), plain)
	}
	n := len(knock)
	h["tag"] = hex.EncodeToString(knock[n-crypto.TagSize:])
	h["user-field"] = hex.EncodeToString(knock[1:3])
	h["ciphertext"] = hex.EncodeToString(knock[3 : n-crypto.TagSize])
	h["knock"] = hex.EncodeToString(knock)
	ports := span.AppendPorts(nil, knock)
	h["ports"] = vectors.FormatPorts(ports)

	v := &vectors.Vector{Name: s.name, Header: h, Body: ports}
	if s.body != nil {
		v.Body = s.body(knock, span)
	}
	if s.computeExpect {
		class, err := vectors.Outcome(v)
		if err != nil {
			return nil, err
		}
		h["expect"] = class
		h["comment"] = strings.ReplaceAll(s.comment, "%s", class)
	} else if strings.Contains(s.comment, "%s") {
		return nil, errors.New("comment has %s but the outcome is not computed")
	}
	return v, nil
}

var passKeys = make(map[string]crypto.Key)

// passphraseKey derives each passphrase key once: Argon2id at 64 MiB is slow.
func passphraseKey(pass, realm string, index uint16) (crypto.Key, error) {
	id := fmt.Sprintf("%d\x00%s\x00%s", index, realm, pass)
	if k, ok := passKeys[id]; ok {
		return k, nil
	}
	k, err := crypto.PassphraseKey([]byte(pass), realm, index)
	passKeys[id] = k
	return k, err
}

func u16(n uint16) *uint16 { return &n }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
