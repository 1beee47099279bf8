package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// The command backend driving the real nft command: the host's ruleset
// (made by the test) drops the service unless the address is in its set,
// and the templates add and delete set elements. Real TCP connections go
// through for granted addresses of both families, and stop when the grant
// is over.
func TestCommandWithNFT(t *testing.T) {
	e := newNFTEnv(t, 38)
	e.listen(t)
	e.srv.Run("nft", fmt.Sprintf(`add table inet host
add set inet host knocked4 { type ipv4_addr . inet_proto . inet_service; }
add set inet host knocked6 { type ipv6_addr . inet_proto . inet_service; }
add chain inet host input { type filter hook input priority filter; policy accept; }
add rule inet host input ct state established,related accept
add rule inet host input ip saddr . meta l4proto . th dport @knocked4 accept
add rule inet host input ip6 saddr . meta l4proto . th dport @knocked6 accept
add rule inet host input tcp dport %d drop`, nftPort))
	elem := "{ {addr} . {proto} . {port} }"
	in := []string{"ip", "netns", "exec", e.srv.Name, "nft"}
	be, err := NewCommand(CommandConfig{
		Open:        append(in[:len(in):len(in)], "add", "element", "inet", "host", "knocked{ipver}", elem),
		Close:       append(in[:len(in):len(in)], "delete", "element", "inet", "host", "knocked{ipver}", elem),
		JournalPath: filepath.Join(t.TempDir(), "journal"),
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := be.(*Command)
	ctx := context.Background()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6} {
		e.mustNotReach(t, a)
		// 4 s: the checks below, a few dials of up to a second each,
		// run while both grants are open, on a loaded machine too.
		if err := b.Grant(ctx, Grant{Addr: a, Proto: ports.TCP, Port: nftPort, Timeout: 4 * time.Second, User: "alice"}); err != nil {
			t.Fatal(err)
		}
		e.mustReach(t, a)
	}
	if got := e.srv.Run("nft", "list", "set", "inet", "host", "knocked6"); !strings.Contains(got, e.lc.Addr6.String()+" . tcp . "+fmt.Sprint(nftPort)) {
		t.Errorf("element missing:\n%s", got)
	}
	e.mustNotReach(t, e.other4)
	e.mustNotReach(t, e.other6)
	// The close command runs at the grant's time: wait for it (10 s, a
	// generous bound for a loaded machine).
	waitFor(t, 10*time.Second, func() bool {
		return !strings.Contains(e.srv.Run("nft", "list", "set", "inet", "host", "knocked4"), "elements") &&
			!strings.Contains(e.srv.Run("nft", "list", "set", "inet", "host", "knocked6"), "elements")
	})
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6} {
		e.mustNotReach(t, a)
	}
}

func TestAutoPicksNFTables(t *testing.T) {
	e := newNFTEnv(t, 39)
	b, reason, err := Auto(Options{NetNS: e.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer b.(*NFTables).Close()
	if b.Name() != "nftables" || !strings.Contains(reason, "nf_tables") {
		t.Errorf("Auto = %s (%s), want nftables", b.Name(), reason)
	}
	// The probe leaves nothing behind.
	if got := nftRuleset(t, e.srv); strings.TrimSpace(got) != "" {
		t.Errorf("probe left:\n%s", got)
	}
}

func TestAutoFallsBackToIPTables(t *testing.T) {
	e := newNFTEnv(t, 40)
	defer func(p func(int) error) { probeNFTables = p }(probeNFTables)
	probeNFTables = func(int) error { return errors.New("no nf_tables here") }
	b, reason, err := Auto(Options{NetNS: e.fd})
	if err != nil {
		t.Fatalf("Auto with nftables refused: %v", err)
	}
	if c, ok := b.(interface{ Close() error }); ok {
		defer c.Close()
	}
	if b.Name() != "iptables" || !strings.Contains(reason, "no nf_tables here") {
		t.Errorf("Auto = %s (%s), want iptables with the reason", b.Name(), reason)
	}
}

// The command backend driving the real iptables and ip6tables commands:
// a rule inserted per grant ahead of the host's drop, deleted at expiry.
func TestCommandWithIPTables(t *testing.T) {
	e := newNFTEnv(t, 43)
	e.listen(t)
	for _, c := range []string{"iptables", "ip6tables"} {
		nstest.RequireTool(t, c)
		e.srv.Run(c, "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(nftPort), "-j", "DROP")
	}
	in := []string{"ip", "netns", "exec", e.srv.Name}
	rule := func(prog, op string) []string {
		return append(in[:len(in):len(in)], prog, op, "INPUT", "-s", "{addr}", "-p", "{proto}", "--dport", "{port}", "-j", "ACCEPT",
			"-m", "comment", "--comment", "cipherknock {user}")
	}
	be, err := NewCommand(CommandConfig{
		Open: rule("iptables", "-I"), Close: rule("iptables", "-D"),
		Open6: rule("ip6tables", "-I"), Close6: rule("ip6tables", "-D"),
		JournalPath: filepath.Join(t.TempDir(), "journal"),
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := be.(*Command)
	ctx := context.Background()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6} {
		e.mustNotReach(t, a)
		if err := b.Grant(ctx, Grant{Addr: a, Proto: ports.TCP, Port: nftPort, Timeout: 1500 * time.Millisecond, User: "alice"}); err != nil {
			t.Fatal(err)
		}
		e.mustReach(t, a)
		// A re-grant does not add a second rule.
		if err := b.Grant(ctx, Grant{Addr: a, Proto: ports.TCP, Port: nftPort, Timeout: 1500 * time.Millisecond, User: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	e.mustNotReach(t, e.other4)
	e.mustNotReach(t, e.other6)
	if got := e.srv.Run("ip6tables", "-S", "INPUT"); strings.Count(got, "cipherknock alice") != 1 {
		t.Errorf("want one granted rule:\n%s", got)
	}
	// The close command runs at the grant's time: wait for it (10 s, a
	// generous bound for a loaded machine).
	waitFor(t, 10*time.Second, func() bool {
		return !strings.Contains(e.srv.Run("iptables", "-S", "INPUT"), "cipherknock") &&
			!strings.Contains(e.srv.Run("ip6tables", "-S", "INPUT"), "cipherknock")
	})
	for _, a := range []netip.Addr{e.lc.Addr4, e.lc.Addr6} {
		e.mustNotReach(t, a)
	}
	for _, c := range []string{"iptables", "ip6tables"} {
		if got := e.srv.Run(c, "-S", "INPUT"); strings.Contains(got, "cipherknock") {
			t.Errorf("%s rule left after its time:\n%s", c, got)
		}
	}
}
