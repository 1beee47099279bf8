package encoding

import (
	"math/bits"

	"github.com/cipherknock/cipherknock/crypto"
)

// nModes is the number of knock modes the assembler keeps as candidates:
// every mode of crypto.Modes.
const nModes = len(crypto.Modes)

// MaxOpens bounds the opens of one assembly (SPEC.md §10.2): four modes,
// each tried with its first and its last reading, then retried at most
// twice with the last reading, each time after the positions it waits for
// were seen again.
const MaxOpens = 4 * nModes

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
// The shortest candidate whose positions are all seen is the complete knock.
//
// A candidate that fails is not dropped at once: it is retried with the
// last bytes, at most twice, each time once the positions that may still
// hold foreign bytes have been seen again. Those are the positions whose
// last byte arrived more than Recent before the failure (bytes sprayed
// ahead of the knock, or left by the sender's own earlier knock), or every
// position when there are none (the sender's knock failed on its own, and
// a new one is on its way). A mode that fails its second retry is given up
// for the rest of the assembly: its header, sent again, no longer makes it
// a candidate, so one assembly is opened at most MaxOpens times, whatever
// is injected. When a candidate fails while a longer one is complete, the
// longer one is opened at once (Open).
type Assembler struct {
	// The scalars first: a table that reuses an assembler for a new
	// source clears only them (Restart), one cache line.
	have     uint64         // positions seen; bit 0 once any valid header is seen
	conflict uint64         // positions other than 0 that saw two different bytes
	stale    [nModes]uint64 // per mode: positions a retry waits to see again
	now      uint32         // arrival of the latest packet, in ticks
	modes    uint8          // candidate modes: bit m set when header(m) was seen
	retry    uint8          // candidates that failed and wait for stale
	retry2   uint8          // candidates that failed twice
	spent    uint8          // modes given up: their header is ignored

	// Read only at positions seen (have), so never cleared. A
	// position's bytes and time share a cache line.
	pos [MaxPositions]position
}

// position is what the assembler keeps of one position: its first and last
// byte, and the arrival of the last, in ticks.
type position struct {
	first, last byte
	at          uint32
}

// mask returns the position bits of a knock of n bytes.
func mask(n int) uint64 { return uint64(1)<<n - 1 }

// Add records the packet carrying byte b at position pos, arriving at the
// same time as the previous one, and reports whether a knock is now
// complete.
func (a *Assembler) Add(pos int, b byte) (complete bool) {
	return a.AddAt(pos, b, a.now)
}

// Tick is the assembler's unit of time, one millisecond, the grain of
// SPEC.md §10.2's R and of the stream vectors (§12.1): a byte is older
// than Recent when it arrived more than Recent/Tick ticks before now.
// Arrival times are kept in 32 bits, which wrap after 49 days, far beyond
// any assembler timeout, so every gap an assembly can see is measured
// exactly.
const Tick = 1_000_000 // nanoseconds

// Recent is how long before a failed open a byte must have arrived to be
// taken for one sprayed ahead of the knock rather than part of it (SPEC.md
// §10.2): longer than a sender's whole pass at a few milliseconds a packet.
const Recent = 200_000_000 // nanoseconds

// Ticks converts a clock in nanoseconds to the assembler's ticks.
func Ticks(ns int64) uint32 { return uint32(ns / Tick) }

// AddAt records the packet carrying byte b at position pos, arriving at
// time now (in ticks, see Ticks), and reports whether a knock is now
// complete. A position-0 byte that is not a version-1 header is ignored, so
// that garbage cannot add a candidate length.
func (a *Assembler) AddAt(pos int, b byte, now uint32) (complete bool) {
	a.now = now
	switch {
	case pos < 0 || pos >= MaxPositions:
	case pos == 0:
		// The candidate sets are indexed by mode and hold nModes of
		// them; a header of a mode beyond is ignored, not a crash.
		if m, err := crypto.ParseHeader(b); err == nil && int(m) < nModes {
			bit := uint8(1) << m
			if (a.modes|a.spent)&bit == 0 {
				a.modes |= bit
			}
			a.have |= 1
		}
	default:
		bit := uint64(1) << pos
		if a.have&bit == 0 {
			a.pos[pos].first, a.pos[pos].last = b, b
			a.have |= bit
		} else {
			if b != a.pos[pos].first {
				a.conflict |= bit
			}
			a.pos[pos].last = b
		}
		for m := range a.stale {
			a.stale[m] &^= bit
		}
		a.pos[pos].at = a.now
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
// seen, and for a retrying mode seen again, trying modes in the order of
// crypto.Modes (by length: 24, 24, 28, 40 bytes).
func (a *Assembler) complete() (crypto.Mode, bool) {
	for _, m := range crypto.Modes {
		bit := uint8(1) << m
		if a.modes&bit == 0 {
			continue
		}
		k := mask(m.Len())
		if a.have&k != k || a.retry&bit != 0 && a.stale[m] != 0 {
			continue
		}
		return m, true
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

// Conflicted reports whether the complete knock has a second reading: some
// position below Len saw two different bytes, and the knock is not a retry
// (which has only the last reading). Alternate then gives it.
func (a *Assembler) Conflicted() bool {
	m, ok := a.complete()
	if ok && a.retry&(1<<m) != 0 {
		return false
	}
	return a.conflict&mask(a.Len()) != 0
}

// Knock appends the reading of the complete knock to open first: the first
// byte seen at each position, or for a retry the last one. It must only be
// called when Complete reports true.
func (a *Assembler) Knock(dst []byte) []byte {
	if m, ok := a.complete(); ok && a.retry&(1<<m) != 0 {
		return a.reading(dst, true)
	}
	return a.reading(dst, false)
}

// Alternate appends the complete knock built from the last byte seen at each
// position.
func (a *Assembler) Alternate(dst []byte) []byte { return a.reading(dst, true) }

func (a *Assembler) reading(dst []byte, last bool) []byte {
	m, ok := a.complete()
	if !ok {
		return dst
	}
	dst = append(dst, crypto.Header(m))
	for i := 1; i < m.Len(); i++ {
		if last {
			dst = append(dst, a.pos[i].last)
		} else {
			dst = append(dst, a.pos[i].first)
		}
	}
	return dst
}

// Next gives up on the complete knock after it failed to open, and reports
// whether the assembler should be kept: a longer candidate or a retry
// remains to wait for. A longer candidate may already be complete; the
// caller checks Complete again before it waits. When Next returns false the
// caller should Reset (or discard) the assembler.
func (a *Assembler) Next() (keep bool) {
	m, ok := a.complete()
	if !ok {
		return a.modes != 0
	}
	bit := uint8(1) << m
	var wait uint64
	if a.retry2&bit == 0 {
		// Wait for the positions whose byte is older than the sender's
		// pass (bytes sprayed ahead of the knock), or if there are none
		// for a whole new knock.
		k := mask(m.Len()) &^ 1
		for p := k; p != 0; p &= p - 1 {
			i := bits.TrailingZeros64(p)
			if a.now-a.pos[i].at > Recent/Tick {
				wait |= 1 << i
			}
		}
		if wait == 0 {
			wait = k
		}
		if a.retry&bit == 0 {
			a.retry |= bit
		} else {
			a.retry2 |= bit
		}
	}
	if wait == 0 {
		a.modes &^= bit
		a.spent |= bit
	}
	a.stale[m] = wait
	return a.modes != 0
}

// Waiting reports whether a candidate that has not failed yet is waiting
// for its positions: a failure while one is should not yet be reported.
func (a *Assembler) Waiting() bool { return a.modes&^a.retry != 0 }

// Verdict is the outcome of opening one reading of a knock.
type Verdict uint8

const (
	// Failed: the reading did not open (any class of SPEC.md §8 that an
	// opener reports: not authentic, stale, malformed...).
	Failed Verdict = iota
	// Refused: the reading opened but the receiver refused it (replay,
	// policy); another reading may still be accepted.
	Refused
	// Accepted: the knock was carried out.
	Accepted
)

// Open runs the opening steps of SPEC.md §10.2 on a complete assembler:
// it offers open the readings of the complete knock in turn (the second
// only when it differs from the first) and stops at the first one
// accepted; when none is, it gives the knock up (Next) and, if a longer
// candidate is complete too, opens that at once. A reading refused (a
// replay, or by policy) is given up like one that failed, so that bytes of
// a recorded knock sprayed ahead of a new one cannot end its assembly. It reports the
// best verdict, the number of opens, and whether the caller should keep the
// assembler waiting for more packets. buf holds the readings.
func (a *Assembler) Open(buf *[MaxPositions]byte, open func(knock []byte) Verdict) (v Verdict, opens int, keep bool) {
	for a.Complete() {
		k := a.Knock(buf[:0])
		w := open(k)
		opens++
		if w != Accepted && a.Conflicted() {
			var first [MaxPositions]byte
			n := copy(first[:], k)
			if alt := a.Alternate(buf[:0]); string(alt) != string(first[:n]) {
				w = max(w, open(alt))
				opens++
			}
		}
		v = max(v, w)
		if w == Accepted || !a.Next() {
			return v, opens, false
		}
	}
	return v, opens, true
}

// Reset forgets everything, ready for the next knock.
func (a *Assembler) Reset() { *a = Assembler{} }

// Restart forgets the knock like Reset, as every method sees it, but
// clears only the scalars: the per-position bytes and times are read only
// at positions seen since, so what is left of them does not matter. It is
// Reset for a table that reuses assemblers on the per-packet path.
func (a *Assembler) Restart() {
	a.have, a.conflict, a.stale = 0, 0, [nModes]uint64{}
	a.now, a.modes, a.retry, a.retry2, a.spent = 0, 0, 0, 0, 0
}
