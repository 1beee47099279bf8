package main

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The memory figure counts on distinct spoofed sources.
func TestSpoofedDistinct(t *testing.T) {
	const n = 1 << 21
	seen := make(map[[4]byte]bool, n)
	for i := uint32(0); i < n; i++ {
		a := spoofed(i)
		if a[0] != 10 {
			t.Fatalf("spoofed(%d) = %v, outside 10.0.0.0/8", i, a)
		}
		if seen[a] {
			t.Fatalf("spoofed(%d) = %v repeats an earlier source", i, a)
		}
		seen[a] = true
	}
}

func testSender(targets []noiseTarget) *noiseSender {
	return &noiseSender{
		dstMAC:  net.HardwareAddr{2, 0, 0, 0, 0, 1},
		srcMAC:  net.HardwareAddr{2, 0, 0, 0, 0, 2},
		targets: targets,
		rng:     rand.New(rand.NewPCG(1, 2)),
	}
}

// Frames must be valid IPv4 with correct checksums, or the server's stack
// would drop them before the firewall and the daemons would be measured
// against cheaper noise than a real flood.
func TestFrames(t *testing.T) {
	for _, targets := range [][]noiseTarget{ckNoise, knockdSystem{}.noiseTargets(), (&fwknopdSystem{}).noiseTargets()} {
		s := testSender(targets)
		buf := make([]byte, 256)
		for i := 0; i < 1000; i++ {
			n := s.frame(buf)
			f := buf[:n]
			if binary.BigEndian.Uint16(f[12:]) != 0x0800 {
				t.Fatal("not IPv4")
			}
			ip := f[14:]
			if checksum(ip[:20], 0) != 0 {
				t.Fatalf("bad IP checksum in % x", ip[:20])
			}
			if int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
				t.Fatalf("IP length %d, frame carries %d", binary.BigEndian.Uint16(ip[2:]), len(ip))
			}
			if [4]byte(ip[16:20]) != srvAddr.As4() {
				t.Fatalf("destination %v", ip[16:20])
			}
			l4 := ip[20:]
			pseudo := pseudoSum([4]byte(ip[12:16]), [4]byte(ip[16:20]), ip[9], len(l4))
			if checksum(l4, pseudo) != 0 {
				t.Fatalf("bad transport checksum (proto %d)", ip[9])
			}
			port := binary.BigEndian.Uint16(l4[2:])
			ok := false
			for _, tg := range targets {
				ok = ok || tg.proto == ip[9] && port >= tg.from && port <= tg.to
			}
			if !ok {
				t.Fatalf("proto %d port %d is not a target", ip[9], port)
			}
			if ip[9] == unix.IPPROTO_TCP && l4[13] != 0x02 {
				t.Fatalf("TCP flags %#x, want SYN", l4[13])
			}
		}
	}
}

// The observer's kernel filter passes the client's traffic in both
// directions and nothing else.
func TestClientFilter(t *testing.T) {
	prog, err := clientFilter()
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]bpf.Instruction, len(prog))
	for i, r := range prog {
		ins[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(etype uint16, src, dst [4]byte) []byte {
		b := make([]byte, 14+20+8)
		binary.BigEndian.PutUint16(b[12:], etype)
		b[14] = 0x45
		copy(b[26:], src[:])
		copy(b[30:], dst[:])
		return b
	}
	srv := srvAddr.As4()
	for _, c := range []struct {
		name     string
		b        []byte
		accepted bool
	}{
		{"from client", frame(0x0800, [4]byte{198, 18, 1, 7}, srv), true},
		{"to client", frame(0x0800, srv, [4]byte{198, 18, 1, 250}), true},
		{"spoofed noise", frame(0x0800, [4]byte{10, 1, 2, 3}, srv), false},
		{"noise namespace", frame(0x0800, noiseAddr.As4(), srv), false},
		{"not IPv4", frame(0x86dd, [4]byte{198, 18, 1, 7}, srv), false},
	} {
		n, err := vm.Run(c.b)
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != c.accepted {
			t.Errorf("%s: filter returned %d", c.name, n)
		}
	}
}

func TestQuantile(t *testing.T) {
	xs := make([]float64, 200)
	for i := range xs {
		xs[len(xs)-1-i] = float64(i + 1)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 100}, {0.9, 180}, {0.99, 198}, {1, 200}} {
		if got := quantile(xs, c.q); got != c.want {
			t.Errorf("quantile(1..200, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if xs[0] != 200 {
		t.Error("quantile sorted its input in place")
	}
}
