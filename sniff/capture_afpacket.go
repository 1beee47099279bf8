//go:build linux && !pcap

package sniff

import (
	"errors"
	"fmt"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Ring geometry. A frame holds the TPACKET_V2 header, the link-layer
// address and snapLen bytes; 16384 frames (4 MiB) absorb about 0.1 s of a
// 170k packets/s flood that matches the filter.
const (
	frameSize = 256
	blockSize = 128 << 10
	numBlocks = 32
)

// tpacketVersion is TPACKET_V2: the kernel hands over each frame as soon
// as it is written, where TPACKET_V3 waits for a block to fill or its
// retire timer (1 ms at best) to expire. Tests switch it to compare.
var tpacketVersion = afpacket.TPacketVersion2

// ring is the default source: one AF_PACKET socket on all interfaces
// with a memory-mapped ring.
type ring struct {
	tp               *afpacket.TPacket
	matched, dropped uint64
	last             afpacket.SocketStats
}

// openSource creates the ring. A socket receives every packet from its
// creation until a filter is attached, so it first gets a filter that
// drops all, then the ring is emptied, as libpcap does; afterwards every
// packet read has passed the filter of the moment. (The kernel alone
// checks the packet direction: afpacket does not report it.)
func openSource() (source, error) {
	opts := []any{
		afpacket.OptSocketType(afpacket.SocketDgram),
		afpacket.OptTPacketVersion(tpacketVersion),
		afpacket.OptFrameSize(frameSize),
		afpacket.OptBlockSize(blockSize),
		afpacket.OptNumBlocks(numBlocks),
		afpacket.OptPollTimeout(pollTimeout),
		afpacket.OptBlockTimeout(time.Millisecond),
	}
	tp, err := afpacket.NewTPacket(opts...)
	if errors.Is(err, unix.EPERM) {
		return nil, fmt.Errorf("sniff: AF_PACKET socket: %w (needs CAP_NET_RAW)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("sniff: AF_PACKET socket: %w", err)
	}
	dropAll, _ := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err := tp.SetBPF(dropAll); err != nil {
		tp.Close()
		return nil, fmt.Errorf("sniff: attach filter: %w", err)
	}
	for {
		if _, _, err := tp.ZeroCopyReadPacketData(); err != nil {
			break
		}
	}
	if err := tp.InitSocketStats(); err != nil {
		tp.Close()
		return nil, fmt.Errorf("sniff: socket statistics: %w", err)
	}
	return &ring{tp: tp}, nil
}

func (r *ring) next() ([]byte, frame, error) {
	data, ci, err := r.tp.ZeroCopyReadPacketData()
	if errors.Is(err, afpacket.ErrTimeout) {
		return nil, frame{}, errIdle
	}
	// afpacket reports a VLAN tag as ancillary data, and nothing else.
	return data, frame{ifindex: ci.InterfaceIndex, at: ci.Timestamp, wire: ci.Length, tagged: len(ci.AncillaryData) > 0}, err
}

// sourceTriggers: the kernel filter alone checks the direction of
// trigger packets, which this source supports.
const sourceTriggers = true

func (r *ring) setFilter(f filterSpec, ifindexes []int) error {
	prog, err := programFor(f, ifindexes)
	if err != nil {
		return fmt.Errorf("sniff: filter: %w", err)
	}
	if err := r.tp.SetBPF(prog); err != nil {
		return fmt.Errorf("sniff: attach filter: %w", err)
	}
	return nil
}

// counters adds the kernel's counts since the last call: the kernel
// resets them on every read and afpacket sums them in 32 bits, so only
// differences are used.
func (r *ring) counters() (matched, dropped uint64) {
	if ss, _, err := r.tp.SocketStats(); err == nil {
		r.matched += uint64(uint32(ss.Packets()) - uint32(r.last.Packets()))
		r.dropped += uint64(uint32(ss.Drops()) - uint32(r.last.Drops()))
		r.last = ss
	}
	return r.matched, r.dropped
}

func (r *ring) close() { r.tp.Close() }
