package daemon

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

var legit = netip.MustParseAddr("198.51.100.7")

// knockBytes is a plausible source-mode knock: a valid header and 23 bytes.
func knockBytes() []byte {
	k := make([]byte, crypto.LenSource)
	k[0] = crypto.Header(crypto.ModeSource)
	for i := 1; i < len(k); i++ {
		k[i] = byte(i * 37)
	}
	return k
}

func TestTableAssembles(t *testing.T) {
	tb := NewTable(1024, 10*time.Second)
	k := knockBytes()
	// Reversed and duplicated.
	now := int64(1)
	for i := len(k) - 1; i >= 0; i-- {
		s, done := tb.Add(legit, i, k[i], now)
		if s == nil {
			t.Fatalf("position %d dropped", i)
		}
		if i != 0 {
			tb.Add(legit, i, k[i], now)
		}
		if done != (i == 0) {
			t.Fatalf("complete=%v at position %d", done, i)
		}
		if i == 0 {
			got := tb.asm(s).Knock(nil)
			if string(got) != string(k) || s.Addr() != legit {
				t.Fatalf("knock %x from %v", got, s.Addr())
			}
			tb.Free(s)
		}
	}
	if tb.Live != 0 {
		t.Fatalf("live %d after free", tb.Live)
	}
	if s, _ := tb.Add(legit, 0, 0xff, now); s != nil {
		t.Fatal("garbage header took a slot")
	}
}

func TestTableTimeout(t *testing.T) {
	tb := NewTable(1024, 10*time.Second)
	k := knockBytes()
	for i := 0; i < len(k)-1; i++ {
		tb.Add(legit, i, k[i], 1)
	}
	// The last packet comes too late: the knock starts over.
	if _, done := tb.Add(legit, len(k)-1, k[len(k)-1], 1+int64(11*time.Second)); done {
		t.Fatal("knock completed after its timeout")
	}
	if tb.Expiries != 1 || tb.Live != 1 {
		t.Fatalf("expiries %d live %d", tb.Expiries, tb.Live)
	}
}

// flooder is a spoofed flood at one packet per microsecond (1 Mpps) from
// random IPv4 sources that each send per packets back to back, the way a
// sender who knows the protocol would to outrank a real knock: a header
// first, then positions in order (per = 24: a whole forged knock).
type flooder struct {
	rng  *rand.Rand
	per  int
	src  netip.Addr
	left int
	next int // next position of the current source
}

func (f *flooder) packet(tb *Table, now int64) {
	if f.left == 0 {
		r := f.rng.Uint32()
		f.src = netip.AddrFrom4([4]byte{byte(r), byte(r >> 8), byte(r >> 16), byte(r >> 24)})
		f.left, f.next = f.per, 0
		if f.per == 1 {
			f.next = 1 + int(r%39) // a lone packet: any position
		}
	}
	pos, b := f.next, byte(f.rng.Uint32())
	if pos == 0 {
		b = crypto.Header(crypto.ModeSource)
	}
	if s, done := tb.Add(f.src, pos, b, now); done {
		tb.Free(s) // a forged knock fails and its slot is released
	}
	f.left--
	f.next++
}

// floodRun sends one legitimate knock whose packets are spaced gap flood
// packets apart. It reports whether the knock completed.
func floodRun(tb *Table, f *flooder, gap int, headerLast bool, now *int64) bool {
	k := knockBytes()
	for n := 0; n < len(k); n++ {
		i := n
		if headerLast {
			i = len(k) - 1 - n
		}
		for range gap {
			*now += int64(time.Microsecond)
			f.packet(tb, *now)
		}
		*now += int64(time.Microsecond)
		if s, done := tb.Add(legit, i, k[i], *now); done {
			tb.Free(s)
			return true
		}
	}
	// Lost: forget the partial knock so that the next run starts afresh.
	if s, _ := tb.Add(legit, 1, 0, *now); s != nil {
		tb.Free(s)
	}
	return false
}

type floodCase struct {
	per        int // packets per spoofed source
	gap        int // flood packets (microseconds at 1 Mpps) between two packets of the knock
	headerLast bool
	trials     int
}

func (c floodCase) String() string {
	s := fmt.Sprintf("per=%d,gap=%v", c.per, time.Duration(c.gap)*time.Microsecond)
	if c.headerLast {
		s += ",header-last"
	}
	return s
}

// flood runs c against a full 65,536-source table and returns how many
// knocks were lost, the table, and the heap growth and allocations during
// the flood.
func flood(c floodCase) (lost int, tb *Table, heap int64, allocs uint64) {
	tb = NewTable(65536, 10*time.Second)
	f := &flooder{rng: rand.New(rand.NewPCG(uint64(c.per), uint64(c.gap))), per: c.per}
	now := int64(1)
	// Fill the table first, so that every new source evicts one.
	for range 4 * tb.Cap() {
		now += int64(time.Microsecond)
		f.packet(tb, now)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for range c.trials {
		if !floodRun(tb, f, c.gap, c.headerLast, &now) {
			lost++
		}
	}
	runtime.ReadMemStats(&m1)
	return lost, tb, int64(m1.HeapAlloc) - int64(m0.HeapAlloc), m1.Mallocs - m0.Mallocs
}

// floodPers are the packets per spoofed source of the floods: one packet,
// a header and a position, a header and three, a whole forged knock.
var floodPers = []int{1, 2, 4, 24}

// TestFloodEviction floods a 65,536-source table at 1 Mpps from spoofed
// sources that send 1, 2, 4 or 24 packets each, while legitimate knocks
// paced 0.5 to 2 ms apart come in, header first or last: at least 99 % of
// them must get through, and the table must neither grow nor allocate.
// BenchmarkFloodEviction measures longer gaps.
func TestFloodEviction(t *testing.T) {
	var cases []floodCase
	for _, per := range floodPers {
		for _, gap := range []int{500, 2000} {
			for _, last := range []bool{false, true} {
				cases = append(cases, floodCase{per, gap, last, 30})
			}
		}
	}
	if testing.Short() || raceEnabled {
		for i := range cases {
			cases[i].trials = 5
		}
	}
	for _, c := range cases {
		lost, tb, heap, allocs := flood(c)
		t.Logf("%v: %d spoofed packets at 1 Mpps, %d/%d knocks lost; table of %d sources in %d bytes, %d live, %d evictions; heap %+d bytes, %d allocations",
			c, c.trials*24*c.gap, lost, c.trials, tb.Cap(), tb.Bytes(), tb.Live, tb.Evictions, heap, allocs)
		if lost*100 > c.trials {
			t.Errorf("%v: lost %d of %d knocks, more than 1 %%", c, lost, c.trials)
		}
		if tb.Live > tb.Cap() || allocs > 100 || heap > 1<<20 {
			t.Errorf("%v: live %d of %d, heap %+d bytes, %d allocations during the flood", c, tb.Live, tb.Cap(), heap, allocs)
		}
	}
}

// BenchmarkFloodEviction reports the share of legitimate knocks lost to a
// 1 Mpps spoofed flood as the "lost%" metric, for each flood and growing
// gaps between the knock's packets.
func BenchmarkFloodEviction(b *testing.B) {
	for _, per := range floodPers {
		for _, c := range []floodCase{{per, 2000, true, 100}, {per, 10000, true, 40}, {per, 20000, true, 40}, {per, 50000, false, 20}, {per, 50000, true, 40}} {
			b.Run(c.String(), func(b *testing.B) {
				lost := 0
				for range b.N {
					l, _, _, _ := flood(c)
					lost += l
				}
				b.ReportMetric(100*float64(lost)/float64(b.N*c.trials), "lost%")
			})
		}
	}
}

// BenchmarkTableAdd is the per-packet path of the source table under a
// flood: hash, bucket scan, eviction, assembler update.
func BenchmarkTableAdd(b *testing.B) {
	tb := NewTable(65536, 10*time.Second)
	addrs := make([]netip.Addr, 1<<16)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tb.Add(addrs[i&0xffff], 1+i%39, byte(i), int64(i+1))
	}
}

// BenchmarkTableFlood is the per-packet path of the source table under a
// spoofed flood: every packet from a new source, each one evicting the
// source of its bucket silent longest, 1 µs apart.
func BenchmarkTableFlood(b *testing.B) {
	tb := NewTable(65536, 10*time.Second)
	rng := rand.New(rand.NewPCG(3, 4))
	addrs := make([]netip.Addr, 1<<20)
	for i := range addrs {
		r := rng.Uint32()
		addrs[i] = netip.AddrFrom4([4]byte{byte(r), byte(r >> 8), byte(r >> 16), byte(r >> 24)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tb.Add(addrs[i&(1<<20-1)], 1+i%39, byte(i), int64(i+1)*1000)
	}
}

// TestTableLayout checks what the per-packet cost rests on: the meta lines
// and the slots start on cache lines, a slot is an odd number of whole
// lines, and Free finds a slot's bucket from its address, in tables on the
// heap and mapped apart.
func TestTableLayout(t *testing.T) {
	if unsafe.Sizeof(meta{}) != lineSize || lineSize%unsafe.Sizeof(slot{}) != 0 || unsafe.Sizeof(assembler{})%lineSize != 0 {
		t.Fatalf("meta %d bytes, slot %d bytes, assembler %d bytes", unsafe.Sizeof(meta{}), unsafe.Sizeof(slot{}), unsafe.Sizeof(assembler{}))
	}
	for _, n := range []int{8, 1024, 65536} {
		tb := NewTable(n, 10*time.Second)
		if uintptr(unsafe.Pointer(&tb.meta[0]))%lineSize != 0 || uintptr(unsafe.Pointer(&tb.slots[0]))%lineSize != 0 || uintptr(unsafe.Pointer(&tb.asms[0]))%lineSize != 0 {
			t.Fatalf("%d sources: meta lines at %p, slots at %p, assemblers at %p", n, &tb.meta[0], &tb.slots[0], &tb.asms[0])
		}
		if end := uintptr(unsafe.Pointer(&tb.asms[len(tb.asms)-1])) + unsafe.Sizeof(assembler{}); end-uintptr(unsafe.Pointer(&tb.meta[0])) != uintptr(tb.Bytes()) {
			t.Fatalf("%d sources: the table ends %d bytes after its start, not %d", n, end-uintptr(unsafe.Pointer(&tb.meta[0])), tb.Bytes())
		}
		k := knockBytes()
		for i := range 3 * n {
			src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			if s, _ := tb.Add(src, 1, k[1], int64(i+1)); s == nil || s.Addr() != src {
				t.Fatalf("%d sources: packet %d not filed under %v", n, i, src)
			}
		}
		for i := range tb.slots {
			tb.Free(&tb.slots[i])
		}
		if tb.Live != 0 {
			t.Fatalf("%d sources: %d live after freeing every slot", n, tb.Live)
		}
	}
	runtime.GC() // the mapped tables' cleanups run without harm
}

// TestTableVictim checks the scan's choice of the slot a new source takes,
// in a table of one bucket: a free slot first, then one silent for longer
// than the timeout, then the live knock silent longest, the first of equals.
func TestTableVictim(t *testing.T) {
	const ms = int64(time.Millisecond)
	tb := NewTable(Ways, 10*time.Second)
	if tb.Cap() != Ways {
		t.Fatalf("capacity %d, want one bucket of %d", tb.Cap(), Ways)
	}
	src := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	slots := make([]*slot, Ways)
	// Heard from in the order 3, 1, 4, 0, 6, 2, 7, 5, one ms apart, except
	// 0 and 6, at the same moment.
	order := []int{3, 1, 4, 0, 6, 2, 7, 5}
	now := int64(1000 * ms)
	for k, i := range order {
		if k != 4 {
			now += ms
		}
		s, _ := tb.Add(src(i), 1, byte(i), now)
		if s == nil {
			t.Fatalf("source %d dropped", i)
		}
		slots[i] = s
	}
	if tb.Live != Ways || tb.Evictions != 0 {
		t.Fatalf("live %d evictions %d after filling", tb.Live, tb.Evictions)
	}
	// Sources heard from again keep their slot.
	if s, _ := tb.Add(src(3), 2, 0, now); s != slots[3] {
		t.Fatal("a known source moved")
	}
	// 3 is now the freshest: the live knock silent longest is 1.
	newcomer := 100
	take := func(want int, what string) {
		t.Helper()
		newcomer++
		s, _ := tb.Add(src(newcomer), 1, 0, now)
		if s != slots[want] {
			for i, o := range slots {
				if o == s {
					t.Fatalf("%s: took source %d's slot, want %d's", what, i, want)
				}
			}
			t.Fatalf("%s: took no known slot", what)
		}
		slots[want] = nil
	}
	now += ms
	take(1, "oldest live")
	take(4, "next oldest")
	// 0 and 6 were heard at the same moment: the first slot of the two.
	first, second := 0, 6
	if uintptr(unsafe.Pointer(slots[6])) < uintptr(unsafe.Pointer(slots[0])) {
		first, second = 6, 0
	}
	take(first, "first of equals")
	take(second, "second of equals")
	if tb.Evictions != 4 {
		t.Fatalf("evictions %d, want 4", tb.Evictions)
	}
	// A free slot beats every live one.
	tb.Free(slots[5])
	take(5, "free slot")
	if tb.Live != Ways {
		t.Fatalf("live %d after refilling the free slot", tb.Live)
	}
	// After the timeout, all but 2 (heard from again) are silent past it:
	// the one silent longest (7) goes, and is counted as expired.
	now += int64(11 * time.Second)
	tb.Add(src(2), 2, 0, now)
	exp, ev := tb.Expiries, tb.Evictions
	take(7, "silent past the timeout")
	if tb.Expiries != exp+1 || tb.Evictions != ev {
		t.Fatalf("expiries %d evictions %d, want %d and %d", tb.Expiries, tb.Evictions, exp+1, ev)
	}
}

// FuzzTableAgrees checks the table's holding of a source's first two
// packets: for arbitrary packets from four sources (position, byte, time
// since the previous packet), each source's knock must complete at the
// same packet, with the same bytes, as in an assembler fed its packets
// directly, restarted when the table's timeout restarts the source.
func FuzzTableAgrees(f *testing.F) {
	k := knockBytes()
	var seed []byte
	for i := range k {
		seed = append(seed, byte(i), k[i], 1)
	}
	f.Add(seed)
	f.Add([]byte{0, k[0], 0, 5, 9, 0, 5, 10, 0, 0, k[0], 200, 7, 1, 3})
	const timeout = 10 * time.Second
	f.Fuzz(func(t *testing.T, data []byte) {
		tb := NewTable(Ways, timeout)
		type ref struct {
			born int64
			asm  encoding.Assembler
		}
		refs := map[netip.Addr]*ref{}
		now := int64(1)
		for i := 0; i+3 <= len(data); i += 3 {
			src := netip.AddrFrom4([4]byte{192, 0, 2, data[i] >> 6})
			pos, b := int(data[i]&0x3f), data[i+1]
			now += int64(data[i+2]) * int64(50*time.Millisecond)
			s, done := tb.Add(src, pos, b, now)
			if pos >= encoding.MaxPositions || pos == 0 && crypto.KnockLen(b) == 0 {
				if s != nil {
					t.Fatalf("packet %d (position %d, byte %#x) took a slot", i/3, pos, b)
				}
				continue
			}
			r := refs[src]
			if r == nil || now-r.born > int64(timeout) {
				r = &ref{born: now}
				refs[src] = r
			}
			want := r.asm.AddAt(pos, b, encoding.Ticks(now))
			agree(t, tb, s, &r.asm, done, want, "packet", i/3, src)
			if done {
				tb.Free(s)
				delete(refs, src)
			}
		}
		// Then each source's knock, whole: every prefix must end in the
		// same readings.
		for src, r := range refs {
			for pos, b := range k {
				now += int64(time.Millisecond)
				s, done := tb.Add(src, pos, b, now)
				if now-r.born > int64(timeout) {
					*r = ref{born: now}
				}
				want := r.asm.AddAt(pos, b, encoding.Ticks(now))
				agree(t, tb, s, &r.asm, done, want, "position of the knock", pos, src)
				if done {
					tb.Free(s)
					break
				}
			}
		}
	})
}

// agree fails t unless the table's slot s and the assembler ref, fed the
// same packets, agree: on completion, and, once the slot's packets are in
// its assembler, on what that assembler has seen and would read.
// The packet is named by what, n and its source.
func agree(t *testing.T, tb *Table, s *slot, ref *encoding.Assembler, done, want bool, what string, n int, src netip.Addr) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s %d from %v: "+format, append([]any{what, n, src}, args...)...)
	}
	if done != want {
		fail("complete %v, the assembler says %v", done, want)
	}
	if s.held.n != 0 {
		if ref.Seen() > 2 || done {
			fail("%d packets held, the assembler has seen %d positions", s.held.n, ref.Seen())
		}
		return
	}
	a := tb.asm(s)
	if a.Seen() != ref.Seen() || a.Conflicted() != ref.Conflicted() || a.Waiting() != ref.Waiting() || a.Len() != ref.Len() {
		fail("seen %d conflicted %v waiting %v length %d, the assembler's %d %v %v %d",
			a.Seen(), a.Conflicted(), a.Waiting(), a.Len(), ref.Seen(), ref.Conflicted(), ref.Waiting(), ref.Len())
	}
	if done {
		if got, want := a.Knock(nil), ref.Knock(nil); string(got) != string(want) {
			fail("knock %x, the assembler's %x", got, want)
		}
		if got, want := a.Alternate(nil), ref.Alternate(nil); string(got) != string(want) {
			fail("alternate %x, the assembler's %x", got, want)
		}
	}
}

// TestTableMaxTimeout checks the bound on the assembly timeout that a
// held packet's 16-bit delay sets: a second packet at the very end of the
// longest timeout keeps its exact delay, the configuration's longest
// timeout is within it, and a longer one is refused.
func TestTableMaxTimeout(t *testing.T) {
	if time.Minute > MaxTimeout {
		t.Fatalf("MaxTimeout %v is shorter than the configuration's longest assembly timeout", MaxTimeout)
	}
	tb := NewTable(Ways, MaxTimeout)
	born := int64(encoding.Tick - 1) // just before a tick: the delay in ticks rounds up
	s, _ := tb.Add(legit, 1, 1, born)
	now := born + int64(MaxTimeout)
	if s2, _ := tb.Add(legit, 2, 2, now); s2 != s || s.held.n != 2 {
		t.Fatalf("second packet at the timeout's end: slot %p (first %p), %d held", s2, s, s.held.n)
	}
	if want := encoding.Ticks(now) - encoding.Ticks(born); uint32(s.held.dt) != want {
		t.Fatalf("held delay %d ticks, want %d", s.held.dt, want)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a timeout beyond MaxTimeout was taken")
		}
	}()
	tb.SetTimeout(MaxTimeout + time.Millisecond)
}
