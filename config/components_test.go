package config

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/sniff"
)

// TestSpanProtected: the knock span is closed for both transports next to
// the users' ports (SPEC.md §11: the receiver never answers on the span).
func TestSpanProtected(t *testing.T) {
	sp, err := encoding.NewSpan(40000)
	if err != nil {
		t.Fatal(err)
	}
	got := spanProtect([]ports.Range{{Proto: ports.UDP, From: 51820, To: 51820}, {Proto: ports.TCP, From: 22, To: 22}}, sp)
	want := []ports.Range{
		{Proto: ports.TCP, From: 22, To: 22},
		{Proto: ports.TCP, From: 40000, To: 50239},
		{Proto: ports.UDP, From: 40000, To: 50239},
		{Proto: ports.UDP, From: 51820, To: 51820},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	c := mustParse(t, minimal("span-base = 40000\n"))
	if got := c.Protected(); !slices.Equal(got, []ports.Range{want[0], want[1], want[2]}) {
		t.Errorf("Protected = %+v", got)
	}
}

// TestComponentOptions: each component's options come from the file as
// its keys say, and nothing else reads the Config for them.
func TestComponentOptions(t *testing.T) {
	c := mustParse(t, minimal("firewall = command\ncommand-open = true {addr} \"{proto} port\"\ncommand-close = true {addr}\ncommand-timeout = 3\nstate-dir = /var/lib/ck\nfirewall-name = other\n"))
	cc := c.CommandConfig(slog.New(slog.DiscardHandler))
	if cc.JournalPath != filepath.Join("/var/lib/ck", CommandJournal) || cc.Timeout.Seconds() != 3 ||
		strings.Join(cc.Open, "|") != "true|{addr}|{proto} port" || strings.Join(cc.Close, "|") != "true|{addr}" || cc.Log == nil {
		t.Errorf("CommandConfig = %+v", cc)
	}
	o := c.FirewallOptions("owner tag")
	if o.Name != "other" || o.Tag != "owner tag" || !slices.Equal(o.Protect, c.Protected()) || o.Log.Group != 0 || len(o.Log.Ports) != 0 {
		t.Errorf("FirewallOptions = %+v", o)
	}

	span := []ports.Range{{Proto: ports.TCP, From: 20480, To: 30719}, {Proto: ports.UDP, From: 20480, To: 30719}}
	for _, tc := range []struct {
		keys string
		want firewall.Log
	}{
		{"", firewall.Log{}},
		{"capture = nflog\nnflog-group = 7\n", firewall.Log{Ports: span, Group: 7}},
		{"capture = log\nlog-prefix = ck:\n", firewall.Log{Ports: span, Prefix: "ck:"}},
		// An appliance behind commands logs by its own rule.
		{"capture = log\nlog-prefix = ck:\nfirewall = command\ncommand-open = true {addr}\ncommand-close = true {addr}\n", firewall.Log{}},
	} {
		got := mustParse(t, minimal(tc.keys)).FirewallLog()
		if !slices.Equal(got.Ports, tc.want.Ports) || got.Group != tc.want.Group || got.Prefix != tc.want.Prefix {
			t.Errorf("%q: FirewallLog = %+v, want %+v", tc.keys, got, tc.want)
		}
	}
	if lc := mustParse(t, minimal("capture = log\nlog-source = /var/log/fw.log\nlog-prefix = ck:\n")).LogCaptureConfig(); lc != (sniff.LogConfig{Source: "/var/log/fw.log", Prefix: "ck:"}) {
		t.Errorf("LogCaptureConfig = %+v", lc)
	}
}

// TestSniffConfig: the capture reads knocks on the configured interfaces;
// with AF_PACKET it also reads the triggers' outbound ports, on their
// inside interfaces (every one when a trigger names none), outgoing on a
// host.
func TestSniffConfig(t *testing.T) {
	trig := "[trigger ident]\noutbound = tcp/25\ninbound = tcp/113\nduration = 60\ninside = eth1\n"
	c := mustParse(t, minimal("interfaces = eth0, eth1\n")+trig)
	sc := c.SniffConfig()
	if !slices.Equal(sc.Interfaces, []string{"eth0", "eth1"}) || sc.Span != c.Span || !slices.Equal(sc.Inside, []string{"eth1"}) ||
		len(sc.Triggers) != 1 || sc.Triggers[0].From != 25 || !sc.Outgoing {
		t.Errorf("SniffConfig = %+v", sc)
	}
	all := mustParse(t, minimal("")+trig+"[trigger any]\noutbound = udp/5060\ninbound = udp/5062\nduration = 60\n").SniffConfig()
	if all.Inside != nil || len(all.Triggers) != 2 {
		t.Errorf("a trigger on every interface: %+v", all)
	}
}
