package sniff

import (
	"bytes"
	"net/netip"
	"unsafe"

	"github.com/cipherknock/cipherknock/ports"
)

// Kernel log lines (capture = log). The kernel's packet logger
// (net/netfilter/nf_log_syslog.c), behind an iptables LOG target or an
// nftables "log prefix" statement, writes one line per packet:
//
//	PREFIX IN=eth0 OUT= MAC=... SRC=198.18.0.2 DST=198.18.0.1 LEN=28 TOS=0x00
//	  PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=40000 DPT=20500 LEN=8
//	PREFIX IN=eth0 OUT= MAC=... SRC=2001:0db8:...:0002 DST=... LEN=60 TC=0
//	  HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=40000 DPT=20500 WINDOW=64240 RES=0x00 SYN URGP=0
//
// (one line each; wrapped here). A syslog daemon, the journal or
// /dev/kmsg put their own fields before the prefix. LogLine finds the
// prefix immediately followed by "IN=" and reads the fields after it by
// name, so any wrapper works and options the logger may add (TCP
// sequence numbers, IP options, the socket's UID) are skipped.
//
// The rules are those of the packet decoder (decode.go), as far as a log
// line can show them: a knock packet is UDP, or TCP with SYN set and ACK
// clear, to a port of the span, received (OUT= empty), not a fragment
// (no MF flag, no FRAG: field); an IPv6 line that names an extension
// header is not one. Addresses are taken as printed: an IPv4-mapped IPv6
// source stays an IPv6 address, distinct from the IPv4 one.

// LogLine is a parser of kernel packet-log lines, for one prefix and span.
// It allocates nothing. The zero value is not usable: use NewLogLine.
type LogLine struct {
	marker []byte // prefix + " IN="
	spec   filterSpec
	ifaces map[string]bool // empty: any interface
}

// NewLogLine returns a parser for lines logged with prefix (without its
// trailing space) about packets to cfg.Span. Lines whose IN= interface is
// not in cfg.Interfaces (when it names any) are refused.
func NewLogLine(prefix string, cfg Config) *LogLine {
	l := &LogLine{marker: []byte(prefix + " IN="), spec: filterSpec{span: cfg.Span}, ifaces: make(map[string]bool)}
	for _, n := range cfg.Interfaces {
		l.ifaces[n] = true
	}
	return l
}

// Parse reads line and fills p (Kind Knock, addresses, port, transport;
// Ifindex 0, Time untouched). It reports whether line is a kernel log
// line with the parser's prefix about a knock packet.
func (l *LogLine) Parse(line []byte, p *Packet) bool {
	i := l.find(line)
	if i < 0 {
		return false
	}
	rest := line[i+len(l.marker)-len("IN="):]
	var (
		in, out           []byte
		src, dst          netip.Addr
		proto             ports.Proto
		haveIn, haveOut   bool
		spt, dpt          int = -1, -1
		syn, ack, v6, bad bool
		protoSeen         bool
	)
	for len(rest) > 0 {
		var f []byte
		if j := bytes.IndexByte(rest, ' '); j >= 0 {
			f, rest = rest[:j], rest[j+1:]
		} else {
			f, rest = rest, nil
		}
		if len(f) == 0 {
			continue
		}
		k, v, kv := bytes.Cut(f, []byte{'='})
		if !kv {
			switch string(f) { // no allocation: compared, not kept
			case "SYN":
				syn = true
			case "ACK":
				ack = true
			case "MF":
				bad = true // a first fragment
			case "\n", "\r":
			}
			if bytes.HasPrefix(f, []byte("FRAG:")) {
				bad = true
			}
			continue
		}
		switch string(k) {
		case "IN":
			if haveIn {
				return false
			}
			in, haveIn = v, true
		case "OUT":
			if haveOut {
				return false
			}
			out, haveOut = v, true
		case "SRC":
			if src.IsValid() {
				return false
			}
			a, err := netip.ParseAddr(unsafeString(v))
			if err != nil || a.Zone() != "" {
				return false
			}
			src = a
		case "DST":
			if dst.IsValid() {
				return false
			}
			a, err := netip.ParseAddr(unsafeString(v))
			if err != nil || a.Zone() != "" {
				return false
			}
			dst = a
		case "HOPLIMIT", "FLOWLBL", "TC":
			v6 = true
		case "PROTO":
			if protoSeen {
				// A second PROTO= is the packet quoted inside an ICMP
				// error: not a knock packet.
				return false
			}
			protoSeen = true
			switch string(v) {
			case "UDP":
				proto = ports.UDP
			case "TCP":
				proto = ports.TCP
			default:
				return false
			}
		case "SPT":
			if spt >= 0 || !protoSeen {
				return false
			}
			if spt = parsePort(v); spt < 0 {
				return false
			}
		case "DPT":
			if dpt >= 0 || !protoSeen {
				return false
			}
			if dpt = parsePort(v); dpt < 0 {
				return false
			}
		}
	}
	if !haveIn || len(in) == 0 || !haveOut || len(out) != 0 || bad || !protoSeen || spt < 0 || dpt < 0 {
		return false
	}
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() || v6 == src.Is4() {
		return false
	}
	if proto == ports.TCP && (!syn || ack) {
		return false
	}
	if len(l.ifaces) > 0 && !l.ifaces[unsafeString(in)] {
		return false
	}
	port := uint16(dpt)
	if !l.spec.span.Contains(port) {
		return false
	}
	p.Kind = Knock
	p.Src, p.Dst, p.DstPort, p.Transport, p.Ifindex = src, dst, port, proto, 0
	return true
}

// find returns where the prefix starts in line, or -1. The prefix must
// start a field: "xck IN=" does not carry the prefix "ck".
func (l *LogLine) find(line []byte) int {
	i := bytes.Index(line, l.marker)
	if i > 0 {
		switch line[i-1] {
		case ' ', ']', ';', '\t', '>':
		default:
			return -1
		}
	}
	return i
}

// Marked reports whether line carries the parser's prefix, whether or
// not it is about a knock packet.
func (l *LogLine) Marked(line []byte) bool { return l.find(line) >= 0 }

// parsePort reads a decimal port, 0..65535, or returns -1.
func parsePort(b []byte) int {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return -1
	}
	return n
}

// unsafeString views b as a string for a call that does not keep it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
