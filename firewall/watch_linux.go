package firewall

import (
	"context"
	"errors"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// watchNFT listens to nf_tables' change notifications in the namespace
// netns (0: ours) and calls changed for each batch that deletes a table,
// chain, rule or set, or adds a chain or rule, sent by any socket but
// self's (the kernel's own, port 0, included), and whenever notifications
// were lost (the socket's buffer ran over). It returns when ctx is done.
//
// Set elements are left out: the daemon's own grants are most of the
// traffic, and a deleted element closes a door rather than opening one.
func watchNFT(ctx context.Context, netns int, self func() uint32, changed func()) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return err
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	for {
		msgs, err := c.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				changed()
				continue
			}
			return err
		}
		me := self()
		hit := false
		for _, m := range msgs {
			if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || (m.Header.PID == me && me != 0) {
				continue
			}
			switch m.Header.Type & 0xff {
			case unix.NFT_MSG_DELTABLE, unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELRULE, unix.NFT_MSG_DELSET,
				unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWTABLE:
				hit = true
			}
		}
		if hit {
			changed()
		}
	}
}
