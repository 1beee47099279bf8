// Package ports holds the words the other packages share about ports: the
// transport protocol of a knock's port (the proto bit of SPEC.md §5.2) and
// inclusive port ranges, with the one parser, order and merge that the
// configuration, the capture, the firewall and the trigger engine use.
//
// It is a leaf: it imports only the standard library, so that naming a
// protocol never pulls in the cipher (package crypto) or the firewall.
package ports

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Proto is the transport protocol of a port. Its values are those of the
// knock's proto bit (SPEC.md §5.2).
type Proto uint8

const (
	TCP Proto = 0
	UDP Proto = 1
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ErrProto is ParseProto's error.
var ErrProto = errors.New("protocol must be tcp or udp")

// ParseProto parses "tcp" or "udp", lower case: the one spelling that
// String writes, as the profile and the vectors want.
func ParseProto(s string) (Proto, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, ErrProto
}

// Range is a protocol and an inclusive range of ports From..To.
type Range struct {
	Proto    Proto
	From, To uint16
}

// maxQuote is how much of a bad range Parse quotes in its messages.
const maxQuote = 40

// ParseRange parses a protocol and port or range as the configuration file
// writes them: "tcp/22" or "udp/8000-8100" (the protocol in any case).
// Ports are 1..65535. Its messages quote at most 40 bytes of s.
func ParseRange(s string) (Range, error) {
	var r Range
	q := s
	if len(q) > maxQuote {
		q = q[:maxQuote] + "..."
	}
	q = strconv.Quote(q)
	proto, ports, ok := strings.Cut(s, "/")
	if !ok {
		return r, fmt.Errorf("%s: want PROTO/PORT or PROTO/FROM-TO (like tcp/22)", q)
	}
	p, err := ParseProto(strings.ToLower(proto))
	if err != nil {
		return r, fmt.Errorf("%s: %w", q, err)
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
	r.Proto, r.From, r.To = p, uint16(a), uint16(b)
	return r, nil
}

// String writes r as ParseRange reads it: tcp/22, udp/8000-8100.
func (r Range) String() string {
	if r.From == r.To {
		return fmt.Sprintf("%s/%d", r.Proto, r.From)
	}
	return fmt.Sprintf("%s/%d-%d", r.Proto, r.From, r.To)
}

// Valid reports whether r is a known protocol and a non-empty range of
// ports 1..65535.
func (r Range) Valid() bool {
	return (r.Proto == TCP || r.Proto == UDP) && r.From != 0 && r.From <= r.To
}

// Contains reports whether r holds proto/port.
func (r Range) Contains(proto Proto, port uint16) bool {
	return r.Proto == proto && r.From <= port && port <= r.To
}

// Overlaps reports whether r and o share a port of the same protocol.
func (r Range) Overlaps(o Range) bool {
	return r.Proto == o.Proto && r.From <= o.To && o.From <= r.To
}

// Compare orders ranges by protocol, then first port, then last port.
func Compare(a, b Range) int {
	if c := cmp.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	if c := cmp.Compare(a.From, b.From); c != 0 {
		return c
	}
	return cmp.Compare(a.To, b.To)
}

// Merge returns rs sorted by Compare with overlapping or adjacent ranges
// of the same protocol merged, so that the result depends only on the set
// of ports rs holds. rs itself is not changed.
func Merge(rs []Range) []Range {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, Compare)
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Proto == r.Proto && int(r.From) <= int(out[n-1].To)+1 {
			out[n-1].To = max(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Holds reports whether one of rs holds proto/port.
func Holds(rs []Range, proto Proto, port uint16) bool {
	for _, r := range rs {
		if r.Contains(proto, port) {
			return true
		}
	}
	return false
}
