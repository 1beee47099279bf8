package firewall

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/ports"
)

// TestNFTablesOwner: with the owner and persist flags, "nft flush
// ruleset" and "nft delete table" leave the table and its grants alone,
// a second backend of the same name is refused with the first one's tag,
// and after the first backend's socket closes (the daemon exited) the
// table stays, with its grant, until a new backend claims it.
func TestNFTablesOwner(t *testing.T) {
	e := newNFTEnv(t, 41)
	b1, err := NewNFTables(Options{Protect: []ports.Range{{Proto: ports.TCP, From: nftPort, To: nftPort}}, NetNS: e.fd, Tag: "cipherknockd pid=1 config=/a.conf"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b1.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, why := b1.(Supervised).Protected(); !ok {
		t.Fatalf("owner flag not used on this kernel: %s", why)
	}
	g := Grant{Addr: e.lc.Addr4, Proto: ports.TCP, Port: nftPort, Timeout: time.Minute}
	if err := b1.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	e.srv.Run("nft", "flush", "ruleset")
	if _, err := e.srv.Try("nft", "delete", "table", "inet", NFTablesTable); err == nil {
		t.Error("nft delete table succeeded on an owned table")
	}
	if err := b1.(Supervised).Verify(ctx); err != nil {
		t.Fatalf("after flush ruleset: %v", err)
	}
	b2, err := NewNFTables(Options{Protect: []ports.Range{{Proto: ports.TCP, From: nftPort, To: nftPort}}, NetNS: e.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.(*NFTables).Close()
	err = b2.Setup(ctx)
	if err == nil || !strings.Contains(err.Error(), "pid=1 config=/a.conf") {
		t.Fatalf("second backend's Setup: %v, want a refusal naming the first", err)
	}
	// The first one exits: the table stays, owner-less, with its grant.
	b1.(*NFTables).Close()
	out := e.srv.Run("nft", "list", "table", "inet", NFTablesTable)
	if !strings.Contains(out, e.lc.Addr4.String()) {
		t.Fatalf("table after its owner exited:\n%s", out)
	}
	if err := b2.Setup(ctx); err != nil {
		t.Fatalf("claiming the orphaned table: %v", err)
	}
	if err := b2.(Supervised).Verify(ctx); err != nil {
		t.Fatal(err)
	}
	gs, _ := b2.List(ctx)
	if len(gs) != 1 || gs[0].Addr != e.lc.Addr4 {
		t.Fatalf("grants after claim: %v", gs)
	}
	if err := b2.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestNFTablesVerifyWatch: without the owner flag, a flush is heard on
// the notification socket, Verify says what is gone, and Setup with the
// grants put back restores them.
func TestNFTablesVerifyWatch(t *testing.T) {
	e := newNFTEnv(t, 42)
	b, err := NewNFTables(Options{Protect: []ports.Range{{Proto: ports.TCP, From: nftPort, To: nftPort}}, NetNS: e.fd, NoOwner: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.(*NFTables).Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	sv := b.(Supervised)
	if ok, _ := sv.Protected(); ok {
		t.Fatal("NoOwner ignored")
	}
	heard := make(chan struct{}, 16)
	go sv.Watch(ctx, func() { heard <- struct{}{} })
	time.Sleep(100 * time.Millisecond)
	g := Grant{Addr: e.lc.Addr4, Proto: ports.TCP, Port: nftPort, Timeout: time.Minute}
	if err := b.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	select {
	case <-heard:
		t.Fatal("the backend's own grant was reported as a change")
	case <-time.After(200 * time.Millisecond):
	}
	if err := sv.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	e.srv.Run("nft", "flush", "ruleset")
	select {
	case <-heard:
	case <-time.After(5 * time.Second):
		t.Fatal("flush not heard")
	}
	if err := sv.Verify(ctx); err == nil {
		t.Fatal("Verify: nil after flush")
	}
	e.srv.Run("nft", "add", "table", "inet", NFTablesTable)
	e.srv.Run("nft", "add", "chain", "inet", NFTablesTable, "input", "{ type filter hook input priority -10; }")
	if err := sv.Verify(ctx); err == nil {
		t.Fatal("Verify: nil with an empty look-alike chain")
	}
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sv.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	_ = netip.Addr{}
}
