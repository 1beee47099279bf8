package trigger

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/ports"
)

// Limits of a [trigger NAME] section.
const (
	MaxDuration   = 86400 // seconds: a trigger opens a door for at most a day
	MaxInboundLen = 1024  // ports in an inbound range: one kernel entry each on a NAT gateway
	MaxNameLen    = 64
)

// Conflict says what happens when a second inside host fires a trigger
// whose inbound mapping another inside host holds (NAT gateways only).
type Conflict uint8

const (
	// Refuse keeps the mapping with the host that holds it until it
	// expires; the newcomer is refused.
	Refuse Conflict = iota
	// LastWins moves the mapping to the newcomer.
	LastWins
)

func (c Conflict) String() string {
	switch c {
	case Refuse:
		return "refuse"
	case LastWins:
		return "last-wins"
	}
	return fmt.Sprintf("conflict(%d)", uint8(c))
}

// Rule is one [trigger NAME] section.
//
// Inside names the interfaces where the outbound packet that fires the
// trigger is seen: on a gateway, those it arrives on from the inside
// hosts; on a host that triggers for itself, those it leaves by.
type Rule struct {
	Name       string
	Out        ports.Range   // outbound protocol/ports that fire the trigger
	In         ports.Range   // inbound protocol/ports it opens
	Duration   time.Duration // whole seconds, 1..MaxDuration
	Inside     []string      // interfaces the trigger is seen on (see below); empty: any
	Outside    []string      // interfaces the inbound connection may arrive on; empty: any
	OnConflict Conflict
	Line       int // line of the section header
}

// Entry is one "key = value" line of a section, as the configuration
// parser has cut it.
type Entry struct {
	Key, Value string
	Line       int
}

// Error is one problem in a [trigger NAME] section. The configuration
// parser, which knows the file name, reports it as "FILE:LINE: Msg".
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

type ruleParser struct {
	errs []*Error
}

func (p *ruleParser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// ParseRule parses the section [trigger name] whose header is on line
// and whose lines are entries (no key twice: the configuration parser
// reports duplicates). It returns the rule, or every problem found; no
// message repeats more than 40 bytes of a value.
func ParseRule(name string, line int, entries []Entry) (*Rule, []*Error) {
	p := &ruleParser{}
	r := &Rule{Name: name, Line: line}
	sec := "[trigger " + name + "]"
	if err := checkName(name); err != nil {
		p.errorf(line, "trigger name: %v", err)
		sec = "[trigger " + quoteShort(name) + "]"
	}
	var haveOut, haveIn, haveDuration bool
	for _, e := range entries {
		v := e.Value
		switch e.Key {
		case "outbound":
			pr, err := ports.ParseRange(v)
			if err != nil {
				p.errorf(e.Line, "outbound: %v", err)
				break
			}
			r.Out, haveOut = pr, true
		case "inbound":
			pr, err := ports.ParseRange(v)
			if err != nil {
				p.errorf(e.Line, "inbound: %v", err)
				break
			}
			if n := int(pr.To) - int(pr.From) + 1; n > MaxInboundLen {
				p.errorf(e.Line, "inbound: %s has %d ports, more than %d", quoteShort(v), n, MaxInboundLen)
				break
			}
			r.In, haveIn = pr, true
		case "duration":
			if d, ok := p.seconds(e, 1, MaxDuration); ok {
				r.Duration, haveDuration = d, true
			}
		case "inside":
			r.Inside = p.interfaces(e)
		case "outside":
			r.Outside = p.interfaces(e)
		case "on-conflict":
			switch v {
			case "refuse":
				r.OnConflict = Refuse
			case "last-wins":
				r.OnConflict = LastWins
			default:
				p.errorf(e.Line, "on-conflict: %s is not refuse or last-wins", quoteShort(v))
			}
		default:
			p.errorf(e.Line, "unknown key %s in %s", quoteShort(e.Key), sec)
		}
	}
	if !haveOut && !hasKey(entries, "outbound") {
		p.errorf(line, "%s needs outbound (outbound = tcp/25: what an inside host connects to)", sec)
	}
	if !haveIn && !hasKey(entries, "inbound") {
		p.errorf(line, "%s needs inbound (inbound = tcp/113: what the remote server may then reach)", sec)
	}
	if !haveDuration && !hasKey(entries, "duration") {
		p.errorf(line, "%s needs a duration (duration = 60)", sec)
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return r, nil
}

// Check checks rules against each other (names already unique): inbound
// ranges of the same protocol must be equal or disjoint, so that a NAT
// mapping moves from one inside host to another as a whole. Errors are
// reported on the later rule's header line.
func Check(rules []*Rule) []*Error {
	var errs []*Error
	for i, b := range rules {
		for _, a := range rules[:i] {
			if a.In.Proto == b.In.Proto && a.In != b.In && a.In.From <= b.In.To && b.In.From <= a.In.To {
				errs = append(errs, &Error{Line: b.Line, Msg: fmt.Sprintf(
					"[trigger %s] inbound %s overlaps inbound %s of [trigger %s] on line %d: inbound ranges must be equal or disjoint",
					b.Name, b.In, a.In, a.Name, a.Line)})
				break
			}
		}
	}
	return errs
}

func hasKey(es []Entry, k string) bool {
	for _, e := range es {
		if e.Key == k {
			return true
		}
	}
	return false
}

func checkName(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '@') {
			return fmt.Errorf("%s may contain only letters, digits, '.', '-', '_' and '@'", quoteShort(s))
		}
	}
	return nil
}

func (p *ruleParser) interfaces(e Entry) []string {
	var out []string
	n0 := len(p.errs)
	for _, f := range strings.FieldsFunc(e.Value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		// IFNAMSIZ is 16 with the terminating zero.
		if len(f) > 15 || strings.ContainsAny(f, "/:") || f == "." || f == ".." {
			p.errorf(e.Line, "%s: %s is not an interface name", e.Key, quoteShort(f))
			continue
		}
		out = append(out, f)
	}
	if len(out) == 0 && len(p.errs) == n0 {
		p.errorf(e.Line, "%s: empty list (leave the key out to allow every interface)", e.Key)
	}
	return out
}

// seconds parses a whole number of seconds, bare ("60") or as a Go
// duration ("1m", "90s"), as the rest of the configuration file does.
func (p *ruleParser) seconds(e Entry, lo, hi int) (time.Duration, bool) {
	v := e.Value
	if n, err := strconv.Atoi(v); err == nil {
		if n < lo || n > hi {
			p.errorf(e.Line, "%s: %d seconds is outside %d..%d", e.Key, n, lo, hi)
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d%time.Second != 0 {
		p.errorf(e.Line, "%s: %s is not a whole number of seconds (like 60 or 1m)", e.Key, quoteShort(v))
		return 0, false
	}
	if d < time.Duration(lo)*time.Second || d > time.Duration(hi)*time.Second {
		p.errorf(e.Line, "%s: %s is outside %d..%d seconds", e.Key, quoteShort(v), lo, hi)
		return 0, false
	}
	return d, true
}

// quoteShort quotes operator input for a message, cut to a sane length.
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}
