package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/profile"
)

// sender sends one knock packet to a port of the server.
type sender interface {
	send(port uint16) error
	close()
}

func newSender(via string, server netip.Addr) (sender, error) {
	if via == profile.ViaTCP {
		return newSYNSender(server), nil
	}
	network := "udp4"
	if server.Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot open a UDP socket: %v", err)
	}
	return &udpSender{c: c, server: server}, nil
}

// udpSender sends empty datagrams from one unconnected socket, so that every
// packet of a knock shares one source address and port.
type udpSender struct {
	c      *net.UDPConn
	server netip.Addr
}

func (s *udpSender) send(port uint16) error {
	_, err := s.c.WriteToUDPAddrPort(nil, netip.AddrPortFrom(s.server, port))
	return err
}

func (s *udpSender) close() { s.c.Close() }

// send sends the knock b as one packet per port, each pass over the ports
// repeated p.Repeat times, optionally shuffled, with the requested pacing.
// It returns the number of packets sent.
func (k *Knocker) send(ctx context.Context, s sender, server netip.Addr, b []byte) (int, error) {
	var buf [encoding.MaxPositions]uint16
	ports := k.p.Span().AppendPorts(buf[:0], b)
	n := 0
	for pass := 0; pass < k.p.Repeat; pass++ {
		if k.req.Shuffle {
			rand.Shuffle(len(ports), func(i, j int) { ports[i], ports[j] = ports[j], ports[i] })
		}
		for _, port := range ports {
			if n > 0 && k.pacing > 0 {
				select {
				case <-ctx.Done():
					return n, ctx.Err()
				case <-time.After(k.pacing):
				}
			}
			if err := s.send(port); err != nil {
				return n, fmt.Errorf("cannot send to %s: %v", netip.AddrPortFrom(server, port), unwrapOp(err))
			}
			n++
		}
	}
	return n, nil
}

// unwrapOp drops net.OpError's repetition of addresses and the system
// call's name, keeping the reason.
func unwrapOp(err error) error {
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		err = oe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	return err
}

// KnockLen returns the number of packets of one pass of a knock in the given
// address mode: "source", an IPv4 address or an IPv6 address.
func KnockLen(address string) int {
	switch a, err := netip.ParseAddr(address); {
	case err != nil:
		return crypto.LenSource
	case a.Unmap().Is4():
		return crypto.LenIPv4
	default:
		return crypto.LenIPv6
	}
}
