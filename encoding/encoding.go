// Package encoding maps sealed knock bytes onto destination ports and back,
// as specified in SPEC.md §9 (the port span and position encoding) and §10
// (decoding a port sequence and assembling a knock from packets that arrive
// in any order, duplicated or not).
//
// Each knock byte becomes one port: base + position*256 + byte. Because every
// port names its own position, the receiver needs no arrival order, and
// duplicates are recognised as such. Position 0 carries the clear header, from
// which the receiver learns the knock's length, so it knows when a knock is
// complete without trying lengths.
//
// # Performance
//
// The assembler's per-packet step and Decode allocate nothing; the
// benchmarks (go test -bench=. -benchmem) measure them, and README's
// Performance section gives the figures, dated and with the machine.
package encoding

import (
	"errors"
	"fmt"

	"github.com/cipherknock/cipherknock/crypto"
)

// Span geometry (SPEC.md §9.1).
const (
	Radix        = 256                  // values per position: one byte
	MaxPositions = crypto.MaxLen        // 40: the longest knock
	SpanSize     = MaxPositions * Radix // 10240 ports
	DefaultBase  = 20480                // ports 20480..30719
	MinBase      = 1024                 // stay out of the privileged ports
	MaxBase      = 65536 - SpanSize     // 55296: the span must end by 65535
)

// Decoding failure classes (SPEC.md §10.1).
var (
	ErrOutsideSpan  = errors.New("port outside span")
	ErrExtraPackets = errors.New("extra packets")
	ErrTruncated    = errors.New("truncated")
	ErrConflict     = errors.New("conflicting duplicate")
)

// Span is the range of destination ports a knock is sent to.
type Span struct {
	Base uint16
}

// DefaultSpan is the span at DefaultBase.
var DefaultSpan = Span{Base: DefaultBase}

// NewSpan returns the span starting at base, which must lie in
// [MinBase, MaxBase].
func NewSpan(base int) (Span, error) {
	if base < MinBase || base > MaxBase {
		return Span{}, fmt.Errorf("span base %d outside %d..%d", base, MinBase, MaxBase)
	}
	return Span{Base: uint16(base)}, nil
}

// Last returns the span's highest port.
func (s Span) Last() uint16 { return s.Base + SpanSize - 1 }

// Contains reports whether port lies in the span.
func (s Span) Contains(port uint16) bool {
	return port >= s.Base && uint32(port) < uint32(s.Base)+SpanSize
}

// Port returns the port that carries byte b at position pos.
func (s Span) Port(pos int, b byte) uint16 {
	return s.Base + uint16(pos)*Radix + uint16(b)
}

// Split returns the position and byte a port carries, or ok=false when the
// port is outside the span.
func (s Span) Split(port uint16) (pos int, b byte, ok bool) {
	if !s.Contains(port) {
		return 0, 0, false
	}
	off := int(port - s.Base)
	return off / Radix, byte(off % Radix), true
}

// AppendPorts appends the port sequence of knock, in position order.
func (s Span) AppendPorts(dst []uint16, knock []byte) []uint16 {
	for i, b := range knock {
		dst = append(dst, s.Port(i, b))
	}
	return dst
}

// Decode turns an observed port sequence, in any order and with duplicates,
// into knock bytes appended to dst. It is strict (SPEC.md §10.1): every port
// must lie in the span, duplicates must agree, position 0 must hold a
// version-1 header, every position below the knock's length must be present
// and none at or above it.
func (s Span) Decode(dst []byte, ports []uint16) ([]byte, error) {
	var val [MaxPositions]byte
	var have uint64
	conflict := false
	for _, p := range ports {
		pos, b, ok := s.Split(p)
		if !ok {
			return dst, ErrOutsideSpan
		}
		// Reported after the loop, so that a port outside the span
		// wins whatever the arrival order: the failure class depends
		// on the ports, not on their order.
		conflict = conflict || have&(1<<pos) != 0 && val[pos] != b
		have |= 1 << pos
		val[pos] = b
	}
	if conflict {
		return dst, ErrConflict
	}
	if have&1 == 0 {
		return dst, ErrTruncated
	}
	mode, err := crypto.ParseHeader(val[0])
	if err != nil {
		return dst, err
	}
	n := mode.Len()
	if have>>n != 0 {
		return dst, ErrExtraPackets
	}
	if have != 1<<n-1 {
		return dst, ErrTruncated
	}
	return append(dst, val[:n]...), nil
}
