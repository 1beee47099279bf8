package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// STUN message constants (RFC 8489 §5, §14.1, §14.2, §18.2).
const (
	stunHeaderSize      = 20
	stunMagicCookie     = 0x2112A442
	stunBindingRequest  = 0x0001
	stunBindingSuccess  = 0x0101
	stunMappedAddr      = 0x0001
	stunXORMappedAddr   = 0x0020
	stunXORMappedAddrV0 = 0x8020 // pre-RFC 5389 servers
	stunFamilyIPv4      = 0x01
	stunFamilyIPv6      = 0x02
	stunInitialRTO      = 250 * time.Millisecond // RFC 8489 §6.2.1 says 500 ms for the Internet; we have a deadline
)

var errSTUNIgnore = errors.New("not our STUN response")

// stunRequest returns a Binding request with transaction ID id.
func stunRequest(id [12]byte) []byte {
	m := make([]byte, stunHeaderSize)
	binary.BigEndian.PutUint16(m[0:], stunBindingRequest)
	binary.BigEndian.PutUint16(m[2:], 0)
	binary.BigEndian.PutUint32(m[4:], stunMagicCookie)
	copy(m[8:], id[:])
	return m
}

// parseSTUNResponse returns the mapped address of a Binding success response
// to transaction id. XOR-MAPPED-ADDRESS is preferred over MAPPED-ADDRESS
// (RFC 8489 §14.1, §14.2). Anything else gives errSTUNIgnore or a parse
// error; it never panics on any input.
func parseSTUNResponse(m []byte, id [12]byte) (netip.AddrPort, error) {
	if len(m) < stunHeaderSize || m[0]&0xc0 != 0 ||
		binary.BigEndian.Uint32(m[4:]) != stunMagicCookie || string(m[8:20]) != string(id[:]) {
		return netip.AddrPort{}, errSTUNIgnore
	}
	if t := binary.BigEndian.Uint16(m[0:]); t != stunBindingSuccess {
		return netip.AddrPort{}, fmt.Errorf("STUN server answered with message type %#04x, not a Binding success", t)
	}
	n := int(binary.BigEndian.Uint16(m[2:]))
	if n%4 != 0 || stunHeaderSize+n > len(m) {
		return netip.AddrPort{}, errors.New("malformed STUN response: bad length")
	}
	attrs := m[stunHeaderSize : stunHeaderSize+n]
	var mapped, xored netip.AddrPort
	for len(attrs) >= 4 {
		t := binary.BigEndian.Uint16(attrs[0:])
		l := int(binary.BigEndian.Uint16(attrs[2:]))
		padded := (l + 3) &^ 3
		if 4+padded > len(attrs) {
			return netip.AddrPort{}, errors.New("malformed STUN response: attribute overruns the message")
		}
		v := attrs[4 : 4+l]
		switch t {
		case stunXORMappedAddr, stunXORMappedAddrV0:
			if !xored.IsValid() {
				xored = parseSTUNAddr(v, m[4:20])
			}
		case stunMappedAddr:
			if !mapped.IsValid() {
				mapped = parseSTUNAddr(v, nil)
			}
		}
		attrs = attrs[4+padded:]
	}
	switch {
	case xored.IsValid():
		return xored, nil
	case mapped.IsValid():
		return mapped, nil
	}
	return netip.AddrPort{}, errors.New("STUN response carries no mapped address")
}

// parseSTUNAddr decodes a (XOR-)MAPPED-ADDRESS value. With a non-nil mask
// (the magic cookie followed by the transaction ID) the port and address are
// XORed with it.
func parseSTUNAddr(v, mask []byte) netip.AddrPort {
	if len(v) < 4 {
		return netip.AddrPort{}
	}
	var addr [16]byte
	var alen int
	switch v[1] {
	case stunFamilyIPv4:
		alen = 4
	case stunFamilyIPv6:
		alen = 16
	default:
		return netip.AddrPort{}
	}
	if len(v) != 4+alen {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16(v[2:])
	copy(addr[:], v[4:4+alen])
	if mask != nil {
		port ^= stunMagicCookie >> 16
		for i := 0; i < alen; i++ {
			addr[i] ^= mask[i]
		}
	}
	var a netip.Addr
	if alen == 4 {
		a = netip.AddrFrom4([4]byte(addr[:4]))
	} else {
		a = netip.AddrFrom16(addr)
	}
	return netip.AddrPortFrom(a, port)
}

// stunQuery asks server (host:port) for the caller's public address as seen
// over the given family (4 or 6), retransmitting the request with a doubling
// interval until ctx ends.
func stunQuery(ctx context.Context, server string, family int) (netip.Addr, error) {
	network := fmt.Sprintf("udp%d", family)
	raddr, err := net.DefaultResolver.LookupNetIP(ctx, fmt.Sprintf("ip%d", family), hostOf(server))
	if err != nil || len(raddr) == 0 {
		return netip.Addr{}, fmt.Errorf("cannot resolve STUN server %s", server)
	}
	_, portStr, _ := net.SplitHostPort(server)
	var port uint16
	fmt.Sscan(portStr, &port)
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(raddr[0].Unmap(), port))
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	var id [12]byte
	rand.Read(id[:])
	req := stunRequest(id)
	buf := make([]byte, 1500)
	rto := stunInitialRTO
	for {
		if _, err := c.WriteToUDP(req, dst); err != nil {
			return netip.Addr{}, fmt.Errorf("STUN server %s: %v", server, unwrapOp(err))
		}
		until := time.Now().Add(rto)
		if d, ok := ctx.Deadline(); ok && d.Before(until) {
			until = d
		}
		c.SetReadDeadline(until)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ctx.Err() != nil {
					return netip.Addr{}, fmt.Errorf("STUN server %s did not answer", server)
				}
				break // retransmit
			}
			if from.Addr().Unmap() != dst.AddrPort().Addr() {
				continue
			}
			ap, err := parseSTUNResponse(buf[:n], id)
			if err == errSTUNIgnore {
				continue
			}
			if err != nil {
				return netip.Addr{}, fmt.Errorf("STUN server %s: %v", server, err)
			}
			return ap.Addr().Unmap(), nil
		}
		if ctx.Err() != nil {
			return netip.Addr{}, fmt.Errorf("STUN server %s did not answer", server)
		}
		rto *= 2
	}
}

func hostOf(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return strings.Trim(h, "[]")
}

// publicAddr asks the STUN servers in turn for the public address of this
// host in the server's address family.
func (k *Knocker) publicAddr(ctx context.Context, server netip.Addr) (netip.Addr, error) {
	family := 4
	if server.Is6() {
		family = 6
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	var errs []string
	per := k.timeout / time.Duration(len(k.stun))
	for _, s := range k.stun {
		sctx, scancel := context.WithTimeout(ctx, per)
		a, err := stunQuery(sctx, s, family)
		scancel()
		if err == nil {
			return a, nil
		}
		errs = append(errs, err.Error())
	}
	return netip.Addr{}, fmt.Errorf("cannot discover the public address: %s", strings.Join(errs, "; "))
}
