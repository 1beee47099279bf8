package firewall

import (
	"context"
	"io"
	"testing"

	"github.com/cipherknock/cipherknock/internal/nstest"
)

// BenchmarkIPTablesExpiry: b.N grants of the iptables+ipset backend
// falling due together, measured like BenchmarkNFTablesExpiry so the
// backends' expiry can be compared.
func BenchmarkIPTablesExpiry(b *testing.B) {
	nstest.RequireTool(b, "iptables", "ip6tables", "ipset")
	ns := nstest.New(b, "iptx")
	h, err := ns.Handle()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	be, err := NewIPTables(Options{NetNS: int(h)})
	if err != nil {
		b.Fatal(err)
	}
	if c, ok := be.(io.Closer); ok {
		defer c.Close()
	}
	if err := be.Setup(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchExpiry(b, be)
}
