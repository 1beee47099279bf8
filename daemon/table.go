package daemon

import (
	"hash/maphash"
	"math/bits"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

// Ways is the number of slots in a bucket of the source table.
const Ways = 8

// slot is one tracked source: its address, when its knock's first packet
// and its latest packet arrived, and what has arrived so far. A zero born
// marks a free slot.
type slot struct {
	key  [16]byte // the address in its 16-byte form (IPv4 mapped)
	born int64    // table clock, nanoseconds; 0 = free
	seen int64    // table clock of the latest packet
	asm  encoding.Assembler
}

// SlotSize is the memory one tracked source takes.
const SlotSize = int(unsafe.Sizeof(slot{}))

// Table tracks the knocks in progress, one per source address (SPEC.md
// §10.2), in a fixed amount of memory allocated once.
//
// It is a set-associative cache: a keyed hash (its seed is random, so a
// sender cannot aim at a bucket) picks a bucket of Ways slots, and a new
// source takes a free or timed-out slot of its bucket, or else evicts the
// slot that has been silent longest (least recently used). Progress is no
// rank: spoofed sources that know the protocol send as many packets each
// as it takes (a header and a few positions, or a whole forged knock) to
// outrank a real knock between two of its packets. Recency they cannot
// buy: a real knock's slot is as fresh as its last packet, so it is
// evicted only if Ways other sources of its bucket were heard from since,
// and a flood of P packets a second over B buckets reaches a bucket P/B
// times a second, whatever the packets per spoofed source. With 65,536
// slots (8,192 buckets) and a 1 Mpps flood, a gap of 2 ms between a knock's
// packets sees 0.24 flood packets in its bucket on average, and eight of
// them with probability below 10^-9. TestFloodEviction and
// BenchmarkFloodEviction measure it for floods of 1, 2, 4 and 24 packets
// per source; the cost is that a knock whose packets are tens of
// milliseconds apart can be lost to a flood (at 1 Mpps, gaps of 50 ms see
// six flood packets per bucket on average), as before.
//
// Table is not safe for concurrent use.
type Table struct {
	slots   []slot
	buckets uint64
	seed    maphash.Seed
	timeout int64 // nanoseconds

	// Counters, for status and tests.
	Live      int    // occupied slots
	Inserts   uint64 // new sources
	Evictions uint64 // live knocks pushed out by a new source
	Expiries  uint64 // knocks that timed out before completing
}

// NewTable returns a table for at least capacity sources whose knocks must
// complete within timeout. Its memory is Bytes(), allocated here and never
// grown.
func NewTable(capacity int, timeout time.Duration) *Table {
	nb := max((capacity+Ways-1)/Ways, 1)
	return &Table{
		slots:   make([]slot, nb*Ways),
		buckets: uint64(nb),
		seed:    maphash.MakeSeed(),
		timeout: int64(timeout),
	}
}

// Cap returns the number of sources the table can hold.
func (t *Table) Cap() int { return len(t.slots) }

// Bytes returns the table's memory in bytes.
func (t *Table) Bytes() int { return len(t.slots) * SlotSize }

func (t *Table) bucket(key *[16]byte) []slot {
	h := maphash.Bytes(t.seed, key[:])
	b, _ := bits.Mul64(h, t.buckets) // uniform in [0, buckets)
	return t.slots[b*Ways : b*Ways+Ways]
}

// Add records that src sent byte b at position pos at time now (table
// clock, nanoseconds, > 0). It returns the source's slot, and whether its
// knock is now complete; the caller then reads the knock from the slot and
// releases it with Free. Packets that cannot start or advance a knock (a
// position-0 byte that is no version-1 header) are dropped before they take
// a slot.
func (t *Table) Add(src netip.Addr, pos int, b byte, now int64) (s *slot, complete bool) {
	if pos == 0 && crypto.KnockLen(b) == 0 {
		return nil, false
	}
	key := src.As16()
	bk := t.bucket(&key)
	// Pick the victim with the lowest (class, last packet): a free slot,
	// else a timed-out one, else the live knock silent longest.
	var victim *slot
	var vc int
	for i := range bk {
		c := &bk[i]
		var cls int
		switch {
		case c.born == 0:
			cls = 0
		case c.key == key:
			if now-c.born > t.timeout {
				t.Expiries++
				c.asm.Reset()
				c.born = now
			}
			c.seen = now
			return c, c.asm.AddAt(pos, b, encoding.Ticks(now))
		case now-c.born > t.timeout:
			cls = 1
		default:
			cls = 2
		}
		if victim == nil || cls < vc || cls == vc && c.seen < victim.seen {
			victim, vc = c, cls
		}
	}
	switch {
	case victim.born == 0:
		t.Live++
	case now-victim.born > t.timeout:
		t.Expiries++
	default:
		t.Evictions++
	}
	t.Inserts++
	victim.key = key
	victim.born, victim.seen = now, now
	victim.asm.Reset()
	return victim, victim.asm.AddAt(pos, b, encoding.Ticks(now))
}

// Free releases a slot whose knock is done.
func (t *Table) Free(s *slot) {
	if s.born != 0 {
		s.born = 0
		s.asm.Reset()
		t.Live--
	}
}

// Addr returns the source address a slot tracks.
func (s *slot) Addr() netip.Addr { return netip.AddrFrom16(s.key).Unmap() }
