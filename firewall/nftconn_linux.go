package firewall

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
)

// nftConn is a lasting netlink socket to nf_tables, in the namespace whose
// descriptor is netns (0: the caller's), shared by the nftables backend and
// the NAT forwarder.
type nftConn struct {
	conn  *nftables.Conn
	netns int
	extra []nftables.ConnOption // tests record the messages
}

func (c *nftConn) dial() error {
	opts := append([]nftables.ConnOption{nftables.AsLasting()}, c.extra...)
	if c.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(c.netns))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	c.conn = conn
	return nil
}

// flush sends the buffered batch. After an error the socket may still hold
// replies to the failed batch, so it is replaced by a fresh one.
func (c *nftConn) flush() error {
	err := c.conn.Flush()
	if err != nil {
		c.conn.CloseLasting()
		if derr := c.dial(); derr != nil {
			return errors.Join(err, derr)
		}
	}
	return err
}
