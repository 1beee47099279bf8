package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/internal/lex"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/trigger"
)

// rule parses the section [trigger name] on line 1 with text as its body
// from line 2, and returns the rule or the errors as "LINE: message".
func rule(name, text string) (*trigger.Rule, []string) {
	p := &parser{file: "t", cfg: &Config{}}
	s := &section{kind: "trigger", name: name, line: 1}
	for _, l := range lex.Split([]byte(text)) {
		if l.Key != "" {
			s.entries = append(s.entries, entry{key: l.Key, value: l.Value, line: l.N + 1})
		}
	}
	r := p.rule(s)
	var out []string
	for _, e := range p.errs {
		out = append(out, strings.TrimPrefix(e.Error(), "t:"))
	}
	return r, out
}

func tcp(a, b uint16) ports.Range { return ports.Range{Proto: ports.TCP, From: a, To: b} }
func udp(a, b uint16) ports.Range { return ports.Range{Proto: ports.UDP, From: a, To: b} }

func TestRule(t *testing.T) {
	r, errs := rule("ident", "outbound = tcp/25\ninbound = TCP/113\nduration = 2m\ninside = eth1, eth2\noutside = eth0\non-conflict = last-wins")
	if errs != nil {
		t.Fatal(errs)
	}
	want := &trigger.Rule{Name: "ident", Out: tcp(25, 25), In: tcp(113, 113), Duration: 2 * time.Minute,
		Inside: []string{"eth1", "eth2"}, Outside: []string{"eth0"}, OnConflict: trigger.LastWins, Line: 1}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	r, errs = rule("game", "outbound = udp/6000-6010\ninbound = udp/7000-8023\nduration = 30")
	if errs != nil {
		t.Fatal(errs)
	}
	if r.OnConflict != trigger.Refuse || r.Out != udp(6000, 6010) || r.In != udp(7000, 8023) || r.Duration != 30*time.Second || r.Inside != nil {
		t.Fatalf("defaults: %+v", r)
	}
}

func TestRuleErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"bad name", "", []string{
			"1: trigger name: \"a b\" may contain only letters, digits, '.', '-', '_' and '@', and must start with a letter, a digit or '_'",
			`1: [trigger "a b"] needs outbound (outbound = tcp/25: what an inside host connects to)`,
			`1: [trigger "a b"] needs inbound (inbound = tcp/113: what the remote server may then reach)`,
			`1: [trigger "a b"] needs a duration (duration = 60)`,
		}},
		{"ports", "outbound = tcp25\ninbound = icmp/1\nduration = 60", []string{
			`2: outbound: "tcp25": want PROTO/PORT or PROTO/FROM-TO (like tcp/22)`,
			`3: inbound: "icmp/1": protocol must be tcp or udp`,
		}},
		{"ranges", "outbound = tcp/0\ninbound = udp/9-8\nduration = 60", []string{
			`2: outbound: "tcp/0": port outside 1..65535`,
			`3: inbound: "udp/9-8": range ends before it starts`,
		}},
		{"numbers", "outbound = tcp/x\ninbound = tcp/1-65535\nduration = 60", []string{
			`2: outbound: "tcp/x": port must be a number 1..65535`,
			`3: inbound: "tcp/1-65535" has 65535 ports, more than 1024`,
		}},
		{"durations", "outbound = tcp/25\ninbound = tcp/113\nduration = 0", []string{`4: duration: 0 seconds is outside 1..86400`}},
		{"duration fraction", "outbound = tcp/25\ninbound = tcp/113\nduration = 1.5s", []string{`4: duration: "1.5s" is not a whole number of seconds (like 60 or 1m)`}},
		{"duration too long", "outbound = tcp/25\ninbound = tcp/113\nduration = 25h", []string{`4: duration: "25h" is outside 1..86400 seconds`}},
		{"interfaces", "outbound = tcp/25\ninbound = tcp/113\nduration = 60\ninside = eth0, a/b, averyveryverylongname\noutside = ,", []string{
			`5: inside: "a/b" is not an interface name`,
			`5: inside: "averyveryverylongname" is not an interface name`,
			`6: outside: empty list (leave the key out to allow every interface)`,
		}},
		{"conflict and unknown key", "outbound = tcp/25\ninbound = tcp/113\nduration = 60\non-conflict = first-wins\nport = tcp/22", []string{
			`5: on-conflict: "first-wins" is not refuse or last-wins`,
			`6: unknown key "port" in [trigger x]`,
		}},
		{"long value cut", "outbound = tcp/" + strings.Repeat("9", 100) + "\ninbound = tcp/113\nduration = 60", []string{
			`2: outbound: "tcp/999999999999999999999999999999999999...": port must be a number 1..65535`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "x"
			if tc.name == "bad name" {
				name = "a b"
			}
			r, got := rule(name, tc.text)
			if r != nil {
				t.Fatalf("accepted: %+v", r)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// FuzzRule feeds arbitrary section bodies to the trigger parser: it must
// not panic, must return either a rule or errors, every error on a line of
// the section, and a rule that trigger.NewEngine accepts.
func FuzzRule(f *testing.F) {
	for _, s := range []string{
		"outbound = tcp/25\ninbound = tcp/113\nduration = 60",
		"outbound = udp/6000-6010\ninbound = udp/7000-7010\nduration = 1m\ninside = eth1\noutside = eth0\non-conflict = last-wins",
		"outbound = tcp/25\ninbound = tcp/1-65535\nduration = 86401",
		"outbound=\ninbound=/\nduration=-1s\ninside=,,\non-conflict=",
		"outbound = TCP/0-0\nduration = 1h\nfoo = bar",
	} {
		f.Add("ident", s)
	}
	index := func(string) (int, bool) { return 1, true }
	f.Fuzz(func(t *testing.T, name, body string) {
		r, errs := rule(name, body)
		if (r == nil) == (len(errs) == 0) {
			t.Fatalf("rule %v with errors %v", r, errs)
		}
		last := 1 + strings.Count(body, "\n") + 1
		for _, e := range errs {
			n, err := strconv.Atoi(e[:strings.IndexByte(e, ':')])
			if err != nil || n < 1 || n > last {
				t.Fatalf("error outside lines 1..%d: %s", last, e)
			}
			if len(e) > 400 {
				t.Fatalf("message of %d bytes: %.80s...", len(e), e)
			}
		}
		if r == nil {
			return
		}
		if r.Duration < time.Second || r.Duration > trigger.MaxDuration*time.Second || r.Duration%time.Second != 0 {
			t.Fatalf("duration %v", r.Duration)
		}
		if r.In.To-r.In.From >= trigger.MaxInboundLen {
			t.Fatalf("inbound %v", r.In)
		}
		if _, err := trigger.NewEngine([]*trigger.Rule{r}, trigger.Options{Index: index}); err != nil {
			t.Fatalf("engine refused a parsed rule: %v", err)
		}
		r.Inside = append(r.Inside, "inside0")
		if _, err := trigger.NewEngine([]*trigger.Rule{r}, trigger.Options{NAT: true, Index: index}); err != nil {
			t.Fatalf("NAT engine refused a parsed rule with inside interfaces: %v", err)
		}
	})
}
