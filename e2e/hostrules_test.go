package e2e

import (
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/internal/nstest"
)

// hostDropNFT is a host's own nftables table whose input chain drops by
// default, with the one rule firewall/README.md documents for granted
// packets (the nftables backend marks them).
const hostDropNFT = `table inet host {
	chain input {
		type filter hook input priority 0; policy drop;
		ct state established,related accept
		iif lo accept
		meta mark & 0x10000000 == 0x10000000 accept
	}
}
`

// TestHostDefaultDrop: a host ruleset that drops input by default, in a
// table of its own (nftables) or in the INPUT chain's policy (iptables):
// a granted connection still gets through, an ungranted one does not,
// and the established connection survives the grant's expiry. Without
// the host's mark rule the nftables grant does not get through its drop.
func TestHostDefaultDrop(t *testing.T) {
	for _, c := range []struct {
		b    backend
		host func(w *world)
		// unmark, when set, takes the host's mark rule away again: then
		// the granted address must be shut out too.
		unmark func(w *world)
	}{
		{backends[0], func(w *world) {
			w.server.Run("nft", "-f", w.writeFile("host.nft", hostDropNFT, 0o600))
		}, func(w *world) {
			w.server.Run("nft", "flush", "chain", "inet", "host", "input")
			w.server.Run("nft", "add", "rule", "inet", "host", "input", "ct", "state", "established,related", "accept")
		}},
		{backends[1], func(w *world) {
			w.server.Run("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
			w.server.Run("iptables", "-P", "INPUT", "DROP")
		}, nil},
	} {
		t.Run(c.b.name, func(t *testing.T) {
			nstest.RequireRoot(t)
			w := newBackendWorld(t, c.b, "")
			c.host(w)
			w.mustStayClosed(w.client, w.srvAddr)
			w.clientKnock(w.client, w.srvAddr, 5*time.Second)
			w.mustOpen(w.client, w.srvAddr)
			w.mustStayClosed(w.third, w.srvAddr3)
			s := establish(t, w.client, w.srvAddr)
			if c.unmark != nil {
				c.unmark(w)
				w.mustStayClosed(w.client, w.srvAddr)
			}
			if !poll(15*time.Second, func() bool { return !dial(w.client, w.srvAddr) }) {
				t.Fatal("still open long after the grant expired")
			}
			if err := echo(s); err != nil {
				t.Fatalf("established connection cut at expiry: %v", err)
			}
		})
	}
}
