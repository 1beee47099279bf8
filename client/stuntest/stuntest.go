// Package stuntest runs a minimal STUN server on the loopback interface for
// tests: it answers Binding requests with the request's source address in
// an XOR-MAPPED-ADDRESS attribute (RFC 8489 §14.2) and ignores the rest.
package stuntest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

const magicCookie = 0x2112A442

// Start serves on 127.0.0.1 (or ::1 with network "udp6") until the test
// ends and returns the server's host:port.
func Start(tb testing.TB, network string) string {
	tb.Helper()
	addr := "127.0.0.1:0"
	if network == "udp6" {
		addr = "[::1]:0"
	}
	return StartOn(tb, network, addr, netip.Addr{})
}

// StartOn serves on addr (host:port) until the test ends and returns the
// server's host:port. If lie is valid, the server answers every request
// with lie instead of the request's source address: a lying (or
// spoofed) STUN server.
func StartOn(tb testing.TB, network, addr string, lie netip.Addr) string {
	tb.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		tb.Fatalf("stuntest: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	go serve(c.(*net.UDPConn), lie)
	return c.LocalAddr().String()
}

func serve(c *net.UDPConn, lie netip.Addr) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		mapped := from
		if lie.IsValid() {
			mapped = netip.AddrPortFrom(lie, from.Port())
		}
		if resp := Response(buf[:n], mapped); resp != nil {
			c.WriteToUDPAddrPort(resp, from)
		}
	}
}

// Response returns the Binding success response to req from the address
// from, or nil if req is not a Binding request.
func Response(req []byte, from netip.AddrPort) []byte {
	if len(req) < 20 || binary.BigEndian.Uint16(req) != 0x0001 || binary.BigEndian.Uint32(req[4:]) != magicCookie {
		return nil
	}
	a := from.Addr().Unmap()
	family, alen := byte(1), 4
	if a.Is6() {
		family, alen = 2, 16
	}
	m := make([]byte, 20, 20+4+4+alen)
	binary.BigEndian.PutUint16(m, 0x0101)
	binary.BigEndian.PutUint16(m[2:], uint16(4+4+alen))
	copy(m[4:20], req[4:20]) // cookie and transaction ID
	m = binary.BigEndian.AppendUint16(m, 0x0020)
	m = binary.BigEndian.AppendUint16(m, uint16(4+alen))
	m = append(m, 0, family)
	m = binary.BigEndian.AppendUint16(m, from.Port()^magicCookie>>16)
	raw := a.AsSlice()
	for i := range raw {
		raw[i] ^= m[4+i] // cookie, then transaction ID
	}
	return append(m, raw...)
}
