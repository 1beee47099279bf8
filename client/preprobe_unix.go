//go:build unix

package client

import (
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// preProbeLimit is how long the probe sent before the knock may take to be
// answered and still count: less than the kernel's first SYN retransmission
// (1 s), which could pass through a door the knock has just opened.
const preProbeLimit = 800 * time.Millisecond

// preProbe is one TCP connection attempt to the knocked port whose SYN
// leaves before the knock's first packet: a non-blocking connect(2) hands
// the SYN to the kernel before it returns.
type preProbe struct {
	fd    int
	start time.Time
	ok    atomic.Bool // established within preProbeLimit
	done  chan struct{}
}

func startPreProbe(server netip.Addr, port uint16) *preProbe {
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if server.Is4() {
		sa = &syscall.SockaddrInet4{Addr: server.As4(), Port: int(port)}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Addr: server.As16(), Port: int(port)}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM, syscall.IPPROTO_TCP)
	if err != nil {
		return nil
	}
	syscall.CloseOnExec(fd)
	if syscall.SetNonblock(fd, true) != nil {
		syscall.Close(fd)
		return nil
	}
	pp := &preProbe{fd: fd, start: time.Now(), done: make(chan struct{})}
	switch err := syscall.Connect(fd, sa); err {
	case nil:
		pp.ok.Store(true)
		close(pp.done)
		return pp
	case syscall.EINPROGRESS:
	default:
		syscall.Close(fd)
		return nil
	}
	go pp.wait()
	return pp
}

// wait polls the connection until it is established, refused, or
// preProbeLimit has passed.
func (pp *preProbe) wait() {
	defer close(pp.done)
	if pp.established(int(preProbeLimit / time.Millisecond)) {
		pp.ok.Store(true)
	}
}

// established polls the socket for up to ms milliseconds and reports
// whether its connection is established.
func (pp *preProbe) established(ms int) bool {
	fds := []unix.PollFd{{Fd: int32(pp.fd), Events: unix.POLLOUT}}
	if n, err := unix.Poll(fds, ms); err != nil || n != 1 || fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
		return false
	}
	v, err := syscall.GetsockoptInt(pp.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
	return err == nil && v == 0
}

// answered reports whether the port answered the early probe.
func (pp *preProbe) answered() bool {
	if pp == nil {
		return false
	}
	if pp.ok.Load() {
		return true
	}
	// Within the limit, ask the socket itself, without waiting: its
	// answer came no later than the one the knock's probe just had.
	return time.Since(pp.start) < preProbeLimit && pp.established(0)
}

// stop abandons the early probe and closes its socket; an unanswered
// connection attempt ends without a packet.
func (pp *preProbe) stop() {
	if pp == nil {
		return
	}
	go func() {
		<-pp.done
		syscall.Close(pp.fd)
	}()
}
