package policy

import (
	"slices"

	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/trigger"
)

// Port triggering in the configuration file: [trigger NAME] sections
// (parsed by package trigger) and two [daemon] keys.
//
//	[daemon]
//	trigger-mode = nat            # host (default) | nat
//	trigger-max-mappings = 4096   # doors open by triggers at once
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

// daemonTriggerKey parses the [daemon] keys of port triggering, reporting
// whether e was one.
func (p *parser) daemonTriggerKey(e *entry) bool {
	c := p.cfg
	switch e.key {
	case "trigger-mode":
		if e.value != TriggerHost && e.value != TriggerNAT {
			p.errorf(e.line, "trigger-mode: %s is not host or nat", quoteShort(e.value))
		}
		c.TriggerMode = e.value
	case "trigger-max-mappings":
		if n, ok := p.integer(e, MinTriggerMappings, MaxTriggerMappings); ok {
			c.TriggerMaxMappings = n
		}
	default:
		return false
	}
	return true
}

// triggers parses the [trigger NAME] sections, after [daemon].
func (p *parser) triggers(secs []*section) {
	c := p.cfg
	if c.TriggerMode == "" {
		c.TriggerMode = TriggerHost
	}
	if c.TriggerMaxMappings == 0 {
		c.TriggerMaxMappings = trigger.DefaultMaxMappings
	}
	names := map[string]int{}
	var parsed []*trigger.Rule
	var first *trigger.Rule // the first parsed rule, for outside
	for _, s := range secs {
		if l, dup := names[s.name]; dup {
			p.errorf(s.line, "duplicate trigger %s (first on line %d)", quoteShort(s.name), l)
			continue
		}
		names[s.name] = s.line
		es := make([]trigger.Entry, len(s.entries))
		for i, e := range s.entries {
			es[i] = trigger.Entry{Key: e.key, Value: e.value, Line: e.line}
		}
		r, errs := trigger.ParseRule(s.name, s.line, es)
		for _, e := range errs {
			p.errorf(e.Line, "%s", e.Msg)
		}
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
	for _, e := range trigger.Check(parsed) {
		p.errorf(e.Line, "%s", e.Msg)
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
				if pr.Proto == r.In.Proto && pr.From <= r.In.To && pr.To >= r.In.From {
					p.errorf(r.Line, "[trigger %s] inbound %s overlaps %s of [user %s] on line %d: any local user can fire a host trigger, which would open a knock-protected port without a knock",
						r.Name, r.In, pr, u.Name, u.Line)
				}
			}
		}
	}
}
