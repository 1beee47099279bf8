package vectors

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// Keys lists every header key a vector may carry, in the order Format
// writes them (SPEC.md §12). Any other key makes a vector invalid.
var Keys = []string{
	"comment", "expect",
	// sender inputs
	"key", "passphrase", "user-index", "realm", "realm-key",
	"mode", "action", "protocol", "port", "duration", "timestamp", "nonce", "address",
	"span-base",
	// receiver configuration
	"receiver-key", "receiver-passphrase", "receiver-user-index",
	"receiver-realm", "receiver-realm-key", "receiver-time", "receiver-window",
	"receiver-source",
	// intermediates
	"mac-key", "enc-key", "outer-key", "plaintext", "tag", "user-field", "ciphertext", "knock",
	"ports",
}

// NoRealmKey is the value of receiver-realm-key for a receiver whose realm
// has no realm key although the sender's has one.
const NoRealmKey = "none"

// Success is the expect value of a vector whose knock opens.
const Success = "success"

// Classes maps each failure class name used by expect to its sentinel error.
// The names are the sentinels' own messages (SPEC.md §8, §10.1).
var Classes = map[string]error{
	encoding.ErrOutsideSpan.Error():  encoding.ErrOutsideSpan,
	encoding.ErrConflict.Error():     encoding.ErrConflict,
	encoding.ErrTruncated.Error():    encoding.ErrTruncated,
	encoding.ErrExtraPackets.Error(): encoding.ErrExtraPackets,
	crypto.ErrUnknownVersion.Error(): crypto.ErrUnknownVersion,
	crypto.ErrMalformed.Error():      crypto.ErrMalformed,
	crypto.ErrUnknownUser.Error():    crypto.ErrUnknownUser,
	crypto.ErrBadTag.Error():         crypto.ErrBadTag,
	crypto.ErrFieldRange.Error():     crypto.ErrFieldRange,
	crypto.ErrStale.Error():          crypto.ErrStale,
	crypto.ErrFuture.Error():         crypto.ErrFuture,
}

var errNotCanonical = errors.New("key text is not the encoder's output up to letter case (unused bits must be zero)")

// kind says how a header value is written.
type kind int

const (
	kindText     kind = iota // printable text
	kindExpect               // "success" or a failure class
	kindKey                  // ck-key-...
	kindRealmKey             // ck-realm-..., or "none" for receiver-realm-key
	kindRealm                // a realm name
	kindU16                  // decimal 0..65535
	kindU32                  // decimal 0..4294967295
	kindTime                 // decimal int64
	kindHex                  // lowercase hex, any length
	kindHex4                 // lowercase hex, 4 bytes
	kindHex32                // lowercase hex, 32 bytes
	kindPorts                // decimal ports separated by single spaces
	kindAction               // open, close
	kindMode                 // source, ipv4, ipv6, bound
	kindProto                // tcp, udp
	kindAddr                 // an IP address
)

var kinds = map[string]kind{
	"comment": kindText, "expect": kindExpect,
	"key": kindKey, "passphrase": kindText, "user-index": kindU16,
	"realm": kindRealm, "realm-key": kindRealmKey,
	"action": kindAction, "mode": kindMode, "address": kindAddr, "protocol": kindProto,
	"port": kindU16, "duration": kindU16, "timestamp": kindU32, "nonce": kindHex4,
	"span-base":    kindU16,
	"receiver-key": kindKey, "receiver-passphrase": kindText, "receiver-user-index": kindU16,
	"receiver-realm": kindRealm, "receiver-realm-key": kindRealmKey,
	"receiver-time": kindTime, "receiver-window": kindU16, "receiver-source": kindAddr,
	"mac-key": kindHex32, "enc-key": kindHex32, "outer-key": kindHex32,
	"plaintext": kindHex, "tag": kindHex, "user-field": kindHex, "ciphertext": kindHex,
	"knock": kindHex, "ports": kindPorts,
}

// Vector is one test vector: header values by key and the observed port
// sequence (the body).
type Vector struct {
	Name   string
	Header map[string]string
	Body   []uint16
}

// nameRE is compiled when first needed, not at every start of the client,
// which imports this package for its vectors command.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_]*$`) })

// CheckName reports whether name is a valid vector file name: lowercase
// letters, digits and underscores.
func CheckName(name string) error {
	if len(name) > 100 || !nameRE().MatchString(name) {
		return errors.New("vector names are made of lowercase letters, digits and '_'")
	}
	return nil
}

// Parse decodes a vector file. Errors read "name:line: message" and never
// contain key material.
func Parse(name string, data []byte) (*Vector, error) {
	v := &Vector{Name: name, Header: make(map[string]string)}
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
	}
	rest := data
	line := 0
	for {
		line++
		if len(rest) == 0 {
			return nil, fail(line, "missing blank line after the header")
		}
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, fail(line, "missing blank line after the header")
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		if l == "" {
			break
		}
		key, value, ok := strings.Cut(l, ": ")
		if !ok {
			return nil, fail(line, "header line is not \"key: value\"")
		}
		k, known := kinds[key]
		if !known {
			return nil, fail(line, "unknown header key %q", clip(key))
		}
		if _, dup := v.Header[key]; dup {
			return nil, fail(line, "duplicate header key %q", key)
		}
		if err := checkValue(key, k, value); err != nil {
			return nil, fail(line, "%s: %v", key, err)
		}
		v.Header[key] = value
	}
	bodyLine := line + 1
	for _, l := range strings.Split(string(rest), "\n") {
		line++
		for _, f := range strings.Fields(l) {
			p, err := parsePort(f)
			if err != nil {
				return nil, fail(line, "body: %v", err)
			}
			v.Body = append(v.Body, p)
		}
	}
	if len(rest) > 0 && rest[len(rest)-1] != '\n' {
		return nil, fail(bodyLine, "body does not end with a newline")
	}
	return v, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("ports are decimal numbers 0..65535 without leading zeros")
	}
	return uint16(n), nil
}

func checkValue(key string, k kind, value string) error {
	if value == "" || strings.TrimSpace(value) != value {
		return errors.New("empty value or surrounding white space")
	}
	if !utf8.ValidString(value) {
		return errors.New("invalid UTF-8 in value")
	}
	for _, r := range value {
		if r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 {
			return errors.New("control character in value")
		}
	}
	switch k {
	case kindText:
		return nil
	case kindExpect:
		if _, ok := Classes[value]; !ok && value != Success {
			return errors.New("not \"success\" or a known failure class")
		}
	case kindKey:
		// Key text ignores letter case (SPEC.md §3.1, §12); it must
		// otherwise be the encoder's output.
		k, err := crypto.ParseKey(value)
		if err == nil && k.Encode() != strings.ToLower(value) {
			return errNotCanonical
		}
		return err
	case kindRealmKey:
		if value == NoRealmKey && key == "receiver-realm-key" {
			return nil
		}
		k, err := crypto.ParseRealmKey(value)
		if err == nil && k.Encode() != strings.ToLower(value) {
			return errNotCanonical
		}
		return err
	case kindRealm:
		return crypto.CheckRealm(value)
	case kindU16:
		_, err := parseUint(value, 16)
		return err
	case kindU32:
		_, err := parseUint(value, 32)
		return err
	case kindTime:
		_, err := parseTime(value)
		return err
	case kindHex, kindHex4, kindHex32:
		b, err := parseHex(value)
		if err != nil {
			return err
		}
		if k == kindHex4 && len(b) != 4 || k == kindHex32 && len(b) != 32 {
			return errors.New("wrong length")
		}
	case kindPorts:
		for _, f := range strings.Split(value, " ") {
			if _, err := parsePort(f); err != nil {
				return err
			}
		}
	case kindAction:
		_, err := parseAction(value)
		return err
	case kindMode:
		_, err := parseMode(value)
		return err
	case kindProto:
		_, err := ports.ParseProto(value)
		return err
	case kindAddr:
		a, err := netip.ParseAddr(value)
		if err != nil || a.Zone() != "" || a.String() != value {
			return errors.New("not an IP address in canonical form")
		}
	}
	return nil
}

func parseUint(s string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("not a decimal number below 2^%d without leading zeros", bits)
	}
	return n, nil
}

func parseTime(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return 0, errors.New("not a decimal Unix time in canonical form")
	}
	return n, nil
}

func parseHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || strings.ToLower(s) != s {
		return nil, errors.New("not lowercase hex")
	}
	return b, nil
}

func parseAction(s string) (crypto.Action, error) {
	switch s {
	case "open":
		return crypto.ActionOpen, nil
	case "close":
		return crypto.ActionClose, nil
	}
	return 0, errors.New("not open or close")
}

func parseMode(s string) (crypto.Mode, error) {
	switch s {
	case "source":
		return crypto.ModeSource, nil
	case "ipv4":
		return crypto.ModeIPv4, nil
	case "ipv6":
		return crypto.ModeIPv6, nil
	case "bound":
		return crypto.ModeBound, nil
	}
	return 0, errors.New("not source, ipv4, ipv6 or bound")
}

// portsPerLine is how many body ports Format writes on one line.
const portsPerLine = 8

// Format encodes v in the canonical form: header keys in the order of Keys,
// a blank line, then the body, eight ports a line. Parse(Format(v)) gives v
// back.
func Format(v *Vector) ([]byte, error) {
	var b bytes.Buffer
	for key := range v.Header {
		if _, ok := kinds[key]; !ok {
			return nil, fmt.Errorf("%s: unknown header key %q", v.Name, clip(key))
		}
	}
	for _, key := range Keys {
		value, ok := v.Header[key]
		if !ok {
			continue
		}
		if err := checkValue(key, kinds[key], value); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", v.Name, key, err)
		}
		b.WriteString(key)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	for i, p := range v.Body {
		switch {
		case i%portsPerLine != 0:
			b.WriteByte(' ')
		case i > 0:
			b.WriteByte('\n')
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	if len(v.Body) > 0 {
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// FormatPorts writes ports as the value of a ports header: decimal, separated
// by single spaces.
func FormatPorts(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, " ")
}

// parsePorts reads a ports header value.
func parsePorts(s string) ([]uint16, error) {
	var ports []uint16
	for _, f := range strings.Split(s, " ") {
		p, err := parsePort(f)
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// Clone returns a deep copy of v.
func (v *Vector) Clone() *Vector {
	c := &Vector{Name: v.Name, Header: make(map[string]string, len(v.Header)), Body: slices.Clone(v.Body)}
	for k, val := range v.Header {
		c.Header[k] = val
	}
	return c
}
