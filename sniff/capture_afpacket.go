//go:build linux && !pcap

package sniff

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/cipherknock/cipherknock/internal/prefetch"
)

// Ring geometry. A frame holds the TPACKET_V2 header, the link-layer
// address and snapLen bytes (the kernel puts the packet at 80 bytes into
// the frame, so 176 of its 192 bytes are used); a 128 KiB block holds 682
// frames. The 32,736 frames (6 MiB) absorb about 0.1 s of a flood of
// 300k packets/s that matches the filter, while the reader waits for the
// CPU.
const (
	frameSize      = 192
	blockSize      = 128 << 10
	numBlocks      = 48
	framesPerBlock = blockSize / frameSize
	numFrames      = framesPerBlock * numBlocks
)

// The layout of a frame's head (linux/if_packet.h): struct tpacket2_hdr,
// then, at TPACKET_ALIGN(sizeof(struct tpacket2_hdr)), the struct
// sockaddr_ll of the interface the packet came from.
const (
	tpacket2HdrLen = (unix.SizeofTpacket2Hdr + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)
	frameHeadLen   = tpacket2HdrLen + unix.SizeofSockaddrLinklayer
)

// ring is the default source: one AF_PACKET socket on all interfaces,
// SOCK_DGRAM (packets from their network header on), with a TPACKET_V2
// receive ring mapped into memory. The kernel hands each frame over as
// soon as it is written (TPACKET_V3 would wait for a block to fill or for
// its retire timer), and the reader returns it when it asks for the next,
// so a batch that has built up is read without a system call.
//
// The ring is read here rather than through a general capture library:
// the reader's whole per-packet work is a few loads from the frame's head
// and one store to give the frame back. The status word is read with an
// atomic load, as the kernel's documentation for the ring asks
// (Documentation/networking/packet_mmap.rst), and written with a store
// that orders the reads of the frame before it (release, ring_*.go).
type ring struct {
	fd   int
	mem  []byte
	cur  int  // the frame next returns, or returned last while held
	held bool // the frame at cur is the caller's until next is called again
	pfd  [1]unix.PollFd

	outgoing bool // the filter passes outgoing trigger packets

	matched, dropped uint64 // the kernel's counts, summed (counters)
}

// openSource creates the ring. The socket is created for protocol 0, which
// receives nothing; only once it has a filter that drops everything and
// its ring is it bound to all protocols (ETH_P_ALL) on all interfaces, so
// every packet it ever holds has passed the filter of the moment, and
// setFilter swaps that filter for the capture's.
func openSource() (source, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if errors.Is(err, unix.EPERM) {
		return nil, fmt.Errorf("sniff: AF_PACKET socket: %w (needs CAP_NET_RAW)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("sniff: AF_PACKET socket: %w", err)
	}
	r := &ring{fd: fd}
	r.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	if err := r.setUp(); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *ring) setUp() error {
	dropAll, _ := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err := r.attach(dropAll); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fmt.Errorf("sniff: TPACKET_V2: %w", err)
	}
	req := unix.TpacketReq{Block_size: blockSize, Block_nr: numBlocks, Frame_size: frameSize, Frame_nr: numFrames}
	if err := unix.SetsockoptTpacketReq(r.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("sniff: receive ring: %w", err)
	}
	mem, err := unix.Mmap(r.fd, 0, blockSize*numBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("sniff: map the receive ring: %w", err)
	}
	r.mem = mem
	all := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}
	if err := unix.Bind(r.fd, &all); err != nil {
		return fmt.Errorf("sniff: bind the AF_PACKET socket: %w", err)
	}
	// The counts start at zero from here.
	if _, err := unix.GetsockoptTpacketStats(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err != nil {
		return fmt.Errorf("sniff: socket statistics: %w", err)
	}
	return nil
}

// prefetchAhead is how many frames ahead of the one it reads the reader
// prefetches.
const prefetchAhead = 8

// tpStatusKernel is the status of a frame the kernel may fill.
const tpStatusKernel = unix.TP_STATUS_KERNEL

// maxFilterLen is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
const maxFilterLen = 4096

// hdr returns the head of frame i.
func (r *ring) hdr(i int) *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&r.mem[r.offset(i)]))
}

// offset is where frame i starts: frames do not cross blocks, and a
// block's tail that holds no whole frame is unused.
func (r *ring) offset(i int) int { return i/framesPerBlock*blockSize + i%framesPerBlock*frameSize }

func (r *ring) next() ([]byte, frame, error) {
	if r.held {
		// The previous frame goes back to the kernel.
		release(&r.hdr(r.cur).Status)
		r.held = false
		if r.cur++; r.cur == numFrames {
			r.cur = 0
		}
	}
	off := r.offset(r.cur)
	h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&r.mem[off]))
	// The frames ahead were written by the kernel on another CPU: start
	// fetching their two lines (head and packet) now.
	ahead := r.cur + prefetchAhead
	if ahead >= numFrames {
		ahead -= numFrames
	}
	p := unsafe.Pointer(&r.mem[r.offset(ahead)])
	prefetch.Line(p)
	prefetch.Line(unsafe.Add(p, 64))
	var st uint32
	for {
		if st = atomic.LoadUint32(&h.Status); st&unix.TP_STATUS_USER != 0 {
			break
		}
		n, err := unix.Poll(r.pfd[:], int(pollTimeout/time.Millisecond))
		switch {
		case err == unix.EINTR:
		case err != nil:
			return nil, frame{}, err
		case n == 0:
			return nil, frame{}, errIdle
		case r.pfd[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0:
			return nil, frame{}, fmt.Errorf("poll: revents %#x", r.pfd[0].Revents)
		}
	}
	r.held = true
	start, end := int(h.Net), int(h.Net)+int(h.Snaplen)
	if start < frameHeadLen || end > frameSize {
		// Not a frame this ring's geometry can produce: ignore it.
		return nil, frame{ifindex: -1}, nil
	}
	ll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&r.mem[off+tpacket2HdrLen]))
	// The direction, checked again: the kernel filter passes only packets
	// to this host and, for outgoing triggers, packets it sends.
	ifindex, out := int(ll.Ifindex), ll.Pkttype == packetOutgoing
	if ll.Pkttype != packetHost && !(out && r.outgoing) {
		ifindex = -1
	}
	return r.mem[off+start : off+end : off+end], frame{
		ifindex:  ifindex,
		outgoing: out,
		at:       time.Unix(int64(h.Sec), int64(h.Nsec)),
		wire:     int(h.Len),
		tagged:   st&unix.TP_STATUS_VLAN_VALID != 0,
	}, nil
}

// ready reports whether next would return a frame without waiting.
func (r *ring) ready() bool {
	i := r.cur
	if r.held {
		if i++; i == numFrames {
			i = 0
		}
	}
	return atomic.LoadUint32(&r.hdr(i).Status)&unix.TP_STATUS_USER != 0
}

// sourceTriggers: the kernel filter alone checks the direction of
// trigger packets, which this source supports.
const sourceTriggers = true

func (r *ring) setFilter(f filterSpec, ifindexes []int) error {
	prog, err := programFor(f, ifindexes)
	if err != nil {
		return fmt.Errorf("sniff: filter: %w", err)
	}
	if err := r.attach(prog); err != nil {
		return err
	}
	r.outgoing = f.outgoing
	return nil
}

// attach replaces the socket's filter; the kernel swaps it atomically.
func (r *ring) attach(prog []bpf.RawInstruction) error {
	if len(prog) == 0 || len(prog) > maxFilterLen {
		return fmt.Errorf("sniff: attach filter: %d instructions", len(prog))
	}
	ins := make([]unix.SockFilter, len(prog))
	for i, p := range prog {
		ins[i] = unix.SockFilter{Code: p.Op, Jt: p.Jt, Jf: p.Jf, K: p.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}
	if err := unix.SetsockoptSockFprog(r.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("sniff: attach filter: %w", err)
	}
	return nil
}

// counters adds the kernel's counts since the last call (the kernel resets
// them on every read). Its packets count those it dropped too.
func (r *ring) counters() (matched, dropped uint64) {
	if st, err := unix.GetsockoptTpacketStats(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		r.matched += uint64(st.Packets)
		r.dropped += uint64(st.Drops)
	}
	return r.matched, r.dropped
}

func (r *ring) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	unix.Close(r.fd)
}
