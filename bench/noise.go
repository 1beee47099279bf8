package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The noise sender: Ethernet frames built here and written to an
// AF_PACKET socket in the noise namespace, in batches of up to 64 per
// sendmmsg, paced by a token bucket. Every frame goes to the server's
// address and MAC, to one of the daemon's knock ports, from a spoofed
// source in 10.0.0.0/8. Sources are the images of a counter under a
// bijection of 24 bits, so the first 16,777,216 frames of a run all
// come from distinct addresses. Each send is bounded in count and time.

// noiseTarget is a set of ports a daemon listens on for knocks.
type noiseTarget struct {
	proto    uint8 // unix.IPPROTO_TCP or unix.IPPROTO_UDP
	from, to uint16
	payload  int  // UDP payload length (random base64 characters)
	span     bool // a cipherknock span from from: floods can follow its positions
}

type noiseSender struct {
	fd      int
	dstMAC  net.HardwareAddr
	srcMAC  net.HardwareAddr
	targets []noiseTarget
	counter uint32 // source counter, continues across sends
	rng     *rand.Rand
	// per is how many packets each spoofed source sends, back to back
	// (0 or 1: one). To a cipherknock span they follow the protocol: a
	// valid header first, then positions 1, 2, ... (per 24: a whole
	// forged source-mode knock), the floods that outrank a real knock
	// under least-progress eviction.
	per uint32
}

type noiseResult struct {
	sent     uint64
	elapsed  time.Duration
	achieved float64 // packets per second actually sent
}

const noiseBatch = 64

// newNoiseSender opens its socket; call it on a thread in the noise
// namespace.
func newNoiseSender(ifindex int, dstMAC, srcMAC net.HardwareAddr, targets []noiseTarget) (*noiseSender, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// Skip the qdisc: the sender measures the daemons, not tc.
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &noiseSender{fd: fd, dstMAC: dstMAC, srcMAC: srcMAC, targets: targets, rng: rand.New(rand.NewPCG(1, 2))}, nil
}

func (s *noiseSender) close() { unix.Close(s.fd) }

// spoofed maps a source number to a distinct address in 10.0.0.0/8.
func spoofed(i uint32) [4]byte {
	x := i & 0xffffff
	x = (x * 0x9e3779) & 0xffffff // odd multiplier: a bijection mod 2^24
	x ^= x >> 11
	x = (x * 0x6b43a9) & 0xffffff
	return [4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)}
}

const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// frame writes one noise frame into b and returns its length.
func (s *noiseSender) frame(b []byte) int {
	per := max(s.per, 1)
	seq := s.counter % per
	src := spoofed(s.counter / per)
	s.counter++
	t := &s.targets[s.rng.IntN(len(s.targets))]
	port := t.from + uint16(s.rng.IntN(int(t.to-t.from)+1))
	if per > 1 && t.span {
		// UDP, as the client sends by default; position seq.
		for t.proto != unix.IPPROTO_UDP {
			t = &s.targets[s.rng.IntN(len(s.targets))]
		}
		if seq == 0 {
			port = t.from + 0x10 // the source-mode header
		} else {
			port = t.from + uint16(seq%40)*256 + uint16(s.rng.IntN(256))
		}
	}
	copy(b[0:6], s.dstMAC)
	copy(b[6:12], s.srcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	l4len := 8 + t.payload
	if t.proto == unix.IPPROTO_TCP {
		l4len = 20
	}
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4len))
	binary.BigEndian.PutUint16(ip[4:], uint16(s.rng.Uint32()))
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8] = 64
	ip[9] = t.proto
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], src[:])
	dst := srvAddr.As4()
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:20], 0))
	l4 := ip[20 : 20+l4len]
	sport := uint16(1024 + s.rng.IntN(64511))
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], port)
	pseudo := pseudoSum(src, dst, t.proto, l4len)
	if t.proto == unix.IPPROTO_TCP {
		binary.BigEndian.PutUint32(l4[4:], s.rng.Uint32())
		binary.BigEndian.PutUint32(l4[8:], 0)
		l4[12] = 5 << 4
		l4[13] = 0x02 // SYN
		binary.BigEndian.PutUint16(l4[14:], 64240)
		l4[16], l4[17], l4[18], l4[19] = 0, 0, 0, 0
		binary.BigEndian.PutUint16(l4[16:], checksum(l4, pseudo))
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(l4len))
		l4[6], l4[7] = 0, 0
		for i := 8; i < l4len; i++ {
			l4[i] = b64chars[s.rng.IntN(64)]
		}
		c := checksum(l4, pseudo)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	}
	return 14 + 20 + l4len
}

func pseudoSum(src, dst [4]byte, proto uint8, l4len int) uint32 {
	var s uint32
	s += uint32(src[0])<<8 | uint32(src[1])
	s += uint32(src[2])<<8 | uint32(src[3])
	s += uint32(dst[0])<<8 | uint32(dst[1])
	s += uint32(dst[2])<<8 | uint32(dst[3])
	s += uint32(proto)
	s += uint32(l4len)
	return s
}

func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// send sends up to count frames at rate packets per second (0: as fast
// as possible) for at most dur, or until stop is closed.
func (s *noiseSender) send(rate float64, count uint64, dur time.Duration, stop <-chan struct{}) (noiseResult, error) {
	const frameMax = 256
	bufs := make([]byte, noiseBatch*frameMax)
	iov := make([]unix.Iovec, noiseBatch)
	msgs := make([]unix.Mmsghdr, noiseBatch)
	for i := range msgs {
		iov[i].Base = &bufs[i*frameMax]
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.Iovlen = 1
	}
	batch := noiseBatch
	if rate > 0 {
		// Small bursts at low rates, so the bucket stays smooth.
		batch = max(1, min(noiseBatch, int(rate/4000)))
	}
	start := time.Now()
	var sent uint64
	var err error
	for sent < count {
		select {
		case <-stop:
			count = sent
			continue
		default:
		}
		now := time.Now()
		el := now.Sub(start)
		if el >= dur {
			break
		}
		n := batch
		if rate > 0 {
			allowed := uint64(rate*el.Seconds()) + uint64(batch)
			if allowed <= sent {
				time.Sleep(time.Duration(float64(batch) / rate * float64(time.Second) / 2))
				continue
			}
			n = int(min(uint64(batch), allowed-sent))
		}
		n = int(min(uint64(n), count-sent))
		for i := 0; i < n; i++ {
			iov[i].SetLen(s.frame(bufs[i*frameMax : (i+1)*frameMax]))
		}
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(n), 0, 0, 0)
		if e != 0 {
			if e == unix.ENOBUFS || e == unix.EAGAIN || e == unix.EINTR {
				continue
			}
			err = fmt.Errorf("sendmmsg: %v", e)
			break
		}
		sent += uint64(r)
	}
	el := time.Since(start)
	return noiseResult{sent: sent, elapsed: el, achieved: float64(sent) / el.Seconds()}, err
}

// noisePool spreads a send over several senders, each on its own thread
// with its own socket and its own share of the source counter.
type noisePool []*noiseSender

func newNoisePool(n int, open func() (*noiseSender, error)) (noisePool, error) {
	var p noisePool
	for i := 0; i < n; i++ {
		s, err := open()
		if err != nil {
			p.close()
			return nil, err
		}
		s.counter = uint32(i) * (1 << 24 / uint32(n))
		s.rng = rand.New(rand.NewPCG(uint64(i)+1, 2))
		p = append(p, s)
	}
	return p, nil
}

func (p noisePool) close() {
	for _, s := range p {
		s.close()
	}
}

func (p noisePool) send(rate float64, count uint64, dur time.Duration) (noiseResult, error) {
	n := len(p)
	type res struct {
		r   noiseResult
		err error
	}
	ch := make(chan res, n)
	for i, s := range p {
		share := count / uint64(n)
		if i == 0 {
			share += count % uint64(n)
		}
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r, err := s.send(rate/float64(n), share, dur, nil)
			ch <- res{r, err}
		}()
	}
	var out noiseResult
	var err error
	for range p {
		r := <-ch
		out.sent += r.r.sent
		out.elapsed = max(out.elapsed, r.r.elapsed)
		if r.err != nil {
			err = r.err
		}
	}
	out.achieved = float64(out.sent) / out.elapsed.Seconds()
	return out, err
}
