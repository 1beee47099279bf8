package sniff

import (
	"testing"

	"github.com/cipherknock/cipherknock/ports"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// Trigger ports of the tests: smtp, a range, and two that merge.
var testTriggers = mergeRanges([]ports.Range{{From: 6000, To: 6010}, {From: 25, To: 25}, {From: 26, To: 30}, {From: 443, To: 443}})

func triggerSpec(outgoing bool) filterSpec {
	return filterSpec{span: testSpan, triggers: testTriggers, outgoing: outgoing}
}

func triggerVM(t testing.TB, f filterSpec, outgoing bool) *bpf.VM {
	t.Helper()
	prog, err := bodyProgramFor(f, outgoing)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func TestMergeRanges(t *testing.T) {
	want := []ports.Range{{From: 25, To: 30}, {From: 443, To: 443}, {From: 6000, To: 6010}}
	if len(testTriggers) != len(want) {
		t.Fatalf("%v", testTriggers)
	}
	for i := range want {
		if testTriggers[i] != want[i] {
			t.Fatalf("%v, want %v", testTriggers, want)
		}
	}
}

// TestTriggerFilter: with trigger ports, a gateway's filter passes
// received knocks and received trigger packets; a host's passes received
// knocks and its own outgoing trigger packets, and nothing else. The
// user-space check agrees and tells the kinds apart.
func TestTriggerFilter(t *testing.T) {
	type dir struct{ in, out bool } // accepted received, accepted sent
	cases := []struct {
		name        string
		p           pkt
		gw, host    dir
		kind        Kind
		userAccepts bool
	}{
		{"syn4_smtp", pkt{dst: 25, syn: true}, dir{true, false}, dir{false, true}, Trigger, true},
		{"syn6_range", pkt{v6: true, dst: 28, syn: true}, dir{true, false}, dir{false, true}, Trigger, true},
		{"udp4_range_end", pkt{udp: true, dst: 6010}, dir{true, false}, dir{false, true}, Trigger, true},
		{"udp6_443", pkt{v6: true, udp: true, dst: 443}, dir{true, false}, dir{false, true}, Trigger, true},
		{"syn4_knock", pkt{dst: 25000, syn: true}, dir{true, false}, dir{true, false}, Knock, true},
		{"udp6_knock", pkt{v6: true, udp: true, dst: 20480}, dir{true, false}, dir{true, false}, Knock, true},
		{"syn4_other", pkt{dst: 24, syn: true}, dir{}, dir{}, 0, false},
		{"udp4_other", pkt{udp: true, dst: 6011}, dir{}, dir{}, 0, false},
		{"synack4_smtp", pkt{dst: 25, syn: true, ack: true}, dir{}, dir{}, 0, false},
		{"udp4_smtp_fragment", pkt{udp: true, dst: 25, frag: 0x2000}, dir{}, dir{}, 0, false},
		{"udp6_smtp_hop_by_hop", pkt{v6: true, udp: true, dst: 25, ext: true}, dir{}, dir{}, 0, false},
	}
	for _, outgoing := range []bool{false, true} {
		f := triggerSpec(outgoing)
		in, out := triggerVM(t, f, false), triggerVM(t, f, true)
		d := newDecoderFor(f)
		for _, c := range cases {
			data := c.p.bytes(t)
			want := c.gw
			if outgoing {
				want = c.host
			}
			nIn, err := in.Run(data)
			if err != nil {
				t.Fatal(err)
			}
			nOut, err := out.Run(data)
			if err != nil {
				t.Fatal(err)
			}
			// Without Outgoing the prologue drops every sent packet
			// before the body runs.
			if (nIn > 0) != want.in || outgoing && (nOut > 0) != want.out {
				t.Errorf("outgoing=%v %s: filter passes received %v, sent %v; want %v, %v", outgoing, c.name, nIn > 0, nOut > 0, want.in, want.out)
			}
			var p Packet
			if got := d.decode(data, &p); got != c.userAccepts || got && p.Kind != c.kind {
				t.Errorf("outgoing=%v %s: user space %v %v, want %v %v", outgoing, c.name, got, p.Kind, c.userAccepts, c.kind)
			}
			if c.userAccepts && (p.DstPort != c.p.dst || !p.Dst.IsValid()) {
				t.Errorf("%s: %+v", c.name, p)
			}
		}
	}
}

func TestProgramAssemblesTriggers(t *testing.T) {
	many := make([]ports.Range, 0, 300)
	for i := range 300 {
		many = append(many, ports.Range{From: uint16(1000 + 2*i), To: uint16(1000 + 2*i)})
	}
	for _, f := range []filterSpec{triggerSpec(false), triggerSpec(true), {span: testSpan, triggers: many, outgoing: true}} {
		if _, err := programFor(f, []int{1, 2, 3}); err != nil {
			t.Errorf("%d ranges: %v", len(f.triggers), err)
		}
	}
}

func TestDecodeAllocsTriggers(t *testing.T) {
	d := newDecoderFor(triggerSpec(true))
	var p Packet
	for _, c := range []pkt{{dst: 25, syn: true}, {v6: true, udp: true, dst: 6000}, {dst: 24, syn: true}} {
		data := c.bytes(t)
		if n := testing.AllocsPerRun(100, func() { d.decode(data, &p) }); n != 0 {
			t.Errorf("%+v: %v allocations per packet", c, n)
		}
	}
}

// FuzzTriggerFilterAgrees extends FuzzFilterAgrees to trigger ports: user
// space accepts a packet exactly when the filter passes it in one
// direction or the other (the kernel alone knows which), and takes it for
// a trigger exactly when it is not a received knock.
func FuzzTriggerFilterAgrees(f *testing.F) {
	for _, c := range filterCases {
		f.Add(c.p.bytes(f), false)
	}
	for _, c := range []pkt{{dst: 25, syn: true}, {v6: true, udp: true, dst: 6005}, {dst: 443, syn: true, ack: true}} {
		f.Add(c.bytes(f), true)
	}
	specs := [2]filterSpec{triggerSpec(false), triggerSpec(true)}
	var vms [2][2]*bpf.VM
	var decs [2]*decoder
	for i, s := range specs {
		vms[i][0], vms[i][1] = triggerVM(f, s, false), triggerVM(f, s, true)
		decs[i] = newDecoderFor(s)
	}
	f.Fuzz(func(t *testing.T, data []byte, outgoing bool) {
		i := 0
		if outgoing {
			i = 1
		}
		nIn, err := vms[i][0].Run(data)
		if err != nil {
			t.Fatal(err)
		}
		nOut, err := vms[i][1].Run(data)
		if err != nil {
			t.Fatal(err)
		}
		var p Packet
		user := decs[i].decode(data, &p)
		filter := nIn > 0 || nOut > 0
		switch {
		case user && !filter:
			t.Fatalf("user space accepts what the filter drops: %x", data)
		case !user && filter:
			var ip4 layers.IPv4
			if data[0]>>4 == 4 && data[0]&0xf > 5 && ip4.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil {
				return // malformed IPv4 options, as in FuzzFilterAgrees
			}
			t.Fatalf("filter accepts what user space drops: %x", data)
		case user:
			if (p.Kind == Knock) != (nIn > 0 && testSpan.Contains(p.DstPort)) {
				t.Fatalf("kind %v for %+v (received %d, sent %d)", p.Kind, p, nIn, nOut)
			}
			n := max(nIn, nOut)
			var q Packet
			if !decs[i].decode(data[:min(len(data), int(n))], &q) || q != p {
				t.Fatalf("cut to %d bytes: %+v, whole: %+v", n, q, p)
			}
		}
	})
}
