package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/policy"
	"github.com/cipherknock/cipherknock/ports"
)

func TestParseRevoke(t *testing.T) {
	for _, c := range []struct {
		args []string
		want RevokeFilter
		err  bool
	}{
		{[]string{"192.0.2.1"}, RevokeFilter{Addr: netip.MustParseAddr("192.0.2.1")}, false},
		{[]string{"::ffff:192.0.2.1", "tcp/22"}, RevokeFilter{Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Port: 22}, false},
		{[]string{"2001:db8::1", "udp/53"}, RevokeFilter{Addr: netip.MustParseAddr("2001:db8::1"), Proto: ports.UDP, Port: 53}, false},
		{[]string{"--user", "alice"}, RevokeFilter{User: "alice"}, false},
		{[]string{"fe80::1%eth0"}, RevokeFilter{}, true},
		{[]string{"192.0.2.1", "tcp/22-23"}, RevokeFilter{}, true},
		{[]string{"example.org"}, RevokeFilter{}, true},
		{nil, RevokeFilter{}, true},
		{[]string{"a", "b", "c"}, RevokeFilter{}, true},
	} {
		got, err := ParseRevoke(c.args)
		if (err != nil) != c.err || !c.err && got != c.want {
			t.Errorf("%q: %+v, %v", c.args, got, err)
		}
	}
}

// FuzzParseRevoke: control socket input never panics, and what parses
// selects something.
func FuzzParseRevoke(f *testing.F) {
	f.Add("192.0.2.1 tcp/22")
	f.Add("--user alice")
	f.Add("::1")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRevoke(strings.Fields(line))
		if err == nil && r.User == "" && !r.Addr.IsValid() {
			t.Fatalf("%q parsed to an empty filter", line)
		}
	})
}

func TestReloadSummary(t *testing.T) {
	old := &config.Config{Users: []*policy.User{{Name: "alice"}, {Name: "bob"}}}
	cfg := &config.Config{Users: []*policy.User{{Name: "bob"}, {Name: "carol"}}}
	g := firewall.Grant{Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Port: 22, User: "alice"}
	s := reloadSummary(old, cfg, []firewall.Grant{g}, []string{"span-base"}, true)
	want := "configuration reloaded: users added: carol; users removed: alice; 1 grants revoked: 192.0.2.1 tcp/22 (alice); firewall objects restored; need a restart (old values kept): span-base"
	if s != want {
		t.Errorf("got  %s\nwant %s", s, want)
	}
	if s := reloadSummary(cfg, cfg, nil, nil, false); s != "configuration reloaded: no change (2 users)" {
		t.Errorf("no change: %s", s)
	}
}
