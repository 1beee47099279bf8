package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/internal/nstest"
)

// backend is one way of running the daemon's firewall in the tests.
type backend struct {
	name  string   // the firewall = value
	label string   // for test names, when name is not enough
	tools []string // commands the test needs
	extra string   // [daemon] lines
	// host, when set, runs in the server namespace before the daemon's
	// first grant: the command backend's templates need a table of the
	// host's own.
	host func(w *world)
}

// hostNFT is a host's own nftables table for the command backend: sets of
// knocked address . protocol . port, and an input chain that accepts them
// and drops the service's port for everyone else.
const hostNFT = `table inet hostfw {
	set knocked4 { type ipv4_addr . inet_proto . inet_service; }
	set knocked6 { type ipv6_addr . inet_proto . inet_service; }
	chain input {
		type filter hook input priority 0; policy accept;
		ct state established,related accept
		ip saddr . meta l4proto . th dport @knocked4 accept
		ip6 saddr . meta l4proto . th dport @knocked6 accept
		tcp dport 8080 drop
	}
}
`

var backends = []backend{
	{name: "nftables", tools: []string{"nft"}},
	{name: "iptables", tools: []string{"iptables", "ip6tables", "ipset"}},
	{
		name:  "command",
		tools: []string{"nft"},
		extra: `command-open = nft add element inet hostfw knocked{ipver} "{ {addr} . {proto} . {port} }"
command-close = nft delete element inet hostfw knocked{ipver} "{ {addr} . {proto} . {port} }"
command-timeout = 5`,
		host: func(w *world) {
			f := w.writeFile("hostfw.nft", hostNFT, 0o600)
			w.server.Run("nft", "-f", f)
		},
	},
	{
		// iptables and ip6tables are two programs: the *6 templates.
		name:  "command",
		label: "command-iptables",
		tools: []string{"iptables", "ip6tables"},
		extra: `command-open = iptables -I INPUT -s {addr} -p {proto} --dport {port} -j ACCEPT -m comment --comment "cipherknock {user}"
command-close = iptables -D INPUT -s {addr} -p {proto} --dport {port} -j ACCEPT -m comment --comment "cipherknock {user}"
command-open6 = ip6tables -I INPUT -s {addr} -p {proto} --dport {port} -j ACCEPT -m comment --comment "cipherknock {user}"
command-close6 = ip6tables -D INPUT -s {addr} -p {proto} --dport {port} -j ACCEPT -m comment --comment "cipherknock {user}"`,
		host: func(w *world) {
			for _, ipt := range []string{"iptables", "ip6tables"} {
				w.server.Run(ipt, "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
				w.server.Run(ipt, "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
			}
		},
	},
}

// String is the backend's name in test output.
func (b backend) String() string {
	if b.label != "" {
		return b.label
	}
	return b.name
}

// newBackendWorld is newWorldFW for b, with the host's own ruleset in
// place before the first knock.
func newBackendWorld(t *testing.T, b backend, extra string) *world {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, b.tools...)
	w := newWorldFW(t, b.name, strings.TrimSpace(b.extra+"\n"+extra))
	if b.host != nil {
		b.host(w)
	}
	return w
}

// peer6 returns the IPv6 address nstest.Connect gives the host that has
// IPv4 address a: 198.18.N.H pairs with 2001:db8:N::H.
func peer6(a netip.Addr) netip.Addr {
	b := a.As4()
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::%x", b[2], b[3]))
}

// TestEachBackend runs the core story with every backend: closed before
// the knock; open to the knocker only, over IPv4 and over IPv6; closed to
// new connections after expiry while an established one keeps working;
// and a knock over IPv4 that opens another host's explicit IPv6 address,
// for a user whose allow-address names it.
func TestEachBackend(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			w := newBackendWorld(t, b, "")
			srv6For3 := peer6(w.srvAddr3)
			third6 := peer6(w.thirdAddr)
			w.mustStayClosed(w.client, w.srvAddr)
			w.mustStayClosed(w.client, w.srvAddr6)
			w.mustStayClosed(w.third, w.srvAddr3)
			w.mustStayClosed(w.third, srv6For3)

			// IPv4: the knocker only, until expiry; the established
			// connection outlives the grant.
			w.clientKnock(w.client, w.srvAddr, 3*time.Second)
			w.mustOpen(w.client, w.srvAddr)
			w.mustStayClosed(w.third, w.srvAddr3)
			w.mustStayClosed(w.client, w.srvAddr6)
			c := establish(t, w.client, w.srvAddr)
			if !poll(15*time.Second, func() bool { return !dial(w.client, w.srvAddr) }) {
				t.Fatalf("still open long after the grant expired; log:\n%s", w.logText())
			}
			if err := echo(c); err != nil {
				t.Fatalf("established connection cut at expiry: %v", err)
			}

			// IPv6: knocked over IPv6, opens IPv6 only.
			w.clientKnock(w.client, w.srvAddr6, 3*time.Second)
			w.mustOpen(w.client, w.srvAddr6)
			w.waitLog("knock accepted", "addr="+w.clientAddr6.String())
			w.mustStayClosed(w.client, w.srvAddr)
			w.mustStayClosed(w.third, srv6For3)
			c6 := establish(t, w.client, w.srvAddr6)
			if !poll(15*time.Second, func() bool { return !dial(w.client, w.srvAddr6) }) {
				t.Fatalf("IPv6 still open long after the grant expired; log:\n%s", w.logText())
			}
			if err := echo(c6); err != nil {
				t.Fatalf("established IPv6 connection cut at expiry: %v", err)
			}

			// Over IPv4 for another host's IPv6 address: refused by
			// default, granted with allow-address.
			w.clientKnock(w.client, w.srvAddr, 10*time.Second, "--address", third6.String())
			w.waitLog(`class="policy: address"`)
			w.mustStayClosed(w.third, srv6For3)
			conf, _ := os.ReadFile(w.conf)
			os.WriteFile(w.conf, append(conf, "allow-address = "+third6.String()+"/128\n"...), 0o600)
			w.d.cmd.Process.Signal(syscall.SIGHUP)
			w.waitLog("configuration reloaded")
			w.clientKnock(w.client, w.srvAddr, 10*time.Second, "--address", third6.String())
			w.mustOpen(w.third, srv6For3)
			w.waitLog("knock accepted", "addr="+third6.String(), "source="+w.clientAddr.String())
			w.mustStayClosed(w.third, w.srvAddr3)
			w.mustStayClosed(w.client, w.srvAddr)
			w.mustStayClosed(w.client, w.srvAddr6)
		})
	}
}

// TestAutoBackend: firewall = auto picks nftables on a kernel that has
// it, says so in the log, and the door opens.
func TestAutoBackend(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	w := newWorldFW(t, "auto", "")
	w.waitLog("firewall chosen", "firewall=nftables", "nf_tables works")
	w.mustStayClosed(w.client, w.srvAddr)
	w.clientKnock(w.client, w.srvAddr, 3*time.Second)
	w.mustOpen(w.client, w.srvAddr)
	w.mustStayClosed(w.third, w.srvAddr3)
	if out := w.server.Run("nft", "list", "table", "inet", "cipherknock"); !strings.Contains(out, w.clientAddr.String()) {
		t.Errorf("grant not in the nftables set:\n%s", out)
	}
}
