package encoding_test

import (
	"math/rand/v2"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

// BenchmarkAssemblerAdd is the per-packet cost of assembling: one op is one
// packet of a 40-byte knock, arriving in order.
func BenchmarkAssemblerAdd(b *testing.B) {
	knock := randomKnock(rand.New(rand.NewPCG(23, 24)), crypto.ModeIPv6)
	var a encoding.Assembler
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if a.Add(i, knock[i]) {
			a.Reset()
		}
		if i++; i == len(knock) {
			i = 0
		}
	}
}

// BenchmarkAssemblerAddPort includes splitting the port.
func BenchmarkAssemblerAddPort(b *testing.B) {
	knock := randomKnock(rand.New(rand.NewPCG(23, 24)), crypto.ModeIPv6)
	ports := encoding.DefaultSpan.AppendPorts(nil, knock)
	var a encoding.Assembler
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if a.AddPort(encoding.DefaultSpan, ports[i]) {
			a.Reset()
		}
		if i++; i == len(ports) {
			i = 0
		}
	}
}

// BenchmarkDecode decodes the 40 ports of an IPv6-mode knock.
func BenchmarkDecode(b *testing.B) {
	knock := randomKnock(rand.New(rand.NewPCG(25, 26)), crypto.ModeIPv6)
	ports := encoding.DefaultSpan.AppendPorts(nil, knock)
	dst := make([]byte, 0, crypto.MaxLen)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = encoding.DefaultSpan.Decode(dst[:0], ports); err != nil {
			b.Fatal(err)
		}
	}
}
