package firewall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// Tests of what the backends promise when the kernel, the host or another
// program works against them: objects damaged or removed underneath,
// methods called after Close, iptables-legacy, a host ruleset that drops
// by default.

// nsFD returns a descriptor of ns's network namespace, closed at cleanup.
func nsFD(t *testing.T, ns *nstest.NS) int {
	t.Helper()
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return int(h)
}

// wantErr fails t unless err is non-nil and its text contains every one
// of parts.
func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one containing %q", what, parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %q, want it to contain %q", what, err, p)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "cipherknock", "ck-2", "a-b-c", strings.Repeat("z", 20)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("z", 21), "1ck", "-ck", "Ck", "ck_1", "ck 1", "ck.1", "ck\n", "cé", "ck/x", "ck;"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q): accepted", bad)
		}
	}
}

// TestLongestNameFits: the longest name CheckName accepts makes an
// iptables chain and ipset sets the kernel takes, and an nftables table.
func TestLongestNameFits(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset", "nft")
	ns := nstest.New(t, "fwname")
	fd := nsFD(t, ns)
	name := "a" + strings.Repeat("-9", 9) + "z"
	if err := CheckName(name); err != nil || len(name) != 20 {
		t.Fatalf("%q: %v", name, err)
	}
	ctx := context.Background()
	ipt, err := NewIPTables(Options{Name: name, Protect: iptTestProtect, NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer ipt.(io.Closer).Close()
	if ipt.Name() != "iptables" {
		t.Errorf("Name() = %q", ipt.Name())
	}
	if err := ipt.Setup(ctx); err != nil {
		t.Fatalf("iptables Setup with name %q: %v", name, err)
	}
	if err := ipt.(Supervised).Verify(ctx); err != nil {
		t.Fatal(err)
	}
	nft, err := NewNFTables(Options{Name: name, Protect: iptTestProtect, NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer nft.(io.Closer).Close()
	if err := nft.Setup(ctx); err != nil {
		t.Fatalf("nftables Setup with name %q: %v", name, err)
	}
	if out := ns.Run("nft", "list", "tables"); !strings.Contains(out, "inet "+name) {
		t.Errorf("tables:\n%s", out)
	}
	for _, b := range []Backend{ipt, nft} {
		if err := b.Teardown(ctx); err != nil {
			t.Errorf("%s: %v", b.Name(), err)
		}
	}
}

// TestCloseOnExecAllFallback: on a kernel without close_range(2) (before
// 5.11), the walk over /proc/self/fd marks a descriptor made without
// O_CLOEXEC, and leaves standard error alone.
func TestCloseOnExecAllFallback(t *testing.T) {
	old := closeRange
	closeRange = func() error { return unix.ENOSYS }
	defer func() { closeRange = old }()
	fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC != 0 {
		t.Fatal("descriptor already close-on-exec")
	}
	CloseOnExecAll()
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("after the fallback: flags %#x, %v", fl, err)
	}
	if fl, _ := unix.FcntlInt(2, unix.F_GETFD, 0); fl&unix.FD_CLOEXEC != 0 {
		t.Error("standard error marked close-on-exec")
	}
}

// TestIPTablesSupervised: Verify finds each kind of damage another
// program can do (a rule before the jump, a second jump, a changed chain,
// the set gone or replaced), Setup repairs it, Watch hears iptables-nft's
// changes, and Protected says the rules have no owner.
func TestIPTablesSupervised(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset", "iptables-save")
	if !iptablesIsNFT() {
		t.Fatal("this test drives iptables-nft; iptables is not it (TestIPTablesLegacy tests the other)")
	}
	ns := nstest.New(t, "iptsup")
	b := iptBackend(t, ns, iptTestProtect)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	iptSetup(t, b)
	sv := Supervised(b)
	if ok, why := sv.Protected(); ok || why == "" {
		t.Errorf("Protected() = %v, %q", ok, why)
	}
	if err := sv.Verify(ctx); err != nil {
		t.Fatalf("Verify after Setup: %v", err)
	}
	heard := make(chan struct{}, 64)
	werr := make(chan error, 1)
	go func() { werr <- sv.Watch(ctx, func() { heard <- struct{}{} }) }()
	// Watch joins the group in its goroutine: poke until it hears.
	waitFor(t, 10*time.Second, func() bool {
		ns.Run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
		ns.Run("iptables", "-D", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
		select {
		case <-heard:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	for _, tc := range []struct {
		name   string
		damage [][]string
		want   string
	}{
		{"second jump", [][]string{{"ip6tables", "-A", "INPUT", "-j", "CIPHERKNOCK"}}, "jumps to CIPHERKNOCK 2 times"},
		{"jump deleted", [][]string{{"iptables", "-D", "INPUT", "-j", "CIPHERKNOCK"}}, "jumps to CIPHERKNOCK 0 times"},
		{"chain flushed", [][]string{{"iptables", "-F", "CIPHERKNOCK"}}, "chain CIPHERKNOCK is gone or changed"},
		{"rule added", [][]string{{"ip6tables", "-A", "CIPHERKNOCK", "-j", "ACCEPT"}}, "ip6tables: chain CIPHERKNOCK is gone or changed"},
		{"set replaced", [][]string{
			{"ip6tables", "-F", "CIPHERKNOCK"},
			{"ipset", "destroy", "cipherknock6"},
			{"ipset", "create", "cipherknock6", "hash:ip", "family", "inet6"},
		}, "set cipherknock6 is gone or of another kind"},
		{"rule before the jump", [][]string{{"iptables", "-I", "INPUT", "1", "-p", "tcp", "-j", "ACCEPT"}}, "a rule comes before the jump"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for len(heard) > 0 {
				<-heard
			}
			for _, argv := range tc.damage {
				ns.Run(argv...)
			}
			wantErr(t, "Verify", sv.Verify(ctx), tc.want)
			select {
			case <-heard:
			case <-time.After(10 * time.Second):
				t.Error("Watch did not hear the change")
			}
			iptSetup(t, b)
			if err := sv.Verify(ctx); err != nil {
				t.Errorf("after repair: %v", err)
			}
		})
	}
	cancel()
	select {
	case err := <-werr:
		if err != nil {
			t.Errorf("Watch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Watch did not return when its context ended")
	}
}

// TestIPTablesClosed: after Close every method refuses, and the kernel
// state is left as it was.
func TestIPTablesClosed(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset", "iptables-save", "ip6tables-save")
	ns := nstest.New(t, "iptclosed")
	b := iptBackend(t, ns, iptTestProtect)
	iptSetup(t, b)
	g := Grant{Addr: netip.MustParseAddr("2001:db8::7"), Proto: ports.TCP, Port: iptTestPort, Timeout: time.Hour}
	iptMustGrant(t, b, g)
	before := iptSnapshot(t, ns, true)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	wantErr(t, "Setup", b.Setup(ctx), "closed")
	wantErr(t, "Teardown", b.Teardown(ctx), "closed")
	wantErr(t, "Grant", b.Grant(ctx, g), "closed")
	wantErr(t, "Revoke", b.Revoke(ctx, g), "closed")
	_, err := b.List(ctx)
	wantErr(t, "List", err, "closed")
	wantErr(t, "Verify", b.Verify(ctx), "closed")
	if got := iptSnapshot(t, ns, true); got != before {
		t.Errorf("Close changed the kernel state:\n%s\nwas:\n%s", got, before)
	}
}

// TestIPTablesRefusals: what the backend refuses before the kernel sees
// it, and a context that is already done.
func TestIPTablesRefusals(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "iptables", "ip6tables", "ipset")
	ns := nstest.New(t, "iptrefuse")
	fd := nsFD(t, ns)
	for _, opts := range []Options{
		{Protect: []ports.Range{{Proto: ports.TCP, From: 0, To: 22}}, NetNS: fd},
		{Protect: []ports.Range{{Proto: ports.Proto(99), From: 1, To: 22}}, NetNS: fd},
		{Log: Log{Ports: []ports.Range{{Proto: ports.TCP, From: 1, To: 2}}, Prefix: "bad prefix"}, NetNS: fd},
		{NetNS: 1 << 20}, // not a descriptor
	} {
		if b, err := NewIPTables(opts); err == nil {
			b.(io.Closer).Close()
			t.Errorf("NewIPTables(%+v) accepted", opts)
		} else if !strings.HasPrefix(err.Error(), "firewall: iptables: ") {
			t.Errorf("NewIPTables(%+v): %v, want the package's prefix", opts, err)
		}
	}
	b := iptBackend(t, ns, iptTestProtect)
	iptSetup(t, b)
	ctx := context.Background()
	for _, g := range []Grant{
		{Proto: ports.TCP, Port: 22, Timeout: time.Minute},
		{Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Timeout: time.Minute},
		{Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.Proto(99), Port: 22, Timeout: time.Minute},
		{Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Port: 22},
	} {
		if err := b.Grant(ctx, g); err == nil {
			t.Errorf("Grant(%+v) accepted", g)
		}
	}
	if err := b.Revoke(ctx, Grant{Proto: ports.TCP, Port: 22}); err == nil {
		t.Error("Revoke without an address accepted")
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	g := Grant{Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.TCP, Port: 22, Timeout: time.Minute}
	for what, err := range map[string]error{
		"Setup": b.Setup(done), "Teardown": b.Teardown(done), "Grant": b.Grant(done, g), "Revoke": b.Revoke(done, g),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a done context: %v", what, err)
		}
	}
	if gs := iptMustList(t, b); len(gs) != 0 {
		t.Errorf("grants after refusals: %v", gs)
	}
	// Revoking what is not granted is not an error.
	if err := b.Revoke(ctx, g); err != nil {
		t.Errorf("Revoke of nothing: %v", err)
	}
}

// legacyPath puts iptables-legacy first in PATH under the names the
// backend runs (iptables, ip6tables and their -save and -restore), for
// the rest of t.
func legacyPath(t *testing.T) {
	t.Helper()
	multi, err := exec.LookPath("xtables-legacy-multi")
	if err != nil {
		nstest.Skip(t, "iptables-legacy is not installed (xtables-legacy-multi): %v", err)
	}
	dir := t.TempDir()
	for _, n := range []string{"iptables", "ip6tables", "iptables-save", "ip6tables-save", "iptables-restore", "ip6tables-restore"} {
		if err := os.Symlink(multi, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestIPTablesLegacy: with iptables-legacy, whose rules are not nftables
// objects, the backend protects and grants as with iptables-nft, Verify
// finds damage, Watch says it hears nothing (the daemon then checks
// periodically), InspectHost reads the legacy INPUT policy and its mark
// rule, and Teardown leaves nothing of its own.
func TestIPTablesLegacy(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "ipset")
	legacyPath(t)
	if iptablesIsNFT() {
		t.Fatal("iptables in PATH is still iptables-nft")
	}
	srv, cli := nstest.New(t, "iptlegs"), nstest.New(t, "iptlegc")
	ls, lc := nstest.Connect(srv, cli, 73)
	fd := nsFD(t, srv)
	b := iptBackend(t, srv, iptTestProtect)
	iptSetup(t, b)
	iptListen(t, srv, iptTestPort)
	ctx := context.Background()
	if out := srv.Run("iptables-save"); !strings.Contains(out, "-A INPUT -j CIPHERKNOCK") {
		t.Fatalf("legacy rules after Setup:\n%s", out)
	}
	if out, _ := srv.Try("nft", "list", "ruleset"); strings.Contains(out, "CIPHERKNOCK") {
		t.Fatalf("iptables-legacy's rules in nftables:\n%s", out)
	}
	for _, a := range []netip.Addr{ls.Addr4, ls.Addr6} {
		if c, err := iptDial(cli, a, iptTestPort, iptBlocked); err == nil {
			c.Close()
			t.Fatalf("%v: protected port reachable before a grant", a)
		}
	}
	for _, a := range []netip.Addr{lc.Addr4, lc.Addr6} {
		iptMustGrant(t, b, Grant{Addr: a, Proto: ports.TCP, Port: iptTestPort, Timeout: time.Minute})
	}
	for _, a := range []netip.Addr{ls.Addr4, ls.Addr6} {
		c, err := iptDial(cli, a, iptTestPort, 5*time.Second)
		if err != nil {
			t.Fatalf("%v: granted, cannot connect: %v", a, err)
		}
		if err := iptEcho(c, "legacy"); err != nil {
			t.Error(err)
		}
		c.Close()
	}
	if err := b.Verify(ctx); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := b.Watch(ctx, func() {}); !errors.Is(err, ErrNoNotifications) {
		t.Errorf("Watch with iptables-legacy: %v, want ErrNoNotifications", err)
	}
	srv.Run("iptables", "-I", "INPUT", "1", "-j", "ACCEPT")
	wantErr(t, "Verify", b.Verify(ctx), "a rule comes before the jump to CIPHERKNOCK in INPUT")
	iptSetup(t, b)
	if err := b.Verify(ctx); err != nil {
		t.Fatalf("Verify after repair: %v", err)
	}

	// A host whose legacy INPUT drops by default.
	srv.Run("iptables", "-P", "INPUT", "DROP")
	h, err := InspectHost(fd, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var legacy *HostChain
	for i, c := range h.DropChains {
		if c.Table == "filter" && c.Chain == "INPUT" {
			legacy = &h.DropChains[i]
		}
	}
	if !h.IPTablesDrop || legacy == nil || !legacy.IPTables || legacy.AcceptsMark {
		t.Fatalf("InspectHost: %+v", h)
	}
	rule := legacy.MarkRule(0)
	if !strings.HasPrefix(rule, "iptables -I INPUT ") {
		t.Fatalf("MarkRule: %q", rule)
	}
	srv.Run(strings.Fields(rule)...)
	if h, err = InspectHost(fd, "", 0); err != nil {
		t.Fatal(err)
	}
	if len(h.DropChains) != 1 || !h.DropChains[0].AcceptsMark {
		t.Errorf("InspectHost after %q: %+v", rule, h)
	}
	srv.Run("iptables", "-D", "INPUT", "1")
	srv.Run("iptables", "-P", "INPUT", "ACCEPT")

	if err := b.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := srv.Run("iptables-save"); strings.Contains(got, "CIPHERKNOCK") {
		t.Errorf("after Teardown:\n%s", got)
	}
	if out := srv.Run("ipset", "list", "-n"); strings.Contains(out, "cipherknock") {
		t.Errorf("sets after Teardown: %s", out)
	}
}

// TestInspectHost: the host's input base chains that drop by default are
// found, in every family, ours and the ones that do not drop left out;
// the rule MarkRule suggests, run as it is, makes each accept the grant
// mark; iptables-nft's INPUT is named as iptables'.
func TestInspectHost(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft", "iptables")
	if !iptablesIsNFT() {
		t.Fatal("this test drives iptables-nft")
	}
	ns := nstest.New(t, "fwhost")
	fd := nsFD(t, ns)
	h, err := InspectHost(fd, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.DropChains) != 0 || h.IPTablesDrop {
		t.Fatalf("empty namespace: %+v", h)
	}
	ns.Run("nft", "add", "table", "inet", "host")
	ns.Run("nft", "add", "chain", "inet", "host", "in", "{ type filter hook input priority 0; policy drop; }")
	ns.Run("nft", "add", "chain", "inet", "host", "open", "{ type filter hook input priority 5; policy accept; }")
	ns.Run("nft", "add", "table", "ip6", "h6")
	ns.Run("nft", "add", "chain", "ip6", "h6", "in", "{ type filter hook input priority 0; policy drop; }")
	ns.Run("nft", "add", "rule", "ip6", "h6", "in", "tcp", "dport", "22", "accept")
	ns.Run("nft", "add", "table", "ip", "h4")
	ns.Run("nft", "add", "chain", "ip", "h4", "fw", "{ type filter hook forward priority 0; policy drop; }")
	// Our own table, under another name than the default.
	ns.Run("nft", "add", "table", "inet", "ours")
	ns.Run("nft", "add", "chain", "inet", "ours", "in", "{ type filter hook input priority 0; policy drop; }")
	ns.Run("iptables", "-P", "INPUT", "DROP")
	const mark = 0x100
	h, err = InspectHost(fd, "ours", mark)
	if err != nil {
		t.Fatal(err)
	}
	if !h.IPTablesDrop {
		t.Error("iptables' INPUT policy DROP not seen")
	}
	got := map[string]HostChain{}
	for _, c := range h.DropChains {
		got[c.Family+" "+c.Table+" "+c.Chain] = c
	}
	want := []string{"inet host in", "ip6 h6 in", "ip filter INPUT"}
	if len(got) != len(want) {
		t.Fatalf("drop chains %+v, want %v", h.DropChains, want)
	}
	for _, w := range want {
		c, ok := got[w]
		if !ok || c.AcceptsMark || c.IPTables != (c.Table == "filter") {
			t.Fatalf("chain %s: %+v (found %v)", w, c, ok)
		}
		rule := c.MarkRule(mark)
		if c.IPTables && !strings.HasPrefix(rule, "iptables ") || !c.IPTables && !strings.HasPrefix(rule, "nft insert rule "+w+" ") {
			t.Errorf("%s: MarkRule %q", w, rule)
		}
		ns.Run(strings.Fields(rule)...)
	}
	h, err = InspectHost(fd, "ours", mark)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range h.DropChains {
		if !c.AcceptsMark {
			t.Errorf("%+v: does not accept the mark after its MarkRule", c)
		}
	}
	// A rule for another mark bit does not count.
	if h, err = InspectHost(fd, "ours", 0x200); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.DropChains {
		if c.AcceptsMark {
			t.Errorf("%+v: accepts mark 0x200, its rule is for 0x100", c)
		}
	}
	// ip6tables' spelling for an ip6 chain made by ip6tables-nft.
	if r := (HostChain{Family: "ip6", Table: "filter", Chain: "INPUT", IPTables: true}).MarkRule(0); !strings.HasPrefix(r, "ip6tables -I INPUT -m mark --mark ") {
		t.Errorf("ip6 MarkRule: %q", r)
	}
	if _, err := InspectHost(1<<20, "", 0); err == nil {
		t.Error("InspectHost on a bad namespace descriptor: no error")
	}
}

// TestNFTablesAdopt: at a reload, a new backend for the same table takes
// over the old one's socket, and with it the owner-flagged table and its
// grants; the old one, closed, leaves them in place. A backend of another
// name or kind is not adopted.
func TestNFTablesAdopt(t *testing.T) {
	e := newNFTEnv(t, 77)
	ctx := context.Background()
	protect := []ports.Range{{Proto: ports.TCP, From: nftPort, To: nftPort}}
	old, err := NewNFTables(Options{Protect: protect, NetNS: e.fd})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, why := old.(Supervised).Protected(); !ok {
		t.Fatalf("owner flag not used on this kernel: %s", why)
	}
	g := Grant{Addr: e.lc.Addr6, Proto: ports.TCP, Port: nftPort, Timeout: time.Minute}
	if err := old.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	nb, err := NewNFTables(Options{Protect: protect, NetNS: e.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.(io.Closer).Close()
	other, err := NewNFTables(Options{Name: "other", Protect: protect, NetNS: e.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer other.(io.Closer).Close()
	a := nb.(Adopter)
	a.Adopt(other)            // another name: nothing happens
	a.Adopt(nb)               // itself: nothing
	a.Adopt(iptBackendFake{}) // another kind: nothing
	wantErr(t, "Setup before Adopt", nb.Setup(ctx), "firewall: nftables: setup: ", "is owned by")
	a.Adopt(old)
	if err := nb.Setup(ctx); err != nil {
		t.Fatalf("Setup after Adopt: %v", err)
	}
	if ok, _ := nb.(Supervised).Protected(); !ok {
		t.Error("the adopted table lost its owner flag")
	}
	if err := old.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if err := nb.(Supervised).Verify(ctx); err != nil {
		t.Fatalf("Verify after the old backend closed: %v", err)
	}
	gs, err := nb.List(ctx)
	if err != nil || len(gs) != 1 || gs[0].Addr != g.Addr {
		t.Fatalf("grants after the reload: %v, %v", gs, err)
	}
	e.mustReachAfterGrant(t, nb)
	if err := nb.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
}

// iptBackendFake is a Backend of another kind for Adopt.
type iptBackendFake struct{ Backend }

// mustReachAfterGrant checks that b's grants open the port for real.
func (e *nftEnv) mustReachAfterGrant(t *testing.T, b Backend) {
	t.Helper()
	e.listen(t)
	if err := b.Grant(context.Background(), Grant{Addr: e.lc.Addr4, Proto: ports.TCP, Port: nftPort, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	e.mustReach(t, e.lc.Addr4)
	e.mustNotReach(t, e.other4)
}

// TestNFTablesDamage: with the table not owned, each object another
// program removes or changes is named by Verify, and grants, revokes and
// listings against a table that is gone fail with the backend's prefix
// rather than claim success; Setup brings it all back and Teardown of a
// table already gone is no error.
func TestNFTablesDamage(t *testing.T) {
	e := newNFTEnv(t, 78)
	b := e.backend(t, ports.Range{Proto: ports.TCP, From: nftPort, To: nftPort})
	ctx := context.Background()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage [][]string
		want   string
	}{
		{"set deleted", [][]string{
			{"nft", "flush", "chain", "inet", NFTablesTable, NFTablesChain},
			{"nft", "delete", "set", "inet", NFTablesTable, NFTablesSet6},
		}, "firewall: nftables: set " + NFTablesSet6 + " is gone"},
		{"rule added", [][]string{{"nft", "add", "rule", "inet", NFTablesTable, NFTablesChain, "accept"}}, "firewall: nftables: chain " + NFTablesChain + " holds"},
		{"chain deleted", [][]string{{"nft", "delete", "chain", "inet", NFTablesTable, NFTablesChain}}, "firewall: nftables: chain " + NFTablesChain + " is gone"},
		{"set of another kind", [][]string{
			{"nft", "flush", "chain", "inet", NFTablesTable, NFTablesChain},
			{"nft", "delete", "set", "inet", NFTablesTable, NFTablesSet4},
			{"nft", "add", "set", "inet", NFTablesTable, NFTablesSet4, "{ type ipv4_addr; }"},
		}, "holds objects of another kind"},
		{"table deleted", [][]string{{"nft", "delete", "table", "inet", NFTablesTable}}, "firewall: nftables: table inet " + NFTablesTable + " is gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, argv := range tc.damage {
				e.srv.Run(argv...)
			}
			wantErr(t, "Verify", b.Verify(ctx), tc.want)
			if err := b.Setup(ctx); err != nil {
				t.Fatalf("Setup: %v", err)
			}
			if err := b.Verify(ctx); err != nil {
				t.Fatalf("Verify after Setup: %v", err)
			}
		})
	}
	e.srv.Run("nft", "delete", "table", "inet", NFTablesTable)
	g := Grant{Addr: e.lc.Addr4, Proto: ports.TCP, Port: nftPort, Timeout: time.Minute}
	wantErr(t, "Grant", b.Grant(ctx, g), "firewall: nftables: grant "+e.lc.Addr4.String())
	wantErr(t, "Revoke", b.Revoke(ctx, g), "firewall: nftables: revoke "+e.lc.Addr4.String())
	_, err := b.List(ctx)
	wantErr(t, "List", err, "firewall: nftables: list ")
	if err := b.Teardown(ctx); err != nil {
		t.Errorf("Teardown of a table already gone: %v", err)
	}
	// The socket was replaced after each failure: it still works.
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Grant{
		{Addr: netip.MustParseAddr("fe80::1%eth0"), Proto: ports.TCP, Port: nftPort, Timeout: time.Minute},
		{Proto: ports.TCP, Port: nftPort, Timeout: time.Minute},
		{Addr: e.lc.Addr4, Proto: ports.Proto(3), Port: nftPort, Timeout: time.Minute},
		{Addr: e.lc.Addr4, Proto: ports.TCP, Timeout: time.Minute},
		{Addr: e.lc.Addr4, Proto: ports.TCP, Port: nftPort, Timeout: time.Microsecond},
	} {
		wantErr(t, fmt.Sprintf("Grant(%+v)", bad), b.Grant(ctx, bad), "firewall: nftables: grant")
		if bad.Timeout > time.Millisecond {
			wantErr(t, fmt.Sprintf("Revoke(%+v)", bad), b.Revoke(ctx, bad), "firewall: nftables: revoke: ")
		}
	}
	if gs, err := b.List(ctx); err != nil || len(gs) != 1 {
		t.Errorf("after refused grants: %v, %v", gs, err)
	}
	for _, opts := range []Options{
		{Protect: []ports.Range{{Proto: ports.TCP, From: 0, To: 1}}, NetNS: e.fd},
		{Protect: []ports.Range{{Proto: ports.TCP, From: 9, To: 8}}, NetNS: e.fd},
		{Protect: []ports.Range{{Proto: ports.Proto(5), From: 1, To: 2}}, NetNS: e.fd},
		{Log: Log{Ports: []ports.Range{{Proto: ports.TCP, From: 1, To: 2}}}, NetNS: e.fd},
		{NetNS: 1 << 20},
	} {
		if nb, err := NewNFTables(opts); err == nil {
			nb.(io.Closer).Close()
			t.Errorf("NewNFTables(%+v) accepted", opts)
		} else if !strings.HasPrefix(err.Error(), "firewall: nftables: ") || strings.Count(err.Error(), "nftables") != 1 {
			t.Errorf("NewNFTables(%+v): %q, want one prefix", opts, err)
		}
	}
}

// TestNATRefusals: a NAT forwarder refuses work after Close and with a
// done context, and fails with its prefix, not silently, when its table
// was removed under it.
func TestNATRefusals(t *testing.T) {
	e := newNATEnv(t, NATOptions{Outside: []string{"wan0"}})
	ctx := context.Background()
	if err := e.nat.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	f := Forward{Remote: netip.MustParseAddr("203.0.113.7"), Proto: ports.TCP, Port: 8080,
		To: netip.MustParseAddrPort("192.168.1.10:80"), Timeout: time.Minute}
	if err := e.nat.Forward(ctx, f); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, lerr := e.nat.List(done)
	for what, err := range map[string]error{
		"Setup": e.nat.Setup(done), "Forward": e.nat.Forward(done, f), "Replace": e.nat.Replace(done, f),
		"Revoke": e.nat.Revoke(done, f), "List": lerr, "Teardown": e.nat.Teardown(done),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a done context: %v", what, err)
		}
	}
	// Refused before the kernel: nothing forwarded, nothing changed.
	bad := f
	bad.Timeout = 0
	wantErr(t, "Replace with no timeout", e.nat.Replace(ctx, bad), "firewall: nat: ", "too short")
	bad = f
	bad.To = netip.MustParseAddrPort("[2001:db8::1]:80")
	wantErr(t, "Revoke between families", e.nat.Revoke(ctx, bad), "firewall: nat: ", "between address families")
	if err := e.nat.Forward(ctx); err != nil {
		t.Errorf("Forward of nothing: %v", err)
	}

	e.gw.Run("nft", "delete", "table", "inet", NATTable)
	wantErr(t, "Forward", e.nat.Forward(ctx, f), "firewall: nat: forward: ")
	wantErr(t, "Replace", e.nat.Replace(ctx, f), "firewall: nat: list ")
	wantErr(t, "Revoke", e.nat.Revoke(ctx, f), "firewall: nat: list ")
	_, err := e.nat.List(ctx)
	wantErr(t, "List", err, "firewall: nat: list ")
	if err := e.nat.Teardown(ctx); err != nil {
		t.Errorf("Teardown of a table already gone: %v", err)
	}
	if err := e.nat.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.nat.Replace(ctx, f); err != nil {
		t.Fatalf("Replace after Setup: %v", err)
	}
	if fs, err := e.nat.List(ctx); err != nil || len(fs) != 1 || fs[0].To != f.To {
		t.Fatalf("List: %v, %v", fs, err)
	}

	if err := e.nat.Close(); err != nil {
		t.Fatal(err)
	}
	_, lerr = e.nat.List(ctx)
	for what, err := range map[string]error{
		"Setup": e.nat.Setup(ctx), "Forward": e.nat.Forward(ctx, f), "Replace": e.nat.Replace(ctx, f),
		"Revoke": e.nat.Revoke(ctx, f), "List": lerr, "Teardown": e.nat.Teardown(ctx),
	} {
		wantErr(t, what+" after Close", err, "firewall: nat: closed")
	}
	if out := e.gw.Run("nft", "list", "table", "inet", NATTable); !strings.Contains(out, "203.0.113.7") {
		t.Errorf("Close removed the forward:\n%s", out)
	}
	if _, err := NewNAT(NATOptions{NetNS: 1 << 20}); err == nil || !strings.HasPrefix(err.Error(), "firewall: nat: ") {
		t.Errorf("NewNAT with a bad namespace: %v", err)
	}
}
