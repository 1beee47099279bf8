package sniff

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/vishvananda/netlink"
)

// Tests of the log-based captures against the real kernel: /dev/kmsg with
// packets logged by nftables, a record a program writes there, an NFLOG
// group another socket holds, and netlink messages cut or bent.

// allNetnsLog lets packet-log lines from other network namespaces reach
// the kernel log (net.netfilter.nf_log_all_netns = 1) until t ends, as
// e2e's kernelLog does.
func allNetnsLog(t *testing.T) {
	t.Helper()
	const knob = "/proc/sys/net/netfilter/nf_log_all_netns"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Fatalf("%s: %v (nf_log_syslog loaded?)", knob, err)
	}
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(knob, bytes.TrimSpace(old), 0o644) })
}

// TestLogCaptureKmsg: capture = log from /dev/kmsg delivers the packets a
// real nftables "log prefix" rule writes, IPv4 and IPv6, with their
// addresses and ports; a record a program writes to /dev/kmsg, perfect
// as a packet line with the same prefix, is never taken for one; and a
// record of the kernel's without the prefix is read but not counted as
// malformed.
func TestLogCaptureKmsg(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	prefix := fmt.Sprintf("ck-kmsg-%d:", os.Getpid())
	// The kernel's nft log module must be loaded before the knob exists.
	srv, cli := nstest.New(t, "kmsgs"), nstest.New(t, "kmsgc")
	ls, lc := nstest.Connect(srv, cli, 74)
	cmd := srv.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`table inet t {
	chain in {
		type filter hook input priority 0;
		meta l4proto { tcp, udp } th dport %d-%d log prefix "%s " drop
	}
}`, testSpan.Base, testSpan.Last(), prefix))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	allNetnsLog(t)
	c, got, errc := runLog(t, LogConfig{Source: LogKmsg, Prefix: prefix})
	// A forged record first: a program's write to /dev/kmsg gets the
	// user facility, whatever priority it claims.
	forged := fmt.Sprintf("<0>%s IN=%s OUT= MAC= SRC=%v DST=%v LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=4000 DPT=%d LEN=8\n",
		prefix, ls.Name, netip.MustParseAddr("203.0.113.66"), ls.Addr4, testSpan.Base+1)
	if err := os.WriteFile("/dev/kmsg", []byte(forged), 0); err != nil {
		t.Fatal(err)
	}
	// Then real packets; the forged record was read before them.
	sendUDP(t, cli, netip.AddrPortFrom(ls.Addr4, testSpan.Base+2))
	expect(t, got, fmt.Sprintf("%v/%d", lc.Addr4, testSpan.Base+2))
	sendUDP(t, cli, netip.AddrPortFrom(ls.Addr6, testSpan.Base+3))
	expect(t, got, fmt.Sprintf("%v/%d", lc.Addr6, testSpan.Base+3))
	select {
	case g := <-got:
		t.Errorf("also delivered %s", g)
	case <-time.After(200 * time.Millisecond):
	}
	if st := c.Stats(); st.Delivered != 2 || st.Malformed != 0 || st.Read < 2 {
		t.Errorf("stats %+v", st)
	}
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v", err)
	default:
	}
}

// TestKmsgRecords: the record parser reads the priority before ';' and
// takes only the kernel facility's records, up to the first line end
// (continuation lines are not part of the message).
func TestKmsgRecords(t *testing.T) {
	c, err := NewLogCapture(Config{Span: testSpan}, LogConfig{Source: LogStdin, Prefix: "ck:", Stdin: strings.NewReader("")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rec  string
		want bool
	}{
		{"4,345,367461962,-;ck: " + v4line + "\n SUBSYSTEM=net\n", true},
		{"6,1,2,c;ck: " + v4line, true},
		{"12,345,367461962,-;ck: " + v4line + "\n", false},        // user facility (1<<3 | 4)
		{"99999999999,1,2,-;ck: " + v4line + "\n", false},         // absurd priority
		{"4,345,367461962,-ck: " + v4line + "\n", false},          // no ';'
		{"4,345,1,-;\n ck: " + v4line + "\n", false},              // the line on a continuation
		{"4,345,1,-;ck: IN=eth0 OUT= PROTO=ICMP\n", false},        // marked, not a knock packet
		{"4,345,1,-;usb 1-1: new high-speed USB device\n", false}, // not marked
	} {
		n := 0
		var p Packet
		c.record([]byte(tc.rec), &p, func(*Packet) { n++ })
		if (n == 1) != tc.want {
			t.Errorf("%q: delivered %d, want %v", tc.rec, n, tc.want)
		}
	}
	if st := c.Stats(); st.Read != 5 || st.Delivered != 2 || st.Malformed != 1 {
		t.Errorf("stats %+v: want 5 read (records of the kernel facility), 2 delivered, 1 malformed", st)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

// TestLogCaptureRunOnce: Run refuses a second call; Close before Run
// releases the file, after it does nothing.
func TestLogCaptureRunOnce(t *testing.T) {
	path := t.TempDir() + "/kern.log"
	appendTo(t, path, logLine(1, 20481))
	c, err := NewLogCapture(Config{Span: testSpan}, LogConfig{Source: path, Prefix: "ck:"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, got, errc := runLog(t, LogConfig{Source: path, Prefix: "ck:"})
	appendTo(t, path, logLine(2, 20482))
	expect(t, got, "203.0.113.2/20482") // the line from before is not read
	if err := c.Run(context.Background(), func(*Packet) {}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close while running: %v", err)
	}
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v", err)
	default:
	}
}

// TestKindString names both kinds as the logs do.
func TestKindString(t *testing.T) {
	if Knock.String() != "knock" || Trigger.String() != "trigger" {
		t.Errorf("%v %v", Knock, Trigger)
	}
}

// TestNFLogGroupHeld: a group another socket holds is refused by name:
// the process that holds it (found through /proc, as ss -p does), and
// the probe says the same; once it is let go, the probe binds it.
func TestNFLogGroupHeld(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t, "nflheld")
	const group = 65
	err := ns.Do(func() error {
		if err := ProbeNFLog(group); err != nil {
			return fmt.Errorf("probe of a free group: %w", err)
		}
		c, err := NewNFLog(Config{Span: testSpan}, group, nil)
		if err != nil {
			return err
		}
		comm, _ := os.ReadFile("/proc/self/comm")
		want := fmt.Sprintf("sniff: nflog group %d is already bound by process %d (%s)", group, os.Getpid(), strings.TrimSpace(string(comm)))
		for what, err := range map[string]error{
			"CheckNFLogGroup": CheckNFLogGroup(group),
			"ProbeNFLog":      ProbeNFLog(group),
		} {
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s of a held group: %v, want %q", what, err, want)
			}
		}
		_, err = NewNFLog(Config{Span: testSpan}, group, nil)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("second NewNFLog: %v, want %q", err, want)
		}
		if CheckNFLogGroup(group+1) != nil {
			t.Error("a free group reported as held")
		}
		if err := c.Close(); err != nil {
			return err
		}
		if err := c.Close(); err != nil {
			return fmt.Errorf("second Close: %w", err)
		}
		if err := c.Run(context.Background(), func(*Packet) {}); err == nil || !strings.Contains(err.Error(), "after Close") {
			t.Errorf("Run after Close: %v", err)
		}
		if err := CheckNFLogGroup(group); err != nil {
			t.Errorf("group still held after Close: %v", err)
		}
		return ProbeNFLog(group)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg   Config
		group uint16
		want  string
	}{
		{Config{Span: testSpan}, 0, "group 0"},
		{Config{Span: testSpan, Triggers: []ports.Range{{From: 80, To: 80}}}, 1, "AF_PACKET"},
	} {
		if c, err := NewNFLog(tc.cfg, tc.group, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			if c != nil {
				c.Close()
			}
			t.Errorf("NewNFLog(%+v, %d): %v, want %q", tc.cfg, tc.group, err, tc.want)
		}
	}
}

// TestProbes: as root, a packet socket opens; /dev/kmsg opens, and from a
// namespace other than the first the kmsg probe says why packet-log lines
// may not reach it.
func TestProbes(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	if err := ProbePacket(); err != nil {
		t.Errorf("ProbePacket: %v", err)
	}
	if _, err := os.Stat("/proc/sys/net/netfilter/nf_log_all_netns"); err == nil {
		note, err := ProbeKmsg()
		if err != nil || note != "" {
			t.Errorf("ProbeKmsg in the first namespace: %q, %v", note, err)
		}
	}
	ns := nstest.New(t, "probe")
	ns.Run("nft", "add", "table", "inet", "t") // loads netfilter in the namespace
	if err := ns.Do(func() error {
		note, err := ProbeKmsg()
		if err != nil {
			return err
		}
		if !strings.Contains(note, "nf_log_all_netns") {
			t.Errorf("ProbeKmsg in another namespace: note %q", note)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestNFLogRunOnce: Run refuses a second call, and Close while it runs
// leaves the socket to it.
func TestNFLogRunOnce(t *testing.T) {
	c, ls, lc, pkts := nflogEnv(t, 66, Config{}, nil)
	if err := c.Run(context.Background(), func(*Packet) {}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close while running: %v", err)
	}
	sendUDP(t, lc.NS, netip.AddrPortFrom(ls.Addr4, testSpan.Base+5))
	for {
		select {
		case p := <-pkts:
			if p.DstPort == testSpan.Base+5 {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no packet after Close")
		}
	}
}

// nflogAttr appends one netlink attribute.
func nflogAttr(a []byte, typ uint16, data []byte) []byte {
	a = binary.NativeEndian.AppendUint16(a, uint16(4+len(data)))
	a = binary.NativeEndian.AppendUint16(a, typ)
	a = append(a, data...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

// nflogWrap wraps attributes in an NFULNL_MSG_PACKET of type typ.
func nflogWrap(typ uint16, attrs []byte) []byte {
	m := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+4+len(attrs)))
	m = binary.NativeEndian.AppendUint16(m, typ)
	m = binary.NativeEndian.AppendUint16(m, 0)
	m = append(m, make([]byte, 8)...)
	m = append(m, unix.AF_INET, 0, 0, 7)
	return append(m, attrs...)
}

// TestNFLogMalformed: each way a netlink message can be cut or bent is
// counted and delivers nothing; a packet without a kernel timestamp gets
// the time it was read; other message types are skipped; the interface
// rule is applied to the index the kernel gives.
func TestNFLogMalformed(t *testing.T) {
	pkt := []byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1, 0x9c, 0x40, 0x50, 0x00, 0, 8, 0, 0}
	binary.BigEndian.PutUint16(pkt[10:], ipChecksum(pkt[:20]))
	good := nflogMessage(4, pkt)
	ifx := binary.BigEndian.AppendUint32(nil, 4)
	noStamp := nflogWrap(unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket, nflogAttr(nflogAttr(nil, nfulaIfindexIn, ifx), nfulaPayload, pkt))
	outside := bytes.Clone(pkt)
	binary.BigEndian.PutUint16(outside[22:], testSpan.Base-1)
	for _, tc := range []struct {
		name                string
		b                   []byte
		delivered, rejected uint64
		malformed           uint64
	}{
		{"good", good, 1, 0, 0},
		{"two in one read", append(bytes.Clone(good), good...), 2, 0, 0},
		{"no timestamp", noStamp, 1, 0, 0},
		{"length beyond the read", good[:len(good)-4], 0, 0, 1},
		{"length below a header", append([]byte{4, 0, 0, 0}, good[4:]...), 0, 0, 1},
		{"no nfgenmsg", nflogHeaderOnly(), 0, 0, 1},
		{"attribute too long", nflogWrap(unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket, []byte{200, 0, 9, 0, 1, 2, 3, 4}), 0, 0, 1},
		{"attribute too short", nflogWrap(unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket, []byte{2, 0, 9, 0}), 0, 0, 1},
		{"no payload", nflogMessage(4, nil), 0, 0, 1},
		{"no interface", nflogMessage(0, pkt), 0, 0, 1},
		{"short interface", nflogWrap(unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket, nflogAttr(nflogAttr(nil, nfulaIfindexIn, []byte{4}), nfulaPayload, pkt)), 0, 0, 1},
		{"port outside the span", nflogMessage(4, outside), 0, 1, 0},
		{"interface not captured", nflogMessage(5, pkt), 0, 1, 0},
		{"not a packet message", nflogWrap(unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgConfig, nil), 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &NFLogCapture{dec: newDecoderFor(filterSpec{span: testSpan}), wanted: map[uint32]bool{4: true, 5: false}, looked: time.Now()}
			var p Packet
			var at []time.Time
			before := time.Now()
			c.batch(tc.b, &p, func(q *Packet) { at = append(at, q.Time) })
			st := c.Stats()
			if st.Delivered != tc.delivered || st.Rejected != tc.rejected || st.Malformed != tc.malformed || uint64(len(at)) != tc.delivered {
				t.Errorf("stats %+v, %d delivered; want %d delivered, %d rejected, %d malformed", st, len(at), tc.delivered, tc.rejected, tc.malformed)
			}
			if tc.name == "no timestamp" && len(at) == 1 && at[0].Before(before) {
				t.Errorf("time %v, before the read at %v", at[0], before)
			}
			if tc.name == "good" && len(at) == 1 && !at[0].Equal(time.Unix(0, 0)) {
				t.Errorf("time %v, want the kernel's (the epoch here)", at[0])
			}
		})
	}
}

// nflogHeaderOnly is a packet message of nothing but its netlink header.
func nflogHeaderOnly() []byte {
	m := binary.NativeEndian.AppendUint32(nil, unix.NLMSG_HDRLEN)
	m = binary.NativeEndian.AppendUint16(m, unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket)
	return append(m, make([]byte, 10)...)
}

// TestNFLogCapturedInterfaces: the interface rule of NFLOG capture, on
// the namespace's real interfaces: every one but loopback by default,
// loopback with Loopback, only the named ones with Interfaces; an index
// that appears later is looked up, at most once a second.
func TestNFLogCapturedInterfaces(t *testing.T) {
	nstest.RequireRoot(t)
	a, b := nstest.New(t, "nflifa"), nstest.New(t, "nflifb")
	la, _ := nstest.Connect(a, b, 75)
	if err := a.Do(func() error {
		veth, err := net.InterfaceByName(la.Name)
		if err != nil {
			return err
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		for _, tc := range []struct {
			cfg           Config
			veth, loopbck bool
		}{
			{Config{}, true, false},
			{Config{Loopback: true}, true, true},
			{Config{Interfaces: []string{"lo"}}, false, true},
			{Config{Interfaces: []string{"nosuch0"}}, false, false},
		} {
			nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
			if err != nil {
				return err
			}
			c := &NFLogCapture{cfg: tc.cfg, nl: nl, wanted: make(map[uint32]bool)}
			defer nl.Close()
			if got := c.captured(uint32(veth.Index)); got != tc.veth {
				t.Errorf("%+v: %s captured %v", tc.cfg, la.Name, got)
			}
			if got := c.captured(uint32(lo.Index)); got != tc.loopbck {
				t.Errorf("%+v: lo captured %v", tc.cfg, got)
			}
			// An index no interface has: looked up once, then refused
			// from the cache until a second has passed.
			if c.captured(1 << 30) {
				t.Errorf("%+v: an absent interface captured", tc.cfg)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// An interface made after the first lookup is found once a second
	// has passed since it.
	c := &NFLogCapture{wanted: make(map[uint32]bool)}
	if err := a.Do(func() error {
		// The capture's handle is in the namespace it was made in.
		nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		c.nl = nl
		t.Cleanup(nl.Close)
		c.captured(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	lnew, _ := nstest.Connect(a, b, 76)
	if err := a.Do(func() error {
		d, err := net.InterfaceByName(lnew.Name)
		if err != nil {
			return err
		}
		c.looked = time.Now() // as if the lookup before it were just now
		if c.captured(uint32(d.Index)) {
			t.Error("a new interface captured within a second of the last lookup (the cache is not used)")
		}
		c.looked = time.Now().Add(-2 * time.Second)
		if !c.captured(uint32(d.Index)) {
			t.Error("a new interface not captured after the cache expired")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestLogLineHostile: a line a remote syslog or another program could
// forge into the stream is refused unless it reads as exactly one packet:
// every field that says which packet it is appears once, addresses carry
// no zone, ports come after the protocol and have no leading zeros.
func TestLogLineHostile(t *testing.T) {
	l := NewLogLine("ck:", Config{Span: testSpan})
	const (
		head = "ck: IN=eth0 OUT= MAC= "
		addr = "SRC=203.0.113.9 DST=198.51.100.1 "
		rest = "LEN=28 TTL=64 ID=1 PROTO=UDP SPT=4000 DPT=20500 LEN=8"
	)
	var p Packet
	if !l.Parse([]byte(head+addr+rest), &p) || p.DstPort != 20500 {
		t.Fatalf("the base line is refused: %+v", p)
	}
	for _, line := range []string{
		"ck: IN=eth0 IN=eth1 OUT= MAC= " + addr + rest,
		"ck: IN=eth0 OUT= OUT=eth1 MAC= " + addr + rest,
		head + "SRC=203.0.113.9 SRC=203.0.113.10 DST=198.51.100.1 " + rest,
		head + "SRC=203.0.113.9 DST=198.51.100.1 DST=198.51.100.2 " + rest,
		head + "SRC= DST=198.51.100.1 " + rest,
		head + "SRC=203.0.113.999 DST=198.51.100.1 " + rest,
		head + "SRC=fe80::1%eth0 DST=fe80::2 " + rest,
		head + "SRC=2001:db8::1 DST=fe80::2%eth0 " + rest,
		head + addr + "SPT=4000 PROTO=UDP DPT=20500 LEN=8",
		head + addr + "DPT=20500 PROTO=UDP SPT=4000 LEN=8",
		head + addr + "PROTO=UDP SPT=4000 SPT=4001 DPT=20500 LEN=8",
		head + addr + "PROTO=UDP SPT=4000 DPT=20500 DPT=20501 LEN=8",
		head + addr + "PROTO=UDP SPT=04000 DPT=20500 LEN=8",
		head + addr + "PROTO=UDP SPT=4000 DPT=020500 LEN=8",
		head + addr + "PROTO=UDP SPT=4000 DPT=+20500 LEN=8",
		head + addr + "PROTO=UDP SPT=4000 DPT=65536 LEN=8",
		head + addr + "PROTO=UDP SPT=4000 DPT= LEN=8",
		head + addr + "PROTO=SCTP SPT=4000 DPT=20500",
		head + addr + "PROTO=UDP SPT=4000 DPT=20500 LEN=8 PROTO=UDP SPT=1 DPT=20501",
	} {
		if l.Parse([]byte(line), &p) {
			t.Errorf("accepted %q as %+v", line, p)
		}
	}
}

// TestNewRefusesTriggers: trigger ranges that are empty, start at 0 or
// touch the span are refused before any socket is opened.
func TestNewRefusesTriggers(t *testing.T) {
	for _, r := range []ports.Range{{From: 0, To: 10}, {From: 90, To: 80}, {From: testSpan.Base, To: testSpan.Base}, {From: testSpan.Last(), To: 65535}, {From: 1, To: 65535}} {
		s, err := New(Config{Span: testSpan, Triggers: []ports.Range{{From: 80, To: 80}, r}}, nil)
		if err == nil {
			s.Close()
			t.Errorf("trigger range %v accepted", r)
		} else if !strings.Contains(err.Error(), "trigger ports") {
			t.Errorf("trigger range %v: %v", r, err)
		}
	}
	if _, err := New(Config{Span: encoding.Span{Base: 7}}, nil); err == nil {
		t.Error("a span base below 1024 accepted")
	}
}

// TestAsmRefusesBadJumps: the filter assembler refuses a program it
// cannot encode (a jump to a label never placed, one backwards, one past
// the 255 instructions a conditional jump can skip) instead of emitting a
// jump to the wrong instruction.
func TestAsmRefusesBadJumps(t *testing.T) {
	for name, build := range map[string]func(a *asm){
		"undefined true label":  func(a *asm) { a.jif(bpf.JumpEqual, 1, "nowhere", "") },
		"undefined false label": func(a *asm) { a.jif(bpf.JumpEqual, 1, "", "nowhere"); a.label("end") },
		"backwards": func(a *asm) {
			a.label("top")
			a.emit(bpf.RetConstant{Val: 0})
			a.jump("top")
		},
		"too far": func(a *asm) {
			a.jif(bpf.JumpEqual, 1, "far", "")
			for range 300 {
				a.emit(bpf.RetConstant{Val: 0})
			}
			a.label("far")
			a.emit(bpf.RetConstant{Val: 1})
		},
	} {
		var a asm
		build(&a)
		if prog, err := a.resolve(); err == nil {
			t.Errorf("%s: resolved to %d instructions", name, len(prog))
		}
	}
	var a asm
	a.jif(bpf.JumpEqual, 1, "yes", "")
	a.emit(bpf.RetConstant{Val: 0})
	a.label("yes")
	a.emit(bpf.RetConstant{Val: 1})
	prog, err := a.resolve()
	if err != nil || len(prog) != 3 {
		t.Fatalf("a good program: %v, %v", prog, err)
	}
	if j, ok := prog[0].(bpf.JumpIf); !ok || j.SkipTrue != 1 || j.SkipFalse != 0 {
		t.Errorf("jump %#v, want to skip one instruction when true", prog[0])
	}
}

// TestLogSourceNotAFile: a log source that is a directory is refused at
// NewLogCapture with one error naming it; standard input is the default
// stream for LogStdin.
func TestLogSourceNotAFile(t *testing.T) {
	dir := t.TempDir()
	if c, err := NewLogCapture(Config{Span: testSpan}, LogConfig{Source: dir, Prefix: "ck:"}, nil); err == nil {
		c.Close()
		t.Errorf("a directory accepted as a log file")
	} else if !strings.HasPrefix(err.Error(), "sniff: log file: ") {
		t.Errorf("directory: %v", err)
	}
	c, err := NewLogCapture(Config{Span: testSpan}, LogConfig{Source: LogStdin, Prefix: "ck:"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.Stdin != os.Stdin {
		t.Error("LogStdin without a reader does not read standard input")
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}
