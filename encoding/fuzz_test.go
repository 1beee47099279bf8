package encoding_test

import (
	"bytes"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

// fuzzPackets reads data as (position, byte) pairs. Positions run from -1
// to 40 so that both ends of the valid range are exercised.
func fuzzPackets(data []byte) []packet {
	ps := make([]packet, 0, len(data)/2)
	for i := 0; i+1 < len(data); i += 2 {
		ps = append(ps, packet{int(data[i])%(encoding.MaxPositions+2) - 1, data[i+1]})
	}
	return ps
}

// pairs is the inverse of fuzzPackets for seeds.
func pairs(ps []packet) []byte {
	var b []byte
	for _, p := range ps {
		b = append(b, byte(p.pos+1), p.b)
	}
	return b
}

// fuzzSeeds are knocks in and out of order, with duplicates, conflicts,
// garbage headers, missing and extra positions.
func fuzzSeeds() [][]byte {
	r := rand.New(rand.NewPCG(19, 20))
	var seeds [][]byte
	for _, m := range modes {
		ps := packets(randomKnock(r, m))
		seeds = append(seeds, pairs(ps))
		rev := append([]packet{}, ps...)
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		seeds = append(seeds, pairs(rev))
		dup := append(append([]packet{{0, 0x20}}, ps...), ps[3:9]...)
		seeds = append(seeds, pairs(dup))
		seeds = append(seeds, pairs(append(append([]packet{}, ps...), packet{5, ps[5].b ^ 1})))
		seeds = append(seeds, pairs(ps[:len(ps)-1]))
		seeds = append(seeds, pairs(append(append([]packet{}, ps...), packet{39, 7}, packet{-1, 0}, packet{40, 0})))
		seeds = append(seeds, pairs(append(append([]packet{}, ps[1:]...), packet{0, 0x12}, packet{0, ps[0].b})))
	}
	return append(seeds, nil, []byte{1, 0x10}, []byte{0, 0, 41, 255})
}

// multiset summarises a packet sequence independently of its order: the
// values seen at each position, and the length the valid headers at
// position 0 announce.
type multiset struct {
	values  [encoding.MaxPositions]map[byte]bool
	lengths map[int]bool
	maxPos  int
}

func summarise(ps []packet) multiset {
	m := multiset{lengths: map[int]bool{}, maxPos: -1}
	for _, p := range ps {
		if p.pos < 0 || p.pos >= encoding.MaxPositions {
			continue
		}
		if p.pos == 0 {
			if n := crypto.KnockLen(p.b); n != 0 {
				m.lengths[n] = true
			} else {
				continue // garbage header: ignored
			}
		}
		if m.values[p.pos] == nil {
			m.values[p.pos] = map[byte]bool{}
		}
		m.values[p.pos][p.b] = true
		m.maxPos = max(m.maxPos, p.pos)
	}
	return m
}

// FuzzAssembler feeds arbitrary packets to the assembler: it must never
// panic, a complete knock has Len bytes and a valid header, and the same
// packets in another order give the same completion state.
func FuzzAssembler(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps := fuzzPackets(data)
		var a, viaPort encoding.Assembler
		for _, p := range ps {
			got := a.Add(p.pos, p.b)
			inRange := p.pos >= 0 && p.pos < encoding.MaxPositions
			if inRange && got != a.Complete() {
				t.Fatalf("Add(%d, %#x) = %v, Complete = %v", p.pos, p.b, got, a.Complete())
			}
			port := uint16(80) // outside the span
			if inRange {
				port = encoding.DefaultSpan.Port(p.pos, p.b)
			}
			viaPort.AddPort(encoding.DefaultSpan, port)
		}
		if a != viaPort {
			t.Fatal("AddPort and Add disagree")
		}
		checkAssembled(t, &a)

		// The model: complete iff a valid header announced a length and
		// every position below it was seen.
		m := summarise(ps)
		if len(m.lengths) > 1 {
			return // the first header fixes the length: order matters
		}
		wantLen := 0
		for n := range m.lengths {
			wantLen = n
		}
		// Two headers of one length (modes source and bound) are two
		// candidates, not a conflict: position 0 never conflicts.
		wantComplete := wantLen > 0
		wantConflict := false
		for i := 0; i < wantLen; i++ {
			wantComplete = wantComplete && m.values[i] != nil
			wantConflict = wantConflict || i > 0 && len(m.values[i]) > 1
		}
		seen := 0
		for _, v := range m.values {
			if v != nil {
				seen++
			}
		}
		if a.Len() != wantLen || a.Complete() != wantComplete || a.Seen() != seen || a.Conflicted() != wantConflict {
			t.Fatalf("Len %d Complete %v Seen %d Conflicted %v; want %d %v %d %v",
				a.Len(), a.Complete(), a.Seen(), a.Conflicted(), wantLen, wantComplete, seen, wantConflict)
		}

		// Another order of the same packets.
		h := fnv.New64a()
		h.Write(data)
		r := rand.New(rand.NewPCG(h.Sum64(), uint64(len(data))))
		shuffled := append([]packet{}, ps...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		var b encoding.Assembler
		dirty := a // reused after Restart: must behave as the fresh one
		dirty.Restart()
		for _, p := range shuffled {
			b.Add(p.pos, p.b)
			dirty.Add(p.pos, p.b)
		}
		if dirty.Complete() != b.Complete() || dirty.Len() != b.Len() || dirty.Seen() != b.Seen() || dirty.Conflicted() != b.Conflicted() ||
			!bytes.Equal(dirty.Knock(nil), b.Knock(nil)) || !bytes.Equal(dirty.Alternate(nil), b.Alternate(nil)) || dirty.Waiting() != b.Waiting() {
			t.Fatal("a restarted assembler differs from a fresh one")
		}
		if d2, b2 := dirty, b; d2.Next() != b2.Next() || d2.Complete() != b2.Complete() || d2.Len() != b2.Len() {
			t.Fatal("a restarted assembler gives up differently from a fresh one")
		}
		if b.Len() != a.Len() || b.Complete() != a.Complete() || b.Seen() != a.Seen() || b.Conflicted() != a.Conflicted() {
			t.Fatalf("reordering changed the state: Len %d/%d Complete %v/%v Seen %d/%d Conflicted %v/%v",
				a.Len(), b.Len(), a.Complete(), b.Complete(), a.Seen(), b.Seen(), a.Conflicted(), b.Conflicted())
		}
		if a.Complete() && !a.Conflicted() && !bytes.Equal(a.Knock(nil), b.Knock(nil)) {
			t.Fatal("reordering a conflict-free knock changed its bytes")
		}
	})
}

func checkAssembled(t *testing.T, a *encoding.Assembler) {
	t.Helper()
	if !a.Complete() {
		return
	}
	k, alt := a.Knock(nil), a.Alternate(nil)
	if len(k) != a.Len() || len(alt) != a.Len() {
		t.Fatalf("Knock %d bytes, Alternate %d, Len %d", len(k), len(alt), a.Len())
	}
	if crypto.KnockLen(k[0]) != a.Len() || alt[0] != k[0] {
		t.Fatalf("header %#x/%#x does not announce length %d", k[0], alt[0], a.Len())
	}
	if !a.Conflicted() && !bytes.Equal(k, alt) {
		t.Fatal("Alternate differs from Knock without a conflict")
	}
}

var decodeErrors = []error{
	encoding.ErrOutsideSpan, encoding.ErrConflict, encoding.ErrTruncated, encoding.ErrExtraPackets,
	crypto.ErrUnknownVersion, crypto.ErrMalformed,
}

// FuzzDecode checks the strict Decode against the assembler: on port
// sequences inside the span without conflicting duplicates, Decode
// succeeds exactly when the assembler completes with no position beyond
// the knock, and both give the same bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := encoding.DefaultSpan
		ps := fuzzPackets(data)
		ports := make([]uint16, len(ps))
		for i, p := range ps {
			if p.pos < 0 {
				ports[i] = s.Base - 1 - uint16(p.b) // below the span
			} else {
				ports[i] = s.Port(p.pos, p.b) // position 40 lies above it
			}
		}
		// The model of SPEC.md §10.1: any port outside the span decides
		// the failure, else any conflicting duplicate, whatever the order.
		var vals [encoding.MaxPositions]byte
		var have uint64
		var firstFault error
		maxPos := -1
		for _, p := range ps {
			if p.pos < 0 || p.pos >= encoding.MaxPositions {
				firstFault = encoding.ErrOutsideSpan
				break
			}
			if have&(1<<p.pos) != 0 && vals[p.pos] != p.b {
				firstFault = encoding.ErrConflict // unless a port outside follows
			}
			have |= 1 << p.pos
			vals[p.pos] = p.b
			maxPos = max(maxPos, p.pos)
		}

		dst := []byte{0xaa}
		got, err := s.Decode(dst, ports)
		var a encoding.Assembler
		for _, p := range ports {
			a.AddPort(s, p)
		}
		checkAssembled(t, &a)
		if err != nil {
			if !slices.Contains(decodeErrors, err) {
				t.Fatalf("Decode error %v is not a sentinel", err)
			}
			if !bytes.Equal(got, dst) {
				t.Fatalf("Decode wrote %x on error", got)
			}
			if firstFault != nil && err != firstFault {
				t.Fatalf("Decode = %v, want %v", err, firstFault)
			}
			if firstFault == nil && (err == encoding.ErrOutsideSpan || err == encoding.ErrConflict) {
				t.Fatalf("Decode = %v, but every port is in the span and none conflicts", err)
			}
			if firstFault == nil && a.Complete() && maxPos < a.Len() {
				t.Fatalf("Decode = %v, but the assembler completed %x", err, a.Knock(nil))
			}
			return
		}
		if firstFault != nil {
			t.Fatalf("Decode accepted ports with %v", firstFault)
		}
		if !a.Complete() || a.Conflicted() || !bytes.Equal(got[1:], a.Knock(nil)) {
			t.Fatalf("Decode = %x; assembler complete %v conflicted %v knock %x", got[1:], a.Complete(), a.Conflicted(), a.Knock(nil))
		}
	})
}

// FuzzAssemblerOpens drives the assembler as a receiver does, through Open,
// with packets at fuzzed positions, bytes and arrival gaps and an opener
// that accepts one fixed knock, and checks the bound of SPEC.md §10.2: no
// assembly is opened more than encoding.MaxOpens times, whatever arrives.
// Every reading offered is a whole knock of a candidate length.
func FuzzAssemblerOpens(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, uint8(0))
		f.Add(s, uint8(255))
	}
	f.Fuzz(func(t *testing.T, data []byte, gap uint8) {
		real := bytes.Repeat([]byte{0xa5}, crypto.LenSource)
		real[0] = crypto.Header(crypto.ModeSource)
		var a encoding.Assembler
		var buf [encoding.MaxPositions]byte
		var ns int64
		opens := 0
		for i, p := range fuzzPackets(data) {
			// Arrival gaps from 0 to 1 s, driven by the data and gap.
			ns += int64(data[2*i]^gap) % 64 * 16_000_000
			if !a.AddAt(p.pos, p.b, encoding.Ticks(ns)) {
				continue
			}
			calls := 0
			v, n, keep := a.Open(&buf, func(k []byte) encoding.Verdict {
				calls++
				if crypto.KnockLen(k[0]) != len(k) {
					t.Fatalf("reading of %d bytes behind header %#x", len(k), k[0])
				}
				if bytes.Equal(k, real) {
					return encoding.Accepted
				}
				return encoding.Failed
			})
			if n != calls {
				t.Fatalf("Open reports %d opens, made %d", n, calls)
			}
			opens += n
			if opens > encoding.MaxOpens {
				t.Fatalf("one assembly opened %d times, bound %d", opens, encoding.MaxOpens)
			}
			if v == encoding.Accepted && keep {
				t.Fatal("an accepted knock keeps its assembler")
			}
			if !keep {
				a.Reset()
				opens = 0
			} else if a.Complete() {
				t.Fatal("Open returned with a complete knock left unopened")
			}
		}
	})
}
