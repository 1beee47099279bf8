package trigger

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
)

var (
	t0      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hostA   = netip.MustParseAddr("10.0.0.2")
	hostB   = netip.MustParseAddr("10.0.0.3")
	remote1 = netip.MustParseAddr("192.0.2.25")
	remote2 = netip.MustParseAddr("198.51.100.25")
)

// links is the interface table the tests resolve names with.
var links = map[string]int{"inside0": 3, "inside1": 4, "outside0": 2}

func index(name string) (int, bool) { i, ok := links[name]; return i, ok }

func tcp(from, to uint16) ports.Range {
	return ports.Range{Proto: ports.TCP, From: from, To: to}
}

func udp(from, to uint16) ports.Range {
	return ports.Range{Proto: ports.UDP, From: from, To: to}
}

// identRule is the classic example: tcp/25 out opens tcp/113 in.
func identRule(c Conflict) *Rule {
	return &Rule{Name: "ident", Out: tcp(25, 25), In: tcp(113, 113), Duration: 60 * time.Second,
		Inside: []string{"inside0", "inside1"}, OnConflict: c, Line: 1}
}

func newEngine(t *testing.T, nat bool, rules ...*Rule) *Engine {
	t.Helper()
	e, err := NewEngine(rules, Options{NAT: nat, Index: index})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func syn(inside, remote netip.Addr, port uint16) *Packet {
	return &Packet{Inside: inside, Remote: remote, Proto: ports.TCP, DstPort: port, Ifindex: 3}
}

// one observes p and requires exactly one decision.
func one(t *testing.T, e *Engine, p *Packet, now time.Time) Decision {
	t.Helper()
	ds := e.Observe(p, now, nil)
	if len(ds) != 1 {
		t.Fatalf("%+v at %v: %d decisions, want 1: %+v", p, now.Sub(t0), len(ds), ds)
	}
	return ds[0]
}

func none(t *testing.T, e *Engine, p *Packet, now time.Time) {
	t.Helper()
	if ds := e.Observe(p, now, nil); len(ds) != 0 {
		t.Fatalf("%+v at %v: want no decision, got %+v", p, now.Sub(t0), ds)
	}
}

func wantOpen(t *testing.T, d Decision, inside netip.Addr, timeout time.Duration, renewed bool, previous netip.Addr) {
	t.Helper()
	if d.Action != Open || d.Inside != inside || d.Timeout != timeout || d.Renewed != renewed || d.Previous != previous {
		t.Fatalf("got %v inside=%v timeout=%v renewed=%v previous=%v; want open inside=%v timeout=%v renewed=%v previous=%v",
			d.Action, d.Inside, d.Timeout, d.Renewed, d.Previous, inside, timeout, renewed, previous)
	}
}

func TestObserveMatches(t *testing.T) {
	r := &Rule{Name: "game", Out: udp(6000, 6010), In: tcp(7000, 7005), Duration: 30 * time.Second,
		Inside: []string{"inside0"}, Line: 1}
	e := newEngine(t, false, r)
	base := Packet{Inside: hostA, Remote: remote1, Proto: ports.UDP, DstPort: 6000, Ifindex: 3}
	for _, tc := range []struct {
		name string
		edit func(p *Packet)
		ok   bool
	}{
		{"first port", func(p *Packet) {}, true},
		{"last port", func(p *Packet) { p.DstPort = 6010 }, true},
		{"mapped addresses", func(p *Packet) {
			p.Inside = netip.AddrFrom16(hostA.As16())
			p.Remote = netip.AddrFrom16(remote1.As16())
		}, true},
		{"below range", func(p *Packet) { p.DstPort = 5999 }, false},
		{"above range", func(p *Packet) { p.DstPort = 6011 }, false},
		{"port 0", func(p *Packet) { p.DstPort = 0 }, false},
		{"other protocol", func(p *Packet) { p.Proto = ports.TCP }, false},
		{"other interface", func(p *Packet) { p.Ifindex = 4 }, false},
		{"unknown interface", func(p *Packet) { p.Ifindex = 0 }, false},
		{"remote broadcast", func(p *Packet) { p.Remote = netip.MustParseAddr("255.255.255.255") }, false},
		{"remote multicast", func(p *Packet) { p.Remote = netip.MustParseAddr("224.0.0.251") }, false},
		{"remote loopback", func(p *Packet) { p.Remote = netip.MustParseAddr("127.0.0.1") }, false},
		{"remote unspecified", func(p *Packet) { p.Remote = netip.IPv4Unspecified() }, false},
		{"remote invalid", func(p *Packet) { p.Remote = netip.Addr{} }, false},
		{"inside unspecified", func(p *Packet) { p.Inside = netip.IPv4Unspecified() }, false},
		{"inside link-local", func(p *Packet) { p.Inside = netip.MustParseAddr("169.254.1.1") }, false},
		{"families differ", func(p *Packet) { p.Remote = netip.MustParseAddr("2001:db8::25") }, false},
		{"to itself", func(p *Packet) { p.Remote = p.Inside }, false},
		{"zoned", func(p *Packet) {
			p.Inside = netip.MustParseAddr("2001:db8::2%eth0")
			p.Remote = netip.MustParseAddr("2001:db8:1::25")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.mappings = map[mapKey]mapping{}
			p := base
			tc.edit(&p)
			ds := e.Observe(&p, t0, nil)
			if tc.ok != (len(ds) == 1) || len(ds) > 1 {
				t.Fatalf("got %+v, want a decision: %v", ds, tc.ok)
			}
			if tc.ok {
				d := ds[0]
				wantOpen(t, d, hostA, 30*time.Second, false, netip.Addr{})
				if d.Rule != r || d.Remote != remote1 || d.In != r.In {
					t.Fatalf("decision %+v", d)
				}
			}
		})
	}
}

func TestAnyInterface(t *testing.T) {
	r := identRule(Refuse)
	r.Inside = nil
	e := newEngine(t, false, r)
	for _, idx := range []int{0, 2, 3, 99} {
		p := syn(hostA, remote1, 25)
		p.Ifindex = idx
		if d := one(t, e, p, t0.Add(time.Duration(idx)*time.Hour)); d.Action != Open {
			t.Fatalf("ifindex %d: %v", idx, d.Action)
		}
	}
}

func TestRenewal(t *testing.T) {
	e := newEngine(t, true, identRule(Refuse))
	wantOpen(t, one(t, e, syn(hostA, remote1, 25), t0), hostA, 60*time.Second, false, netip.Addr{})
	// A burst within Refresh asks nothing of the firewall.
	none(t, e, syn(hostA, remote1, 25), t0)
	none(t, e, syn(hostA, remote1, 25), t0.Add(DefaultRefresh-1))
	// Later, the same host extends its own mapping to a full duration
	// from now.
	wantOpen(t, one(t, e, syn(hostA, remote1, 25), t0.Add(10*time.Second)), hostA, 60*time.Second, true, netip.Addr{})
	ms := e.Mappings(t0.Add(69*time.Second), nil)
	if len(ms) != 1 || !ms[0].Until.Equal(t0.Add(70*time.Second)) || !ms[0].Since.Equal(t0) {
		t.Fatalf("mappings %+v", ms)
	}
	if ms := e.Mappings(t0.Add(70*time.Second), nil); len(ms) != 0 {
		t.Fatalf("mapping outlived its time: %+v", ms)
	}
}

func TestRenewalNeverShortens(t *testing.T) {
	long := identRule(Refuse)
	short := &Rule{Name: "short", Out: tcp(587, 587), In: tcp(113, 113), Duration: 5 * time.Second, Inside: []string{"inside0"}, Line: 9}
	e := newEngine(t, true, long, short)
	wantOpen(t, one(t, e, syn(hostA, remote1, 25), t0), hostA, 60*time.Second, false, netip.Addr{})
	// The short rule shares the inbound range: a renewal, which keeps
	// the longer time.
	d := one(t, e, syn(hostA, remote1, 587), t0.Add(2*time.Second))
	wantOpen(t, d, hostA, 58*time.Second, true, netip.Addr{})
	if d.Rule != short {
		t.Fatalf("decision names rule %s", d.Rule.Name)
	}
}

func TestExpiry(t *testing.T) {
	e := newEngine(t, true, identRule(Refuse))
	one(t, e, syn(hostA, remote1, 25), t0)
	one(t, e, syn(hostA, remote2, 25), t0.Add(30*time.Second))
	if got := e.Expire(t0.Add(59*time.Second), nil); len(got) != 0 {
		t.Fatalf("expired early: %+v", got)
	}
	got := e.Expire(t0.Add(60*time.Second), nil)
	if len(got) != 1 || got[0].Remote != remote1 || got[0].Inside != hostA || got[0].Rule.Name != "ident" {
		t.Fatalf("expired %+v", got)
	}
	if ms := e.Mappings(t0.Add(60*time.Second), nil); len(ms) != 1 || ms[0].Remote != remote2 {
		t.Fatalf("left %+v", ms)
	}
	// After its end a mapping is new again, not a renewal, even before
	// Expire has run.
	wantOpen(t, one(t, e, syn(hostA, remote2, 25), t0.Add(90*time.Second)), hostA, 60*time.Second, false, netip.Addr{})
}

func TestConflictRefuse(t *testing.T) {
	e := newEngine(t, true, identRule(Refuse))
	one(t, e, syn(hostA, remote1, 25), t0)
	d := one(t, e, syn(hostB, remote1, 25), t0.Add(time.Second))
	if d.Action != Refused || d.Holder != hostA || d.Inside != hostB {
		t.Fatalf("got %+v, want refused in favour of %v", d, hostA)
	}
	// Refusals change nothing, and repeat only once per Refresh.
	none(t, e, syn(hostB, remote1, 25), t0.Add(time.Second))
	none(t, e, syn(hostB, remote1, 25), t0.Add(time.Second+DefaultRefresh-1))
	if d := one(t, e, syn(hostB, remote1, 25), t0.Add(time.Second+DefaultRefresh)); d.Action != Refused {
		t.Fatalf("got %v, want refused", d.Action)
	}
	if ms := e.Mappings(t0.Add(2*time.Second), nil); len(ms) != 1 || ms[0].Inside != hostA {
		t.Fatalf("mappings %+v", ms)
	}
	// Another remote server is another mapping.
	wantOpen(t, one(t, e, syn(hostB, remote2, 25), t0.Add(2*time.Second)), hostB, 60*time.Second, false, netip.Addr{})
	// Once hostA's mapping ends, hostB gets it.
	wantOpen(t, one(t, e, syn(hostB, remote1, 25), t0.Add(60*time.Second)), hostB, 60*time.Second, false, netip.Addr{})
}

func TestConflictLastWins(t *testing.T) {
	e := newEngine(t, true, identRule(LastWins))
	one(t, e, syn(hostA, remote1, 25), t0)
	wantOpen(t, one(t, e, syn(hostB, remote1, 25), t0.Add(time.Second)), hostB, 60*time.Second, false, hostA)
	// Taking it back is no renewal and ignores Refresh.
	wantOpen(t, one(t, e, syn(hostA, remote1, 25), t0.Add(time.Second)), hostA, 60*time.Second, false, hostB)
	ms := e.Mappings(t0.Add(2*time.Second), nil)
	if len(ms) != 1 || ms[0].Inside != hostA || !ms[0].Since.Equal(t0.Add(time.Second)) {
		t.Fatalf("mappings %+v", ms)
	}
}

// TestConflictRuleOfNewcomer: the rule the newcomer fires decides, since
// it is the one whose configuration speaks about taking over.
func TestConflictRuleOfNewcomer(t *testing.T) {
	refuse := identRule(Refuse)
	wins := &Rule{Name: "submission", Out: tcp(587, 587), In: tcp(113, 113), Duration: time.Minute,
		Inside: []string{"inside0"}, OnConflict: LastWins, Line: 7}
	e := newEngine(t, true, refuse, wins)
	one(t, e, syn(hostA, remote1, 25), t0)
	if d := one(t, e, syn(hostB, remote1, 25), t0); d.Action != Refused {
		t.Fatalf("refuse rule: %v", d.Action)
	}
	wantOpen(t, one(t, e, syn(hostB, remote1, 587), t0), hostB, time.Minute, false, hostA)
}

func TestNoConflictWithoutNAT(t *testing.T) {
	e := newEngine(t, false, identRule(Refuse))
	one(t, e, syn(hostA, remote1, 25), t0)
	wantOpen(t, one(t, e, syn(hostB, remote1, 25), t0), hostB, 60*time.Second, false, netip.Addr{})
	ms := e.Mappings(t0, nil)
	if len(ms) != 2 || ms[0].Inside != hostA || ms[1].Inside != hostB {
		t.Fatalf("mappings %+v", ms)
	}
}

func TestSeveralRulesFire(t *testing.T) {
	ident := identRule(Refuse)
	ftp := &Rule{Name: "data", Out: tcp(20, 25), In: tcp(5000, 5009), Duration: 10 * time.Second, Inside: []string{"inside0"}, Line: 5}
	e := newEngine(t, true, ident, ftp)
	ds := e.Observe(syn(hostA, remote1, 25), t0, nil)
	if len(ds) != 2 || ds[0].Rule != ident || ds[1].Rule != ftp || ds[1].In != tcp(5000, 5009) || ds[1].Timeout != 10*time.Second {
		t.Fatalf("decisions %+v", ds)
	}
	if ds := e.Observe(syn(hostA, remote1, 21), t0.Add(time.Hour), nil); len(ds) != 1 || ds[0].Rule != ftp {
		t.Fatalf("decisions %+v", ds)
	}
}

func TestFull(t *testing.T) {
	e, err := NewEngine([]*Rule{identRule(Refuse)}, Options{NAT: true, Index: index, MaxMappings: 2})
	if err != nil {
		t.Fatal(err)
	}
	one(t, e, syn(hostA, remote1, 25), t0)
	one(t, e, syn(hostA, remote2, 25), t0.Add(30*time.Second))
	third := netip.MustParseAddr("203.0.113.9")
	if d := one(t, e, syn(hostA, third, 25), t0.Add(40*time.Second)); d.Action != Full {
		t.Fatalf("got %v, want full", d.Action)
	}
	none(t, e, syn(hostA, third, 25), t0.Add(40*time.Second+DefaultRefresh-1))
	if d := one(t, e, syn(hostA, third, 25), t0.Add(40*time.Second+DefaultRefresh)); d.Action != Full {
		t.Fatalf("got %v, want full again after Refresh", d.Action)
	}
	// Renewals of what is held still work when full.
	if d := one(t, e, syn(hostA, remote1, 25), t0.Add(42*time.Second)); d.Action != Open || !d.Renewed {
		t.Fatalf("renewal when full: %+v", d)
	}
	// Once remote2's mapping ended, room is made without Expire.
	if d := one(t, e, syn(hostA, third, 25), t0.Add(90*time.Second)); d.Action != Open {
		t.Fatalf("got %v after expiry, want open", d.Action)
	}
}

func TestCancel(t *testing.T) {
	e := newEngine(t, true, identRule(Refuse))
	d := one(t, e, syn(hostA, remote1, 25), t0)
	if err := e.Cancel(d); err != nil {
		t.Fatal(err)
	}
	// The next packet tries again at once, as new.
	wantOpen(t, one(t, e, syn(hostA, remote1, 25), t0), hostA, 60*time.Second, false, netip.Addr{})
	if err := e.Cancel(Decision{Action: Refused, Rule: d.Rule}); err == nil {
		t.Fatal("cancelled a refusal")
	}
	d.Inside = hostB
	if err := e.Cancel(d); err != ErrNotHeld {
		t.Fatalf("cancel of another host's mapping: %v", err)
	}
}

func TestResolve(t *testing.T) {
	r := identRule(Refuse)
	r.Inside = []string{"later0"}
	e := newEngine(t, true, r)
	p := syn(hostA, remote1, 25)
	p.Ifindex = 7
	none(t, e, p, t0)
	links["later0"] = 7
	defer delete(links, "later0")
	e.Resolve()
	one(t, e, p, t0)
}

func TestNewEngineErrors(t *testing.T) {
	noInside := identRule(Refuse)
	noInside.Inside = nil
	if _, err := NewEngine([]*Rule{noInside}, Options{NAT: true, Index: index}); err == nil {
		t.Error("NAT engine accepted a rule without inside interfaces")
	}
	if _, err := NewEngine([]*Rule{noInside}, Options{Index: index}); err != nil {
		t.Errorf("host engine: %v", err)
	}
	a := identRule(Refuse)
	b := &Rule{Name: "b", Out: tcp(80, 80), In: tcp(100, 113), Duration: time.Second, Line: 9}
	if _, err := NewEngine([]*Rule{a, b}, Options{Index: index}); err == nil {
		t.Error("accepted overlapping inbound ranges")
	}
	if _, err := NewEngine([]*Rule{{Name: "zero", Out: tcp(1, 1), In: tcp(2, 2)}}, Options{Index: index}); err == nil {
		t.Error("accepted a rule without duration")
	}
}

func TestObserveAllocs(t *testing.T) {
	e := newEngine(t, true, identRule(Refuse), &Rule{Name: "data", Out: tcp(20, 25), In: tcp(5000, 5009), Duration: time.Minute, Inside: []string{"inside0"}, Line: 5})
	dst := make([]Decision, 0, 4)
	miss := syn(hostA, remote1, 443)
	hit := syn(hostA, remote1, 25)
	refused := syn(hostB, remote1, 25)
	e.Observe(hit, t0, dst)
	now := t0
	for name, p := range map[string]*Packet{"miss": miss, "renewal": hit, "refused": refused} {
		n := testing.AllocsPerRun(1000, func() {
			now = now.Add(time.Millisecond)
			dst = e.Observe(p, now, dst[:0])
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per packet", name, n)
		}
	}
}

// BenchmarkObserve measures the per-packet path: a packet no rule wants
// (nearly all of them), and a trigger renewal.
func BenchmarkObserve(b *testing.B) {
	rules := []*Rule{identRule(Refuse)}
	for i := range 16 {
		p := uint16(1000 + 10*i)
		rules = append(rules, &Rule{Name: "r", Out: tcp(p, p+5), In: udp(p, p+5), Duration: time.Minute, Inside: []string{"inside0"}, Line: i + 2})
	}
	e, err := NewEngine(rules, Options{NAT: true, Index: index})
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]Decision, 0, 4)
	for _, bc := range []struct {
		name string
		p    *Packet
	}{{"miss", syn(hostA, remote1, 443)}, {"renewal", syn(hostA, remote1, 25)}} {
		b.Run(bc.name, func(b *testing.B) {
			now := t0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Millisecond)
				dst = e.Observe(bc.p, now, dst[:0])
			}
		})
	}
}

func TestDecisionGrantsForwards(t *testing.T) {
	d := Decision{Action: Open, Remote: remote1, Inside: hostA, In: udp(7000, 7002), Timeout: time.Minute}
	gs := d.Grants()
	fs := d.Forwards()
	if len(gs) != 3 || len(fs) != 3 {
		t.Fatalf("grants %v forwards %v", gs, fs)
	}
	for i, p := range []uint16{7000, 7001, 7002} {
		if g := gs[i]; g != (firewall.Grant{Addr: remote1, Proto: ports.UDP, Port: p, Timeout: time.Minute}) {
			t.Errorf("grant %d: %+v", i, g)
		}
		if f := fs[i]; f != (firewall.Forward{Remote: remote1, Proto: ports.UDP, Port: p, To: netip.AddrPortFrom(hostA, p), Timeout: time.Minute}) {
			t.Errorf("forward %d: %+v", i, f)
		}
	}
	d.Action = Refused
	if d.Grants() != nil || d.Forwards() != nil {
		t.Error("a refusal opens something")
	}
}

func TestRestore(t *testing.T) {
	game := &Rule{Name: "game", Out: udp(27000, 27010), In: tcp(7000, 7002), Duration: time.Minute, Inside: []string{"inside0"}, Line: 5}
	e := newEngine(t, true, identRule(Refuse), game)
	fw := func(remote netip.Addr, port uint16, to netip.Addr, d time.Duration) firewall.Forward {
		return firewall.Forward{Remote: remote, Proto: ports.TCP, Port: port, To: netip.AddrPortFrom(to, port), Timeout: d}
	}
	odd := fw(remote2, 7001, hostA, time.Minute)
	odd.To = netip.AddrPortFrom(hostA, 9999) // not a port-preserving forward
	split := fw(remote1, 7002, hostB, time.Minute)
	skipped := e.Restore([]firewall.Forward{
		fw(remote1, 113, hostA, 30*time.Second),
		fw(remote1, 7000, hostA, 50*time.Second),
		fw(remote1, 7001, hostA, 40*time.Second),
		split,
		fw(remote1, 8000, hostA, time.Minute), // no rule
		odd,
	}, t0)
	if len(skipped) != 3 || skipped[0] != split || skipped[1].Port != 8000 || skipped[2] != odd {
		t.Fatalf("skipped %v", skipped)
	}
	ms := e.Mappings(t0, nil)
	if len(ms) != 2 || ms[0].Rule != e.rules[0].r || ms[1].Rule != game ||
		!ms[0].Until.Equal(t0.Add(30*time.Second)) || !ms[1].Until.Equal(t0.Add(50*time.Second)) {
		t.Fatalf("mappings %+v", ms)
	}
	// Conflicts are decided against restored mappings, and the holder
	// renews at once.
	if d := one(t, e, syn(hostB, remote1, 25), t0); d.Action != Refused || d.Holder != hostA {
		t.Fatalf("%+v", d)
	}
	wantOpen(t, one(t, e, syn(hostA, remote1, 25), t0), hostA, time.Minute, true, netip.Addr{})
	host := newEngine(t, false, identRule(Refuse))
	if s := host.Restore([]firewall.Forward{fw(remote1, 113, hostA, time.Minute)}, t0); len(s) != 1 {
		t.Fatal("host engine restored a NAT forward")
	}
}
