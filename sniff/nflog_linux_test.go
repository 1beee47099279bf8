package sniff

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/internal/nstest"
)

// nflogEnv is a server namespace whose nftables ruleset logs the span to
// an NFLOG group and drops it, as the daemon's own table does, and a
// client namespace to send from.
func nflogEnv(t *testing.T, group int, cfg Config, fn func(*Packet)) (*NFLogCapture, nstest.Link, nstest.Link, chan Packet) {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	srv, cli := nstest.New(t, "nfls"), nstest.New(t, "nflc")
	ls, lc := nstest.Connect(srv, cli, 70)
	rules := fmt.Sprintf(`table inet t {
	chain in {
		type filter hook input priority 0;
		meta l4proto { tcp, udp } th dport %d-%d log group %d snaplen 128 drop
	}
}`, testSpan.Base, testSpan.Last(), group)
	cmd := srv.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	if cfg.Span.Base == 0 {
		cfg.Span = testSpan
	}
	var c *NFLogCapture
	if err := srv.Do(func() (err error) {
		c, err = NewNFLog(cfg, uint16(group), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pkts := make(chan Packet, 1<<16)
	if fn == nil {
		fn = func(p *Packet) { pkts <- *p }
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, fn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// The group is bound by NewNFLog; wait until a probe packet (to the
	// span's first port) has come through, delivered or refused, so the
	// test starts from a capture that works.
	for i := 0; ; i++ {
		sendUDP(t, cli, netip.AddrPortFrom(ls.Addr4, testSpan.Base))
		if c.read.Load() > 0 {
			break
		}
		if i > 200 {
			t.Fatal("the group never delivered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c, ls, lc, pkts
}

// TestNFLogCapture: what the kernel logs to the group arrives as knock
// packets, IPv4 and IPv6, UDP and TCP SYN, with the interface it came in
// on; and after Run returns, no more calls are made.
func TestNFLogCapture(t *testing.T) {
	c, ls, lc, pkts := nflogEnv(t, 61, Config{}, nil)
	cli := lc.NS
	sendUDP(t, cli, netip.AddrPortFrom(ls.Addr4, testSpan.Base+7))
	sendUDP(t, cli, netip.AddrPortFrom(ls.Addr6, testSpan.Base+8))
	sendSYN(t, cli, netip.AddrPortFrom(ls.Addr4, testSpan.Base+9))
	want := []string{
		fmt.Sprintf("%v udp/%d", lc.Addr4, testSpan.Base+7),
		fmt.Sprintf("%v udp/%d", lc.Addr6, testSpan.Base+8),
		fmt.Sprintf("%v tcp/%d", lc.Addr4, testSpan.Base+9),
	}
	next := func() Packet {
		for {
			select {
			case p := <-pkts:
				if p.DstPort != testSpan.Base { // not one of nflogEnv's probes
					return p
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no packet")
			}
		}
	}
	for _, w := range want {
		p := next()
		if got := fmt.Sprintf("%v %v/%d", p.Src, p.Transport, p.DstPort); got != w || p.Kind != Knock || p.Ifindex == 0 || p.Time.IsZero() {
			t.Errorf("got %s (%+v), want %s", got, p, w)
		}
	}
	if st := c.Stats(); st.Malformed != 0 || st.Delivered < 4 {
		t.Errorf("stats %+v", st)
	}
}

// TestNFLogInterfaces: with Config.Interfaces, packets that came in on
// another interface are refused (and counted).
func TestNFLogInterfaces(t *testing.T) {
	delivered := make(chan Packet, 16)
	c, ls, lc, _ := nflogEnv(t, 62, Config{Interfaces: []string{"nosuch0"}}, func(p *Packet) { delivered <- *p })
	sendUDP(t, lc.NS, netip.AddrPortFrom(ls.Addr4, testSpan.Base+1))
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Rejected < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := c.Stats(); st.Rejected < 2 || st.Delivered != 0 || len(delivered) != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestNFLogAllocs: the per-packet path, from a batch of messages as the
// kernel wrote it to the callback, allocates nothing. The batch is read
// from a real group; the syscall that reads it allocates nothing either.
func TestNFLogAllocs(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	srv, cli := nstest.New(t, "nfla"), nstest.New(t, "nflb")
	ls, _ := nstest.Connect(srv, cli, 71)
	cmd := srv.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("table inet t { chain in { type filter hook input priority 0; udp dport %d log group 64 snaplen 128 drop; }; }", testSpan.Base))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	var c *NFLogCapture
	if err := srv.Do(func() (err error) {
		c, err = NewNFLog(Config{Span: testSpan}, 64, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sendUDP(t, cli, netip.AddrPortFrom(ls.Addr4, testSpan.Base))
	var msg []byte
	for i := 0; i < 100 && msg == nil; i++ {
		unix.Poll([]unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}, 100)
		if n, err := unix.Read(c.fd, c.buf); err == nil {
			msg = append([]byte(nil), c.buf[:n]...)
		}
	}
	if msg == nil {
		t.Fatal("nothing logged to the group")
	}
	var p Packet
	got := 0
	fn := func(*Packet) { got++ }
	c.batch(msg, &p, fn)
	if got != 1 || c.Stats().Malformed != 0 {
		t.Fatalf("the kernel's message gave %d packets, stats %+v", got, c.Stats())
	}
	if n := testing.AllocsPerRun(1000, func() { c.batch(msg, &p, fn) }); n != 0 {
		t.Errorf("%.1f allocations per packet", n)
	}
}

// FuzzNFLogBatch feeds arbitrary bytes to the netlink message parser:
// never a panic, every message counted as read, malformed or skipped,
// and a packet delivered only when the decoder accepts its payload.
func FuzzNFLogBatch(f *testing.F) {
	// A real message: NFULNL_MSG_PACKET with its header, timestamp,
	// interface and payload attributes (an IPv4 UDP knock packet).
	f.Add(nflogMessage(4, []byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1, 0x9c, 0x40, 0x50, 0x00, 0, 8, 0, 0}))
	f.Add(nflogMessage(0, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &NFLogCapture{dec: newDecoderFor(filterSpec{span: testSpan}), wanted: map[uint32]bool{4: true}, looked: time.Now()}
		var p Packet
		n := 0
		c.batch(b, &p, func(q *Packet) {
			n++
			if !testSpan.Contains(q.DstPort) || q.Kind != Knock || q.Ifindex != 4 {
				t.Fatalf("delivered %+v", q)
			}
		})
		if st := c.Stats(); st.Delivered != uint64(n) || st.Delivered+st.Rejected > st.Read {
			t.Fatalf("stats %+v, %d delivered", st, n)
		}
	})
}

// nflogMessage builds one NFULNL_MSG_PACKET as the kernel lays it out.
func nflogMessage(ifindex uint32, payload []byte) []byte {
	var a []byte
	attr := func(typ uint16, data []byte) {
		a = binary.NativeEndian.AppendUint16(a, uint16(4+len(data)))
		a = binary.NativeEndian.AppendUint16(a, typ)
		a = append(a, data...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
	}
	attr(nfulaPacketHdr, []byte{0x08, 0x00, 1, 0})
	attr(nfulaTimestamp, make([]byte, 16))
	if ifindex != 0 {
		attr(nfulaIfindexIn, binary.BigEndian.AppendUint32(nil, ifindex))
	}
	if payload != nil {
		attr(nfulaPayload, payload)
	}
	m := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+4+len(a)))
	m = binary.NativeEndian.AppendUint16(m, unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket)
	m = binary.NativeEndian.AppendUint16(m, 0)
	m = append(m, make([]byte, 8)...)
	m = append(m, unix.AF_INET, 0, 0, 7)
	return append(m, a...)
}
