package firewall

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
)

// ParsePortRange parses a protocol and port or range as the configuration
// file writes them: "tcp/22" or "udp/8000-8100". Its messages quote at
// most 40 bytes of s.
func ParsePortRange(s string) (PortRange, error) {
	var r PortRange
	q := s
	if len(q) > 40 {
		q = q[:40] + "..."
	}
	q = strconv.Quote(q)
	proto, ports, ok := strings.Cut(s, "/")
	if !ok {
		return r, fmt.Errorf("%s: want PROTO/PORT or PROTO/FROM-TO (like tcp/22)", q)
	}
	switch strings.ToLower(proto) {
	case "tcp":
		r.Proto = crypto.TCP
	case "udp":
		r.Proto = crypto.UDP
	default:
		return r, fmt.Errorf("%s: protocol must be tcp or udp", q)
	}
	from, to, isRange := strings.Cut(ports, "-")
	a, err1 := strconv.Atoi(from)
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.Atoi(to)
	}
	if err1 != nil || err2 != nil {
		return r, fmt.Errorf("%s: port must be a number 1..65535", q)
	}
	if a < 1 || a > 65535 || b < 1 || b > 65535 {
		return r, fmt.Errorf("%s: port outside 1..65535", q)
	}
	if b < a {
		return r, fmt.Errorf("%s: range ends before it starts", q)
	}
	r.From, r.To = uint16(a), uint16(b)
	return r, nil
}

// String writes r as ParsePortRange reads it: tcp/22, udp/8000-8100.
func (r PortRange) String() string {
	if r.From == r.To {
		return fmt.Sprintf("%s/%d", r.Proto, r.From)
	}
	return fmt.Sprintf("%s/%d-%d", r.Proto, r.From, r.To)
}
