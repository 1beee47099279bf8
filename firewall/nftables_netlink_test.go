//go:build linux

package firewall

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/ports"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nftMsg is what the tests check of one netlink message of a batch.
type nftMsg struct {
	typ     uint16 // NFT_MSG_*
	set     string
	timeout uint64 // ms; 0 when absent
	key     []byte
}

// recordNFT returns a backend whose netlink messages are recorded
// instead of sent: no root and no kernel needed.
func recordNFT(t *testing.T) (*NFTables, *[]nftMsg) {
	t.Helper()
	var got []nftMsg
	b, err := newNFTables(Options{}, nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			typ := uint16(m.Header.Type) & 0xff
			if uint16(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
				continue // batch begin and end
			}
			rec := nftMsg{typ: typ}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				t.Fatal(err)
			}
			for ad.Next() {
				switch ad.Type() {
				case unix.NFTA_SET_ELEM_LIST_SET:
					rec.set = ad.String()
				case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
					ad.Nested(func(nd *netlink.AttributeDecoder) error {
						for nd.Next() { // one element
							nd.Nested(func(ed *netlink.AttributeDecoder) error {
								for ed.Next() {
									switch ed.Type() {
									case unix.NFTA_SET_ELEM_TIMEOUT:
										rec.timeout = binary.BigEndian.Uint64(ed.Bytes())
									case unix.NFTA_SET_ELEM_KEY:
										ed.Nested(func(kd *netlink.AttributeDecoder) error {
											for kd.Next() {
												rec.key = kd.Bytes()
											}
											return nil
										})
									}
								}
								return nil
							})
						}
						return nil
					})
				}
			}
			got = append(got, rec)
		}
		return req, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return b, &got
}

// A grant is add, delete, add of the same key in one batch, the adds with
// the timeout plus the kernel-tick margin; a revoke is add, delete.
func TestNFTablesGrantBatch(t *testing.T) {
	b, got := recordNFT(t)
	ctx := context.Background()
	a6 := netip.MustParseAddr("2001:db8::2")
	if err := b.Grant(ctx, Grant{Addr: a6, Proto: ports.UDP, Port: 51820, Timeout: 90 * time.Second}); err != nil {
		t.Fatal(err)
	}
	key, _, _ := setKey(a6, ports.UDP, 51820)
	want := []nftMsg{
		{unix.NFT_MSG_NEWSETELEM, NFTablesSet6, uint64((90*time.Second + kernelTick).Milliseconds()), key},
		{unix.NFT_MSG_DELSETELEM, NFTablesSet6, 0, key},
		{unix.NFT_MSG_NEWSETELEM, NFTablesSet6, uint64((90*time.Second + kernelTick).Milliseconds()), key},
	}
	eq := func(a, b nftMsg) bool {
		return a.typ == b.typ && a.set == b.set && a.timeout == b.timeout && slices.Equal(a.key, b.key)
	}
	if !slices.EqualFunc(*got, want, eq) {
		t.Fatalf("grant batch:\n got %+v\nwant %+v", *got, want)
	}
	*got = nil
	mapped := netip.MustParseAddr("::ffff:198.18.0.2")
	if err := b.Revoke(ctx, Grant{Addr: mapped, Proto: ports.TCP, Port: 22}); err != nil {
		t.Fatal(err)
	}
	key, _, _ = setKey(mapped, ports.TCP, 22)
	want = []nftMsg{
		{unix.NFT_MSG_NEWSETELEM, NFTablesSet4, 1000, key},
		{unix.NFT_MSG_DELSETELEM, NFTablesSet4, 0, key},
	}
	if !slices.EqualFunc(*got, want, eq) {
		t.Fatalf("revoke batch:\n got %+v\nwant %+v", *got, want)
	}
	*got = nil
	for _, g := range []Grant{
		{Addr: a6, Proto: ports.TCP, Port: 22, Timeout: 0},
		{Addr: a6, Proto: ports.TCP, Port: 0, Timeout: time.Second},
		{Addr: netip.MustParseAddr("fe80::1%eth0"), Proto: ports.TCP, Port: 22, Timeout: time.Second},
	} {
		if err := b.Grant(ctx, g); err == nil {
			t.Errorf("Grant(%+v) accepted", g)
		}
	}
	if len(*got) != 0 {
		t.Errorf("refused grants sent %+v", *got)
	}
}
