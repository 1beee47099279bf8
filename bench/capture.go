package main

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The detection-latency observer: an AF_PACKET socket on the server's
// br0 that sees, with kernel receive timestamps, every packet from or to
// the client's addresses (a kernel filter keeps the noise out). For each
// client address it records when the last knock packet arrived and which
// probe SYN to the protected port was the first to be answered with a
// SYN-ACK. The grant reached the kernel between the last unanswered probe
// SYN and that one, so detection latency is measured as
// t(first answered SYN) - t(last knock packet), with the prober's
// interval as resolution.
type observer struct {
	fd      int
	isKnock func(proto uint8, port uint16) bool

	mu   sync.Mutex
	recs map[netip.Addr]*obsRec
}

type obsRec struct {
	lastKnock time.Time
	knocks    int
	syns      map[uint16]time.Time // by client source port
	answered  time.Time            // SYN that got the first SYN-ACK
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// clientFilter accepts IPv4 frames from or to 198.18.1.0/24.
func clientFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 6},
		bpf.LoadAbsolute{Off: 26, Size: 4},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xffffff00},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xc6120100, SkipTrue: 4},
		bpf.LoadAbsolute{Off: 30, Size: 4},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xffffff00},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xc6120100, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 128},
	})
}

// newObserver opens the socket; call it on a thread in the server
// namespace.
func newObserver(ifindex int, isKnock func(uint8, uint16) bool) (*observer, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, err
	}
	prog, err := clientFilter()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Forced past rmem_max: a descheduled reader must not lose the
	// probes it times.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	o := &observer{fd: fd, isKnock: isKnock, recs: map[netip.Addr]*obsRec{}}
	go o.loop()
	return o, nil
}

func (o *observer) close() { unix.Close(o.fd) }

func (o *observer) loop() {
	buf := make([]byte, 256)
	oob := make([]byte, 128)
	for {
		n, oobn, _, _, err := unix.Recvmsg(o.fd, buf, oob, 0)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		ts := time.Now()
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
					sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
					nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
					ts = time.Unix(sec, nsec)
				}
			}
		}
		o.packet(buf[:n], ts)
	}
}

func (o *observer) packet(b []byte, ts time.Time) {
	if len(b) < 14+20 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		return
	}
	ip := b[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl+4 {
		return
	}
	proto := ip[9]
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	l4 := ip[ihl:]
	sport := binary.BigEndian.Uint16(l4[0:])
	dport := binary.BigEndian.Uint16(l4[2:])
	var flags byte
	if proto == unix.IPPROTO_TCP {
		if len(l4) < 14 {
			return
		}
		flags = l4[13]
	}
	const syn, ack = 0x02, 0x10
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case dst == srvAddr && proto == unix.IPPROTO_TCP && dport == servicePort && flags&(syn|ack) == syn:
		r := o.rec(src)
		r.syns[sport] = ts
	case src == srvAddr && proto == unix.IPPROTO_TCP && sport == servicePort && flags&(syn|ack) == syn|ack:
		r := o.rec(dst)
		if r.answered.IsZero() {
			if t, ok := r.syns[dport]; ok {
				r.answered = t
			}
		}
	case dst == srvAddr && (proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_UDP) && o.isKnock(proto, dport):
		if proto == unix.IPPROTO_TCP && flags&(syn|ack) != syn {
			return
		}
		r := o.rec(src)
		if r.answered.IsZero() {
			r.lastKnock = ts
			r.knocks++
		}
	}
}

func (o *observer) rec(a netip.Addr) *obsRec {
	r := o.recs[a]
	if r == nil {
		r = &obsRec{syns: map[uint16]time.Time{}}
		o.recs[a] = r
	}
	return r
}

// reset forgets what was seen for a, before a new knock from it.
func (o *observer) reset(a netip.Addr) {
	o.mu.Lock()
	delete(o.recs, a)
	o.mu.Unlock()
}

// detection returns the detection latency of the knock from a, if both
// ends were seen.
func (o *observer) detection(a netip.Addr) (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.recs[a]
	if r == nil || r.answered.IsZero() || r.lastKnock.IsZero() {
		return 0, false
	}
	return r.answered.Sub(r.lastKnock), true
}
