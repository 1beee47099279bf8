package daemon

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
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
	many.in.table.seed = one.in.table.seed
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

// BenchmarkSpoofedFlood is the receiver's path under a flood of spoofed
// one-packet sources, each new (a counter under an odd multiplier, over
// 10.0.0.0/8) and to a random position, against a table of the default
// size: every packet takes a slot, and under the flood every bucket is
// full, so each is an eviction and, without care, a cache miss or two.
// "packet" is HandlePacket, one packet at a time; "batch" is the path of
// the capture's batches of 64. ns/op is per packet.
func BenchmarkSpoofedFlood(b *testing.B) {
	key, _ := crypto.GenerateKey()
	spoof := func(i int) sniff.Packet {
		v := uint32(i) * 0x9E3779B1 >> 8
		return sniff.Packet{
			Src:     netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}),
			DstPort: encoding.DefaultBase + uint16(256+(v*7)%(23*256)),
		}
	}
	// Of the default table (27 MiB), a one-packet source touches the
	// scan lines and the slots (2.5 MiB), which fit a last-level cache
	// when nothing else runs; in the daemon the kernel's receive path and
	// the ring take much of that cache. "large" is the batch path against
	// a table of 2^19 sources, whose lines come from memory.
	for _, c := range []struct {
		name    string
		sources int
		batch   bool
	}{
		{"packet", config.DefaultMaxSources, false},
		{"batch", config.DefaultMaxSources, true},
		{"packet-large", 1 << 19, false},
		{"batch-large", 1 << 19, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := benchDaemonSources(b, key, c.sources)
			if c.batch {
				spoofedBatches(b, d, spoof)
			} else {
				spoofedPackets(b, d, spoof)
			}
		})
	}
}

// spoofPool returns the packets of n new spoofed sources, made before the
// timer starts so that making them is not measured: four times the table's
// sources, each source long evicted when the pool comes round to it again.
func spoofPool(d *Daemon, spoof func(int) sniff.Packet) []sniff.Packet {
	pool := make([]sniff.Packet, 4*d.in.table.Cap())
	for i := range pool {
		pool[i] = spoof(i)
	}
	return pool
}

func spoofedPackets(b *testing.B, d *Daemon, spoof func(int) sniff.Packet) {
	for i := range d.in.table.Cap() {
		p := spoof(-1 - i)
		d.HandlePacket(p.Src, p.DstPort)
	}
	pool := spoofPool(d, spoof)
	b.ReportAllocs()
	b.ResetTimer()
	for i, j := 0, 0; i < b.N; i++ {
		p := &pool[j]
		d.HandlePacket(p.Src, p.DstPort)
		if j++; j == len(pool) {
			j = 0
		}
	}
}

func spoofedBatches(b *testing.B, d *Daemon, spoof func(int) sniff.Packet) {
	const batch = 64
	var ps [batch]sniff.Packet
	for i := 0; i < d.in.table.Cap(); i += len(ps) {
		for j := range ps {
			ps[j] = spoof(-1 - i - j)
		}
		d.handleBatch(ps[:])
	}
	pool := spoofPool(d, spoof)
	b.ReportAllocs()
	b.ResetTimer()
	for i, j := 0, 0; i < b.N; i += batch {
		d.handleBatch(pool[j : j+batch])
		if j += batch; j == len(pool) {
			j = 0
		}
	}
}

// benchDaemonSources is benchDaemon with a table of the given size (0:
// the default).
func benchDaemonSources(b testing.TB, key crypto.Key, sources int) *Daemon {
	cfg := testConfigB(b, b.TempDir(), key)
	if sources > 0 {
		cfg.MaxSources = sources
	}
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	d, err := New(Options{
		Config:  cfg,
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// FuzzHandleBatch feeds arbitrary packet sequences, cut into batches where
// the input says, through the batch path of a small table, and the same
// packets one at a time through the per-packet filing of a twin table
// with the same hash seed and clock: both must end in the same state, slot
// for slot, and count the same; neither may grant (the fuzzer does not
// know the key). Each packet is three bytes (source, port); a source byte
// with 0x40 set ends a batch after its packet.
func FuzzHandleBatch(f *testing.F) {
	key, _ := crypto.GenerateKey()
	other, _ := crypto.GenerateKey()
	var seed []byte
	for i, p := range seal(f, "test", other, 3, openKnock(8080, 10)) {
		seed = append(seed, byte(2|i%3<<6), byte(p>>8), byte(p))
	}
	f.Add(seed)
	f.Add([]byte{1, 0x50, 0x10, 0x41, 0x50, 0x10, 3, 0xff, 0xff, 0x83, 0x50, 0x00})
	batched, single := benchDaemonSources(f, key, 16), benchDaemonSources(f, key, 16)
	single.in.table.seed = batched.in.table.seed
	f.Fuzz(func(t *testing.T, data []byte) {
		now := batched.now()
		var ps []sniff.Packet
		st := batched.st.Load()
		for i := 0; i+3 <= len(data); i += 3 {
			src := netip.AddrFrom4([4]byte{198, 18, 0, data[i] &^ 0x40})
			if data[i]&0x80 != 0 {
				src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: data[i] &^ 0x40})
			}
			if data[i]&0x3f == 0x3f {
				src = netip.AddrFrom16(src.As16()) // IPv4-mapped: never filed
			}
			p := sniff.Packet{Src: src, DstPort: uint16(data[i+1])<<8 | uint16(data[i+2])}
			ps = append(ps, p)
			if data[i]&0x40 != 0 || i+6 > len(data) {
				for len(ps) > 0 {
					n := batched.handleRun(st, ps, now)
					if n == 0 {
						t.Fatal("handleRun filed nothing of a run of knock packets")
					}
					ps = ps[n:]
				}
			}
			pos, b, ok := st.cfg.Span.Split(p.DstPort)
			if ok && !src.Is4In6() {
				key := src.As16()
				single.in.Lock()
				single.addHashed(st, &key, single.in.table.Hash(&key), pos, b, now)
				single.in.Unlock()
			}
		}
		a, b := single.in.table, batched.in.table
		if a.Live != b.Live || a.Inserts != b.Inserts || a.Evictions != b.Evictions || a.Expiries != b.Expiries {
			t.Fatalf("table: one at a time live %d inserts %d evictions %d expiries %d; in batches %d %d %d %d",
				a.Live, a.Inserts, a.Evictions, a.Expiries, b.Live, b.Inserts, b.Evictions, b.Expiries)
		}
		for i := range a.meta {
			if a.meta[i] != b.meta[i] {
				t.Fatalf("bucket %d: one at a time %+v, in batches %+v", i, a.meta[i], b.meta[i])
			}
		}
		for i := range a.slots {
			if a.slots[i] != b.slots[i] || a.asms[i].Assembler != b.asms[i].Assembler {
				t.Fatalf("slot %d differs between the tables", i)
			}
		}
		if b.Live > b.Cap() || b.Live < 0 {
			t.Fatalf("table holds %d of %d", b.Live, b.Cap())
		}
		if len(batched.work) != 0 || len(single.work) != 0 {
			t.Fatal("garbage produced a grant")
		}
	})
}
