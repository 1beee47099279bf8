package trigger

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// section cuts text into entries the way the configuration parser does:
// one "key = value" per line, numbered from first.
func section(first int, text string) []Entry {
	var es []Entry
	for i, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		es = append(es, Entry{Key: strings.TrimSpace(k), Value: strings.TrimSpace(v), Line: first + i})
	}
	return es
}

func TestParseRule(t *testing.T) {
	r, errs := ParseRule("ident", 10, section(11, `outbound = tcp/25
inbound = TCP/113
duration = 2m
inside = eth1, eth2
outside = eth0
on-conflict = last-wins`))
	if errs != nil {
		t.Fatal(errs)
	}
	want := &Rule{Name: "ident", Out: tcp(25, 25), In: tcp(113, 113), Duration: 2 * time.Minute,
		Inside: []string{"eth1", "eth2"}, Outside: []string{"eth0"}, OnConflict: LastWins, Line: 10}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	r, errs = ParseRule("game", 1, section(2, "outbound = udp/6000-6010\ninbound = udp/7000-8023\nduration = 30"))
	if errs != nil {
		t.Fatal(errs)
	}
	if r.OnConflict != Refuse || r.Out != udp(6000, 6010) || r.In != udp(7000, 8023) || r.Duration != 30*time.Second || r.Inside != nil {
		t.Fatalf("defaults: %+v", r)
	}
}

func TestParseRuleErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // "line: message", in order
	}{
		{"bad name", "", []string{
			"1: trigger name: \"a b\" may contain only letters, digits, '.', '-', '_' and '@'",
			`1: [trigger "a b"] needs outbound (outbound = tcp/25: what an inside host connects to)`,
			`1: [trigger "a b"] needs inbound (inbound = tcp/113: what the remote server may then reach)`,
			`1: [trigger "a b"] needs a duration (duration = 60)`,
		}},
		{"ports", `outbound = tcp25
inbound = icmp/1
duration = 60`, []string{
			`2: outbound: "tcp25": want PROTO/PORT or PROTO/FROM-TO (like tcp/22)`,
			`3: inbound: "icmp/1": protocol must be tcp or udp`,
		}},
		{"ranges", `outbound = tcp/0
inbound = udp/9-8
duration = 60`, []string{
			`2: outbound: "tcp/0": port outside 1..65535`,
			`3: inbound: "udp/9-8": range ends before it starts`,
		}},
		{"numbers", `outbound = tcp/x
inbound = tcp/1-65535
duration = 60`, []string{
			`2: outbound: "tcp/x": port must be a number 1..65535`,
			`3: inbound: "tcp/1-65535" has 65535 ports, more than 1024`,
		}},
		{"durations", `outbound = tcp/25
inbound = tcp/113
duration = 0`, []string{`4: duration: 0 seconds is outside 1..86400`}},
		{"duration fraction", `outbound = tcp/25
inbound = tcp/113
duration = 1.5s`, []string{`4: duration: "1.5s" is not a whole number of seconds (like 60 or 1m)`}},
		{"duration too long", `outbound = tcp/25
inbound = tcp/113
duration = 25h`, []string{`4: duration: "25h" is outside 1..86400 seconds`}},
		{"interfaces", `outbound = tcp/25
inbound = tcp/113
duration = 60
inside = eth0, a/b, averyveryverylongname
outside = ,`, []string{
			`5: inside: "a/b" is not an interface name`,
			`5: inside: "averyveryverylongname" is not an interface name`,
			`6: outside: empty list (leave the key out to allow every interface)`,
		}},
		{"conflict and unknown key", `outbound = tcp/25
inbound = tcp/113
duration = 60
on-conflict = first-wins
port = tcp/22`, []string{
			`5: on-conflict: "first-wins" is not refuse or last-wins`,
			`6: unknown key "port" in [trigger x]`,
		}},
		{"long value cut", `outbound = tcp/` + strings.Repeat("9", 100) + `
inbound = tcp/113
duration = 60`, []string{
			`2: outbound: "tcp/999999999999999999999999999999999999...": port must be a number 1..65535`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "x"
			if tc.name == "bad name" {
				name = "a b"
			}
			r, errs := ParseRule(name, 1, section(2, tc.text))
			if r != nil {
				t.Fatalf("accepted: %+v", r)
			}
			var got []string
			for _, e := range errs {
				got = append(got, strings.TrimPrefix(e.Error(), "line "))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestParseRuleName(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("x", 65), "é", "a]"} {
		_, errs := ParseRule(name, 3, section(4, "outbound = tcp/25\ninbound = tcp/113\nduration = 60"))
		if len(errs) != 1 || errs[0].Line != 3 || !strings.HasPrefix(errs[0].Msg, "trigger name: ") {
			t.Errorf("name %q: %v", name, errs)
		}
	}
}

func TestCheck(t *testing.T) {
	a := &Rule{Name: "a", In: tcp(100, 200), Line: 1}
	same := &Rule{Name: "same", In: tcp(100, 200), Line: 5}
	otherProto := &Rule{Name: "udp", In: udp(150, 250), Line: 9}
	disjoint := &Rule{Name: "d", In: tcp(201, 300), Line: 13}
	overlap := &Rule{Name: "o", In: tcp(200, 200), Line: 17}
	if errs := Check([]*Rule{a, same, otherProto, disjoint}); errs != nil {
		t.Fatal(errs)
	}
	errs := Check([]*Rule{a, same, otherProto, disjoint, overlap})
	want := "line 17: [trigger o] inbound tcp/200 overlaps inbound tcp/100-200 of [trigger a] on line 1: inbound ranges must be equal or disjoint"
	if len(errs) != 1 || errs[0].Error() != want {
		t.Fatalf("got %v\nwant %s", errs, want)
	}
}

// FuzzParseRule feeds arbitrary section bodies to the parser: it must not
// panic, must return either a rule or errors, every error on a line of
// the section, and a rule that NewEngine accepts.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"outbound = tcp/25\ninbound = tcp/113\nduration = 60",
		"outbound = udp/6000-6010\ninbound = udp/7000-7010\nduration = 1m\ninside = eth1\noutside = eth0\non-conflict = last-wins",
		"outbound = tcp/25\ninbound = tcp/1-65535\nduration = 86401",
		"outbound=\ninbound=/\nduration=-1s\ninside=,,\non-conflict=",
		"outbound = TCP/0-0\nduration = 1h\nfoo = bar",
	} {
		f.Add("ident", s)
	}
	f.Fuzz(func(t *testing.T, name, body string) {
		es := section(2, body)
		r, errs := ParseRule(name, 1, es)
		if (r == nil) == (len(errs) == 0) {
			t.Fatalf("rule %v with errors %v", r, errs)
		}
		last := 1 + strings.Count(body, "\n") + 1
		for _, e := range errs {
			if e.Line < 1 || e.Line > last {
				t.Fatalf("error on line %d of a %d-line section: %v", e.Line, last, e)
			}
			if len(e.Msg) > 400 {
				t.Fatalf("message of %d bytes: %.80s...", len(e.Msg), e.Msg)
			}
		}
		if r == nil {
			return
		}
		if r.Duration < time.Second || r.Duration > MaxDuration*time.Second || r.Duration%time.Second != 0 {
			t.Fatalf("duration %v", r.Duration)
		}
		if r.In.To-r.In.From >= MaxInboundLen {
			t.Fatalf("inbound %v", r.In)
		}
		if _, err := NewEngine([]*Rule{r}, Options{Index: index}); err != nil {
			t.Fatalf("engine refused a parsed rule: %v", err)
		}
		r.Inside = append(r.Inside, "inside0")
		if _, err := NewEngine([]*Rule{r}, Options{NAT: true, Index: index}); err != nil {
			t.Fatalf("NAT engine refused a parsed rule with inside interfaces: %v", err)
		}
	})
}
