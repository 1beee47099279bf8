package encoding

import (
	"math/bits"

	"github.com/cipherknock/cipherknock/crypto"
)

// Assembler collects the packets of one source's knock (SPEC.md §10.2). Its
// zero value is ready to use; it is a fixed-size value, so a table of them
// allocates nothing per packet.
//
// For every position it keeps the first and the last byte seen. A knock whose
// positions all agree is opened once; if some position saw two different
// bytes (an injected packet, or two knocks overlapping) the receiver may open
// it a second time with the last bytes.
//
// Position 0 carries the header, and each mode has exactly one header byte,
// so the assembler keeps every mode whose header it has seen as a candidate
// length instead of letting the first header fix the length: a spoofed
// header of another mode cannot then stall a real knock until it times out.
// The shortest candidate whose positions are all seen is the complete knock;
// if opening it fails, Next drops that candidate and the assembly waits for
// the others. With four modes and two readings each, one assembly is opened
// at most eight times, whatever is injected.
type Assembler struct {
	first, last [MaxPositions]byte
	have        uint64 // positions seen; bit 0 once any valid header is seen
	conflict    uint64 // positions other than 0 that saw two different bytes
	modes       uint8  // candidate modes: bit m set when header(m) was seen
}

// mask returns the position bits of a knock of n bytes.
func mask(n int) uint64 { return uint64(1)<<n - 1 }

// Add records the packet carrying byte b at position pos and reports whether
// a knock is now complete. A position-0 byte that is not a version-1 header
// is ignored, so that garbage cannot add a candidate length.
func (a *Assembler) Add(pos int, b byte) (complete bool) {
	switch {
	case pos < 0 || pos >= MaxPositions:
	case pos == 0:
		if m, err := crypto.ParseHeader(b); err == nil {
			a.modes |= 1 << m
			a.have |= 1
		}
	default:
		bit := uint64(1) << pos
		if a.have&bit == 0 {
			a.first[pos], a.last[pos] = b, b
			a.have |= bit
		} else {
			if b != a.first[pos] {
				a.conflict |= bit
			}
			a.last[pos] = b
		}
	}
	return a.Complete()
}

// AddPort splits port with span s and adds it; ports outside the span are
// ignored.
func (a *Assembler) AddPort(s Span, port uint16) (complete bool) {
	pos, b, ok := s.Split(port)
	if !ok {
		return a.Complete()
	}
	return a.Add(pos, b)
}

// complete returns the shortest candidate mode whose positions have all been
// seen, trying modes in the order of crypto.Modes (by length: 24, 24, 28,
// 40 bytes).
func (a *Assembler) complete() (crypto.Mode, bool) {
	for _, m := range crypto.Modes {
		if a.modes&(1<<m) != 0 && a.have&mask(m.Len()) == mask(m.Len()) {
			return m, true
		}
	}
	return 0, false
}

// Complete reports whether every position of some candidate knock has been
// seen.
func (a *Assembler) Complete() bool {
	_, ok := a.complete()
	return ok
}

// Len returns the length of the complete knock, or while none is complete
// the shortest candidate length, or 0 before any header has been seen.
func (a *Assembler) Len() int {
	if m, ok := a.complete(); ok {
		return m.Len()
	}
	for _, m := range crypto.Modes {
		if a.modes&(1<<m) != 0 {
			return m.Len()
		}
	}
	return 0
}

// Seen returns how many distinct positions have been seen.
func (a *Assembler) Seen() int {
	return bits.OnesCount64(a.have)
}

// Conflicted reports whether some position below Len saw two different
// bytes; for a complete knock, Alternate then gives the second reading.
func (a *Assembler) Conflicted() bool {
	return a.conflict&mask(a.Len()) != 0
}

// Knock appends the complete knock built from the first byte seen at each
// position. It must only be called when Complete reports true.
func (a *Assembler) Knock(dst []byte) []byte { return a.reading(dst, &a.first) }

// Alternate appends the complete knock built from the last byte seen at each
// position.
func (a *Assembler) Alternate(dst []byte) []byte { return a.reading(dst, &a.last) }

func (a *Assembler) reading(dst []byte, val *[MaxPositions]byte) []byte {
	m, ok := a.complete()
	if !ok {
		return dst
	}
	return append(append(dst, crypto.Header(m)), val[1:m.Len()]...)
}

// Next gives up on the complete knock after it failed to open, and reports
// whether another, longer candidate remains to wait for. When it returns
// false the caller should Reset (or discard) the assembler.
func (a *Assembler) Next() (more bool) {
	if m, ok := a.complete(); ok {
		a.modes &^= 1 << m
	}
	return a.modes != 0
}

// Reset forgets everything, ready for the next knock.
func (a *Assembler) Reset() { *a = Assembler{} }
