package encoding

import "github.com/cipherknock/cipherknock/crypto"

// Assembler collects the packets of one source's knock (SPEC.md §10.2). Its
// zero value is ready to use; it is a fixed-size value, so a table of them
// allocates nothing per packet.
//
// For every position it keeps the first and the last byte seen. A knock whose
// positions all agree is opened once; if some position saw two different
// bytes (an injected packet, or two knocks overlapping) the receiver may open
// it a second time with the last bytes, and never more.
type Assembler struct {
	first, last [MaxPositions]byte
	have        uint64 // positions seen
	conflict    uint64 // positions that saw two different bytes
	length      uint8  // knock length from the header at position 0; 0 = unknown
}

// Add records the packet carrying byte b at position pos and reports whether
// the knock is now complete. A position-0 byte that is not a version-1 header
// is ignored, so that a garbage header cannot fix the length; once a header
// has fixed it, later position-0 bytes are ignored.
func (a *Assembler) Add(pos int, b byte) (complete bool) {
	if pos < 0 || pos >= MaxPositions {
		return false
	}
	bit := uint64(1) << pos
	switch {
	case pos == 0 && a.length == 0:
		n := crypto.KnockLen(b)
		if n == 0 {
			return false
		}
		a.length = uint8(n)
		a.first[0], a.last[0] = b, b
	case pos == 0:
		// The first header fixed the length. Each mode has one header
		// byte, so a different byte here, garbage or another mode's
		// header, cannot give an alternate reading of this knock: it
		// is ignored rather than flagged as a conflict.
		return a.Complete()
	case a.have&bit == 0:
		a.first[pos], a.last[pos] = b, b
	default:
		if b != a.first[pos] {
			a.conflict |= bit
		}
		a.last[pos] = b
	}
	a.have |= bit
	return a.Complete()
}

// AddPort splits port with span s and adds it; ports outside the span are
// ignored.
func (a *Assembler) AddPort(s Span, port uint16) (complete bool) {
	pos, b, ok := s.Split(port)
	if !ok {
		return false
	}
	return a.Add(pos, b)
}

// Complete reports whether every position of the knock has been seen.
func (a *Assembler) Complete() bool {
	if a.length == 0 {
		return false
	}
	mask := uint64(1)<<a.length - 1
	return a.have&mask == mask
}

// Len returns the knock's length if its header has been seen, else 0.
func (a *Assembler) Len() int { return int(a.length) }

// Seen returns how many distinct positions have been seen.
func (a *Assembler) Seen() int {
	n := 0
	for h := a.have; h != 0; h &= h - 1 {
		n++
	}
	return n
}

// Conflicted reports whether some position of the knock saw two different
// bytes, in which case Alternate gives the second reading.
func (a *Assembler) Conflicted() bool {
	return a.length != 0 && a.conflict&(uint64(1)<<a.length-1) != 0
}

// Knock appends the knock built from the first byte seen at each position.
// It must only be called when Complete reports true.
func (a *Assembler) Knock(dst []byte) []byte { return append(dst, a.first[:a.length]...) }

// Alternate appends the knock built from the last byte seen at each position.
func (a *Assembler) Alternate(dst []byte) []byte { return append(dst, a.last[:a.length]...) }

// Reset forgets everything, ready for the next knock.
func (a *Assembler) Reset() { *a = Assembler{} }
