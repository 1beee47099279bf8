package config

import (
	"slices"

	"github.com/cipherknock/cipherknock/internal/lex"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/trigger"
)

// Port triggering in the configuration file: [trigger NAME] sections and
// two [daemon] keys (trigger-mode, trigger-max-mappings, in keys.go).
//
// In host mode a trigger opens a port of the daemon's own host through
// the grant backend, and its inbound ports are protected like the users'
// ports. In nat mode the daemon runs on a gateway that masquerades its
// inside hosts: a trigger forwards the gateway's inbound port to the
// inside host that fired it (firewall.NAT), and every trigger must name
// its inside interfaces; all of them name the same outside interfaces
// (or none), since the gateway's forwarding table has one set. A host's
// grants hold on every interface, so there outside is refused.

// Trigger modes.
const (
	TriggerHost = "host"
	TriggerNAT  = "nat"
)

// Limits of trigger-max-mappings.
const (
	MinTriggerMappings = 16
	MaxTriggerMappings = 1 << 20
)

// triggers parses the [trigger NAME] sections, after [daemon].
func (p *parser) triggers(secs []*section) {
	c := p.cfg
	names := map[string]int{}
	var parsed []*trigger.Rule
	var first *trigger.Rule // the first parsed rule, for outside
	for _, s := range secs {
		if l, dup := names[s.name]; dup {
			p.errorf(s.line, "duplicate trigger %s (first on line %d)", lex.Quote(s.name), l)
			continue
		}
		names[s.name] = s.line
		r := p.rule(s)
		if r == nil {
			continue
		}
		parsed = append(parsed, r)
		sec := "[trigger " + r.Name + "]"
		bad := false
		sp := c.Span
		for _, pr := range []struct {
			what string
			r    ports.Range
		}{{"outbound", r.Out}, {"inbound", r.In}} {
			if pr.r.From <= sp.Last() && pr.r.To >= sp.Base {
				p.errorf(r.Line, "%s %s %s overlaps the knock span %d-%d", sec, pr.what, pr.r, sp.Base, sp.Last())
				bad = true
			}
		}
		switch {
		case c.TriggerMode == TriggerNAT && len(r.Inside) == 0:
			p.errorf(r.Line, "%s needs inside = INTERFACES with trigger-mode = nat: the interfaces the inside hosts are on", sec)
			bad = true
		case c.TriggerMode != TriggerNAT && len(r.Outside) > 0:
			// A grant names no interface: refuse what would be ignored.
			p.errorf(r.Line, "%s: outside is for trigger-mode = nat; a host's grants hold on every interface", sec)
			bad = true
		case c.TriggerMode == TriggerNAT && first != nil && !sameSet(r.Outside, first.Outside):
			p.errorf(r.Line, "%s: outside differs from [trigger %s] on line %d: on a NAT gateway all triggers share one set of outside interfaces",
				sec, first.Name, first.Line)
			bad = true
		}
		if first == nil {
			first = r
		}
		if !bad {
			c.Triggers = append(c.Triggers, r)
		}
	}
	p.triggersDisjoint(parsed)
}

// rule parses one [trigger NAME] section, or reports why not.
func (p *parser) rule(s *section) *trigger.Rule {
	r := &trigger.Rule{Name: s.name, Line: s.line}
	sec := "[trigger " + s.name + "]"
	n0 := len(p.errs)
	if err := checkTriggerName(s.name); err != nil {
		p.errorf(s.line, "trigger name: %v", err)
		sec = "[trigger " + lex.Quote(s.name) + "]"
	}
	var haveOut, haveIn, haveDuration bool
	for i := range s.entries {
		e := &s.entries[i]
		switch e.key {
		case "outbound":
			pr, err := ports.ParseRange(e.value)
			if err != nil {
				p.errorf(e.line, "outbound: %v", err)
				break
			}
			r.Out, haveOut = pr, true
		case "inbound":
			pr, err := ports.ParseRange(e.value)
			if err != nil {
				p.errorf(e.line, "inbound: %v", err)
				break
			}
			if n := int(pr.To) - int(pr.From) + 1; n > trigger.MaxInboundLen {
				p.errorf(e.line, "inbound: %s has %d ports, more than %d", lex.Quote(e.value), n, trigger.MaxInboundLen)
				break
			}
			r.In, haveIn = pr, true
		case "duration":
			if d, ok := p.seconds(e, 1, trigger.MaxDuration); ok {
				r.Duration, haveDuration = d, true
			}
		case "inside":
			r.Inside = p.interfaces(e)
		case "outside":
			r.Outside = p.interfaces(e)
		case "on-conflict":
			switch e.value {
			case "refuse":
				r.OnConflict = trigger.Refuse
			case "last-wins":
				r.OnConflict = trigger.LastWins
			default:
				p.errorf(e.line, "on-conflict: %s is not refuse or last-wins", lex.Quote(e.value))
			}
		default:
			p.errorf(e.line, "unknown key %s in %s", lex.Quote(e.key), sec)
		}
	}
	if !haveOut && !hasKey(s, "outbound") {
		p.errorf(s.line, "%s needs outbound (outbound = tcp/25: what an inside host connects to)", sec)
	}
	if !haveIn && !hasKey(s, "inbound") {
		p.errorf(s.line, "%s needs inbound (inbound = tcp/113: what the remote server may then reach)", sec)
	}
	if !haveDuration && !hasKey(s, "duration") {
		p.errorf(s.line, "%s needs a duration (duration = 60)", sec)
	}
	if len(p.errs) > n0 {
		return nil
	}
	return r
}

// triggersDisjoint checks rules against each other (names already
// unique): inbound ranges of the same protocol must be equal or disjoint,
// so that a NAT mapping moves from one inside host to another as a whole.
// Errors are reported on the later rule's header line.
func (p *parser) triggersDisjoint(rules []*trigger.Rule) {
	for i, b := range rules {
		if a := trigger.Clash(rules[:i], b); a != nil {
			p.errorf(b.Line, "[trigger %s] inbound %s overlaps inbound %s of [trigger %s] on line %d: inbound ranges must be equal or disjoint",
				b.Name, b.In, a.In, a.Name, a.Line)
		}
	}
}

func sameSet(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

// triggerProtect returns the ports the grant backend closes for the
// triggers: their inbound ranges in host mode, none on a NAT gateway
// (forwarded ports are not the gateway's own).
func (c *Config) triggerProtect() []ports.Range {
	if c.TriggerMode == TriggerNAT {
		return nil
	}
	var out []ports.Range
	for _, r := range c.Triggers {
		out = append(out, r.In)
	}
	return out
}

// TriggerOutside returns the interfaces a NAT gateway accepts forwarded
// connections on: the triggers' outside interfaces (the same for all of
// them), or nil (every interface).
func (c *Config) TriggerOutside() []string {
	var out []string
	for _, r := range c.Triggers {
		if len(r.Outside) == 0 {
			return nil
		}
		for _, n := range r.Outside {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// triggerOverlap refuses a host-mode trigger whose inbound ports overlap
// a user's knock-protected ports: any local user who can open an
// outbound connection fires a host trigger, so the trigger would open,
// without a knock, a port the knock is meant to guard.
func (p *parser) triggerOverlap() {
	c := p.cfg
	if c.TriggerMode == TriggerNAT {
		return // forwards to inside hosts, not this host's ports
	}
	for _, r := range c.Triggers {
		for _, u := range c.Users {
			for _, pr := range u.Ports {
				if pr.Overlaps(r.In) {
					p.errorf(r.Line, "[trigger %s] inbound %s overlaps %s of [user %s] on line %d: any local user can fire a host trigger, which would open a knock-protected port without a knock",
						r.Name, r.In, pr, u.Name, u.Line)
				}
			}
		}
	}
}

// TriggerGrantUser is the user field of the grants host trigger name
// makes: a name the command backend accepts, which no [user] can have.
func TriggerGrantUser(name string) string { return TriggerUser + name }
