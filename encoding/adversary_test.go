package encoding_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

// receiver plays SPEC.md §10.2's receiver for one source with the calls a
// daemon makes, so that the same tests run against any version of the
// assembler, at the time r.ms: when an assembly completes it opens the first reading, the
// alternate on a conflict, gives the knock up on failure and, while
// another candidate is complete, opens that at once. An open succeeds when
// the reading is one of the real knocks.
type receiver struct {
	a       encoding.Assembler
	ms      int64 // the clock, in milliseconds
	real    [][]byte
	opens   int // opens of the current assembly
	most    int // most opens of one assembly
	total   int
	success [][]byte
}

func (r *receiver) open(k []byte) bool {
	r.opens++
	r.total++
	r.most = max(r.most, r.opens)
	for _, k2 := range r.real {
		if bytes.Equal(k, k2) {
			r.success = append(r.success, bytes.Clone(k))
			return true
		}
	}
	return false
}

func (r *receiver) add(pos int, b byte) {
	if !r.a.AddAt(pos, b, encoding.Ticks(r.ms*1e6)) {
		return
	}
	keep := true
	for keep && r.a.Complete() {
		ok := r.open(r.a.Knock(nil))
		if !ok && r.a.Conflicted() {
			ok = r.open(r.a.Alternate(nil))
		}
		keep = !ok && r.a.Next()
		if r.opens > 10*encoding.MaxOpens {
			return // old assemblers loop here: the bound is broken anyway
		}
	}
	if !keep {
		r.a.Reset()
		r.opens = 0
	}
}

// TestOpensBoundedReSentHeaders is the attack of a spoofed source that
// fills every position once, then alternates a header of a failed mode with
// a conflicting byte: each header used to add its mode back and buy two
// more opens. Whatever is injected, one assembly is opened at most
// encoding.MaxOpens times.
func TestOpensBoundedReSentHeaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r receiver
	for pos := 1; pos < encoding.MaxPositions; pos++ {
		r.add(pos, byte(rng.Uint32()))
	}
	r.add(0, crypto.Header(crypto.ModeIPv6)) // keeps the assembly alive
	for i := range 200 {
		// Slow enough that every byte counts as old, and fast.
		r.ms += int64(300 * (i % 2))
		r.add(0, crypto.Header(crypto.ModeSource))
		r.add(1+i%23, byte(rng.Uint32()))
		r.add(0, crypto.Header(crypto.ModeIPv4))
		for pos := 24; pos < encoding.MaxPositions; pos++ {
			r.add(pos, byte(rng.Uint32()))
		}
	}
	if r.most > encoding.MaxOpens {
		t.Fatalf("one assembly opened %d times (%d opens in all), want at most %d",
			r.most, r.total, encoding.MaxOpens)
	}
}

// TestJunkPrefill is the attack of an off-path sender who knows a client's
// address and sprays one random byte at each position 1..n-1, no header,
// ahead of the knock. The real knock must open whatever the order it is
// sent in: header first (the default), shuffled, reversed, header last.
func TestJunkPrefill(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	orders := []string{"header-first", "header-last", "reversed", "shuffled"}
	for _, m := range modes {
		for _, junkTo := range []int{crypto.LenSource, m.Len(), encoding.MaxPositions} {
			if junkTo > encoding.MaxPositions {
				continue
			}
			for _, order := range orders {
				for iter := range 50 {
					knock := randomKnock(rng, m)
					var r receiver
					r.real = [][]byte{knock}
					for pos := 1; pos < junkTo; pos++ {
						r.add(pos, byte(rng.Uint32()))
					}
					r.ms += 5000 // the attacker sprays every 10 s
					ps := packets(knock)
					switch order {
					case "header-last":
						ps = append(ps[1:], ps[0])
					case "reversed":
						for i, j := 0, len(ps)-1; i < j; i, j = i+1, j-1 {
							ps[i], ps[j] = ps[j], ps[i]
						}
					case "shuffled":
						rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
					}
					for _, p := range ps {
						r.ms += 2 // paced 2 ms apart
						r.add(p.pos, p.b)
					}
					if len(r.success) != 1 {
						t.Fatalf("%s knock, junk at 1..%d, %s #%d: opened %d times, want once",
							m, junkTo-1, order, iter, len(r.success))
					}
					if r.most > encoding.MaxOpens {
						t.Fatalf("%s: %d opens", order, r.most)
					}
				}
			}
		}
	}
}

// TestJunkPrefillAnySubset: bytes sprayed at any subset of positions are
// survived, whatever the order of the knock.
func TestJunkPrefillAnySubset(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := range 2000 {
		m := modes[iter%3]
		knock := randomKnock(rng, m)
		var r receiver
		r.real = [][]byte{knock}
		for pos := 1; pos < m.Len(); pos++ {
			if rng.IntN(2) == 0 {
				r.add(pos, byte(rng.Uint32()))
			}
		}
		r.ms += 1000
		ps := packets(knock)
		if iter%2 == 1 {
			rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		}
		for _, p := range ps {
			r.add(p.pos, p.b)
		}
		if len(r.success) != 1 {
			t.Fatalf("#%d %s: not opened", iter, m)
		}
	}
}

// TestOwnFailedKnock: a user's knock that fails (a wrong key, a wrong
// base) must not block their next, correct knock from the same address.
func TestOwnFailedKnock(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, m := range modes {
		for _, wrong := range []string{"key", "base+256", "base-256", "base+1"} {
			for _, order := range []string{"header-first", "shuffled"} {
				t.Run(fmt.Sprintf("%s/%s/%s", m, wrong, order), func(t *testing.T) {
					good := randomKnock(rng, m)
					bad := randomKnock(rng, m)
					var r receiver
					r.real = [][]byte{good}
					feed := func(k []byte, shift int) {
						ps := packets(k)
						if order == "shuffled" {
							rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
						}
						for _, p := range ps {
							port := int(encoding.DefaultSpan.Port(p.pos, p.b)) + shift
							pos, b, ok := encoding.DefaultSpan.Split(uint16(port))
							if ok {
								r.add(pos, b)
							}
						}
						r.ms += 3000 // the user notices and knocks again
					}
					switch wrong {
					case "key":
						feed(bad, 0)
					case "base+256":
						feed(bad, 256)
					case "base-256":
						feed(bad, -256)
					case "base+1":
						feed(bad, 1)
					}
					feed(good, 0)
					if len(r.success) != 1 {
						t.Fatalf("the correct knock after a failed one did not open")
					}
				})
			}
		}
	}
}

// TestLongerCompleteOpensAtOnce: a spoofed header of a shorter mode makes
// the assembly complete early; when that fails and the real, longer knock
// is already complete, it opens at once instead of waiting for a packet
// that may never come (SPEC.md §10.2).
func TestLongerCompleteOpensAtOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	knock := randomKnock(rng, crypto.ModeIPv4)
	var r receiver
	r.real = [][]byte{knock}
	// The real knock, header last; the spoofed source-mode header arrives
	// with it, so both candidates complete on the same packet.
	for _, p := range packets(knock)[1:] {
		r.add(p.pos, p.b)
	}
	r.add(0, crypto.Header(crypto.ModeSource))
	r.add(0, knock[0])
	if len(r.success) != 1 {
		t.Fatal("the complete ipv4 knock did not open when the source candidate failed")
	}
}
