package profile

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/internal/lex"
)

const maxFileSize = 16 << 10 // a profile is a few hundred bytes

// fileKeys lists the settings of a profile file in the order Format writes
// them.
var fileKeys = []string{"host", "realm", "user", "key", "realm-key", "port", "proto", "duration", "base", "address", "transport", "repeat", "stun"}

// Format returns p as a profile file. It contains the key.
func (p *Profile) Format() []byte {
	var b bytes.Buffer
	b.WriteString("# cipherknock profile: contains a secret key, keep it private (mode 0600)\n")
	w := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	w("host", p.Host)
	w("realm", p.Realm)
	w("user", strconv.Itoa(int(p.User)))
	w("key", p.Key.Encode())
	if p.RealmKey != nil {
		w("realm-key", p.RealmKey.Encode())
	}
	w("port", strconv.Itoa(int(p.Port)))
	w("proto", p.Proto.String())
	w("duration", strconv.Itoa(int(p.Duration)))
	w("base", strconv.Itoa(int(p.Base)))
	w("address", p.Address)
	w("transport", p.Via)
	w("repeat", strconv.Itoa(p.Repeat))
	if len(p.STUN) > 0 {
		w("stun", strings.Join(p.STUN, ","))
	}
	return b.Bytes()
}

// Parse reads a profile file named name (used in errors as "name:line:").
// Settings other than host, realm, user and key may be left out and take
// their defaults. The profile's Name is left empty: the caller knows it.
func Parse(name string, data []byte) (*Profile, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: file too large for a profile", name)
	}
	p := New("", "", 0, crypto.Key{})
	seen := map[string]int{}
	// The daemon's configuration file and the profile share the lexer:
	// comments, a byte-order mark and CRLF line ends read the same.
	for _, l := range lex.Split(data) {
		line := l.N
		switch {
		case l.Header || strings.HasPrefix(l.Err, "expected") || strings.HasPrefix(l.Err, "section"):
			return nil, fmt.Errorf("%s:%d: want key = value", name, line)
		case l.Err != "":
			return nil, fmt.Errorf("%s:%d: %s", name, line, l.Err)
		}
		k, v := l.Key, l.Value
		if !knownKey(k) {
			return nil, fmt.Errorf("%s:%d: unknown setting %q", name, line, redactName(k))
		}
		if prev, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s:%d: %s already set on line %d", name, line, k, prev)
		}
		seen[k] = line
		if err := p.set(k, v); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %v", name, line, k, err)
		}
	}
	for _, k := range []string{"host", "realm", "user", "key"} {
		if _, ok := seen[k]; !ok {
			return nil, fmt.Errorf("%s: missing setting %q", name, k)
		}
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return p, nil
}

func knownKey(k string) bool {
	return slices.Contains(fileKeys, k)
}

// ErrNotFound is returned by Store.Load for a profile that does not exist.
var ErrNotFound = errors.New("unknown profile")
