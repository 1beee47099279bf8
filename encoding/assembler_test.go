package encoding_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

type packet struct {
	pos int
	b   byte
}

func packets(knock []byte) []packet {
	ps := make([]packet, len(knock))
	for i, b := range knock {
		ps[i] = packet{i, b}
	}
	return ps
}

// TestAssemblerAnyOrder feeds each knock's packets in random order, each
// packet one to three times, and checks that the assembler completes
// exactly when the last missing position arrives, with the right bytes.
func TestAssemblerAnyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for iter := range 3000 {
		m := modes[iter%len(modes)]
		knock := randomKnock(r, m)
		var seq []packet
		for _, p := range packets(knock) {
			for range 1 + r.IntN(3) {
				seq = append(seq, p)
			}
		}
		// Some runs also carry noise that must not matter: garbage
		// headers at position 0 and packets beyond the knock's length.
		if iter%3 == 0 {
			for range r.IntN(5) {
				seq = append(seq, packet{0, 0x20 + byte(r.IntN(0xe0))})
			}
			for range r.IntN(5) {
				if m.Len() < encoding.MaxPositions {
					seq = append(seq, packet{m.Len() + r.IntN(encoding.MaxPositions-m.Len()), byte(r.Uint32())})
				}
			}
		}
		r.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })

		// The packet that completes the knock: the last first arrival of a
		// position below the length, counting position 0 only for the
		// real header.
		var seen [encoding.MaxPositions + 1]bool
		done := -1
		missing := len(knock)
		for i, p := range seq {
			if p.pos >= len(knock) || (p.pos == 0 && p.b != knock[0]) || seen[p.pos] {
				continue
			}
			seen[p.pos] = true
			if missing--; missing == 0 {
				done = i
			}
		}

		var a encoding.Assembler
		for i, p := range seq {
			got := a.Add(p.pos, p.b)
			if got != (i >= done) {
				t.Fatalf("iter %d: Add #%d of %d (pos %d) = %v, want completion at #%d", iter, i, len(seq), p.pos, got, done)
			}
		}
		if !a.Complete() || a.Len() != len(knock) || a.Conflicted() {
			t.Fatalf("iter %d: Complete %v Len %d Conflicted %v", iter, a.Complete(), a.Len(), a.Conflicted())
		}
		if got := a.Knock(nil); !bytes.Equal(got, knock) {
			t.Fatalf("iter %d: Knock = %x, want %x", iter, got, knock)
		}
		if got := a.Alternate(nil); !bytes.Equal(got, knock) {
			t.Fatalf("iter %d: Alternate = %x, want %x", iter, got, knock)
		}
	}
}

func TestAssemblerGarbageHeader(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	knock := randomKnock(r, crypto.ModeSource)
	var a encoding.Assembler
	for _, h := range []byte{0x00, 0x0f, 0x14, 0x1f, 0x20, 0xff} {
		if a.Add(0, h) || a.Len() != 0 || a.Seen() != 0 {
			t.Fatalf("garbage header %#x: Len %d Seen %d, want it ignored", h, a.Len(), a.Seen())
		}
	}
	for _, p := range packets(knock)[1:] {
		if a.Add(p.pos, p.b) {
			t.Fatal("complete without a header")
		}
	}
	if a.Len() != 0 || a.Seen() != len(knock)-1 {
		t.Fatalf("Len %d Seen %d before the header, want 0 and %d", a.Len(), a.Seen(), len(knock)-1)
	}
	if !a.Add(0, knock[0]) {
		t.Fatal("the header did not complete the knock")
	}
	// After the header, neither garbage nor another mode's header at
	// position 0 changes the knock or counts as a conflict.
	for _, h := range []byte{0x20, 0x14, crypto.Header(crypto.ModeIPv4), crypto.Header(crypto.ModeIPv6), 0x00} {
		if !a.Add(0, h) {
			t.Fatalf("header %#x after completion: Add = false", h)
		}
	}
	if a.Conflicted() || a.Len() != len(knock) || !bytes.Equal(a.Knock(nil), knock) || !bytes.Equal(a.Alternate(nil), knock) {
		t.Fatalf("late position-0 bytes changed the knock: Conflicted %v Len %d", a.Conflicted(), a.Len())
	}
}

func TestAssemblerConflict(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	knock := randomKnock(r, crypto.ModeIPv4) // 28 positions
	var a encoding.Assembler
	for _, p := range packets(knock) {
		a.Add(p.pos, p.b)
	}
	if !a.Complete() || a.Conflicted() {
		t.Fatalf("Complete %v Conflicted %v, want complete without conflict", a.Complete(), a.Conflicted())
	}
	// A conflict beyond the knock's length does not count.
	a.Add(30, 1)
	a.Add(30, 2)
	if a.Conflicted() {
		t.Fatal("a conflict at position 30 of a 28-byte knock counts")
	}
	// An injected packet at position 5, then the original again, then
	// another injected one: Knock keeps the first byte, Alternate the last.
	a.Add(5, knock[5]^0x01)
	if !a.Conflicted() {
		t.Fatal("conflict at position 5 not detected")
	}
	a.Add(5, knock[5])
	a.Add(5, knock[5]^0x80)
	a.Add(27, knock[27]^0xff)
	if a.Seen() != 29 {
		t.Errorf("Seen = %d, want 29 (28 positions and position 30)", a.Seen())
	}
	if got := a.Knock(nil); !bytes.Equal(got, knock) {
		t.Errorf("Knock = %x, want the first bytes %x", got, knock)
	}
	alt := bytes.Clone(knock)
	alt[5] ^= 0x80
	alt[27] ^= 0xff
	if got := a.Alternate([]byte{0xaa}); !bytes.Equal(got, append([]byte{0xaa}, alt...)) {
		t.Errorf("Alternate = %x, want aa%x", got, alt)
	}

	// A conflict recorded before the header is known counts once the
	// length covers it.
	var b encoding.Assembler
	b.Add(35, 1)
	b.Add(35, 2)
	if b.Conflicted() {
		t.Fatal("Conflicted before the length is known")
	}
	b.Add(0, crypto.Header(crypto.ModeIPv6))
	if !b.Conflicted() {
		t.Fatal("conflict at position 35 of a 40-byte knock not reported")
	}
}

func TestAssemblerLenSeenReset(t *testing.T) {
	var a encoding.Assembler
	if a.Len() != 0 || a.Seen() != 0 || a.Complete() || a.Conflicted() {
		t.Fatal("zero Assembler is not empty")
	}
	if len(a.Knock(nil)) != 0 || len(a.Alternate(nil)) != 0 {
		t.Fatal("zero Assembler has knock bytes")
	}
	// Positions outside 0..39 are ignored.
	for _, pos := range []int{-1, -100, encoding.MaxPositions, 64, 1 << 20} {
		if a.Add(pos, 1) || a.Seen() != 0 {
			t.Fatalf("Add(%d) was recorded", pos)
		}
	}
	a.Add(3, 1)
	a.Add(3, 1)
	a.Add(39, 1)
	if a.Seen() != 2 || a.Len() != 0 {
		t.Fatalf("Seen %d Len %d, want 2 and 0", a.Seen(), a.Len())
	}
	a.Add(0, crypto.Header(crypto.ModeIPv6))
	if a.Seen() != 3 || a.Len() != 40 || a.Complete() {
		t.Fatalf("Seen %d Len %d Complete %v, want 3, 40, false", a.Seen(), a.Len(), a.Complete())
	}
	a.Add(5, 1)
	a.Add(5, 2)
	a.Reset()
	if a != (encoding.Assembler{}) {
		t.Fatal("Reset did not return to the zero value")
	}
	// After Reset a shorter knock completes on its own positions.
	r := rand.New(rand.NewPCG(13, 14))
	knock := randomKnock(r, crypto.ModeSource)
	for _, p := range packets(knock) {
		a.Add(p.pos, p.b)
	}
	if !a.Complete() || a.Conflicted() || !bytes.Equal(a.Knock(nil), knock) {
		t.Fatal("knock after Reset not assembled")
	}
}

func TestAssemblerAddPort(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, s := range edgeSpans {
		knock := randomKnock(r, crypto.ModeIPv6)
		var a encoding.Assembler
		if a.AddPort(s, s.Base-1) || a.AddPort(s, 0) || a.Seen() != 0 {
			t.Fatalf("base %d: ports below the span were recorded", s.Base)
		}
		if s.Last() < 65535 && (a.AddPort(s, s.Last()+1) || a.Seen() != 0) {
			t.Fatalf("base %d: port above the span was recorded", s.Base)
		}
		ports := s.AppendPorts(nil, knock)
		for i, p := range ports {
			if got := a.AddPort(s, p); got != (i == len(ports)-1) {
				t.Fatalf("base %d: AddPort #%d = %v", s.Base, i, got)
			}
		}
		if !bytes.Equal(a.Knock(nil), knock) {
			t.Fatalf("base %d: Knock = %x, want %x", s.Base, a.Knock(nil), knock)
		}
	}
}

// TestAssemblerAllocs asserts the per-packet step allocates nothing.
func TestAssemblerAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	knock := randomKnock(r, crypto.ModeIPv6)
	ports := encoding.DefaultSpan.AppendPorts(nil, knock)
	a := new(encoding.Assembler)
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		if a.Add(i%len(knock), knock[i%len(knock)]) {
			a.Reset()
		}
		i++
	}); n != 0 {
		t.Errorf("Add allocates %v times per packet, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if a.AddPort(encoding.DefaultSpan, ports[i%len(ports)]) {
			a.Reset()
		}
		a.AddPort(encoding.DefaultSpan, 80) // outside the span
		i++
	}); n != 0 {
		t.Errorf("AddPort allocates %v times per packet, want 0", n)
	}
}

// TestAssemblerCandidateLengths checks that every valid header seen is a
// candidate length: the shortest complete one is offered first, Next drops
// it after a failed open, and the assembly then completes at the next one.
func TestAssemblerCandidateLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	knock := randomKnock(r, crypto.ModeIPv6) // 40 positions
	var a encoding.Assembler
	a.Add(0, crypto.Header(crypto.ModeSource)) // spoofed, arrives first
	completedAt := 0
	for i, p := range packets(knock) {
		if a.Add(p.pos, p.b) && completedAt == 0 {
			completedAt = i + 1
		}
	}
	if a.Len() != crypto.LenSource || !a.Complete() {
		t.Fatalf("Len %d Complete %v, want the source candidate complete first", a.Len(), a.Complete())
	}
	if got := a.Knock(nil); len(got) != crypto.LenSource || got[0] != crypto.Header(crypto.ModeSource) {
		t.Fatalf("first candidate = %x", got)
	}
	if !a.Next() {
		t.Fatal("Next dropped the last candidate although the ipv6 header was seen")
	}
	if !a.Complete() || a.Len() != crypto.LenIPv6 || !bytes.Equal(a.Knock(nil), knock) {
		t.Fatalf("after Next: Complete %v Len %d, want the real 40-byte knock", a.Complete(), a.Len())
	}
	// The failed candidates now wait for their positions to be seen
	// again (all of them: nothing is older than the sender's pass) and
	// are retried with the last bytes, twice, then given up for good.
	if !a.Next() || a.Complete() {
		t.Fatalf("after the ipv6 failure: Complete %v, want both candidates waiting", a.Complete())
	}
	for retry := range 2 {
		for i := 1; i < crypto.LenIPv6; i++ {
			a.Add(i, knock[i]^byte(retry+1))
		}
		for _, m := range []crypto.Mode{crypto.ModeSource, crypto.ModeIPv6} {
			if !a.Complete() || a.Len() != m.Len() || a.Conflicted() {
				t.Fatalf("retry %d: Complete %v Len %d Conflicted %v, want %s retried", retry, a.Complete(), a.Len(), a.Conflicted(), m)
			}
			if got := a.Knock(nil); got[1] != knock[1]^byte(retry+1) {
				t.Fatalf("retry %d of %s: not the last bytes", retry, m)
			}
			more := a.Next()
			if m == crypto.ModeIPv6 && retry == 1 {
				if more {
					t.Fatal("Next reports more candidates after the last one")
				}
			} else if !more {
				t.Fatalf("retry %d of %s: Next gave up early", retry, m)
			}
		}
	}
	if a.Complete() || a.Len() != 0 {
		t.Fatalf("after the last Next: Complete %v Len %d, want nothing left", a.Complete(), a.Len())
	}
	// A header re-sent after its mode was given up no longer counts.
	a.Add(0, crypto.Header(crypto.ModeSource))
	if a.Complete() || a.Len() != 0 {
		t.Fatal("a re-sent header brought a given-up mode back")
	}
}
