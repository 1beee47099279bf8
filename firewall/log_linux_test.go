package firewall

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

var (
	logSpan   = []ports.Range{{Proto: ports.TCP, From: 20480, To: 30719}, {Proto: ports.UDP, From: 20480, To: 30719}}
	logGroup  = Log{Ports: logSpan, Group: 7}
	logPrefix = Log{Ports: logSpan, Prefix: "ck-knock:"}
)

// TestNFTablesLogRules: with Options.Log, each logged range gets a log
// statement ahead of the drops (to the group, or with the prefix and a
// space), and a second Setup leaves the same ruleset.
func TestNFTablesLogRules(t *testing.T) {
	for _, c := range []struct {
		log  Log
		want string
	}{
		{logGroup, "udp dport 20480-30719 log group 7 snaplen 128"},
		{logPrefix, `udp dport 20480-30719 log prefix "ck-knock: " level info`},
	} {
		e := newNFTEnv(t, 60)
		b, err := NewNFTables(Options{Protect: logSpan, Log: c.log, NetNS: e.fd})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.(io.Closer).Close() })
		if err := b.Setup(context.Background()); err != nil {
			t.Fatal(err)
		}
		first := nftRuleset(t, e.srv)
		if !strings.Contains(first, c.want) || strings.Index(first, c.want) > strings.Index(first, "udp dport 20480-30719 drop") {
			t.Fatalf("no %q before the drop in\n%s", c.want, first)
		}
		if err := b.Setup(context.Background()); err != nil {
			t.Fatal(err)
		}
		if again := nftRuleset(t, e.srv); again != first {
			t.Errorf("second Setup changed the ruleset:\n%s\nthen\n%s", first, again)
		}
	}
}

// TestIPTablesLogRules: the same with iptables: NFLOG or LOG targets
// before the DROPs, spelled as iptables -S prints them, so a second Setup
// finds the chain as it should be and rewrites nothing.
func TestIPTablesLogRules(t *testing.T) {
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset")
	for _, c := range []struct {
		log  Log
		want string
	}{
		{logGroup, "-A CIPHERKNOCK -p udp -m udp --dport 20480:30719 -j NFLOG --nflog-group 7 --nflog-size 128"},
		{logPrefix, `-A CIPHERKNOCK -p udp -m udp --dport 20480:30719 -j LOG --log-prefix "ck-knock: " --log-level 6`},
	} {
		ns := nstest.New(t, "iptlog")
		h, err := ns.Handle()
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewIPTables(Options{Protect: logSpan, Log: c.log, NetNS: int(h)})
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.(io.Closer).Close() })
		if err := b.Setup(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"iptables", "ip6tables"} {
			out := ns.Run(cmd, "-S", IPTablesChain)
			if !strings.Contains(out, c.want) || strings.Index(out, c.want) > strings.Index(out, "--dport 20480:30719 -j DROP") {
				t.Fatalf("%s: no %q before the drop in\n%s", cmd, c.want, out)
			}
		}
		first := iptSnapshot(t, ns, true)
		if err := b.Setup(context.Background()); err != nil {
			t.Fatal(err)
		}
		if again := iptSnapshot(t, ns, true); again != first {
			t.Errorf("second Setup changed the rules:\n%s\nthen\n%s", first, again)
		}
	}
}

func TestLogOptionsChecked(t *testing.T) {
	for _, l := range []Log{
		{Ports: logSpan},                                  // group 0
		{Ports: logSpan, Prefix: "has space"},             // a space
		{Ports: logSpan, Prefix: `quote"`},                // a quote
		{Ports: logSpan, Prefix: strings.Repeat("a", 29)}, // too long
		{Ports: []ports.Range{{Proto: ports.TCP, From: 0, To: 1}}, Group: 1},
	} {
		if err := checkLog(l); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	for _, l := range []Log{{}, logGroup, logPrefix, {Ports: logSpan, Prefix: strings.Repeat("a", MaxLogPrefix)}} {
		if err := checkLog(l); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
}
