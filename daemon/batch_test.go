package daemon

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/sniff"
)

// TestHandleBatch checks that the batch path files packets as the
// per-packet path does: a knock whose packets are spread over batches of
// random sizes, among packets of spoofed sources, a trigger packet, a
// packet outside the span and an IPv4-mapped source, is queued for its
// grant exactly once, and the source table counts the same as when each
// packet is handled alone.
func TestHandleBatch(t *testing.T) {
	key, _ := crypto.GenerateKey()
	knock := seal(t, "test", key, 3, openKnock(8080, 30))
	rng := rand.New(rand.NewPCG(1, 2))
	spoofed := func() sniff.Packet {
		return sniff.Packet{
			Src:     netip.AddrFrom4([4]byte{198, 18, byte(rng.IntN(4)), byte(rng.IntN(256))}),
			DstPort: encoding.DefaultBase + uint16(rng.IntN(24*256)),
		}
	}
	var seq []sniff.Packet
	for i, port := range knock {
		for range 1 + rng.IntN(40) {
			seq = append(seq, spoofed())
		}
		if i == len(knock)/2 {
			seq = append(seq,
				sniff.Packet{Kind: sniff.Trigger, Src: netip.MustParseAddr("10.1.1.1"), DstPort: 443},
				sniff.Packet{Src: client, DstPort: 80},
				sniff.Packet{Src: netip.AddrFrom16(client.As16()), DstPort: port})
		}
		seq = append(seq, sniff.Packet{Src: client, DstPort: port})
	}

	one, many := benchDaemon(t, key), benchDaemon(t, key)
	for i := range seq {
		one.handle(&seq[i])
	}
	batches := 0
	for rest := seq; len(rest) > 0; batches++ {
		n := min(1+rng.IntN(64), len(rest))
		many.handleBatch(rest[:n])
		rest = rest[n:]
	}
	if batches < 10 {
		t.Fatalf("the knock came in %d batches", batches)
	}
	for _, d := range []*Daemon{one, many} {
		if len(d.work) != 1 {
			t.Fatalf("%d grants queued, want 1", len(d.work))
		}
		if j := <-d.work; j.src != client || j.g.Port != 8080 {
			t.Errorf("grant %+v", j.g)
		}
	}
	a, b := one.in.table, many.in.table
	if a.Live != b.Live || a.Inserts != b.Inserts || a.Evictions != b.Evictions || a.Expiries != b.Expiries {
		t.Errorf("table: alone live %d inserts %d evictions %d expiries %d; in batches %d %d %d %d",
			a.Live, a.Inserts, a.Evictions, a.Expiries, b.Live, b.Inserts, b.Evictions, b.Expiries)
	}
	if a.Inserts < uint64(len(seq)/2) {
		t.Errorf("only %d sources filed of %d packets", a.Inserts, len(seq))
	}
}

// BenchmarkHandleBatch is BenchmarkHandlePacket's noise in batches of 64,
// the most the capture hands on at once: ns/op is per packet.
func BenchmarkHandleBatch(b *testing.B) {
	key, _ := crypto.GenerateKey()
	d := benchDaemon(b, key)
	ps := make([]sniff.Packet, 4096)
	for i := range ps {
		ps[i] = sniff.Packet{Src: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		batch := ps[i%len(ps) : i%len(ps)+64]
		for j := range batch {
			batch[j].DstPort = encoding.DefaultBase + uint16(256+(i+j)%(39*256))
		}
		d.handleBatch(batch)
	}
}
