package daemon

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
)

// junk returns one random port at each position 1..n-1: what an off-path
// sender who knows a client's address sprays ahead of its knock.
func junk(rng *rand.Rand, n int) []uint16 {
	var ps []uint16
	for pos := 1; pos < n; pos++ {
		ps = append(ps, encoding.DefaultSpan.Port(pos, byte(rng.Uint32())))
	}
	return ps
}

// TestJunkPrefillDaemon: 23 spoofed packets with the client's address, one
// random byte at each position 1..23 and no header, sent ahead of a
// single-pass knock (as --no-confirm sends it) must not deny the knock,
// whatever its order (SPEC.md §10.2, §13.7).
func TestJunkPrefillDaemon(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	rng := rand.New(rand.NewPCG(1, 2))
	for i, order := range []string{"header-first", "shuffled", "header-last"} {
		h.send(client, junk(rng, crypto.LenSource))
		time.Sleep(encoding.Recent * 3 / 2) // sprayed well ahead of the knock
		pkts := seal(t, "test", key, 3, openKnock(8080, 10))
		switch order {
		case "shuffled":
			rng.Shuffle(len(pkts), func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
		case "header-last":
			pkts = append(pkts[1:], pkts[0])
		}
		h.send(client, pkts)
		waitFor(t, order+" grant", func() bool { return h.d.counters.accepted.Load() == uint64(i+1) })
	}
}

// TestSecondReadingAfterRefusal: when the first reading of a conflicted
// assembly opens but is a replay or is refused by policy, the second
// reading is still tried (SPEC.md §10.2 step 2). Here the bytes of an
// authentic knock (an old, already used one, or one for a port the policy
// refuses) are sprayed with the client's address just ahead of the
// client's new knock, sent with its header last.
func TestSecondReadingAfterRefusal(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	used := seal(t, "test", key, 3, openKnock(8080, 10))
	h.send(client, used)
	waitFor(t, "first grant", func() bool { return h.d.counters.accepted.Load() == 1 })
	refused := seal(t, "test", key, 3, openKnock(22, 10)) // port 22 not allowed
	for i, first := range [][]uint16{used, refused} {
		h.send(client, first[1:])
		k := seal(t, "test", key, 3, openKnock(8080, 10))
		h.send(client, append(k[1:], k[0]))
		waitFor(t, "grant", func() bool { return h.d.counters.accepted.Load() == uint64(i+2) })
	}
}

// TestLongerCompleteOpensAtOnce: a spoofed source-mode header makes the
// assembly of an ipv4 knock complete early; when the packet that completes
// the shorter candidate also completes the real, longer one, the longer one
// is opened at once instead of waiting for a packet that never comes.
func TestLongerCompleteOpensAtOnceDaemon(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	k := crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeIPv4, Addr: client, Proto: ports.TCP, Port: 8080, Duration: 10}
	pkts := seal(t, "test", key, 3, k)
	spoofed := encoding.DefaultSpan.Port(0, crypto.Header(crypto.ModeSource))
	seq := append([]uint16{spoofed}, pkts[:5]...)
	seq = append(append(seq, pkts[6:]...), pkts[5])
	h.send(client, seq)
	waitFor(t, "grant", func() bool { _, ok := fw.get(client, ports.TCP, 8080); return ok })
}

// TestMappedSourceNotMerged: a knock split between a.b.c.d and
// ::ffff:a.b.c.d is not assembled as one.
func TestMappedSourceNotMerged(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	pkts := seal(t, "test", key, 3, openKnock(8080, 10))
	mapped := netip.AddrFrom16(client.As16())
	h.send(client, pkts[:12])
	h.send(mapped, pkts[12:])
	h.send(mapped, pkts)
	time.Sleep(50 * time.Millisecond)
	if n := h.d.counters.accepted.Load(); n != 0 {
		t.Fatalf("%d knocks accepted from a split or mapped source", n)
	}
	h.send(client, pkts[12:])
	waitFor(t, "grant", func() bool { return h.d.counters.accepted.Load() == 1 })
}
