package profile

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// Scheme is the profile URI scheme.
const Scheme = "cipherknock"

const maxURILen = 2048 // far above any real profile; bounds parsing work

// ErrURI is wrapped by every URI parsing error.
var ErrURI = errors.New("malformed profile URI")

func uriErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrURI, fmt.Sprintf(format, args...))
}

// LooksLikeURI reports whether s starts like a profile URI.
func LooksLikeURI(s string) bool {
	return len(s) >= len(Scheme)+3 && strings.EqualFold(s[:len(Scheme)+3], Scheme+"://")
}

// URI returns the profile URI of p (see the package doc). It contains the
// key: treat it as a secret.
func (p *Profile) URI() string {
	var b strings.Builder
	b.WriteString(Scheme + "://")
	if a, err := netip.ParseAddr(p.Host); err == nil && a.Is6() {
		b.WriteString("[" + p.Host + "]")
	} else {
		b.WriteString(p.Host)
	}
	b.WriteString("/?realm=" + p.Realm)
	b.WriteString("&user=" + strconv.Itoa(int(p.User)))
	b.WriteString("&key=" + p.Key.Encode())
	if p.RealmKey != nil {
		b.WriteString("&rk=" + p.RealmKey.Encode())
	}
	b.WriteString("&port=" + strconv.Itoa(int(p.Port)))
	b.WriteString("&proto=" + p.Proto.String())
	b.WriteString("&dur=" + strconv.Itoa(int(p.Duration)))
	b.WriteString("&base=" + strconv.Itoa(int(p.Base)))
	if p.Address != DefaultAddress && p.Address != "" {
		b.WriteString("&addr=" + p.Address)
	}
	if p.Via != DefaultVia && p.Via != "" {
		b.WriteString("&via=" + p.Via)
	}
	if p.Repeat > 1 {
		b.WriteString("&rep=" + strconv.Itoa(p.Repeat))
	}
	if len(p.STUN) > 0 {
		b.WriteString("&stun=" + strings.Join(p.STUN, ","))
	}
	if p.Name != "" && p.Name != p.Host {
		b.WriteString("&name=" + p.Name)
	}
	return b.String()
}

// ParseURI parses a profile URI. Surrounding white space is ignored. When
// the URI has no name parameter, the profile is named after its host if the
// host is a valid profile name.
func ParseURI(s string) (*Profile, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxURILen {
		return nil, uriErr("too long")
	}
	if !LooksLikeURI(s) {
		return nil, uriErr("must start with %s://", Scheme)
	}
	rest := s[len(Scheme)+3:]
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return nil, uriErr("unexpected '#' fragment")
	}
	hostPart, query, hasQuery := strings.Cut(rest, "?")
	if !hasQuery {
		return nil, uriErr("missing parameters (realm, user, key)")
	}
	hostPart = strings.TrimSuffix(hostPart, "/")
	var host string
	switch {
	case strings.HasPrefix(hostPart, "["):
		if !strings.HasSuffix(hostPart, "]") {
			return nil, uriErr("bad IPv6 host in brackets")
		}
		a, err := netip.ParseAddr(hostPart[1 : len(hostPart)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return nil, uriErr("bad IPv6 host in brackets")
		}
		host = a.String()
	case strings.ContainsAny(hostPart, "@:/"):
		return nil, uriErr("host must be a bare name or address (the port is a parameter)")
	default:
		host = hostPart
	}
	if err := CheckHost(host); err != nil {
		return nil, uriErr("%v", err)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && hostPart[0] != '[' {
		return nil, uriErr("IPv6 host needs brackets")
	}

	p := New(host, "", 0, crypto.Key{})
	seen := map[string]bool{}
	for _, kv := range strings.Split(query, "&") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, uriErr("parameter %q has no value", redactName(k))
		}
		if !knownParam(k) {
			return nil, uriErr("unknown parameter %q", redactName(k))
		}
		if seen[k] {
			return nil, uriErr("parameter %q given twice", k)
		}
		seen[k] = true
		v, err := url.QueryUnescape(v)
		if err != nil {
			return nil, uriErr("parameter %q: bad %%-escape", k)
		}
		if err := p.set(uriField[k], v); err != nil {
			return nil, uriErr("%s: %v", k, err)
		}
	}
	for _, k := range []string{"realm", "user", "key"} {
		if !seen[k] {
			return nil, uriErr("missing parameter %q", k)
		}
	}
	if p.Name == "" && CheckName(host) == nil {
		p.Name = host
	}
	if err := p.Validate(); err != nil {
		return nil, uriErr("%v", err)
	}
	return p, nil
}

// uriField maps URI parameters to profile file keys.
var uriField = map[string]string{
	"realm": "realm",
	"user":  "user",
	"key":   "key",
	"rk":    "realm-key",
	"port":  "port",
	"proto": "proto",
	"dur":   "duration",
	"base":  "base",
	"addr":  "address",
	"via":   "transport",
	"rep":   "repeat",
	"stun":  "stun",
	"name":  "name",
}

func knownParam(k string) bool { _, ok := uriField[k]; return ok }

// redactName keeps an unknown parameter name short and printable in errors.
func redactName(k string) string {
	if len(k) > 16 {
		k = k[:16] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, k)
}

// set assigns one setting given by its profile file key. Errors never
// include the value of a key setting.
func (p *Profile) set(key, v string) error {
	var err error
	switch key {
	case "name":
		if err = CheckName(v); err == nil {
			p.Name = v
		}
	case "host":
		if err = CheckHost(v); err == nil {
			p.Host = v
		}
	case "realm":
		if err = crypto.CheckRealm(v); err == nil {
			p.Realm = v
		}
	case "user":
		var n uint64
		if n, err = parseUint(v, 0, 65535); err != nil {
			err = errors.New("user index must be 0..65535")
		}
		p.User = uint16(n)
	case "key":
		p.Key, err = crypto.ParseKey(v)
		if err != nil {
			err = fmt.Errorf("bad key: %w", err)
		}
	case "realm-key":
		var rk crypto.RealmKey
		if rk, err = crypto.ParseRealmKey(v); err != nil {
			err = fmt.Errorf("bad realm key: %w", err)
		} else {
			p.RealmKey = &rk
		}
	case "port":
		var n uint64
		if n, err = parseUint(v, 1, 65535); err != nil {
			err = errors.New("port must be 1..65535")
		}
		p.Port = uint16(n)
	case "proto":
		p.Proto, err = ports.ParseProto(v)
	case "duration":
		var n uint64
		if n, err = parseUint(v, 1, crypto.MaxDuration); err != nil {
			err = errors.New("duration must be 1..65535 seconds")
		}
		p.Duration = uint16(n)
	case "base":
		var n uint64
		if n, err = parseUint(v, encoding.MinBase, encoding.MaxBase); err != nil {
			err = fmt.Errorf("span base must be %d..%d", encoding.MinBase, encoding.MaxBase)
		}
		p.Base = uint16(n)
	case "address":
		if err = CheckAddress(v); err == nil {
			p.Address = v
		}
	case "transport":
		if v != ViaUDP && v != ViaTCP {
			err = errors.New("transport must be udp or tcp")
		}
		p.Via = v
	case "repeat":
		var n uint64
		if n, err = parseUint(v, 1, MaxRepeat); err != nil {
			err = fmt.Errorf("repeat must be 1..%d", MaxRepeat)
		}
		p.Repeat = int(n)
	case "stun":
		p.STUN = nil
		if v != "" {
			p.STUN = strings.Split(v, ",")
		}
		if len(p.STUN) > MaxSTUN {
			err = fmt.Errorf("at most %d STUN servers", MaxSTUN)
		}
		for _, s := range p.STUN {
			if err == nil {
				if e := CheckHostPort(s); e != nil {
					err = fmt.Errorf("STUN server: %w", e)
				}
			}
		}
	default:
		err = errors.New("unknown setting")
	}
	return err
}
