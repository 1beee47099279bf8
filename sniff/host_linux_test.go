package sniff

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// frameSender sends whole Ethernet frames, link-layer header included, out
// of one interface through a SOCK_RAW packet socket: VLAN tags and
// broadcast or foreign destination MACs can then be put on the wire.
type frameSender struct {
	fd       int
	ifindex  int
	src, dst net.HardwareAddr
}

func newFrameSender(t testing.TB, from, to nstest.Link) *frameSender {
	t.Helper()
	f := &frameSender{}
	f.ifindex, f.src, f.dst = linkEnds(t, from, to)
	if err := from.NS.Do(func() error {
		var err error
		f.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(f.fd) })
	return f
}

// send sends ip behind an Ethernet header to dstMAC (nil: the peer's),
// with an 802.1Q tag for vlan > 0.
func (f *frameSender) send(t testing.TB, dstMAC net.HardwareAddr, vlan int, ip []byte) {
	t.Helper()
	if dstMAC == nil {
		dstMAC = f.dst
	}
	fr := append(append([]byte{}, dstMAC...), f.src...)
	if vlan > 0 {
		fr = append(fr, 0x81, 0x00, byte(vlan>>8), byte(vlan))
	}
	if ip[0]>>4 == 6 {
		fr = append(fr, 0x86, 0xdd)
	} else {
		fr = append(fr, 0x08, 0x00)
	}
	fr = append(fr, ip...)
	sa := &unix.SockaddrLinklayer{Ifindex: f.ifindex, Halen: 6}
	copy(sa.Addr[:], dstMAC)
	if err := unix.Sendto(f.fd, fr, 0, sa); err != nil {
		t.Fatal(err)
	}
}

// TestCaptureHostRules sends, across a veth pair, knock packets that the
// host's own IP stack would never deliver, each followed by a good one:
// only the good ones may be captured. Then a tagged frame for a VLAN the
// host does have arrives once, through the VLAN's interface.
func TestCaptureHostRules(t *testing.T) {
	a, b := nstest.New(t, "snha"), nstest.New(t, "snhb")
	la, lb := nstest.Connect(a, b, 47)
	// The kernel may lack 802.1Q support; the tagged frames are then
	// all foreign, and the part with a VLAN interface cannot run.
	_, vlanErr := b.Try("ip", "link", "add", "link", lb.Name, "name", "ckvlan7", "type", "vlan", "id", "7")
	if vlanErr == nil {
		b.Run("ip", "addr", "add", "198.19.7.2/24", "dev", "ckvlan7")
		b.Run("ip", "link", "set", "ckvlan7", "up")
	}
	c := startCapture(t, b, Config{}, nil)
	fs := newFrameSender(t, la, lb)
	port := testSpan.Base + 77
	udp4 := func(edit func([]byte)) []byte {
		return pkt{udp: true, dst: port, src: la.Addr4, dstIP: lb.Addr4, edit: edit}.bytes(t)
	}
	udp6 := func(src, dst netip.Addr) []byte {
		return pkt{v6: true, udp: true, dst: port, src: src, dstIP: dst}.bytes(t)
	}
	good := udp4(nil)
	bad := []struct {
		name string
		mac  net.HardwareAddr
		vlan int
		ip   []byte
	}{
		{"vlan_tag_no_vlan_interface", nil, 5, good},
		{"broadcast_mac", net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0, good},
		{"multicast_mac", net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, 0, good},
		{"other_host_mac", net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}, 0, good},
		{"total_length_beyond", nil, 0, udp4(func(b []byte) { put16(b[2:], len(b)+8); resum(b) })},
		{"bad_checksum", nil, 0, udp4(func(b []byte) { b[10] ^= 0x10 })},
		{"udp_length_zero", nil, 0, udp4(udpLen(func(int) int { return 0 }))},
		{"udp_length_beyond", nil, 0, udp4(udpLen(func(n int) int { return n + 4 }))},
		{"destination_not_ours", nil, 0, pkt{udp: true, dst: port, src: la.Addr4, dstIP: netip.MustParseAddr("198.51.100.7")}.bytes(t)},
		{"v4mapped_source", nil, 0, udp6(netip.MustParseAddr("::ffff:"+la.Addr4.String()), lb.Addr6)},
		{"v4mapped_destination", nil, 0, udp6(la.Addr6, netip.MustParseAddr("::ffff:"+lb.Addr4.String()))},
	}
	for _, k := range bad {
		fs.send(t, k.mac, k.vlan, k.ip)
		fs.send(t, nil, 0, good)
		if p := c.next(t); p.Src != la.Addr4 || p.DstPort != port {
			t.Fatalf("%s: captured %+v", k.name, p)
		}
		select {
		case p := <-c.pkts:
			t.Fatalf("%s: captured %+v", k.name, p)
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Only the packet to a foreign address got past the kernel filter.
	if st := c.s.Stats(); st.Rejected != 1 || st.Delivered != uint64(len(bad)) {
		t.Errorf("stats %+v, want 1 rejected in user space (the foreign destination)", st)
	}
	t.Run("vlan_interface", func(t *testing.T) {
		if vlanErr != nil {
			t.Skipf("no VLAN interface in this kernel (%v): the tagged frame for a VLAN the host has is not tested", vlanErr)
		}
		// A VLAN the host has: the frame is captured once, untagged, on the
		// VLAN's interface, not also as the tagged copy on the parent.
		vlanIf := ifindexIn(t, b, "ckvlan7")
		fs.send(t, nil, 7, pkt{udp: true, dst: port, src: netip.MustParseAddr("198.19.7.1"), dstIP: netip.MustParseAddr("198.19.7.2")}.bytes(t))
		if p := c.next(t); p.Ifindex != vlanIf || p.Dst != netip.MustParseAddr("198.19.7.2") {
			t.Fatalf("VLAN frame captured as %+v, want it on ifindex %d", p, vlanIf)
		}
		select {
		case p := <-c.pkts:
			t.Fatalf("VLAN frame captured twice: %+v", p)
		case <-time.After(50 * time.Millisecond):
		}
	})
}

// TestProgramAttaches hands every shape of the filter to the kernel, whose
// checker is stricter than bpf.NewVM's (scratch memory must be stored on
// every path before it is loaded, a return falls through for it).
func TestProgramAttaches(t *testing.T) {
	nstest.RequireRoot(t) // CAP_NET_RAW for an AF_PACKET socket
	for _, f := range []filterSpec{{span: testSpan}, {span: testSpan, triggers: []ports.Range{{From: 25, To: 25}, {From: 6000, To: 6010}}}, {span: testSpan, triggers: []ports.Range{{From: 25, To: 25}}, outgoing: true}} {
		for _, ifs := range [][]int{nil, {}, {1, 2}, make([]int, maxFilterInterfaces)} {
			prog, err := programFor(f, ifs)
			if err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
			err = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
			unix.Close(fd)
			if err != nil {
				t.Errorf("outgoing %v, %d trigger ranges, %d interfaces: %v", f.outgoing, len(f.triggers), len(ifs), err)
			}
		}
	}
}

// FuzzProcess is the user-space half of the capture on fuzzed packets and
// frame data (VLAN tag, length before the cut): whatever it accepts the
// host would deliver, an untagged knock packet to one of the host's
// addresses whose length fields the wire length covers.
func FuzzProcess(f *testing.F) {
	for _, c := range filterCases {
		f.Add(c.p.bytes(f), uint8(0), false)
		f.Add(c.p.bytes(f), uint8(1), true)
	}
	local := []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")}
	f.Fuzz(func(t *testing.T, data []byte, extra uint8, tagged bool) {
		s := &Sniffer{dec: newDecoder(testSpan)}
		ifs := []int{3}
		s.ifs.Store(&ifs)
		s.tifs.Store(&[]int{})
		s.addrs.Store(&local)
		wire := len(data) + int(extra) - 128 // shorter or longer than the bytes
		cut := data[:min(len(data), snapLen)]
		var p Packet
		if !s.process(cut, frame{ifindex: 3, wire: wire, tagged: tagged}, &p) {
			return
		}
		switch {
		case tagged:
			t.Fatal("accepted a VLAN-tagged copy")
		case p.Kind == Knock && !slices.Contains(local, p.Dst):
			t.Fatalf("accepted a knock packet for %v", p.Dst)
		case p.Src.Is4In6() || p.Dst.Is4In6():
			t.Fatalf("accepted an IPv4-mapped address: %+v", p)
		}
		var claimed int
		if data[0]>>4 == 4 {
			claimed = int(data[2])<<8 | int(data[3])
		} else {
			claimed = ipv6HeaderLen + (int(data[4])<<8 | int(data[5]))
		}
		if claimed > wire {
			t.Fatalf("accepted a packet claiming %d bytes of %d", claimed, wire)
		}
	})
}
