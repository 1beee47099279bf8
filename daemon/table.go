package daemon

import (
	"hash/maphash"
	"math/bits"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/prefetch"
)

// Ways is the number of slots in a bucket of the source table.
const Ways = 8

// slot is one tracked source: its address, when its knock's first packet
// arrived, and its first two packets. Its bucket's meta says whether it is
// free and when its latest packet arrived; the packets after the second
// go to its assembler, kept apart (Table.asm), and the two held here join
// them there first, in the order they came, with their own arrival times.
//
// Most sources under a flood are spoofed and send a packet or two (a
// header, then a position), so a slot holds them beside the address: such
// a source reads the bucket's meta line and writes half a line of the
// slots, an array of 2 MiB for 65,536 sources, where a slot and its
// assembler together would spread those writes over 28 MiB. No knock is
// complete with two packets (the shortest has 24).
type slot struct {
	key  [16]byte // the address in its 16-byte form (IPv4 mapped)
	born int64    // table clock of the first packet, nanoseconds; 0 = free
	held struct {
		pos [2]uint8
		b   [2]byte
		dt  uint16 // arrival of the second after the first, in ticks
		n   uint8  // packets held (0 once they are in the assembler)
	}
}

// assembler is a slot's assembler, padded to whole cache lines.
type assembler struct {
	encoding.Assembler
	_ [(lineSize - unsafe.Sizeof(encoding.Assembler{})%lineSize) % lineSize]byte
}

// start makes the packet (pos, b) at now the slot's first.
func (s *slot) start(pos int, b byte, now int64) {
	s.born = now
	s.held.n = 1
	s.held.pos[0], s.held.b[0] = uint8(pos), b
}

// add records a further packet in the slot s, and reports whether its
// knock is complete. The second packet is held (it comes within the
// timeout, so dt holds its delay: see MaxTimeout); the third sends all
// three to the assembler.
func (t *Table) add(s *slot, pos int, b byte, now int64) bool {
	at := encoding.Ticks(now)
	switch s.held.n {
	case 1:
		s.held.pos[1], s.held.b[1] = uint8(pos), b
		s.held.dt = uint16(at - encoding.Ticks(s.born))
		s.held.n = 2
		return false
	case 2:
		a := t.asm(s)
		a.Restart()
		at0 := encoding.Ticks(s.born)
		a.AddAt(int(s.held.pos[0]), s.held.b[0], at0)
		a.AddAt(int(s.held.pos[1]), s.held.b[1], at0+uint32(s.held.dt))
		s.held.n = 0
		return a.AddAt(pos, b, at)
	}
	return t.asm(s).AddAt(pos, b, at)
}

// index returns the slot's place in the table.
func (t *Table) index(s *slot) uintptr {
	return (uintptr(unsafe.Pointer(s)) - uintptr(unsafe.Pointer(&t.slots[0]))) / unsafe.Sizeof(*s)
}

// asm returns the assembler of the slot s.
func (t *Table) asm(s *slot) *encoding.Assembler { return &t.asms[t.index(s)].Assembler }

// meta is what a bucket scan reads of its slots, kept apart from them in
// one cache line, so that the scan touches that line alone. The table
// keeps all buckets' meta lines together (512 KiB for 65,536 sources),
// small enough to stay in a core's cache while a flood spreads over the
// slots (four times larger) and the assemblers (48 times).
type meta struct {
	tag  [Ways]uint32 // hash of the slot's source, low bit set; 0 = free
	seen [Ways]uint32 // table clock of the latest packet, milliseconds
}

// lineSize is the cache line the table's layout is aligned to (64 bytes on
// amd64 and arm64).
const lineSize = 64

// The slots of all buckets are one array, bucket after bucket, two to a
// cache line; their assemblers are another, in the same order.
// TestTableLayout checks the layout.

// SlotSize is the memory one tracked source takes, its share of the
// bucket's scan data included.
const SlotSize = int(unsafe.Sizeof(slot{}) + unsafe.Sizeof(assembler{}) + unsafe.Sizeof(meta{})/Ways)

// Table tracks the knocks in progress, one per source address (SPEC.md
// §10.2), in a fixed amount of memory allocated once.
//
// It is a set-associative cache: a keyed hash (its seed is random, so a
// sender cannot aim at a bucket) picks a bucket of Ways slots, and a new
// source takes a free slot of its bucket, or one silent for longer than
// the timeout, or else evicts the slot that has been silent longest (least
// recently used). Progress is no rank: spoofed sources that know the
// protocol send as many packets each as it takes (a header and a few
// positions, or a whole forged knock) to outrank a real knock between two
// of its packets. Recency they cannot
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
	meta    []meta      // one per bucket
	slots   []slot      // Ways per bucket
	asms    []assembler // one per slot
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
	t := &Table{
		buckets: uint64(nb),
		seed:    maphash.MakeSeed(),
	}
	t.SetTimeout(timeout)
	// One block, cache-line aligned: the meta lines, the slots, the
	// assemblers.
	metaSize := nb * int(unsafe.Sizeof(meta{}))
	slotsSize := (nb*Ways*int(unsafe.Sizeof(slot{})) + lineSize - 1) &^ (lineSize - 1)
	size := metaSize + slotsSize + nb*Ways*int(unsafe.Sizeof(assembler{}))
	var buf []byte
	if size >= hugePage {
		buf = tableMemory(size, t)
	}
	if buf == nil {
		buf = make([]byte, size+lineSize)
		off := (lineSize - uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%lineSize) % lineSize
		buf = buf[off:]
	}
	t.meta = unsafe.Slice((*meta)(unsafe.Pointer(unsafe.SliceData(buf))), nb)
	t.slots = unsafe.Slice((*slot)(unsafe.Pointer(&buf[metaSize])), nb*Ways)
	t.asms = unsafe.Slice((*assembler)(unsafe.Pointer(&buf[metaSize+slotsSize])), nb*Ways)
	return t
}

// SetTimeout sets the time a knock may take to complete. It panics beyond
// MaxTimeout: a slot keeps its second packet's arrival in 16 bits of ticks
// after the first (config allows at most a minute).
func (t *Table) SetTimeout(timeout time.Duration) {
	if timeout <= 0 || timeout > MaxTimeout {
		panic("daemon: assembly timeout out of range")
	}
	t.timeout = int64(timeout)
}

// MaxTimeout is the longest assembly timeout a Table takes: what the 16
// bits of a held packet's arrival (slot.held.dt) span.
const MaxTimeout = (1<<16 - 2) * encoding.Tick * time.Nanosecond

// hugePage is the size of a transparent huge page on amd64 and arm64 (with
// 4 KiB base pages): a table smaller than that stays on the Go heap.
const hugePage = 2 << 20

// Cap returns the number of sources the table can hold.
func (t *Table) Cap() int { return len(t.slots) }

// Bytes returns the table's memory in bytes.
func (t *Table) Bytes() int {
	return len(t.meta)*int(unsafe.Sizeof(meta{})) + len(t.slots)*int(unsafe.Sizeof(slot{})) + len(t.asms)*int(unsafe.Sizeof(assembler{}))
}

// ms is the table clock in milliseconds, as the bucket scan keeps it (it
// wraps after 49 days; only differences are used).
func ms(ns int64) uint32 { return uint32(ns / 1e6) }

// Add records that src sent byte b at position pos at time now (table
// clock, nanoseconds, > 0). It returns the source's slot, and whether its
// knock is now complete; the caller then reads the knock from the slot and
// releases it with Free. Packets that cannot start or advance a knock (a
// position-0 byte that is no version-1 header, a position beyond the
// longest knock) are dropped before they take a slot.
func (t *Table) Add(src netip.Addr, pos int, b8 byte, now int64) (s *slot, complete bool) {
	key := src.As16()
	return t.AddHashed(&key, t.Hash(&key), pos, b8, now)
}

// Hash returns the table's keyed hash of a source address in its 16-byte
// form, for AddHashed.
func (t *Table) Hash(key *[16]byte) uint64 { return maphash.Bytes(t.seed, key[:]) }

// Prefetch starts fetching the scan line of the bucket of the source whose
// Hash is h. Under a flood of spoofed sources that line is a cache miss for
// every packet; fetching the lines of a batch's sources before filing them
// overlaps those misses (BenchmarkSpoofedFlood, "large").
func (t *Table) Prefetch(h uint64) {
	b, _ := bits.Mul64(h, t.buckets)
	prefetch.Line(unsafe.Pointer(&t.meta[b]))
}

// AddHashed is Add for a source given in its 16-byte form with its Hash.
// Hashing a batch's sources first and then filing them lets the processor
// overlap the cache misses of consecutive packets (BenchmarkSpoofedFlood).
func (t *Table) AddHashed(k *[16]byte, h uint64, pos int, b8 byte, now int64) (s *slot, complete bool) {
	if pos < 0 || pos >= encoding.MaxPositions || pos == 0 && crypto.KnockLen(b8) == 0 {
		return nil, false
	}
	key := *k
	b, _ := bits.Mul64(h, t.buckets) // uniform in [0, buckets)
	tag := uint32(h) | 1
	m := &t.meta[b]
	bk := (*[Ways]slot)(t.slots[b*Ways:])
	nowMs, tmo := ms(now), ms(t.timeout)
	// Pick the victim with the lowest (class, last packet): a free slot,
	// else one silent for longer than the timeout, else the live knock
	// silent longest. A slot silent that long has timed out whenever its
	// knock started; one whose knock timed out while it still sends
	// competes by its last packet, like any live knock.
	//
	// Under a flood every bucket is full and the silences are random, so
	// the choice is made without branches on them: each slot gets a score
	// (its class's rank, its silence, and its index to break ties towards
	// the first), and the highest wins.
	var best uint64
	for i := range Ways {
		if m.tag[i] == tag && bk[i].key == key {
			c := &bk[i]
			m.seen[i] = nowMs
			if now-c.born > t.timeout {
				t.Expiries++
				c.start(pos, b8, now)
				return c, false
			}
			return c, t.add(c, pos, b8, now)
		}
		silent := nowMs - m.seen[i]
		rank := uint64(rankLive)
		if silent > tmo {
			rank = rankSilent
		}
		if m.tag[i] == 0 {
			rank = rankFree
		}
		best = max(best, rank<<(32+wayBits)|uint64(silent)<<wayBits|uint64(Ways-1-i))
	}
	victim := Ways - 1 - int(best&(1<<wayBits-1))
	// The victim's slot is only written: a one-packet source reads the
	// meta line alone, and the store of its slot does not hold it up.
	switch best >> (32 + wayBits) {
	case rankFree:
		t.Live++
	case rankSilent:
		t.Expiries++
	default:
		t.Evictions++
	}
	t.Inserts++
	v := &bk[victim]
	m.tag[victim], m.seen[victim] = tag, nowMs
	v.key = key
	v.start(pos, b8, now)
	return v, false
}

// wayBits is the bits of a slot's index in its bucket, in the scan's score.
const wayBits = 3

var _ [1<<wayBits - Ways]struct{} // Ways fits in wayBits

// The ranks of a slot as a victim of AddHashed's scan, highest first.
const (
	rankFree   = 3 // a free slot
	rankSilent = 2 // silent for longer than the timeout
	rankLive   = 1 // a live knock
)

// Free releases a slot whose knock is done.
func (t *Table) Free(s *slot) {
	n := t.index(s)
	i := n % Ways
	if m := &t.meta[n/Ways]; m.tag[i] != 0 {
		m.tag[i] = 0
		s.born = 0
		t.Live--
	}
}

// Addr returns the source address a slot tracks.
func (s *slot) Addr() netip.Addr { return netip.AddrFrom16(s.key).Unmap() }
