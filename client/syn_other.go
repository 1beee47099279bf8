//go:build !unix

package client

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// synSender starts a TCP connect per port and abandons it shortly after:
// the SYN leaves when the connect starts. Without Unix sockets at hand it
// uses the portable dialer; close waits for the abandoned dials.
type synSender struct {
	server netip.Addr
	wg     sync.WaitGroup
}

func newSYNSender(server netip.Addr) sender { return &synSender{server: server} }

func (s *synSender) send(port uint16) error {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		var d net.Dialer
		if c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(s.server, port).String()); err == nil {
			c.Close()
		}
	}()
	time.Sleep(time.Millisecond) // let the connect start: keeps pacing meaningful
	return nil
}

func (s *synSender) close() { s.wg.Wait() }
