// Command streamgen writes the stream vectors of SPEC.md §12.1 into a
// directory (go generate, from the repository root, writes
// testdata/streams). Each vector is a packet stream built here; the
// receiver of internal/vectors plays it and its opens become the vector's
// expected outcome, which the comment of each case states in words, so that
// a change to the assembler that changes an outcome shows in the diff.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/vectors"
)

const (
	realm = "streams.example"
	index = 3
	t0    = 1767225600 // 2026-01-01T00:00:00Z, the receiver's clock at 0 ms
)

var (
	key    crypto.Key
	client = netip.MustParseAddr("198.51.100.7")
	other  = netip.MustParseAddr("2001:db8::7")
	racer  = netip.MustParseAddr("203.0.113.66")
	span   = encoding.DefaultSpan
)

func init() {
	for i := range key {
		key[i] = byte(0x40 + i)
	}
}

// gen builds streams; seq numbers the nonces, so that every knock differs.
type gen struct {
	seq uint32
	rng *rand.Rand
}

// knock seals a knock of mode m (addr for the explicit modes) with the
// given time offset from t0 and returns its bytes.
func (g *gen) knock(m crypto.Mode, addr netip.Addr, dt int64, k *crypto.Key) []byte {
	g.seq++
	kn := crypto.Knock{Action: crypto.ActionOpen, Mode: m, Port: 22, Duration: 30, Time: uint32(t0 + dt)} // proto tcp (zero)
	if m != crypto.ModeSource {
		kn.Addr = addr
	}
	kn.Nonce = [4]byte{0xc0, 0xde, byte(g.seq >> 8), byte(g.seq)}
	r, err := crypto.NewRealm(realm, nil)
	if err != nil {
		log.Fatal(err)
	}
	if k == nil {
		k = &key
	}
	b, err := crypto.Seal(nil, r, index, crypto.NewUser(k), &kn)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

// pkt is a packet to send: position and byte, or a raw port.
type pkt struct {
	src  netip.Addr
	port uint16
}

// stream collects packets with arrival times.
type stream struct {
	comment string
	header  map[string]string // header keys besides the common ones
	ms      int64
	ps      []vectors.StreamPacket
}

// with sets header key k to v.
func (s *stream) with(k, v string) *stream {
	if s.header == nil {
		s.header = map[string]string{}
	}
	s.header[k] = v
	return s
}

// at moves the clock to ms.
func (s *stream) at(ms int64) *stream { s.ms = ms; return s }

// send sends ports from src, gap ms apart.
func (s *stream) send(src netip.Addr, gap int64, ports ...uint16) *stream {
	for _, p := range ports {
		s.ps = append(s.ps, vectors.StreamPacket{MS: s.ms, Src: src, Port: p})
		s.ms += gap
	}
	return s
}

func ports(k []byte) []uint16 { return span.AppendPorts(nil, k) }

func (g *gen) shuffled(p []uint16) []uint16 {
	p = slices.Clone(p)
	g.rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

func headerLast(p []uint16) []uint16 { return append(slices.Clone(p[1:]), p[0]) }

// junk is one random byte at each position of from..to-1, no header.
func (g *gen) junk(from, to int) []uint16 {
	var p []uint16
	for pos := from; pos < to; pos++ {
		p = append(p, span.Port(pos, byte(g.rng.Uint32())))
	}
	return p
}

func main() {
	out := flag.String("out", "testdata/streams", "directory to write")
	flag.Parse()
	g := &gen{rng: rand.New(rand.NewPCG(2026, 12))}
	cases := map[string]*stream{}
	add := func(name, comment string) *stream {
		s := &stream{comment: comment}
		cases[name] = s
		return s
	}
	src := crypto.ModeSource
	none := netip.Addr{}

	k := g.knock(src, none, 0, nil)
	add("clean_in_order", "a source-mode knock, in order").send(client, 1, ports(k)...)

	k = g.knock(src, none, 0, nil)
	add("clean_shuffled_twice", "a shuffled knock sent twice: the second pass completes a new assembly that opens as a replay").
		send(client, 1, g.shuffled(ports(k))...).send(client, 1, g.shuffled(ports(k))...)

	k = g.knock(crypto.ModeIPv4, client, 0, nil)
	add("ipv4_reversed", "an ipv4-mode knock, last position first").send(client, 1, func() []uint16 { p := ports(k); slices.Reverse(p); return p }()...)

	k = g.knock(src, none, 0, nil)
	p := ports(k)
	add("inject_after", "a foreign byte at position 5 after the real one: the first reading opens").
		send(client, 1, p[:6]...).send(client, 1, span.Port(5, k[5]^0x5a)).send(client, 1, p[6:]...)

	k = g.knock(src, none, 0, nil)
	p = ports(k)
	add("inject_before", "a foreign byte at position 5 before the real one: the first reading fails, the second opens").
		send(client, 1, p[:5]...).send(client, 1, span.Port(5, k[5]^0x5a)).send(client, 1, p[5:]...)

	for _, c := range []struct {
		name, how string
		order     func([]uint16) []uint16
	}{
		{"header_first", "header first", func(p []uint16) []uint16 { return p }},
		{"shuffled", "shuffled", g.shuffled},
		{"header_last", "header last", headerLast},
	} {
		k = g.knock(src, none, 5, nil)
		add("junk_prefill_"+c.name, "one random byte at each position 1..23 and no header, sprayed 5 s ahead of a single-pass knock sent "+c.how+", 2 ms a packet: a reading with sprayed bytes fails; the knock opens with its last bytes, at once or once the old positions were seen again").
			send(client, 1, g.junk(1, 24)...).at(5000).send(client, 2, c.order(ports(k))...)
	}
	k = g.knock(crypto.ModeIPv4, client, 5, nil)
	add("junk_prefill_ipv4_shuffled", "bytes sprayed at positions 1..23 only, ahead of a shuffled ipv4-mode knock: positions 24..27, which the spray left empty, do not hold the knock back").
		send(client, 1, g.junk(1, 24)...).at(5000).send(client, 2, g.shuffled(ports(k))...)

	k = g.knock(src, none, 0, nil)
	add("header_longer_mode_before", "a spoofed ipv6 header before a source-mode knock: the longer candidate never completes first").
		send(client, 1, span.Port(0, crypto.Header(crypto.ModeIPv6))).send(client, 1, ports(k)...)

	k = g.knock(crypto.ModeIPv4, client, 0, nil)
	add("header_shorter_mode_before", "a spoofed source-mode header before an ipv4-mode knock: the 24-byte candidate completes first and fails, then the real knock opens").
		send(client, 1, span.Port(0, crypto.Header(crypto.ModeSource))).send(client, 1, ports(k)...)

	k = g.knock(crypto.ModeIPv4, client, 0, nil)
	p = ports(k)
	add("longer_complete_at_once", "a spoofed source-mode header, then an ipv4-mode knock whose position 5 comes last: that packet completes both candidates; the source one fails and the complete ipv4 one is opened at once").
		send(client, 1, span.Port(0, crypto.Header(crypto.ModeSource))).send(client, 1, p[:5]...).send(client, 1, p[6:]...).send(client, 1, p[5])

	s := add("resent_headers_bounded", "a spoofed source fills positions 1..39, then keeps re-sending the four headers with conflicting bytes, slowly and quickly: a header re-sent after its mode was given up does not bring it back, so the assembly stays within the bound of 16 opens, every open a bad tag")
	s.send(other, 1, g.junk(1, 40)...)
	for i := range 30 {
		s.ms += int64(300 * (i % 2))
		s.send(other, 1, span.Port(0, 0x10), span.Port(1+i%23, byte(i)), span.Port(0, 0x13), span.Port(0, 0x11), span.Port(24+i%4, byte(i)), span.Port(0, 0x12), span.Port(28+i%12, byte(i)))
	}

	k = g.knock(src, none, 0, nil)
	var dup []uint16
	for _, x := range ports(k) {
		dup = append(dup, x, x)
	}
	add("duplicates", "every packet twice in a row: the assembly completes on the last position's first copy; its second copy starts an assembly that never completes").send(client, 1, dup...)

	k = g.knock(src, none, 15, nil)
	p = ports(k)
	add("timeout", "half a knock, then the rest after 11 s, past the 10 s assembler timeout: nothing opens until the whole knock is sent again").
		send(client, 1, p[:12]...).at(11500).send(client, 1, p[12:]...).at(13000).send(client, 1, p...)

	var wrong crypto.Key
	for i := range wrong {
		wrong[i] = byte(0x90 + i)
	}
	bad := g.knock(src, none, 0, &wrong)
	k = g.knock(src, none, 3, nil)
	add("own_failed_knock", "a knock sealed with the wrong key, then 3 s later the right one, both shuffled: the failed assembly waits for its old positions to be seen again and opens the new knock").
		send(client, 1, g.shuffled(ports(bad))...).at(3000).send(client, 1, g.shuffled(ports(k))...)

	bad = g.knock(src, none, 0, nil)
	k = g.knock(src, none, 3, nil)
	var shifted []uint16
	for _, x := range ports(bad) {
		shifted = append(shifted, x+256)
	}
	add("wrong_base_then_correct", "a knock sent to a base 256 too high (its header lands on position 1, no header at position 0), then 3 s later the knock to the right base, header first: the new knock opens").
		send(client, 1, shifted...).at(3000).send(client, 1, ports(k)...)

	k1 := g.knock(src, none, 0, nil)
	k2 := g.knock(src, none, 2, nil)
	add("replay_bytes_before_knock", "an accepted knock's bytes sprayed again from the same source, then a new knock with its header last: the first reading is the old knock (replay), the second the new one").
		send(client, 1, ports(k1)...).at(1000).send(client, 1, ports(k1)[1:]...).at(2000).send(client, 1, headerLast(ports(k2))...)

	k = g.knock(src, none, -3600, nil)
	add("stale", "a knock sealed an hour before the receiver's clock").send(client, 1, ports(k)...)

	k = g.knock(src, none, 0, nil)
	add("garbage_header", "bytes that are no version-1 header at position 0 are ignored, and ports outside the span are no knock packets").
		send(client, 1, span.Port(0, 0x20), span.Port(0, 0x14), span.Base-1, span.Last()+1).send(client, 1, ports(k)...)

	s = add("small_flood", "64 spoofed sources send 1 to 24 packets each (headers first, like forged knocks), interleaved with a real knock from the client: every forged assembly that completes fails, the real knock opens")
	k = g.knock(src, none, 1, nil)
	real := ports(k)
	for i := range 64 {
		fsrc := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		n := []int{1, 2, 4, 24}[i%4]
		var fp []uint16
		for pos := range n {
			if pos == 0 {
				fp = append(fp, span.Port(0, 0x10))
			} else {
				fp = append(fp, span.Port(pos, byte(g.rng.Uint32())))
			}
		}
		s.send(fsrc, 0, fp...)
		if i%3 == 0 && len(real) > 0 {
			s.send(client, 1, real[0])
			real = real[1:]
		}
		s.ms++
	}
	s.send(client, 1, real...)

	bound := crypto.ModeBound
	k = g.knock(bound, client, 0, nil)
	add("bound_shuffled", "a bound-mode knock, shuffled: it opens with the address it came from").send(client, 1, g.shuffled(ports(k))...)

	k = g.knock(bound, client, 0, nil)
	add("bound_racer", "a racer sends a bound-mode knock's packets from its own address before the client does: the racer's assembly fails (the tag binds the client's address) and records nothing, so the client's knock still opens").
		send(racer, 1, ports(k)...).send(client, 1, ports(k)...)

	k = g.knock(bound, client, 0, nil)
	add("header_source_before_bound", "a spoofed source-mode header before a bound-mode knock of the same length: both candidates complete with the same packet; the source one is tried first and fails, the bound one is opened at once").
		send(client, 1, span.Port(0, crypto.Header(crypto.ModeSource))).send(client, 1, ports(k)...)

	k = g.knock(src, none, 0, nil)
	add("header_bound_before_source", "a spoofed bound-mode header before a source-mode knock: the source candidate is tried first and opens").
		send(client, 1, span.Port(0, crypto.Header(bound))).send(client, 1, ports(k)...)

	// R at its edges, in whole milliseconds: bytes sprayed at positions
	// 1..22 long before, and at 23 shortly before, a header whose arrival
	// completes (and fails) the sprayed reading d ms after the byte at
	// 23. The real bytes follow in order, 1 ms apart. Only a byte more
	// than R = 200 ms old is waited for: at 201 ms position 23 is, and the
	// retry opens once the knock's own byte reaches it; at 199 and 200 ms
	// it is not, so the first retry, complete once 1..22 are seen again,
	// still reads the sprayed byte there and fails, and the second opens.
	// Then gaps longer than 70 s (a 16-bit millisecond or 2^20 ns clock
	// wraps before them), with an assembler timeout long enough to keep
	// the assembly.
	for _, c := range []struct {
		name string
		d    int64
		tmo  int64
	}{
		{"recent_edge_199ms", 199, 0},
		{"recent_edge_200ms", 200, 0},
		{"recent_edge_201ms", 201, 0},
		{"recent_gap_70s", 70_500, 120_000},
		{"recent_gap_137s", 137_500, 180_000},
	} {
		const ta = 5000 // the byte at 23
		k = g.knock(src, none, (ta+c.d)/1000, nil)
		p = ports(k)
		s := add(c.name, fmt.Sprintf("junk at positions 1..22 at 0 ms and at 23 at %d ms, then a knock whose header arrives %d ms after the byte at 23, its other bytes in order 1 ms apart: position 23 is waited for only if its byte is more than R = 200 ms old", ta, c.d)).
			send(client, 0, g.junk(1, 23)...).at(ta).send(client, 0, g.junk(23, 24)...).at(ta+c.d).send(client, 1, p...)
		if c.tmo > 0 {
			s.with("assembler-timeout", fmt.Sprint(c.tmo))
		}
	}

	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(*out, "*"))
	for _, f := range old {
		os.Remove(f)
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		c := cases[name]
		v := &vectors.Stream{Name: name, Header: map[string]string{
			"comment":       c.comment,
			"key":           key.Encode(),
			"user-index":    fmt.Sprint(index),
			"realm":         realm,
			"receiver-time": fmt.Sprint(t0),
		}, Packets: c.ps}
		for k, x := range c.header {
			v.Header[k] = x
		}
		got, err := vectors.RunStream(v)
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		v.Packets = got
		var outcome []string
		for _, p := range got {
			for _, o := range p.Opens {
				outcome = append(outcome, o.Class)
			}
		}
		if len(outcome) == 0 {
			outcome = []string{"none"}
		}
		v.Header["comment"] = fmt.Sprintf("%s. Opens: %s", c.comment, strings.Join(outcome, ", "))
		if err := os.WriteFile(filepath.Join(*out, name), vectors.FormatStream(v), 0o644); err != nil {
			log.Fatal(err)
		}
		opens, ok := 0, 0
		for _, p := range got {
			for _, o := range p.Opens {
				opens++
				if o.Class == vectors.Success {
					ok++
				}
			}
		}
		fmt.Fprintf(os.Stderr, "%-28s %4d packets %3d opens %d success  %s\n", name, len(got), opens, ok, strings.SplitN(c.comment, ":", 2)[0])
	}
}
