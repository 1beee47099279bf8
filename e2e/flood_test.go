package e2e

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/nstest"
)

// flood sends UDP datagrams from random spoofed IPv4 sources to random
// ports of the span on dst, from a raw socket in ns, until it has sent
// limit packets or ctx is done. It returns the number sent.
func flood(ctx context.Context, ns *nstest.NS, dst netip.Addr, limit int) (int, error) {
	sent := 0
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Addr: dst.As4()}
		var pkt [28]byte
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for sent < limit && (sent%1024 != 0 || ctx.Err() == nil) {
			// IPv4 header: the kernel fills in the checksum and, when
			// zero, the ID; UDP checksum 0 means none.
			src := rng.Uint32()
			pkt[0], pkt[1] = 0x45, 0
			binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
			binary.BigEndian.PutUint16(pkt[4:], 0)
			binary.BigEndian.PutUint16(pkt[6:], 0)
			pkt[8], pkt[9] = 64, unix.IPPROTO_UDP
			binary.BigEndian.PutUint16(pkt[10:], 0)
			binary.BigEndian.PutUint32(pkt[12:], src|0x01000000) // never 0.x.x.x
			d := dst.As4()
			copy(pkt[16:], d[:])
			binary.BigEndian.PutUint16(pkt[20:], uint16(1024+rng.IntN(60000)))
			binary.BigEndian.PutUint16(pkt[22:], encoding.DefaultBase+uint16(rng.IntN(encoding.SpanSize)))
			binary.BigEndian.PutUint16(pkt[24:], 8)
			binary.BigEndian.PutUint16(pkt[26:], 0)
			if err := unix.Sendto(fd, pkt[:], 0, to); err != nil {
				if err == unix.ENOBUFS || err == unix.EAGAIN {
					continue
				}
				return err
			}
			sent++
		}
		return nil
	})
	return sent, err
}
