//go:build linux && pcap

package sniff

import (
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// sourceName names the capture source in BenchmarkLatency's results.
const sourceName = "libpcap"

// TestPcapExpr runs libpcap's compiled filter in the BPF VM on packets
// behind a LINUX_SLL2 header: it must pass every packet the user-space
// check accepts, only on the chosen interfaces, and never an outgoing
// one.
func TestPcapExpr(t *testing.T) {
	ins, err := pcap.CompileBPFFilter(layers.LinkTypeLinuxSLL2, sll2Len+snapLen, pcapExpr(testSpan, []int{3, 7}))
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(ins))
	for i, in := range ins {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("libpcap's program does not disassemble")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(testSpan)
	for _, c := range filterCases {
		data := c.p.bytes(t)
		var p Packet
		user := d.decode(data, &p)
		for _, k := range []struct {
			ifindex int
			pkttype byte
			pass    bool // may pass
		}{{3, 0, true}, {7, 0, true}, {4, 0, false}, {3, packetOutgoing, false}, {3, 1, false}, {3, 2, false}, {3, 3, false}} {
			hdr := make([]byte, sll2Len, sll2Len+len(data))
			proto := uint16(0x0800)
			if c.p.v6 {
				proto = 0x86dd
			}
			binary.BigEndian.PutUint16(hdr[0:], proto)
			binary.BigEndian.PutUint32(hdr[4:], uint32(k.ifindex))
			binary.BigEndian.PutUint16(hdr[8:], 1) // ARPHRD_ETHER
			hdr[10] = k.pkttype
			n, err := vm.Run(append(hdr, data...))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case k.pass && user && n == 0:
				t.Errorf("%s on %d (type %d): refused", c.name, k.ifindex, k.pkttype)
			case !k.pass && n != 0:
				t.Errorf("%s on %d (type %d): passed", c.name, k.ifindex, k.pkttype)
			}
		}
	}
}
