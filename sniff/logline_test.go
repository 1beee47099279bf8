package sniff

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/ports"
)

// testdata/kernel-log-lines.txt holds lines read from /dev/kmsg on Linux
// 6.18, logged by nftables "log prefix" and iptables LOG rules in a
// network namespace for UDP and TCP SYN packets (IPv4, IPv6), an ICMP
// error quoting a UDP packet, an IPv6 neighbour solicitation, a
// reassembled IPv4 datagram and an IPv6 first fragment. Their verdicts
// below are what the packet decoder gives the same packets.
func realLines(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/kernel-log-lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestLogLineReal(t *testing.T) {
	l := NewLogLine("cktest", Config{Span: testSpan})
	want := map[int]string{ // line number → expected packet, "" for refused
		0: "", // ckipt prefix, not ours
		1: "198.18.77.2 → 198.18.77.1 udp/20500",
		2: "",
		3: "198.18.77.2 → 198.18.77.1 tcp/20501",
		4: "2001:db8:77::2 → 2001:db8:77::1 udp/20502",
		5: "2001:db8:77::2 → 2001:db8:77::1 tcp/20503",
		6: "",                                    // ICMP error quoting a UDP packet
		7: "",                                    // ICMPv6
		8: "198.18.77.2 → 198.18.77.1 udp/20504", // reassembled by the host before the input hook
		9: "",                                    // IPv6 first fragment (FRAG:0): an extension header
	}
	lines := realLines(t)
	if len(lines) != len(want) {
		t.Fatalf("%d lines in testdata, want %d", len(lines), len(want))
	}
	for i, line := range lines {
		var p Packet
		got := ""
		if l.Parse([]byte(line), &p) {
			got = fmt.Sprintf("%v → %v %v/%d", p.Src, p.Dst, p.Transport, p.DstPort)
		}
		if got != want[i] {
			t.Errorf("line %d: got %q, want %q\n%s", i, got, want[i], line)
		}
	}
	// The iptables line is read with its own prefix; its port is outside the span.
	var p Packet
	if NewLogLine("ckipt", Config{Span: testSpan}).Parse([]byte(lines[0]), &p) {
		t.Error("port 31000 is outside the span")
	}
}

const v4line = "IN=eth0 OUT= MAC=aa:bb SRC=203.0.113.9 DST=198.51.100.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=UDP SPT=4000 DPT=20500 LEN=8"

func TestLogLineWrappers(t *testing.T) {
	l := NewLogLine("ck:", Config{Span: testSpan})
	for _, line := range []string{
		"ck: " + v4line,
		"4,345,367461962,-;ck: " + v4line, // /dev/kmsg
		"Dec  2 02:18:40 fw kernel: [ 1234.567890] ck: " + v4line,           // syslog
		"2026-12-02T02:18:40.123456+00:00 fw kernel: ck: " + v4line + "\r",  // rsyslog, CRLF
		"<4>Dec  2 02:18:40 fw kernel: [1234.5]ck: " + v4line + " UID=1000", // remote syslog, extra field
	} {
		var p Packet
		if !l.Parse([]byte(line), &p) || p.Src != netip.MustParseAddr("203.0.113.9") || p.DstPort != 20500 || p.Transport != ports.UDP {
			t.Errorf("not read: %q → %+v", line, p)
		}
	}
}

func TestLogLineRefuses(t *testing.T) {
	sp := testSpan
	l := NewLogLine("ck:", Config{Span: sp, Interfaces: []string{"eth0"}})
	tcp := "ck: IN=eth0 OUT= SRC=203.0.113.9 DST=198.51.100.1 LEN=40 TTL=64 ID=1 PROTO=TCP SPT=4000 DPT=20500 WINDOW=1 RES=0x00 %s URGP=0"
	cases := map[string]string{
		"other prefix":          "xck: " + v4line,
		"prefix inside a field": "a=ck: " + v4line,
		"no prefix":             v4line,
		"other interface":       "ck: " + strings.Replace(v4line, "IN=eth0", "IN=eth1", 1),
		"forwarded":             "ck: " + strings.Replace(v4line, "OUT= ", "OUT=eth1 ", 1),
		"no OUT":                "ck: " + strings.Replace(v4line, "OUT= ", "", 1),
		"first fragment":        "ck: " + strings.Replace(v4line, " DF ", " MF ", 1),
		"later fragment":        "ck: " + strings.Replace(v4line, " DF ", " FRAG:100 ", 1),
		"port below span":       "ck: " + strings.Replace(v4line, "DPT=20500", "DPT=20479", 1),
		"port above span":       "ck: " + strings.Replace(v4line, "DPT=20500", fmt.Sprintf("DPT=%d", sp.Last()+1), 1),
		"port out of range":     "ck: " + strings.Replace(v4line, "DPT=20500", "DPT=85536", 1),
		"port with sign":        "ck: " + strings.Replace(v4line, "DPT=20500", "DPT=+20500", 1),
		"leading zero port":     "ck: " + strings.Replace(v4line, "DPT=20500", "DPT=020500", 1),
		"two DPT":               "ck: " + v4line + " DPT=20501",
		"two SRC":               "ck: " + strings.Replace(v4line, "DST=", "SRC=203.0.113.8 DST=", 1),
		"mixed families":        "ck: " + strings.Replace(v4line, "DST=198.51.100.1", "DST=2001:db8::1", 1),
		"v4 with v6 fields":     "ck: " + strings.Replace(v4line, "TTL=64", "HOPLIMIT=64", 1),
		"zone":                  "ck: " + strings.Replace(strings.Replace(v4line, "SRC=203.0.113.9", "SRC=fe80::1%eth0", 1), "DST=198.51.100.1", "DST=fe80::2", 1),
		"bad address":           "ck: " + strings.Replace(v4line, "SRC=203.0.113.9", "SRC=203.0.113.256", 1),
		"icmp":                  "ck: " + strings.Replace(v4line, "PROTO=UDP", "PROTO=ICMP", 1),
		"tcp syn-ack":           fmt.Sprintf(tcp, "ACK SYN"),
		"tcp ack":               fmt.Sprintf(tcp, "ACK"),
		"tcp no flags":          fmt.Sprintf(tcp, ""),
		"truncated":             "ck: " + v4line[:strings.Index(v4line, "DPT=")],
		"ports before PROTO":    "ck: IN=eth0 OUT= SRC=203.0.113.9 DST=198.51.100.1 SPT=1 DPT=20500 PROTO=UDP",
		"quoted packet":         "ck: IN=eth0 OUT= SRC=203.0.113.9 DST=198.51.100.1 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.1 DST=203.0.113.9 PROTO=UDP SPT=1 DPT=20500 ]",
	}
	for name, line := range cases {
		var p Packet
		if l.Parse([]byte(line), &p) {
			t.Errorf("%s: accepted %q", name, line)
		}
	}
	var p Packet
	if !l.Parse([]byte(fmt.Sprintf(tcp, "SYN")), &p) || p.Transport != ports.TCP {
		t.Error("a TCP SYN line was refused")
	}
	// An IPv4-mapped source is an IPv6 address, never merged with the IPv4 one.
	m := "ck: IN=eth0 OUT= SRC=0000:0000:0000:0000:0000:ffff:cb00:7109 DST=2001:db8::1 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=20500 LEN=8"
	if !l.Parse([]byte(m), &p) || p.Src.Is4() || p.Src == netip.MustParseAddr("203.0.113.9") {
		t.Errorf("mapped source read as %v", p.Src)
	}
}

// TestLogLineAllocs: parsing a line, accepted or refused, allocates
// nothing.
func TestLogLineAllocs(t *testing.T) {
	l := NewLogLine("cktest", Config{Span: testSpan})
	var lines [][]byte
	for _, line := range realLines(t) {
		lines = append(lines, []byte(line))
	}
	var p Packet
	if n := testing.AllocsPerRun(1000, func() {
		for _, line := range lines {
			l.Parse(line, &p)
		}
	}); n != 0 {
		t.Errorf("%.1f allocations for %d lines", n, len(lines))
	}
}

func BenchmarkLogLine(b *testing.B) {
	l := NewLogLine("cktest", Config{Span: testSpan})
	line := []byte(realLines(b)[5]) // IPv6 TCP SYN, the longest accepted
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		if !l.Parse(line, &p) {
			b.Fatal("refused")
		}
	}
}

// FuzzLogLine feeds arbitrary lines to the parser. Properties: it never
// panics; whatever it accepts is a knock packet for the span, of one
// address family, and the same packet again when written out as the
// kernel writes it.
func FuzzLogLine(f *testing.F) {
	for _, line := range realLines(f) {
		f.Add(line)
		f.Add(line[:len(line)/2])
		f.Add(strings.Replace(line, "cktest", "ckipt", 1))
	}
	f.Add("ck: " + v4line)
	l := NewLogLine("cktest", Config{Span: testSpan})
	f.Fuzz(func(t *testing.T, line string) {
		var p Packet
		if !l.Parse([]byte(line), &p) {
			return
		}
		if !l.spec.span.Contains(p.DstPort) || p.Src.Is4() != p.Dst.Is4() || p.Kind != Knock {
			t.Fatalf("accepted %q as %+v", line, p)
		}
		fam := "TTL=64"
		if !p.Src.Is4() {
			fam = "HOPLIMIT=64"
		}
		flags := ""
		if p.Transport == ports.TCP {
			flags = " SYN"
		}
		again := fmt.Sprintf("cktest IN=x OUT= SRC=%s DST=%s %s PROTO=%s SPT=1 DPT=%d%s",
			p.Src.StringExpanded(), p.Dst.StringExpanded(), fam, strings.ToUpper(p.Transport.String()), p.DstPort, flags)
		var q Packet
		if !l.Parse([]byte(again), &q) || q != p {
			t.Fatalf("%q → %+v, written out %q → %+v", line, p, again, q)
		}
	})
}
