package encoding_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

var edgeSpans = []encoding.Span{{Base: encoding.MinBase}, encoding.DefaultSpan, {Base: encoding.MaxBase}}

// randomKnock returns n random bytes behind the header of mode m: the
// encoding layer cares about nothing else.
func randomKnock(r *rand.Rand, m crypto.Mode) []byte {
	b := make([]byte, m.Len())
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[0] = crypto.Header(m)
	return b
}

var modes = []crypto.Mode{crypto.ModeSource, crypto.ModeIPv4, crypto.ModeIPv6}

func TestSpanGeometry(t *testing.T) {
	if encoding.SpanSize != 10240 || encoding.MaxPositions != 40 || encoding.MaxBase != 55296 || encoding.DefaultBase != 20480 {
		t.Fatalf("span constants changed: size %d, positions %d, max base %d, default %d",
			encoding.SpanSize, encoding.MaxPositions, encoding.MaxBase, encoding.DefaultBase)
	}
	for _, s := range edgeSpans {
		last := uint32(s.Base) + encoding.SpanSize - 1
		if uint32(s.Last()) != last {
			t.Errorf("base %d: Last = %d, want %d", s.Base, s.Last(), last)
		}
		if p := s.Port(0, 0); p != s.Base {
			t.Errorf("base %d: Port(0, 0) = %d", s.Base, p)
		}
		if p := s.Port(39, 255); p != s.Last() {
			t.Errorf("base %d: Port(39, 255) = %d, want %d", s.Base, p, s.Last())
		}
		if p := s.Port(1, 0); p != s.Base+256 {
			t.Errorf("base %d: Port(1, 0) = %d, want base+256", s.Base, p)
		}
		if !s.Contains(s.Base) || !s.Contains(s.Last()) {
			t.Errorf("base %d: span does not contain its ends", s.Base)
		}
		if s.Contains(s.Base - 1) {
			t.Errorf("base %d: contains base-1", s.Base)
		}
		if s.Last() < 65535 && s.Contains(s.Last()+1) {
			t.Errorf("base %d: contains last+1", s.Base)
		}
		// Every port of the range: Contains, Split and Port agree.
		n := 0
		for p := range 1 << 16 {
			port := uint16(p)
			pos, b, ok := s.Split(port)
			in := uint32(port) >= uint32(s.Base) && uint32(port) <= last
			if ok != in || s.Contains(port) != in {
				t.Fatalf("base %d: port %d: Split ok=%v, Contains=%v, want %v", s.Base, port, ok, s.Contains(port), in)
			}
			if !ok {
				if pos != 0 || b != 0 {
					t.Fatalf("base %d: Split(%d) outside = (%d, %d), want zeros", s.Base, port, pos, b)
				}
				continue
			}
			n++
			if pos < 0 || pos >= encoding.MaxPositions || s.Port(pos, b) != port {
				t.Fatalf("base %d: Split(%d) = (%d, %d), which maps back to %d", s.Base, port, pos, b, s.Port(pos, b))
			}
		}
		if n != encoding.SpanSize {
			t.Errorf("base %d: %d ports in span, want %d", s.Base, n, encoding.SpanSize)
		}
	}
}

func TestNewSpan(t *testing.T) {
	for _, tt := range []struct {
		base int
		ok   bool
	}{
		{-1, false}, {0, false}, {1023, false},
		{1024, true}, {20480, true}, {32768, true}, {55296, true},
		{55297, false}, {65535, false}, {65536, false}, {1 << 20, false},
	} {
		s, err := encoding.NewSpan(tt.base)
		if (err == nil) != tt.ok {
			t.Errorf("NewSpan(%d) = %v, want ok=%v", tt.base, err, tt.ok)
			continue
		}
		if tt.ok && int(s.Base) != tt.base {
			t.Errorf("NewSpan(%d).Base = %d", tt.base, s.Base)
		}
		if !tt.ok && s != (encoding.Span{}) {
			t.Errorf("NewSpan(%d) = %+v with error, want the zero span", tt.base, s)
		}
	}
	if s, _ := encoding.NewSpan(encoding.DefaultBase); s != encoding.DefaultSpan {
		t.Errorf("DefaultSpan = %+v, NewSpan(DefaultBase) = %+v", encoding.DefaultSpan, s)
	}
}

func TestAppendPortsDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range edgeSpans {
		for _, m := range modes {
			for range 50 {
				knock := randomKnock(r, m)
				ports := s.AppendPorts([]uint16{7}, knock)
				if ports[0] != 7 || len(ports) != 1+len(knock) {
					t.Fatalf("AppendPorts did not append %d ports", len(knock))
				}
				ports = ports[1:]
				for i, p := range ports {
					if p != s.Port(i, knock[i]) {
						t.Fatalf("port %d = %d, want %d", i, p, s.Port(i, knock[i]))
					}
				}
				// Any order, with duplicates.
				seq := append(append([]uint16{}, ports...), ports[:r.IntN(len(ports))]...)
				r.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
				got, err := s.Decode([]byte("x"), seq)
				if err != nil || !bytes.Equal(got, append([]byte("x"), knock...)) {
					t.Fatalf("base %d %v: Decode = %x, %v; want x%x", s.Base, m, got, err, knock)
				}
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	s := encoding.DefaultSpan
	r := rand.New(rand.NewPCG(3, 4))
	knock := randomKnock(r, crypto.ModeSource) // 24 positions
	ports := s.AppendPorts(nil, knock)
	with := func(extra ...uint16) []uint16 { return append(append([]uint16{}, ports...), extra...) }
	without := func(pos int) []uint16 {
		return append(append([]uint16{}, ports[:pos]...), ports[pos+1:]...)
	}
	other := func(pos int) uint16 { return s.Port(pos, knock[pos]+1) }
	header := func(h byte) []uint16 { p := with(); p[0] = s.Port(0, h); return p }

	tests := []struct {
		name  string
		ports []uint16
		want  error
	}{
		{"empty", nil, encoding.ErrTruncated},
		{"below span", with(s.Base - 1), encoding.ErrOutsideSpan},
		{"above span", with(s.Last() + 1), encoding.ErrOutsideSpan},
		{"port 0", with(0), encoding.ErrOutsideSpan},
		{"port 65535", with(65535), encoding.ErrOutsideSpan},
		{"outside span first", append([]uint16{s.Last() + 1}, with(other(3))...), encoding.ErrOutsideSpan},
		// SPEC.md §10.1: outside the span wins, whatever the order.
		{"conflict before outside span", append(with(other(3)), s.Base-1), encoding.ErrOutsideSpan},
		{"conflict", with(other(5)), encoding.ErrConflict},
		{"conflict at header", with(s.Port(0, crypto.Header(crypto.ModeIPv4))), encoding.ErrConflict},
		{"conflict at last", with(other(23)), encoding.ErrConflict},
		{"conflict beyond length", with(s.Port(30, 1), s.Port(30, 2)), encoding.ErrConflict},
		{"no header", ports[1:], encoding.ErrTruncated},
		{"missing middle", without(12), encoding.ErrTruncated},
		{"missing last", without(23), encoding.ErrTruncated},
		{"header only", ports[:1], encoding.ErrTruncated},
		{"extra position 24", with(s.Port(24, 0)), encoding.ErrExtraPackets},
		{"extra position 39", with(s.Port(39, 255)), encoding.ErrExtraPackets},
		{"ipv4 header, source length", header(crypto.Header(crypto.ModeIPv4)), encoding.ErrTruncated},
		{"ipv6 knock, source header", func() []uint16 {
			k6 := randomKnock(r, crypto.ModeIPv6)
			p := s.AppendPorts(nil, k6)
			p[0] = s.Port(0, crypto.Header(crypto.ModeSource))
			return p
		}(), encoding.ErrExtraPackets},
		{"unknown version", header(0x20), crypto.ErrUnknownVersion},
		{"version 0", header(0x00), crypto.ErrUnknownVersion},
		{"unknown mode", header(0x14), crypto.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("dst")
			got, err := s.Decode(dst, tt.ports)
			if err != tt.want {
				t.Errorf("Decode = %v, want %v", err, tt.want)
			}
			if !bytes.Equal(got, []byte("dst")) {
				t.Errorf("Decode returned %q on error, want dst unchanged", got)
			}
		})
	}
}

func TestDecodeAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	knock := randomKnock(r, crypto.ModeIPv6)
	ports := encoding.DefaultSpan.AppendPorts(nil, knock)
	dst := make([]byte, 0, crypto.MaxLen)
	allocs := testing.AllocsPerRun(100, func() { dst, _ = encoding.DefaultSpan.Decode(dst[:0], ports) })
	if allocs != 0 || !bytes.Equal(dst, knock) {
		t.Errorf("Decode into a buffer with room allocates %v times (want 0), result ok=%v", allocs, bytes.Equal(dst, knock))
	}
}
