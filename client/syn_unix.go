//go:build unix

package client

import (
	"fmt"
	"net/netip"
	"syscall"
)

// synSender sends a TCP SYN with a non-blocking connect on a fresh socket,
// closed at once: connect(2) hands the SYN to the kernel before it returns
// EINPROGRESS, and closing a socket in SYN-SENT sends nothing more. No raw
// socket, so no privilege is needed.
type synSender struct {
	family int
	sa     syscall.Sockaddr
	server netip.Addr
}

func newSYNSender(server netip.Addr) sender {
	s := &synSender{server: server}
	if server.Is4() {
		s.family = syscall.AF_INET
		s.sa = &syscall.SockaddrInet4{Addr: server.As4()}
	} else {
		s.family = syscall.AF_INET6
		s.sa = &syscall.SockaddrInet6{Addr: server.As16()}
	}
	return s
}

func (s *synSender) send(port uint16) error {
	fd, err := syscall.Socket(s.family, syscall.SOCK_STREAM, syscall.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer syscall.Close(fd)
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		return err
	}
	switch sa := s.sa.(type) {
	case *syscall.SockaddrInet4:
		sa.Port = int(port)
	case *syscall.SockaddrInet6:
		sa.Port = int(port)
	}
	switch err := syscall.Connect(fd, s.sa); err {
	case nil, syscall.EINPROGRESS, syscall.ECONNREFUSED, syscall.EINTR:
		return nil // the SYN has left
	default:
		return err
	}
}

func (s *synSender) close() {}
