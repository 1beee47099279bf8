package sniff

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// capture runs a Sniffer inside a namespace for one test.
type capture struct {
	s    *Sniffer
	pkts chan Packet
}

// startCapture creates the Sniffer inside ns and runs it until the test
// ends. fn, if not nil, replaces the default callback, which queues every
// packet on c.pkts.
func startCapture(t testing.TB, ns *nstest.NS, cfg Config, fn func(*Packet)) *capture {
	t.Helper()
	if cfg.Span.Base == 0 {
		cfg.Span = testSpan
	}
	c := &capture{pkts: make(chan Packet, 1<<16)}
	if fn == nil {
		fn = func(p *Packet) { c.pkts <- *p }
	}
	c.s = newSniffer(t, ns, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.s.Run(ctx, fn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

// newSniffer creates a Sniffer inside ns.
func newSniffer(t testing.TB, ns *nstest.NS, cfg Config) *Sniffer {
	t.Helper()
	var s *Sniffer
	if err := ns.Do(func() (err error) {
		s, err = New(cfg, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// next waits for the next packet; the timeout only keeps a broken capture
// from hanging the test.
func (c *capture) next(t testing.TB) Packet {
	t.Helper()
	select {
	case p := <-c.pkts:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no packet captured")
		return Packet{}
	}
}

func sendUDP(t testing.TB, ns *nstest.NS, dst netip.AddrPort) {
	t.Helper()
	if err := ns.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// sendSYN connects to a closed port: one real SYN, answered by a reset.
func sendSYN(t testing.TB, ns *nstest.NS, dst netip.AddrPort) {
	t.Helper()
	ns.Do(func() error {
		c, err := net.DialTimeout("tcp", dst.String(), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return nil
	})
}

// rawSender sends hand-built IP packets out of one interface through an
// AF_PACKET socket, so that any header (spoofed sources, odd TCP flags)
// can be put on the wire.
type rawSender struct {
	fd      int
	ifindex int
	mac     net.HardwareAddr
}

// linkEnds returns the index and hardware address of from's interface, in
// its namespace, and the hardware address of its peer to.
func linkEnds(t testing.TB, from, to nstest.Link) (ifindex int, src, dst net.HardwareAddr) {
	t.Helper()
	for _, end := range []struct {
		l   nstest.Link
		set func(*net.Interface)
	}{
		{to, func(i *net.Interface) { dst = i.HardwareAddr }},
		{from, func(i *net.Interface) { ifindex, src = i.Index, i.HardwareAddr }},
	} {
		if err := end.l.NS.Do(func() error {
			ifc, err := net.InterfaceByName(end.l.Name)
			if err == nil {
				end.set(ifc)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return ifindex, src, dst
}

func newRawSender(t testing.TB, from nstest.Link, to nstest.Link) *rawSender {
	t.Helper()
	r := &rawSender{}
	r.ifindex, _, r.mac = linkEnds(t, from, to)
	if err := from.NS.Do(func() error {
		var err error
		r.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		// Straight to the driver: the flood test measures the receiver.
		return unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	return r
}

func (r *rawSender) send(data []byte) error {
	proto := uint16(unix.ETH_P_IP)
	if data[0]>>4 == 6 {
		proto = unix.ETH_P_IPV6
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: r.ifindex, Halen: 6}
	copy(sa.Addr[:], r.mac)
	for {
		err := unix.Sendto(r.fd, data, 0, sa)
		if err != unix.ENOBUFS && err != unix.EAGAIN {
			return err
		}
		time.Sleep(50 * time.Microsecond) // driver queue full; try again
	}
}

// mmsghdr is struct mmsghdr of sendmmsg(2), which x/sys/unix lacks.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// sendBatch sends IPv4 packets with one sendmmsg call per batch, the
// fastest way to flood from one thread.
func (r *rawSender) sendBatch(pkts [][]byte) error {
	sa := unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IP), Ifindex: int32(r.ifindex), Halen: 6}
	copy(sa.Addr[:], r.mac)
	iovs := make([]unix.Iovec, len(pkts))
	msgs := make([]mmsghdr, len(pkts))
	for i, p := range pkts {
		iovs[i].Base = &p[0]
		iovs[i].SetLen(len(p))
		msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&sa))
		msgs[i].hdr.Namelen = unix.SizeofSockaddrLinklayer
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.SetIovlen(1)
	}
	for len(msgs) > 0 {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		switch errno {
		case 0:
			msgs = msgs[n:]
		case unix.ENOBUFS, unix.EAGAIN, unix.EINTR:
			time.Sleep(50 * time.Microsecond)
		default:
			return errno
		}
	}
	runtime.KeepAlive(pkts)
	runtime.KeepAlive(&sa)
	return nil
}

// between builds a packet from one address to another.
func between(p pkt, src, dst netip.Addr) pkt {
	p.src, p.dstIP = src, dst
	p.v6 = src.Is6()
	return p
}

// TestCapture sends real packets across a veth pair and checks what is
// delivered: UDP and TCP SYN to the span over IPv4 and IPv6, and none of
// the packets a knock capture must ignore. Packets travel in order over
// the pair, so each batch ends with a packet that must arrive, and
// nothing sent before it may be missing or extra.
func TestCapture(t *testing.T) {
	a, b := nstest.New(t, "snda"), nstest.New(t, "sndb")
	la, lb := nstest.Connect(a, b, 41)
	// An interface with only a link-local address is not captured.
	b.Run("ip", "link", "add", "cklinklocal", "type", "veth", "peer", "name", "cklinkpeer")
	b.Run("ip", "link", "set", "cklinkpeer", "up")
	b.Run("ip", "link", "set", "cklinklocal", "up")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(b.Run("ip", "-6", "addr", "show", "dev", "cklinklocal"), "fe80::"); {
		if time.Now().After(deadline) {
			t.Fatal("no link-local address on the dummy interface")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := startCapture(t, b, Config{}, nil)
	ifindex := ifindexIn(t, b, lb.Name)
	raw := newRawSender(t, la, lb)

	type want struct {
		src   netip.Addr
		port  uint16
		proto ports.Proto
	}
	check := func(w want) {
		t.Helper()
		p := c.next(t)
		if p.Src != w.src || p.DstPort != w.port || p.Transport != w.proto || p.Ifindex != ifindex || p.Time.IsZero() {
			t.Errorf("got %+v, want %+v on ifindex %d", p, w, ifindex)
		}
	}

	for i, pair := range [][2]netip.Addr{{la.Addr4, lb.Addr4}, {la.Addr6, lb.Addr6}} {
		src, dst := pair[0], pair[1]
		port := testSpan.Base + uint16(i)*1000
		sendUDP(t, a, netip.AddrPortFrom(dst, port))
		check(want{src, port, ports.UDP})
		sendSYN(t, a, netip.AddrPortFrom(dst, port+1))
		check(want{src, port + 1, ports.TCP})

		// Ignored: TCP without SYN, SYN-ACK, ports next to the span.
		for _, p := range []pkt{
			{dst: port, ack: true},
			{dst: port, syn: true, ack: true},
			{dst: port, rst: true},
			{dst: testSpan.Base - 1, syn: true},
			{udp: true, dst: testSpan.Base - 1},
			{udp: true, dst: testSpan.Last() + 1},
		} {
			if err := raw.send(between(p, src, dst).bytes(t)); err != nil {
				t.Fatal(err)
			}
		}
		// Ignored: the host's own outgoing packets to the span.
		sendUDP(t, b, netip.AddrPortFrom(src, port+2))
		// Ignored: loopback, not asked for.
		if dst.Is4() {
			sendUDP(t, b, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port+3))
		} else {
			sendUDP(t, b, netip.AddrPortFrom(netip.IPv6Loopback(), port+3))
		}
		spoofed := netip.MustParseAddr("203.0.113.9")
		if dst.Is6() {
			spoofed = netip.MustParseAddr("2001:db8:ffff::9")
		}
		if err := raw.send(between(pkt{udp: true, dst: port + 4}, spoofed, dst).bytes(t)); err != nil {
			t.Fatal(err)
		}
		check(want{spoofed, port + 4, ports.UDP})
	}
	select {
	case p := <-c.pkts:
		t.Errorf("unexpected packet %+v", p)
	default:
	}
	st := c.s.Stats()
	// The kernel filter shed every ignored packet: user space saw only
	// the ones delivered.
	if st.Read != 6 || st.Delivered != 6 || st.Rejected != 0 || st.Dropped != 0 || st.Interfaces != 1 {
		t.Errorf("stats %+v", st)
	}
}

func ifindexIn(t testing.TB, ns *nstest.NS, name string) int {
	t.Helper()
	var i int
	if err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(name)
		if err == nil {
			i = ifc.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return i
}

// TestCaptureLoopback checks that loopback is captured when asked, once
// per packet although the loopback device shows each packet twice
// (outgoing and incoming).
func TestCaptureLoopback(t *testing.T) {
	b := nstest.New(t, "sndl")
	c := startCapture(t, b, Config{Loopback: true}, nil)
	for i, dst := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
		port := testSpan.Base + uint16(i)
		sendUDP(t, b, netip.AddrPortFrom(dst, port))
		sendSYN(t, b, netip.AddrPortFrom(dst, port+100))
		if p := c.next(t); p.Src != dst || p.DstPort != port || p.Transport != ports.UDP {
			t.Errorf("got %+v", p)
		}
		if p := c.next(t); p.Src != dst || p.DstPort != port+100 || p.Transport != ports.TCP {
			t.Errorf("got %+v", p)
		}
	}
	if st := c.s.Stats(); st.Delivered != 4 || st.Read != 4 {
		t.Errorf("stats %+v", st)
	}
}

// TestCaptureFollowsInterfaces takes the captured interface down and up,
// and adds an interface after Run started; both deliver without a
// restart. The capture set changes asynchronously, so the test sends
// until a packet arrives (the deadline only catches a broken capture).
func TestCaptureFollowsInterfaces(t *testing.T) {
	a, b := nstest.New(t, "snfa"), nstest.New(t, "snfb")
	_, lb := nstest.Connect(a, b, 42)
	c := startCapture(t, b, Config{}, nil)

	sendUntil := func(dst netip.Addr) {
		t.Helper()
		port := testSpan.Base + 7
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			sendUDP(t, a, netip.AddrPortFrom(dst, port))
			select {
			case p := <-c.pkts:
				if p.DstPort != port {
					t.Fatalf("got %+v", p)
				}
				for len(c.pkts) > 0 {
					<-c.pkts
				}
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		t.Fatalf("nothing captured from %v", dst)
	}
	sendUntil(lb.Addr4)

	b.Run("ip", "link", "set", lb.Name, "down")
	b.Run("ip", "link", "set", lb.Name, "up")
	sendUntil(lb.Addr4)

	// Without addresses the interface leaves the capture; with one back,
	// it returns.
	b.Run("ip", "addr", "flush", "dev", lb.Name)
	for deadline := time.Now().Add(10 * time.Second); c.s.Stats().Interfaces != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("interface without addresses still captured")
		}
	}
	b.Run("ip", "addr", "add", lb.Addr4.String()+"/24", "dev", lb.Name)
	sendUntil(lb.Addr4)

	// An interface created after start, captured once it has an address.
	_, lb2 := nstest.Connect(a, b, 43)
	sendUntil(lb2.Addr4)
	sendUntil(lb2.Addr6)
	if st := c.s.Stats(); st.Interfaces != 2 {
		t.Errorf("capturing on %d interfaces, want 2", st.Interfaces)
	}
}

// TestCaptureNamed captures on named interfaces only, one of which
// appears (by a rename) after Run started.
func TestCaptureNamed(t *testing.T) {
	a, b := nstest.New(t, "snna"), nstest.New(t, "snnb")
	_, lb1 := nstest.Connect(a, b, 44)
	_, lb2 := nstest.Connect(a, b, 45)
	const later = "ckwanted"
	c := startCapture(t, b, Config{Interfaces: []string{lb2.Name, later}}, nil)
	sendUDP(t, a, netip.AddrPortFrom(lb1.Addr4, testSpan.Base))
	sendUDP(t, a, netip.AddrPortFrom(lb2.Addr4, testSpan.Base+1))
	if p := c.next(t); p.DstPort != testSpan.Base+1 {
		t.Errorf("got %+v from the interface not named", p)
	}
	if st := c.s.Stats(); st.Read != 1 || st.Interfaces != 1 {
		t.Errorf("stats %+v", st)
	}

	b.Run("ip", "link", "set", lb1.Name, "down")
	b.Run("ip", "link", "set", lb1.Name, "name", later)
	b.Run("ip", "link", "set", later, "up")
	// The capture set changes asynchronously: send until a packet
	// arrives (the deadline only catches a broken capture).
	for deadline := time.Now().Add(10 * time.Second); ; {
		sendUDP(t, a, netip.AddrPortFrom(lb1.Addr4, testSpan.Base+2))
		select {
		case p := <-c.pkts:
			if p.DstPort != testSpan.Base+2 || p.Ifindex != ifindexIn(t, b, later) {
				t.Fatalf("got %+v", p)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("renamed interface not captured")
		}
	}
}

// ipChecksum returns the IPv4 header checksum of h (with its checksum
// field zero).
func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// TestFlood sends a bounded flood of UDP packets or TCP SYNs with spoofed sources to
// the span of the capturing namespace's own address, with legitimate
// packets interleaved, and checks that the legitimate packets come
// through and that the counters add up. In the slow_reader case the
// callback spends 20 µs a packet, so the ring overflows: the kernel then
// drops packets, and the capture must keep delivering.
func TestFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 200000 packets")
	}
	for _, c := range []struct {
		name string
		syn  bool
		cost time.Duration
	}{
		{"udp", false, 0},
		{"syn", true, 0},
		{"udp_slow_reader", false, 20 * time.Microsecond},
	} {
		t.Run(c.name, func(t *testing.T) { testFlood(t, c.syn, c.cost) })
	}
}

func testFlood(t *testing.T, syn bool, cost time.Duration) {
	const (
		total = 200000 / 64 * 64
		every = 2000 // one legitimate packet per this many
	)
	a, b := nstest.New(t, "snxa"), nstest.New(t, "snxb")
	la, lb := nstest.Connect(a, b, 46)
	var legit, flood atomic.Uint64
	c := startCapture(t, b, Config{}, func(p *Packet) {
		for t0 := time.Now(); time.Since(t0) < cost; {
		}
		if p.Src == la.Addr4 {
			legit.Add(1)
		} else {
			flood.Add(1)
		}
	})
	raw := newRawSender(t, la, lb)

	// The transport checksum is left as it is: sources and ports vary,
	// so the receiving stack drops the packets after the capture.
	template := between(pkt{udp: !syn, syn: syn, dst: testSpan.Base}, la.Addr4, lb.Addr4).bytes(t)
	// Two senders, one per core, each with its share of the packets.
	const senders = 2
	var sentLegit, sentSpan atomic.Int64
	errc := make(chan error, senders)
	start := time.Now()
	for k := range senders {
		go func() {
			const batch = 64
			bufs := make([][]byte, batch)
			for i := range bufs {
				bufs[i] = append([]byte{}, template...)
			}
			for first := k * batch; first < total; first += senders * batch {
				for j, buf := range bufs {
					i := first + j
					legitimate := i%every == every/2
					if legitimate {
						copy(buf[12:16], la.Addr4.AsSlice())
						sentLegit.Add(1)
					} else {
						// Spoofed sources rotate through 10.0.0.0/8.
						buf[12], buf[13], buf[14], buf[15] = 10, byte(i>>16), byte(i>>8), byte(i)
					}
					// Three in four flood packets aim at the span, the
					// rest just below it, for the kernel filter to shed.
					port := testSpan.Base + uint16(i%encoding.SpanSize)
					if !legitimate && i%4 == 3 {
						port = testSpan.Base - 1 - uint16(i%1000)
					} else {
						sentSpan.Add(1)
					}
					binary.BigEndian.PutUint16(buf[22:24], port)
					buf[10], buf[11] = 0, 0
					binary.BigEndian.PutUint16(buf[10:12], ipChecksum(buf[:20]))
				}
				if err := raw.sendBatch(bufs); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range senders {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)

	// Wait until the capture has read everything the filter passed.
	var st Stats
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		prev := st
		st = c.s.Stats()
		if st.Matched == prev.Matched && st.Read+st.Dropped == st.Matched && st.Delivered == legit.Load()+flood.Load() {
			break
		}
	}
	t.Logf("sent %d packets in %v (%.0f packets/s), %d to the span, %d legitimate", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), sentSpan.Load(), sentLegit.Load())
	t.Logf("stats %+v; legitimate delivered %d, flood delivered %d", st, legit.Load(), flood.Load())

	// The veth pair itself may drop under load, before any capture.
	vethDrops := counter(t, b, lb.Name, "rx_dropped")
	if vethDrops == 0 && st.Matched != uint64(sentSpan.Load()) || st.Matched > uint64(sentSpan.Load()) {
		t.Errorf("kernel filter matched %d packets, %d were sent to the span", st.Matched, sentSpan.Load())
	}
	if st.Read+st.Dropped != st.Matched || st.Delivered+st.Rejected != st.Read {
		t.Errorf("counters do not add up: %+v", st)
	}
	if st.Delivered != legit.Load()+flood.Load() || st.Rejected != 0 {
		t.Errorf("delivered %d, callback saw %d", st.Delivered, legit.Load()+flood.Load())
	}
	// Without ring overflow every legitimate packet must arrive; with it,
	// the kernel drops packets at random, and the capture must still not
	// have gone deaf.
	if st.Dropped == 0 && legit.Load() != uint64(sentLegit.Load()) {
		t.Errorf("%d of %d legitimate packets delivered, none dropped", legit.Load(), sentLegit.Load())
	}
	if legit.Load() == 0 {
		t.Errorf("no legitimate packet delivered during the flood")
	}
}

// counter reads an interface statistic in a namespace.
func counter(t testing.TB, ns *nstest.NS, ifname, name string) uint64 {
	t.Helper()
	out := ns.Run("cat", "/sys/class/net/"+ifname+"/statistics/"+name)
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewBadSpan(t *testing.T) {
	for _, base := range []uint16{0, encoding.MinBase - 1, encoding.MaxBase + 1} {
		if s, err := New(Config{Span: encoding.Span{Base: base}}, nil); err == nil {
			s.Close()
			t.Errorf("base %d accepted", base)
		}
	}
}

// TestRunOnce checks the life cycle: Run returns nil when its context
// ends, and a Sniffer runs once.
func TestRunOnce(t *testing.T) {
	b := nstest.New(t, "snr")
	s := newSniffer(t, b, Config{Span: testSpan})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx, func(*Packet) {}); err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := s.Run(context.Background(), func(*Packet) {}); err == nil {
		t.Error("second Run accepted")
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	st := s.Stats() // after the socket is gone
	if st.Read != 0 {
		t.Errorf("stats %+v", st)
	}

	if err := b.Do(func() (err error) {
		s, err = New(Config{Span: testSpan}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Run(context.Background(), func(*Packet) {}); err == nil {
		t.Error("Run after Close accepted")
	}
}

// TestCaptureTun captures on a layer-3 device (tun, as WireGuard): no
// link-layer header, yet the same filter and decoder apply.
func TestCaptureTun(t *testing.T) {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		nstest.Skip(t, "needs /dev/net/tun (the tun module): %v", err)
	}
	b := nstest.New(t, "sntun")
	const name = "cktun0"
	fd := -1
	if err := b.Do(func() (err error) {
		if fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}); err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	local4, local6 := netip.MustParseAddr("198.18.99.1"), netip.MustParseAddr("2001:db8:99::1")
	b.Run("ip", "addr", "add", local4.String()+"/24", "dev", name)
	b.Run("ip", "-6", "addr", "add", local6.String()+"/64", "dev", name, "nodad")
	b.Run("ip", "link", "set", name, "up")
	c := startCapture(t, b, Config{Interfaces: []string{name}}, nil)
	ifindex := ifindexIn(t, b, name)

	for _, k := range []struct {
		p     pkt
		proto ports.Proto
	}{
		{between(pkt{udp: true, dst: testSpan.Base + 1}, netip.MustParseAddr("198.18.99.2"), local4), ports.UDP},
		{between(pkt{dst: testSpan.Base + 2, syn: true}, netip.MustParseAddr("2001:db8:99::2"), local6), ports.TCP},
	} {
		// Written to the tun file, a packet arrives on the interface.
		if _, err := unix.Write(fd, k.p.bytes(t)); err != nil {
			t.Fatal(err)
		}
		got := c.next(t)
		want := Packet{Src: k.p.src, Dst: k.p.dstIP, DstPort: k.p.dst, Transport: k.proto, Ifindex: ifindex, Time: got.Time}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

// TestRunBatch checks the batches RunBatch hands on: a burst sent in one
// go arrives whole and in order, in batches of at most batchSize, and a
// packet sent alone afterwards is handed on by itself, without waiting
// for a batch to fill.
func TestRunBatch(t *testing.T) {
	a, b := nstest.New(t, "snba"), nstest.New(t, "snbb")
	la, lb := nstest.Connect(a, b, 47)
	s := newSniffer(t, b, Config{Span: testSpan})
	batches := make(chan []Packet, 1<<12)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- s.RunBatch(ctx, func(ps []Packet) { batches <- slices.Clone(ps) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("RunBatch: %v", err)
		}
	})
	raw := newRawSender(t, la, lb)
	template := between(pkt{udp: true, dst: testSpan.Base}, la.Addr4, lb.Addr4).bytes(t)
	packet := func(i int) []byte {
		buf := append([]byte{}, template...)
		binary.BigEndian.PutUint16(buf[22:24], testSpan.Base+uint16(i))
		return buf
	}
	// The capture is ready once a first packet comes through.
	if err := raw.send(packet(0)); err != nil {
		t.Fatal(err)
	}
	recv := func() []Packet {
		select {
		case ps := <-batches:
			return ps
		case <-time.After(10 * time.Second):
			t.Fatal("no batch")
			return nil
		}
	}
	if ps := recv(); len(ps) != 1 {
		t.Fatalf("first batch: %d packets", len(ps))
	}

	const burst = 1000
	bufs := make([][]byte, burst)
	for i := range bufs {
		bufs[i] = packet(1 + i)
	}
	if err := raw.sendBatch(bufs); err != nil {
		t.Fatal(err)
	}
	got, largest := 0, 0
	for got < burst {
		ps := recv()
		largest = max(largest, len(ps))
		if len(ps) == 0 || len(ps) > batchSize {
			t.Fatalf("batch of %d packets", len(ps))
		}
		for _, p := range ps {
			if want := testSpan.Base + uint16(1+got); p.DstPort != want {
				t.Fatalf("packet %d of the burst: port %d, want %d", got, p.DstPort, want)
			}
			got++
		}
	}
	t.Logf("burst of %d packets: largest batch %d", burst, largest)
	if st := s.Stats(); st.Delivered != burst+1 || st.Read != burst+1 {
		t.Errorf("stats after the burst: %+v", st)
	}

	time.Sleep(20 * time.Millisecond)
	if err := raw.send(packet(2000)); err != nil {
		t.Fatal(err)
	}
	if ps := recv(); len(ps) != 1 || ps[0].DstPort != testSpan.Base+2000 {
		t.Errorf("a packet alone: batch %+v", ps)
	}
}
