package trigger

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
)

// Defaults of Options.
const (
	DefaultMaxMappings = 4096
	DefaultRefresh     = time.Second
)

// Packet is one outbound connection attempt as the capture saw it: a TCP
// SYN (without ACK) or a UDP datagram from an inside host to a remote one.
type Packet struct {
	Inside  netip.Addr // source address: the inside host
	Remote  netip.Addr // destination address: the remote server
	Proto   ports.Proto
	DstPort uint16
	Ifindex int // interface the packet arrived on; 0 if unknown
}

// Action is what a Decision asks the caller to do.
type Action uint8

const (
	// Open: let Remote reach In on Inside for Timeout. On a NAT gateway
	// that is a forward from the gateway's own address; if Previous is
	// valid, the mapping was taken from that host and the forward
	// replaces its one. Granting what is open replaces its time left.
	Open Action = iota + 1
	// Refused: the mapping is held by Holder and the rule says refuse.
	// Nothing changes; the caller logs it. There is at most one per
	// mapping per Options.Refresh, so a host that keeps trying cannot
	// flood the log.
	Refused
	// Full: the engine holds Options.MaxMappings mappings already.
	// Nothing changes; the caller logs it. At most one per
	// Options.Refresh.
	Full
)

func (a Action) String() string {
	switch a {
	case Open:
		return "open"
	case Refused:
		return "refused"
	case Full:
		return "full"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Decision is the engine's answer to a packet for one rule.
type Decision struct {
	Action   Action
	Rule     *Rule
	Remote   netip.Addr
	Inside   netip.Addr
	In       ports.Range
	Timeout  time.Duration // Open: the time the door stays open from now
	Renewed  bool          // Open: Inside held the mapping already; its time was extended
	Previous netip.Addr    // Open: the host the mapping was taken from (last-wins), or invalid
	Holder   netip.Addr    // Refused: the host that keeps the mapping
}

// Mapping is one door the engine believes open.
type Mapping struct {
	Rule   *Rule
	Remote netip.Addr
	Inside netip.Addr
	In     ports.Range
	Since  time.Time // when Inside got it
	Until  time.Time // when the kernel closes it
}

// Options configure an Engine.
type Options struct {
	// NAT says the inside hosts share this gateway's address: a mapping
	// is then keyed by remote address and inbound range alone, two
	// inside hosts can conflict over it, and every rule must name its
	// inside interfaces.
	NAT bool
	// MaxMappings bounds the mappings held at once (DefaultMaxMappings
	// when zero), so a host that connects out to many remote servers
	// cannot grow the daemon without bound.
	MaxMappings int
	// Refresh is the least time between two renewals of a mapping by
	// the same host (DefaultRefresh when zero): a burst of connections
	// asks the firewall once, not once per packet. It also spaces the
	// Refused and Full decisions.
	Refresh time.Duration
	// Index resolves an interface name to its index, reporting false
	// for an interface that does not exist (yet). Nil uses the system's
	// interfaces.
	Index func(name string) (int, bool)
}

// Engine decides what each outbound connection attempt opens. It is safe
// for concurrent use.
type Engine struct {
	opts  Options
	rules []compiled

	mu       sync.Mutex
	mappings map[mapKey]mapping
	full     time.Time // when the last Full decision was made
}

type compiled struct {
	r      *Rule
	group  int32 // rules with the same inbound range share a group
	inside []int // interface indexes; nil with r.Inside empty
}

// mapKey identifies a mapping: with NAT, inside is the zero Addr, so any
// two inside hosts meet on the same key.
type mapKey struct {
	remote netip.Addr
	group  int32
	inside netip.Addr
}

type mapping struct {
	rule    int
	inside  netip.Addr
	since   time.Time
	renewed time.Time
	until   time.Time
	refused time.Time // when the last Refused decision about it was made
}

// NewEngine returns an engine for rules, which package config has
// checked; it refuses rules whose inbound ranges Clash.
func NewEngine(rules []*Rule, opts Options) (*Engine, error) {
	if opts.MaxMappings <= 0 {
		opts.MaxMappings = DefaultMaxMappings
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Index == nil {
		opts.Index = systemIndex
	}
	for i, r := range rules {
		if a := Clash(rules[:i], r); a != nil {
			return nil, fmt.Errorf("trigger %s: inbound %s overlaps inbound %s of trigger %s", r.Name, r.In, a.In, a.Name)
		}
	}
	e := &Engine{opts: opts, mappings: make(map[mapKey]mapping)}
	var groups []ports.Range
	for _, r := range rules {
		if r.Duration <= 0 || r.Out.From == 0 || r.Out.From > r.Out.To || r.In.From == 0 || r.In.From > r.In.To {
			return nil, fmt.Errorf("trigger %s: not a checked rule", r.Name)
		}
		if opts.NAT && len(r.Inside) == 0 {
			return nil, fmt.Errorf("trigger %s: on a NAT gateway a trigger must name its inside interfaces (inside = ...)", r.Name)
		}
		g := slices.Index(groups, r.In)
		if g < 0 {
			g = len(groups)
			groups = append(groups, r.In)
		}
		e.rules = append(e.rules, compiled{r: r, group: int32(g)})
	}
	e.Resolve()
	return e, nil
}

func systemIndex(name string) (int, bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, false
	}
	return ifi.Index, true
}

// Resolve looks the rules' inside interfaces up again; the caller calls it
// when interfaces come and go. A name that does not resolve matches no
// packet until it does.
func (e *Engine) Resolve() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.rules {
		c := &e.rules[i]
		if len(c.r.Inside) == 0 {
			continue
		}
		c.inside = c.inside[:0]
		if c.inside == nil {
			c.inside = make([]int, 0, len(c.r.Inside))
		}
		for _, name := range c.r.Inside {
			if idx, ok := e.opts.Index(name); ok {
				c.inside = append(c.inside, idx)
			}
		}
	}
}

// Observe decides what p opens at time now and appends one decision per
// rule it fires to dst. Packets that fire nothing (most of them) append
// nothing. It does not retain p, and allocates nothing once the engine's
// table has grown to its working size and dst has room.
func (e *Engine) Observe(p *Packet, now time.Time, dst []Decision) []Decision {
	inside, remote := p.Inside.Unmap(), p.Remote.Unmap()
	if p.DstPort == 0 || !remote.IsGlobalUnicast() || !inside.IsGlobalUnicast() ||
		inside.Is4() != remote.Is4() || inside == remote || inside.Zone() != "" || remote.Zone() != "" {
		return dst
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.rules {
		c := &e.rules[i]
		r := c.r
		if p.Proto != r.Out.Proto || p.DstPort < r.Out.From || p.DstPort > r.Out.To {
			continue
		}
		if c.inside != nil && !slices.Contains(c.inside, p.Ifindex) {
			continue
		}
		if d, ok := e.decide(i, inside, remote, now); ok {
			dst = append(dst, d)
		}
	}
	return dst
}

func (e *Engine) decide(ri int, inside, remote netip.Addr, now time.Time) (Decision, bool) {
	c := &e.rules[ri]
	r := c.r
	k := mapKey{remote: remote, group: c.group}
	if !e.opts.NAT {
		k.inside = inside
	}
	d := Decision{Rule: r, Remote: remote, Inside: inside, In: r.In}
	m, ok := e.mappings[k]
	if ok && !now.Before(m.until) {
		delete(e.mappings, k)
		ok = false
	}
	switch {
	case !ok:
		if len(e.mappings) >= e.opts.MaxMappings {
			e.sweep(now)
			if len(e.mappings) >= e.opts.MaxMappings {
				if !e.full.IsZero() && now.Sub(e.full) < e.opts.Refresh {
					return Decision{}, false
				}
				e.full = now
				d.Action = Full
				return d, true
			}
		}
		m = mapping{rule: ri, inside: inside, since: now, renewed: now, until: now.Add(r.Duration)}
	case m.inside == inside:
		if now.Sub(m.renewed) < e.opts.Refresh {
			return Decision{}, false
		}
		m.rule, m.renewed = ri, now
		m.until = later(m.until, now.Add(r.Duration))
		d.Renewed = true
	case r.OnConflict == Refuse:
		if !m.refused.IsZero() && now.Sub(m.refused) < e.opts.Refresh {
			return Decision{}, false
		}
		m.refused = now
		e.mappings[k] = m
		d.Action, d.Holder = Refused, m.inside
		return d, true
	default: // LastWins
		d.Previous = m.inside
		m = mapping{rule: ri, inside: inside, since: now, renewed: now, until: now.Add(r.Duration)}
	}
	e.mappings[k] = m
	d.Action, d.Timeout = Open, m.until.Sub(now)
	return d, true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sweep forgets the mappings that ended by now.
func (e *Engine) sweep(now time.Time) {
	for k, m := range e.mappings {
		if !now.Before(m.until) {
			delete(e.mappings, k)
		}
	}
}

// Expire forgets the mappings that ended by now and appends them to dst.
// The kernel has closed their doors by itself; the caller may log them.
func (e *Engine) Expire(now time.Time, dst []Mapping) []Mapping {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, m := range e.mappings {
		if !now.Before(m.until) {
			dst = append(dst, e.export(k, m))
			delete(e.mappings, k)
		}
	}
	return dst
}

// Mappings appends the mappings open at now to dst, sorted by remote
// address, inbound range and inside address, for a status listing.
func (e *Engine) Mappings(now time.Time, dst []Mapping) []Mapping {
	e.mu.Lock()
	n := len(dst)
	for k, m := range e.mappings {
		if now.Before(m.until) {
			dst = append(dst, e.export(k, m))
		}
	}
	e.mu.Unlock()
	slices.SortFunc(dst[n:], func(a, b Mapping) int {
		if c := a.Remote.Compare(b.Remote); c != 0 {
			return c
		}
		if a.In != b.In {
			if a.In.Proto != b.In.Proto {
				return int(a.In.Proto) - int(b.In.Proto)
			}
			return int(a.In.From) - int(b.In.From)
		}
		return a.Inside.Compare(b.Inside)
	})
	return dst
}

func (e *Engine) export(k mapKey, m mapping) Mapping {
	r := e.rules[m.rule].r
	return Mapping{Rule: r, Remote: k.remote, Inside: m.inside, In: r.In, Since: m.since, Until: m.until}
}

// ErrNotHeld is returned by Cancel when the decision's mapping is no
// longer the one it made.
var ErrNotHeld = errors.New("trigger: mapping not held by that host")

// Cancel forgets the mapping an Open decision made, for a caller whose
// firewall could not carry it out: the next packet tries again instead of
// being taken for a renewal. A mapping taken from another host (last-wins)
// is not given back; that host triggers again if it still needs it.
func (e *Engine) Cancel(d Decision) error {
	if d.Action != Open || d.Rule == nil {
		return errors.New("trigger: cancel of a decision that opened nothing")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.rules {
		if c.r != d.Rule {
			continue
		}
		k := mapKey{remote: d.Remote, group: c.group}
		if !e.opts.NAT {
			k.inside = d.Inside
		}
		if m, ok := e.mappings[k]; ok && m.inside == d.Inside {
			delete(e.mappings, k)
			return nil
		}
	}
	return ErrNotHeld
}

// Restore fills the engine with the forwards a NAT gateway's kernel holds
// (firewall.NAT.List), so that after a restart or reload the engine knows
// who holds which mapping and for how long, and conflicts are still
// decided against them. A forward belongs to the first rule whose inbound
// range holds its port; forwards no rule accounts for are skipped and
// returned, for the caller to revoke or leave to expire. Only for an
// engine with Options.NAT.
func (e *Engine) Restore(fs []firewall.Forward, now time.Time) (skipped []firewall.Forward) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range fs {
		ri := -1
		for i, c := range e.rules {
			if c.r.In.Proto == f.Proto && c.r.In.From <= f.Port && f.Port <= c.r.In.To {
				ri = i
				break
			}
		}
		remote, inside := f.Remote.Unmap(), f.To.Addr().Unmap()
		if ri < 0 || !e.opts.NAT || f.Timeout <= 0 || f.To.Port() != f.Port {
			skipped = append(skipped, f)
			continue
		}
		k := mapKey{remote: remote, group: e.rules[ri].group}
		until := now.Add(f.Timeout)
		if m, ok := e.mappings[k]; ok {
			// Ports of one range: keep the latest end, which the next
			// renewal makes the same for all of them anyway.
			if m.inside == inside {
				m.until = later(m.until, until)
				e.mappings[k] = m
				continue
			}
			skipped = append(skipped, f) // a range split between two hosts
			continue
		}
		if len(e.mappings) >= e.opts.MaxMappings {
			skipped = append(skipped, f)
			continue
		}
		// The time it was opened is unknown; the restore is the best
		// guess, and it lets the next packet renew at once.
		e.mappings[k] = mapping{rule: ri, inside: inside, since: now, renewed: now.Add(-e.opts.Refresh), until: until}
	}
	return skipped
}
