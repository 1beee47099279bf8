// Package profile holds what a client needs to knock on one server: the
// server's host and realm, the user's index and key, and the defaults of a
// knock (port, protocol, duration, span, address mode, transport). It reads
// and writes profiles in two forms:
//
// A profile URI carries a whole profile in one line, short enough for a QR
// code, so that a phone can scan what keygen prints:
//
//	cipherknock://HOST/?realm=R&user=0&key=ck-key-...&port=22&proto=tcp&dur=3600&base=20480
//
// HOST is a DNS name or an IP address (IPv6 in brackets). The query holds,
// in this order, and each at most once:
//
//	realm  realm name (SPEC.md §4.3), required
//	user   user index 0..65535, required
//	key    user key, ck-key-... (SPEC.md §3.1), required
//	rk     realm key, ck-realm-..., when the realm has one (SPEC.md §4.2)
//	port   port to open, 1..65535, default 22
//	proto  protocol of that port, tcp or udp, default tcp
//	dur    seconds the port stays open, 1..65535, default 3600
//	base   first port of the knock span (SPEC.md §9.1), default 20480
//	addr   address mode: source (default), auto (STUN) or an IP address
//	via    knock transport: udp (default) or tcp
//	rep    times each packet is sent, 1..8, default 1
//	stun   comma-separated STUN servers (host:port) for addr=auto
//	name   suggested profile name, default HOST
//
// Profile.URI writes realm, user, key, rk, port, proto, dur and base always and
// the others only when they differ from the default. Parsers reject unknown
// and repeated parameters, so that a typo never silently selects a default.
//
// A profile file is the same data as "key = value" lines, one setting a line,
// with '#' comments; Parse reports errors as "file:line: message". The
// profile's name is the file's name. Files are written with mode 0600 through
// a temporary file and a rename, and refused when others may read them (see
// Store).
//
// No error message of this package contains key material.
package profile

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// Defaults of a new profile.
const (
	DefaultPort     = 22
	DefaultProto    = ports.TCP
	DefaultDuration = 3600 // seconds
	DefaultAddress  = AddressSource
	DefaultVia      = ViaUDP
	DefaultRepeat   = 1
	MaxRepeat       = 8
	MaxSTUN         = 4 // STUN servers per profile
)

// Address modes besides an explicit IP address.
const (
	AddressSource = "source" // the daemon opens the knock's source address
	AddressAuto   = "auto"   // the public address found with STUN
)

// Knock transports.
const (
	ViaUDP = "udp" // one empty UDP datagram per port
	ViaTCP = "tcp" // one TCP SYN per port
)

// Profile is one server as seen by one user.
type Profile struct {
	Name     string // file name in a Store; "" until named
	Host     string // DNS name or IP address of the server
	Realm    string
	User     uint16
	Key      crypto.Key
	RealmKey *crypto.RealmKey // nil when the realm has none

	Port     uint16      // port to open
	Proto    ports.Proto // its protocol
	Duration uint16      // seconds
	Base     uint16      // span base
	Address  string      // AddressSource, AddressAuto or an IP address
	Via      string      // ViaUDP or ViaTCP
	Repeat   int         // 1..MaxRepeat
	STUN     []string    // host:port; empty selects the client's defaults
}

// New returns a profile for host and realm with the default settings and key
// k.
func New(host, realm string, user uint16, k crypto.Key) *Profile {
	return &Profile{
		Host:     host,
		Realm:    realm,
		User:     user,
		Key:      k,
		Port:     DefaultPort,
		Proto:    DefaultProto,
		Duration: DefaultDuration,
		Base:     encoding.DefaultBase,
		Address:  DefaultAddress,
		Via:      DefaultVia,
		Repeat:   DefaultRepeat,
	}
}

// Span returns the profile's knock span.
func (p *Profile) Span() encoding.Span { return encoding.Span{Base: p.Base} }

// Validate checks every field.
func (p *Profile) Validate() error {
	if p.Name != "" {
		if err := CheckName(p.Name); err != nil {
			return err
		}
	}
	if err := CheckHost(p.Host); err != nil {
		return err
	}
	if err := crypto.CheckRealm(p.Realm); err != nil {
		return err
	}
	if p.Port == 0 {
		return errors.New("port must be 1..65535")
	}
	if p.Proto != ports.TCP && p.Proto != ports.UDP {
		return errors.New("proto must be tcp or udp")
	}
	if p.Duration == 0 {
		return errors.New("duration must be 1..65535 seconds")
	}
	if _, err := encoding.NewSpan(int(p.Base)); err != nil {
		return err
	}
	if err := CheckAddress(p.Address); err != nil {
		return err
	}
	if p.Via != ViaUDP && p.Via != ViaTCP {
		return errors.New("transport must be udp or tcp")
	}
	if p.Repeat < 1 || p.Repeat > MaxRepeat {
		return fmt.Errorf("repeat must be 1..%d", MaxRepeat)
	}
	if len(p.STUN) > MaxSTUN {
		return fmt.Errorf("at most %d STUN servers", MaxSTUN)
	}
	for _, s := range p.STUN {
		if err := CheckHostPort(s); err != nil {
			return fmt.Errorf("STUN server: %w", err)
		}
	}
	return nil
}

// CheckName reports whether name is usable as a profile name: 1 to 64 bytes
// of letters, digits, '.', '-' and '_', not starting with '.' or '-'.
func CheckName(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return errors.New("profile name must be 1 to 64 bytes long")
	}
	if name[0] == '.' || name[0] == '-' {
		return errors.New("profile name must not start with '.' or '-'")
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return errors.New("profile name may contain only letters, digits, '.', '-' and '_'")
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
}

// CheckHost reports whether h is a DNS name or an IP address literal.
func CheckHost(h string) error {
	if h == "" {
		return errors.New("host is missing")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return errors.New("IPv6 zones are not supported")
		}
		return nil
	}
	if len(h) > 253 {
		return errors.New("host name is too long")
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return errors.New("host is not a valid DNS name or IP address")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return errors.New("host is not a valid DNS name or IP address")
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("host is not a valid DNS name or IP address")
		}
	}
	return nil
}

// CheckHostPort reports whether s is host:port with a valid host and a port
// in 1..65535.
func CheckHostPort(s string) error {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return errors.New("want host:port")
	}
	host, port := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return errors.New("bad IPv6 address in brackets")
		}
	} else if strings.Contains(host, ":") {
		return errors.New("IPv6 addresses need brackets: [addr]:port")
	}
	if err := CheckHost(host); err != nil {
		return err
	}
	if _, err := parseUint(port, 1, 65535); err != nil {
		return errors.New("port must be 1..65535")
	}
	return nil
}

// CheckAddress reports whether a is an address mode: "source", "auto", or
// an IP address that a knock may carry.
func CheckAddress(a string) error {
	switch a {
	case AddressSource, AddressAuto:
		return nil
	}
	ip, err := netip.ParseAddr(a)
	if err != nil {
		return errors.New(`address must be "source", "auto" or an IP address`)
	}
	k := crypto.Knock{Action: crypto.ActionOpen, Proto: ports.TCP, Port: 1, Duration: 1, Addr: ip.Unmap(), Mode: crypto.ModeIPv4}
	if k.Addr.Is6() {
		k.Mode = crypto.ModeIPv6
	}
	if ip.Zone() != "" || k.Validate() != nil {
		return errors.New("address cannot be opened by a knock (unspecified, multicast or broadcast)")
	}
	return nil
}

func parseUint(s string, lo, hi uint64) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' { // one spelling per number
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v < lo || v > hi {
		return 0, strconv.ErrRange
	}
	return v, nil
}
