package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cipherknock/cipherknock/ports"
)

// Wire constants of knock version 1 (SPEC.md §5, §6).
const (
	Version       = 1  // header high nibble
	HeaderSize    = 1  // clear header byte
	UserFieldSize = 2  // encrypted user index
	TagSize       = 8  // truncated HMAC-SHA-256, also the CTR IV
	NonceSize     = 4  // random bytes in the plaintext
	FixedPlainLen = 13 // flags 1 + port 2 + duration 2 + time 4 + nonce 4

	// Total knock lengths per address mode; one byte becomes one packet.
	LenSource = HeaderSize + UserFieldSize + FixedPlainLen + TagSize    // 24
	LenIPv4   = LenSource + 4                                           // 28
	LenIPv6   = LenSource + 16                                          // 40
	MaxLen    = LenIPv6                                                 // 40
	maxPlain  = FixedPlainLen + 16                                      // 29
	maxMAC    = 1 + MaxRealmLen + HeaderSize + UserFieldSize + maxPlain // 97

	MaxRealmLen = 64
	MaxDuration = 65535 // seconds, the uint16 field's range
)

// Mode says which address a knock opens (SPEC.md §5.1).
type Mode uint8

const (
	ModeSource Mode = 0 // the knock's own source address
	ModeIPv4   Mode = 1 // an explicit IPv4 address in the plaintext
	ModeIPv6   Mode = 2 // an explicit IPv6 address in the plaintext
	// ModeBound is the source address, bound under the tag: the sender
	// authenticates the address it believes the receiver will see
	// without sending it, and the receiver checks the tag against the
	// packets' observed source (SPEC.md §5.1, §6.2).
	ModeBound Mode = 3
)

// Modes lists the modes in the order the receiver tries complete
// candidates (SPEC.md §10.2): by length, then by number.
var Modes = [...]Mode{ModeSource, ModeBound, ModeIPv4, ModeIPv6}

// BoundAddrSize is the size of the address a bound-mode tag covers: the
// IPv6 form, IPv4 addresses being IPv4-mapped (SPEC.md §6.2).
const BoundAddrSize = 16

func (m Mode) String() string {
	switch m {
	case ModeSource:
		return "source"
	case ModeIPv4:
		return "ipv4"
	case ModeIPv6:
		return "ipv6"
	case ModeBound:
		return "bound"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Len returns the knock length in bytes for the mode, or 0 for an unknown mode.
func (m Mode) Len() int {
	switch m {
	case ModeSource, ModeBound:
		return LenSource
	case ModeIPv4:
		return LenIPv4
	case ModeIPv6:
		return LenIPv6
	}
	return 0
}

// addrLen is the length of the address the plaintext carries.
func (m Mode) addrLen() int { return m.Len() - LenSource }

// Action is what the knock asks for (SPEC.md §5.2).
type Action uint8

const (
	ActionOpen  Action = 1 // grant access for Duration seconds
	ActionClose Action = 2 // revoke an earlier grant; Duration must be 0
)

func (a Action) String() string {
	switch a {
	case ActionOpen:
		return "open"
	case ActionClose:
		return "close"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Failure classes (SPEC.md §8). Open returns these sentinels unwrapped so
// that rejecting garbage allocates nothing; callers compare with errors.Is.
var (
	ErrUnknownVersion = errors.New("unknown version")
	ErrMalformed      = errors.New("malformed knock")
	ErrUnknownUser    = errors.New("unknown user")
	ErrBadTag         = errors.New("bad tag")
	ErrFieldRange     = errors.New("field out of range")
	ErrStale          = errors.New("stale")
	ErrFuture         = errors.New("future")
)

// Knock holds the plaintext fields of a knock.
type Knock struct {
	Action   Action
	Mode     Mode
	Addr     netip.Addr // zero for ModeSource; for ModeBound the bound source address (not sent)
	Proto    ports.Proto
	Port     uint16
	Duration uint16 // seconds
	Time     uint32 // Unix seconds when sealed
	Nonce    [NonceSize]byte
}

// Header returns the clear header byte for mode: version in the high nibble,
// mode in the low nibble (SPEC.md §6.1).
func Header(m Mode) byte { return Version<<4 | byte(m) }

// ParseHeader checks a header byte and returns its mode.
func ParseHeader(h byte) (Mode, error) {
	if h>>4 != Version {
		return 0, ErrUnknownVersion
	}
	m := Mode(h & 0x0f)
	if m.Len() == 0 {
		return 0, ErrMalformed
	}
	return m, nil
}

// KnockLen returns the length of the knock that starts with header byte h,
// or 0 if h is not a valid version-1 header. The assembler uses it to know
// when a knock is complete.
func KnockLen(h byte) int {
	m, err := ParseHeader(h)
	if err != nil {
		return 0
	}
	return m.Len()
}

// Validate checks every field's range (SPEC.md §5.3).
func (k *Knock) Validate() error {
	if k.Mode.Len() == 0 {
		return ErrMalformed
	}
	if k.Action != ActionOpen && k.Action != ActionClose {
		return ErrFieldRange
	}
	if k.Proto != ports.TCP && k.Proto != ports.UDP {
		return ErrFieldRange
	}
	if k.Port == 0 {
		return ErrFieldRange
	}
	if (k.Action == ActionOpen) != (k.Duration > 0) {
		return ErrFieldRange
	}
	switch k.Mode {
	case ModeSource:
		if k.Addr.IsValid() {
			return ErrFieldRange
		}
	case ModeIPv4:
		if !k.Addr.Is4() || !usableAddr(k.Addr) {
			return ErrFieldRange
		}
	case ModeIPv6:
		if !k.Addr.Is6() || k.Addr.Is4In6() || k.Addr.Zone() != "" || !usableAddr(k.Addr) {
			return ErrFieldRange
		}
	case ModeBound:
		if !BoundAddrOK(k.Addr) {
			return ErrFieldRange
		}
	}
	return nil
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// BoundAddrOK reports whether a may be bound under a ModeBound tag: an
// IPv4 address (or its IPv4-mapped form) that mode ipv4 could carry, or an
// IPv6 address that mode ipv6 could carry, without a zone (SPEC.md §5.3).
func BoundAddrOK(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.Zone() == "" && usableAddr(a)
}

// boundAddr returns the 16 bytes a bound-mode tag covers for a.
func boundAddr(a netip.Addr) [BoundAddrSize]byte { return a.Unmap().As16() }

func usableAddr(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsMulticast() && a != limitedBroadcast
}

// AppendPlaintext appends the plaintext encoding of k (SPEC.md §5.2) without
// validating it.
func AppendPlaintext(dst []byte, k *Knock) []byte {
	dst = append(dst, byte(k.Action)<<4|byte(k.Proto))
	dst = binary.BigEndian.AppendUint16(dst, k.Port)
	dst = binary.BigEndian.AppendUint16(dst, k.Duration)
	dst = binary.BigEndian.AppendUint32(dst, k.Time)
	dst = append(dst, k.Nonce[:]...)
	switch {
	case k.Mode == ModeIPv4 && k.Addr.Is4():
		a := k.Addr.As4()
		dst = append(dst, a[:]...)
	case k.Mode == ModeIPv6:
		a := k.Addr.As16()
		dst = append(dst, a[:]...)
	}
	return dst
}

// parsePlaintext decodes p for mode m into k and validates it; bound is
// the address a ModeBound tag covered.
func parsePlaintext(k *Knock, m Mode, p []byte, bound netip.Addr) error {
	if len(p) != FixedPlainLen+m.addrLen() {
		return ErrMalformed
	}
	if p[0]&0x0e != 0 { // reserved flag bits
		return ErrFieldRange
	}
	*k = Knock{
		Action:   Action(p[0] >> 4),
		Mode:     m,
		Proto:    ports.Proto(p[0] & 1),
		Port:     binary.BigEndian.Uint16(p[1:]),
		Duration: binary.BigEndian.Uint16(p[3:]),
		Time:     binary.BigEndian.Uint32(p[5:]),
	}
	copy(k.Nonce[:], p[9:13])
	switch m {
	case ModeIPv4:
		k.Addr = netip.AddrFrom4([4]byte(p[13:17]))
	case ModeIPv6:
		k.Addr = netip.AddrFrom16([16]byte(p[13:29]))
	case ModeBound:
		k.Addr = bound.Unmap()
	}
	return k.Validate()
}

// CheckRealm reports whether name is a valid realm name: 1 to 64 bytes of
// ASCII letters, digits, '.', '-' and '_' (SPEC.md §4.3).
func CheckRealm(name string) error {
	if len(name) == 0 || len(name) > MaxRealmLen {
		return fmt.Errorf("realm name must be 1 to %d bytes long", MaxRealmLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("realm name may contain only letters, digits, '.', '-' and '_' (byte %d is not)", i+1)
		}
	}
	return nil
}
